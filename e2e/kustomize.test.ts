// The kustomize layout in config/: `kubectl kustomize config/default` renders the operator install
// (namespace, CRDs, RBAC, Deployment), every object validates against the Kubernetes schemas
// (kubernetes-models), and the samples in config/samples are valid ConfluxCluster/ConfluxBackup
// resources for both the project's zod schemas and the rendered CRDs' OpenAPI + CEL rules.

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { Namespace, ServiceAccount } from 'kubernetes-models/v1';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { confluxBackupSchema, confluxClusterSchema } from '../operator/api/cluster.js';
import type { JSONSchemaProps } from '../operator/api/crd.js';
import { admissionErrors } from '../operator/api/test-k8s-schema.js';
import { kubectlBinary } from './support/helm.js';

const repoRoot = new URL('../', import.meta.url);
const NAMESPACE = 'conflux-system';

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

function kustomize(dir: string): K8sObject[] {
  const out = execFileSync(kubectlBinary(), ['kustomize', dir], {
    cwd: repoRoot,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return parseAllDocuments(out).map((d) => {
    expect(d.errors).toEqual([]);
    return d.toJS() as K8sObject;
  });
}

type ModelCtor = new (data: never) => { validate(): void };
const MODELS: Record<string, ModelCtor> = {
  'v1/Namespace': Namespace as unknown as ModelCtor,
  'v1/ServiceAccount': ServiceAccount as unknown as ModelCtor,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition as unknown as ModelCtor,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole as unknown as ModelCtor,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding as unknown as ModelCtor,
  'apps/v1/Deployment': Deployment as unknown as ModelCtor,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy as unknown as ModelCtor,
};
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'CustomResourceDefinition',
  'ClusterRole',
  'ClusterRoleBinding',
]);

const find = (objs: K8sObject[], kind: string, name?: string) => {
  const o = objs.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  if (!o) throw new Error(`no ${kind}${name ? `/${name}` : ''} in the rendered output`);
  return o;
};

describe('config/crd/bases', () => {
  it('holds verbatim copies of every generated crds/*.yaml (re-copy with `cp crds/*.yaml config/crd/bases/`)', () => {
    const generated = readdirSync(new URL('crds/', repoRoot)).filter((f) => f.endsWith('.yaml'));
    const copies = readdirSync(new URL('config/crd/bases/', repoRoot)).filter((f) => f.endsWith('.yaml'));
    expect(generated.length).toBeGreaterThan(0);
    expect(copies.sort()).toEqual(generated.sort());
    for (const f of generated) {
      const copy = readFileSync(new URL(`config/crd/bases/${f}`, repoRoot), 'utf8');
      expect(copy, `config/crd/bases/${f} differs from crds/${f}`).toBe(
        readFileSync(new URL(`crds/${f}`, repoRoot), 'utf8'),
      );
    }
  });

  it('config/crd/kustomization.yaml lists every copy', () => {
    const objs = kustomize('config/crd');
    const generated = readdirSync(new URL('crds/', repoRoot)).filter((f) => f.endsWith('.yaml'));
    expect(objs.map((o) => o.kind)).toEqual(generated.map(() => 'CustomResourceDefinition'));
  });
});

describe('kubectl kustomize config/default', () => {
  let objs: K8sObject[];
  beforeAll(() => {
    objs = kustomize('config/default');
  });

  it('renders exactly the expected objects', () => {
    const ids = objs.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(ids).toEqual(
      [
        'ClusterRole/conflux-operator',
        'ClusterRoleBinding/conflux-operator',
        'CustomResourceDefinition/confluxbackups.conflux.io',
        'CustomResourceDefinition/confluxclusters.conflux.io',
        'Deployment/conflux-operator',
        'Namespace/conflux-system',
        'NetworkPolicy/conflux-operator',
        'ServiceAccount/conflux-operator',
      ].sort(),
    );
  });

  it('every object validates against its Kubernetes schema', () => {
    for (const o of objs) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      expect(Model, `no model for ${o.apiVersion}/${o.kind}`).toBeDefined();
      expect(() => new Model!(o as never).validate(), `${o.kind}/${o.metadata.name}`).not.toThrow();
    }
  });

  it('puts namespaced objects in conflux-system and labels everything part-of conflux', () => {
    for (const o of objs) {
      expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(
        CLUSTER_SCOPED.has(o.kind) ? undefined : NAMESPACE,
      );
      expect(o.metadata.labels?.['app.kubernetes.io/part-of'], `${o.kind}/${o.metadata.name}`).toBe(
        'conflux',
      );
    }
  });

  it('binds the ClusterRole to the ServiceAccount the Deployment runs as', () => {
    const sa = find(objs, 'ServiceAccount');
    const role = find(objs, 'ClusterRole');
    const binding = new ClusterRoleBinding(find(objs, 'ClusterRoleBinding') as never);
    const deploy = new Deployment(find(objs, 'Deployment') as never);
    expect(binding.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: role.metadata.name,
    });
    expect(binding.subjects).toContainEqual({
      kind: 'ServiceAccount',
      name: sa.metadata.name,
      namespace: NAMESPACE,
    });
    expect(deploy.spec?.template.spec?.serviceAccountName).toBe(sa.metadata.name);
  });

  it('runs the operator hardened, probed, resourced and with leader election', () => {
    const deploy = new Deployment(find(objs, 'Deployment', 'conflux-operator') as never);
    const spec = deploy.spec!;
    // The selector must stay stable (immutable): the common labels are not added to it.
    expect(spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'conflux-operator' });
    for (const [k, v] of Object.entries(spec.selector.matchLabels ?? {})) {
      expect(spec.template.metadata?.labels?.[k]).toBe(v);
    }
    expect(spec.replicas).toBeGreaterThanOrEqual(2);
    const pod = spec.template.spec!;
    expect(pod.securityContext?.runAsNonRoot).toBe(true);
    expect(pod.securityContext?.seccompProfile?.type).toBe('RuntimeDefault');
    expect(pod.containers).toHaveLength(1);
    const c = pod.containers[0]!;
    expect(c.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(c.command).toEqual(['node', 'dist/operator/main.js']);
    expect(c.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 'metrics' });
    expect(c.livenessProbe?.httpGet).toMatchObject({ path: '/healthz', port: 'metrics' });
    expect(c.ports).toContainEqual(expect.objectContaining({ name: 'metrics', containerPort: 8080 }));
    expect(c.resources?.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(c.resources?.limits?.memory).toBeDefined();
    const env = new Map((c.env ?? []).map((e) => [e.name, e]));
    expect(env.get('CONFLUX_OPERATOR_LEADER_ELECT')?.value).toBe('true');
    // The identity and Lease namespace the operator uses for leader election.
    expect(env.get('POD_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
    expect(env.get('POD_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.namespace');
    // A read-only root filesystem: anything that writes scratch files gets an emptyDir.
    expect(c.volumeMounts).toContainEqual(expect.objectContaining({ mountPath: '/tmp' }));
  });

  it('grants the operator the Lease verbs leader election needs', () => {
    const role = new ClusterRole(find(objs, 'ClusterRole') as never);
    const lease = role.rules?.find((r) => r.apiGroups?.includes('coordination.k8s.io'));
    expect(lease?.resources).toContain('leases');
    expect(lease?.verbs).toEqual(expect.arrayContaining(['get', 'create', 'update']));
  });

  it('renders CRDs identical (apart from labels) to the generated crds/', () => {
    for (const f of readdirSync(new URL('crds/', repoRoot)).filter((x) => x.endsWith('.yaml'))) {
      const docs = parseAllDocuments(readFileSync(new URL(`crds/${f}`, repoRoot), 'utf8'));
      for (const d of docs) {
        const crd = d.toJS() as K8sObject;
        const rendered = find(objs, 'CustomResourceDefinition', crd.metadata.name);
        expect(rendered.spec).toEqual(crd.spec);
        expect(rendered.metadata.labels).toMatchObject(crd.metadata.labels ?? {});
      }
    }
  });
});

describe('config/samples', () => {
  let samples: K8sObject[];
  let crds: K8sObject[];
  const openApi = (kind: string): JSONSchemaProps => {
    const crd = crds.find((c) => (c.spec as { names: { kind: string } }).names.kind === kind);
    if (!crd) throw new Error(`no CRD for ${kind}`);
    const versions = (crd.spec as { versions: { schema: { openAPIV3Schema: JSONSchemaProps } }[] }).versions;
    return versions[0]!.schema.openAPIV3Schema;
  };
  beforeAll(() => {
    samples = kustomize('config/samples');
    crds = kustomize('config/crd');
  });

  it('holds one ConfluxCluster and one ConfluxBackup of it', () => {
    expect(samples.map((s) => s.kind).sort()).toEqual(['ConfluxBackup', 'ConfluxCluster']);
    const cluster = find(samples, 'ConfluxCluster');
    const backup = find(samples, 'ConfluxBackup');
    expect((backup.spec as { clusterName: string }).clusterName).toBe(cluster.metadata.name);
  });

  it('parses with the project zod schemas', () => {
    const cluster = confluxClusterSchema.parse(find(samples, 'ConfluxCluster'));
    expect(cluster.spec.replicas).toBe(3);
    expect(cluster.spec.backup?.destination?.uri).toMatch(/^s3:\/\//);
    const backup = confluxBackupSchema.parse(find(samples, 'ConfluxBackup'));
    expect(backup.spec.clusterName).toBe('config');
  });

  it('passes the rendered CRDs’ OpenAPI and CEL validation', () => {
    for (const s of samples) {
      expect(admissionErrors(openApi(s.kind), s), `${s.kind}/${s.metadata.name}`).toEqual([]);
    }
  });
});
