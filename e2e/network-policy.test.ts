// The NetworkPolicies Conflux ships, rendered by the real helm and kubectl binaries and read as
// rules: who may open a connection to which port. The members admit their peers on every port
// (Raft, forwarding, joins), admin-labelled pods on the admin port and client-labelled pods on
// the client API; nothing else. The operator's pods admit connections to the metrics port only.

import { execFileSync } from 'node:child_process';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { helm, helmBinary, kubectlBinary, REPO_ROOT, setValues } from './support/helm.js';

interface Rule {
  from?: Record<string, unknown>[];
  ports?: { port: string | number; protocol: string }[];
}
interface Policy {
  kind: string;
  metadata: { name: string; namespace: string };
  spec: { podSelector: { matchLabels: Record<string, string> }; policyTypes: string[]; ingress: Rule[] };
}

async function policies(chart: string, values: Record<string, unknown>): Promise<Policy[]> {
  const r = await helm(['template', 'conflux', chart, '--namespace', 'db', ...setValues(values)]);
  expect(r.code, r.stderr).toBe(0);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Policy | null)
    .filter((o): o is Policy => o?.kind === 'NetworkPolicy');
}

/** The ports a source matching `labels` (in the policy's namespace) may reach. */
function reachable(policy: Policy, labels: Record<string, string>): string[] {
  const matches = (from: Record<string, unknown>) => {
    const sel = from.podSelector as { matchLabels?: Record<string, string> } | undefined;
    return sel !== undefined && Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  };
  return policy.spec.ingress
    .filter((rule) => rule.from === undefined || rule.from.some(matches))
    .flatMap((rule) => (rule.ports ?? []).map((p) => String(p.port)))
    .sort();
}

beforeAll(() => {
  helmBinary();
}, 60_000);

describe('the members of helm/conflux', () => {
  const tls = { 'tls.secretName': 'conflux-tls' };
  const member = { 'app.kubernetes.io/name': 'conflux', 'app.kubernetes.io/instance': 'conflux' };

  it('admit peers on every port, admins on the admin port, labelled clients on the client API, nobody else', async () => {
    const [policy, ...more] = await policies('helm/conflux', tls);
    expect(more).toEqual([]);
    expect(() => new NetworkPolicy(policy as never).validate()).not.toThrow();
    expect(policy?.spec.podSelector.matchLabels).toEqual(member);
    expect(policy?.spec.policyTypes).toEqual(['Ingress']);
    const p = policy as Policy;
    expect(reachable(p, member)).toEqual(['admin', 'api', 'raft']);
    expect(reachable(p, { 'conflux.io/admin': 'true' })).toEqual(['admin']);
    expect(reachable(p, { 'conflux.io/client': 'true', app: 'web' })).toEqual(['api']);
    expect(reachable(p, { app: 'web' })).toEqual([]);
    // A member of another release is a stranger.
    expect(reachable(p, { ...member, 'app.kubernetes.io/instance': 'other' })).toEqual([]);
    // Labelled pods of the release's namespace only, unless a namespaceSelector says otherwise.
    for (const rule of p.spec.ingress)
      for (const f of rule.from ?? []) expect(f).not.toHaveProperty('namespaceSelector');
  });

  it('takes other client labels, a namespace selector and extra sources; and can be left out', async () => {
    const [p] = await policies('helm/conflux', {
      ...tls,
      // Helm merges maps with the defaults: null drops the default label.
      'networkPolicy.clientLabels': { 'conflux.io/client': null, team: 'payments' },
      'networkPolicy.namespaceSelector': { matchLabels: { env: 'prod' } },
      'networkPolicy.extraClientFrom': [{ ipBlock: { cidr: '10.1.0.0/16' } }],
    });
    expect(() => new NetworkPolicy(p as never).validate()).not.toThrow();
    expect(reachable(p as Policy, { team: 'payments' })).toEqual(['api']);
    expect(reachable(p as Policy, { 'conflux.io/client': 'true' })).toEqual([]);
    const api = (p as Policy).spec.ingress.find((r) => r.ports?.[0]?.port === 'api' && r.ports.length === 1);
    expect(api?.from).toEqual([
      {
        podSelector: { matchLabels: { team: 'payments' } },
        namespaceSelector: { matchLabels: { env: 'prod' } },
      },
      { ipBlock: { cidr: '10.1.0.0/16' } },
    ]);
    expect(await policies('helm/conflux', { ...tls, 'networkPolicy.enabled': false })).toEqual([]);
    const bad = await helm([
      'template',
      'conflux',
      'helm/conflux',
      ...setValues({ ...tls, 'networkPolicy.clientLabels': { team: 1 } }),
    ]);
    expect(bad.code).not.toBe(0);
  });
});

describe("the operator's pods", () => {
  const operator = { 'app.kubernetes.io/name': 'conflux-operator' };

  it('admit connections on the metrics port only (helm/conflux-operator)', async () => {
    const [p, ...more] = await policies('helm/conflux-operator', {});
    expect(more).toEqual([]);
    expect(() => new NetworkPolicy(p as never).validate()).not.toThrow();
    expect(p?.spec.podSelector.matchLabels).toEqual({ ...operator, 'app.kubernetes.io/instance': 'conflux' });
    expect(p?.spec.ingress).toEqual([{ ports: [{ port: 'metrics', protocol: 'TCP' }] }]);
    expect(await policies('helm/conflux-operator', { 'networkPolicy.enabled': false })).toEqual([]);
  });

  it('admit connections on the metrics port only (config/default)', () => {
    const out = execFileSync(kubectlBinary(), ['kustomize', 'config/default'], { cwd: REPO_ROOT }).toString();
    const found = parseAllDocuments(out)
      .map((d) => d.toJS() as Policy)
      .filter((o) => o.kind === 'NetworkPolicy');
    expect(found).toHaveLength(1);
    const p = found[0] as Policy;
    expect(() => new NetworkPolicy(p as never).validate()).not.toThrow();
    expect(p.metadata.namespace).toBe('conflux-system');
    expect(p.spec.podSelector.matchLabels).toEqual(operator);
    expect(p.spec.ingress).toEqual([{ ports: [{ port: 'metrics', protocol: 'TCP' }] }]);
  });
});
