import { readFileSync } from 'node:fs';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import {
  API_VERSION,
  backupSpecSchema,
  clusterSpecSchema,
  confluxBackupSchema,
  confluxClusterSchema,
  GROUP,
  VERSION,
} from './cluster.js';
import {
  backupCrd,
  CEL_RULES,
  type CustomResourceDefinition as Crd,
  clusterCrd,
  type JSONSchemaProps,
  openAPIV3Schema,
  SchemaConversionError,
  schemaAt,
  structuralSchema,
} from './crd.js';
import { admissionErrors, applyDefaults, schemaErrors, structuralProblems } from './test-k8s-schema.js';

const sample = (name: string): Record<string, unknown> =>
  parseYaml(readFileSync(new URL(`./samples/${name}`, import.meta.url), 'utf8'));

const schemaOf = (crd: Crd) => crd.spec.versions[0]!.schema.openAPIV3Schema;
const clusterRoot = () => schemaOf(clusterCrd());
const backupRoot = () => schemaOf(backupCrd());

describe('CRDs', () => {
  it.each([
    ['ConfluxCluster', clusterCrd],
    ['ConfluxBackup', backupCrd],
  ] as const)('%s validates with kubernetes-models', (_kind, make) => {
    expect(() => new CustomResourceDefinition(make() as never).validate()).not.toThrow();
  });

  it('kubernetes-models does reject a malformed CRD (the validation is real)', () => {
    const bad = clusterCrd() as unknown as { spec: { names: Record<string, unknown> } };
    delete bad.spec.names.plural;
    expect(() => new CustomResourceDefinition(bad as never).validate()).toThrow();
  });

  it('names, scope and the one version', () => {
    const c = clusterCrd();
    const b = backupCrd();
    expect(c.metadata.name).toBe('confluxclusters.conflux.io');
    expect(b.metadata.name).toBe('confluxbackups.conflux.io');
    expect(c.spec.names).toEqual({
      kind: 'ConfluxCluster',
      listKind: 'ConfluxClusterList',
      plural: 'confluxclusters',
      singular: 'confluxcluster',
      shortNames: ['cfx'],
      categories: ['conflux'],
    });
    expect(b.spec.names).toMatchObject({
      kind: 'ConfluxBackup',
      plural: 'confluxbackups',
      shortNames: ['cfxbackup'],
    });
    expect(b.spec.names.categories).toEqual(['conflux']);
    for (const crd of [c, b]) {
      expect(crd.spec.group).toBe(GROUP);
      expect(crd.spec.scope).toBe('Namespaced');
      expect(crd.spec.versions.map((v) => [v.name, v.served, v.storage])).toEqual([[VERSION, true, true]]);
      expect(`${crd.spec.group}/${crd.spec.versions[0]!.name}`).toBe(API_VERSION);
    }
  });

  it('subresources: status and scale for clusters, status for backups', () => {
    expect(clusterCrd().spec.versions[0]!.subresources).toEqual({
      status: {},
      scale: {
        specReplicasPath: '.spec.replicas',
        statusReplicasPath: '.status.replicas',
        labelSelectorPath: '.status.selector',
      },
    });
    expect(backupCrd().spec.versions[0]!.subresources).toEqual({ status: {} });
    // The scale paths point at an integer and a string in the schema.
    const root = clusterRoot();
    expect(schemaAt(root, 'spec.replicas').type).toBe('integer');
    expect(schemaAt(root, 'status.replicas').type).toBe('integer');
    expect(schemaAt(root, 'status.selector').type).toBe('string');
  });

  it('printer columns', () => {
    const cols = (crd: Crd) =>
      crd.spec.versions[0]!.additionalPrinterColumns!.map((c) => [
        c.name,
        c.type,
        c.jsonPath,
        c.priority ?? 0,
      ]);
    expect(cols(clusterCrd())).toEqual([
      ['Replicas', 'integer', '.spec.replicas', 0],
      ['Ready', 'integer', '.status.readyReplicas', 0],
      ['Leader', 'string', '.status.leaderId', 0],
      ['Phase', 'string', '.status.phase', 0],
      ['Last Backup', 'date', '.status.lastBackup.time', 0],
      ['Age', 'date', '.metadata.creationTimestamp', 0],
    ]);
    expect(cols(backupCrd())).toEqual([
      ['Cluster', 'string', '.spec.clusterName', 0],
      ['Phase', 'string', '.status.phase', 0],
      ['URI', 'string', '.status.uri', 1],
      ['Age', 'date', '.metadata.creationTimestamp', 0],
    ]);
  });

  it('every printer column points at a field of the schema', () => {
    for (const crd of [clusterCrd(), backupCrd()]) {
      const root = schemaOf(crd);
      for (const col of crd.spec.versions[0]!.additionalPrinterColumns!) {
        if (col.jsonPath.startsWith('.metadata.')) continue;
        expect(() => schemaAt(root, col.jsonPath.slice(1)), col.jsonPath).not.toThrow();
      }
    }
  });
});

describe('structural schema', () => {
  it.each([
    ['ConfluxCluster', clusterRoot],
    ['ConfluxBackup', backupRoot],
  ] as const)('%s is structural', (_kind, root) => {
    expect(structuralProblems(root())).toEqual([]);
  });

  it('the checker catches what Kubernetes refuses', () => {
    const bad: JSONSchemaProps = {
      type: 'object',
      default: {},
      properties: {
        metadata: { type: 'object', properties: { name: { type: 'string' } } },
        a: { description: 'no type' },
        b: {
          type: 'object',
          properties: { x: { type: 'string' } },
          additionalProperties: { type: 'string' },
        },
        c: { type: 'object', additionalProperties: false },
        d: { type: 'integer', maximum: Number.MAX_SAFE_INTEGER },
        e: { type: 'object', properties: { x: { type: 'string' } }, default: { x: 'ok', y: 'unknown' } },
        f: { type: 'array', items: { type: 'object', properties: { k: { type: 'string' } } } },
      },
    };
    bad.properties!.f!['x-kubernetes-list-type'] = 'map';
    bad.properties!.f!['x-kubernetes-list-map-keys'] = ['k'];
    (bad.properties!.a as Record<string, unknown>).$ref = '#/definitions/x';
    const problems = structuralProblems(bad).join('\n');
    for (const expected of [
      'root: no default',
      '.metadata: at the root',
      '.a: no type',
      '.a: keyword $ref',
      '.b: properties and additionalProperties',
      '.c: additionalProperties must be a schema',
      '.d: unbounded integer',
      '.e.default.y: not in the schema',
      '.f: map key k is neither required nor defaulted',
    ]) {
      expect(problems).toContain(expected);
    }
  });

  it('has no $schema, references, additionalProperties:false or zod int bounds', () => {
    const text = JSON.stringify([clusterRoot(), backupRoot()]);
    for (const s of [
      '$schema',
      '$ref',
      'definitions',
      '$defs',
      '"additionalProperties":false',
      '9007199254740991',
    ]) {
      expect(text).not.toContain(s);
    }
  });

  it('keeps real bounds, patterns and descriptions', () => {
    const root = clusterRoot();
    expect(schemaAt(root, 'spec.replicas')).toMatchObject({
      type: 'integer',
      minimum: 1,
      maximum: 99,
      default: 3,
    });
    expect(schemaAt(root, 'spec.raft.snapshotEntries')).toEqual({
      type: 'integer',
      default: 10_000,
      minimum: 100,
    });
    expect(schemaAt(root, 'spec.backup.retention.maxAgeDays')).toMatchObject({
      minimum: 0,
      exclusiveMinimum: true,
    });
    expect(schemaAt(root, 'spec.storage.size').pattern).toBeDefined();
    expect(schemaAt(root, 'spec.backup.schedule').description).toMatch(/Cron/);
    expect(schemaAt(root, 'status.members').items?.properties?.lag).toMatchObject({
      type: 'integer',
      nullable: true,
    });
    expect(schemaAt(root, 'status.operation')).toMatchObject({ type: 'object', nullable: true });
  });

  it('root: apiVersion, kind, metadata as `type: object`, spec, status', () => {
    for (const root of [clusterRoot(), backupRoot()]) {
      expect(Object.keys(root.properties ?? {})).toEqual([
        'apiVersion',
        'kind',
        'metadata',
        'spec',
        'status',
      ]);
      expect(root.properties?.metadata).toEqual({ type: 'object' });
      expect(root.properties?.apiVersion?.type).toBe('string');
    }
    expect(clusterRoot().required).toBeUndefined(); // spec defaults to {}
    expect(clusterRoot().properties?.spec?.default).toEqual({});
    expect(backupRoot().required).toEqual(['spec']);
  });

  it('status conditions merge by type', () => {
    for (const root of [clusterRoot(), backupRoot()]) {
      const conditions = schemaAt(root, 'status.conditions');
      expect(conditions['x-kubernetes-list-type']).toBe('map');
      expect(conditions['x-kubernetes-list-map-keys']).toEqual(['type']);
    }
  });

  it('refuses zod shapes a structural schema cannot express', () => {
    expect(() => structuralSchema(z.object({ a: z.union([z.string(), z.int()]) }))).toThrow(
      SchemaConversionError,
    );
    expect(() => structuralSchema(z.object({ a: z.union([z.string(), z.int()]) }))).toThrow(/\$\.a: "anyOf"/);
    expect(() => structuralSchema(z.object({ a: z.tuple([z.string()]) }))).toThrow(SchemaConversionError);
    expect(() => structuralSchema(z.object({ a: z.object({ b: z.string() }).catchall(z.int()) }))).toThrow(
      /\$\.a: known properties plus a typed catchall/,
    );
  });

  it('converts what it can: literals to enums, loose records, strict objects', () => {
    const s = structuralSchema(
      z.strictObject({ k: z.literal('x'), free: z.record(z.string(), z.unknown()), n: z.int().max(5) }),
    );
    expect(s.properties?.k).toEqual({ type: 'string', enum: ['x'] });
    expect(s.properties?.n).toEqual({ type: 'integer', maximum: 5 });
    expect(s.additionalProperties).toBeUndefined();
    expect(s.properties?.free).toEqual({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true });
    expect(structuralSchema(z.looseObject({ a: z.string() }))['x-kubernetes-preserve-unknown-fields']).toBe(
      true,
    );
    expect(structuralProblems({ type: 'object', properties: { s } })).toEqual([]);
  });
});

describe('zod schemas and the CRD agree', () => {
  const clusterSamples = [
    'confluxcluster-minimal.yaml',
    'confluxcluster-full.yaml',
    'confluxcluster-restore.yaml',
    'confluxcluster-auth.yaml',
  ];

  it.each(clusterSamples)('sample %s: zod accepts, the API server would accept', (name) => {
    const obj = sample(name);
    expect(confluxClusterSchema.safeParse(obj).error).toBeUndefined();
    expect(admissionErrors(clusterRoot(), obj)).toEqual([]);
  });

  it('sample confluxbackup.yaml: zod accepts, the API server would accept', () => {
    const obj = sample('confluxbackup.yaml');
    expect(confluxBackupSchema.safeParse(obj).error).toBeUndefined();
    expect(admissionErrors(backupRoot(), obj)).toEqual([]);
  });

  const specInputs: [string, Record<string, unknown>][] = [
    ['empty', {}],
    ['some sections', { replicas: 5, storage: { size: '5Gi' }, raft: { tickMs: 20 } }],
    [
      'backup with nested defaults',
      {
        backup: {
          schedule: '0 * * * *',
          destination: { uri: 's3://b/p', credentialsSecret: { name: 'creds' } },
        },
      },
    ],
    ['tls own secrets', { tls: { operatorManaged: false, nodeSecretName: 'n', adminSecretName: 'a' } }],
    ['restore', { restore: { snapshotUri: 'file:///backups/s1' } }],
  ];

  it.each(specInputs)(
    'ConfluxCluster spec defaults (%s): the API server fills in what zod does',
    (_n, input) => {
      const spec = schemaAt(clusterRoot(), 'spec');
      expect(applyDefaults(spec, input)).toEqual(clusterSpecSchema.parse(input));
    },
  );

  it('a ConfluxCluster without spec gets the whole default spec', () => {
    const obj = {
      apiVersion: API_VERSION,
      kind: 'ConfluxCluster',
      metadata: { name: 'x', namespace: 'default' },
    };
    expect(applyDefaults(clusterRoot(), obj)).toEqual(confluxClusterSchema.parse(obj));
  });

  it('ConfluxBackup spec defaults', () => {
    const input = { clusterName: 'c', destination: { uri: 's3://b', credentialsSecret: { name: 's' } } };
    expect(applyDefaults(schemaAt(backupRoot(), 'spec'), input)).toEqual(backupSpecSchema.parse(input));
  });

  it('every default in the CRD is accepted by zod and by the CRD itself', () => {
    const spec = schemaAt(clusterRoot(), 'spec');
    const defaulted = applyDefaults(spec, {});
    expect(clusterSpecSchema.parse(defaulted)).toEqual(defaulted);
    expect(schemaErrors(spec, defaulted)).toEqual([]);
  });

  const invalidSpecs: [string, Record<string, unknown>][] = [
    ['replicas 0', { replicas: 0 }],
    ['replicas 100', { replicas: 100 }],
    ['replicas 2.5', { replicas: 2.5 }],
    ['empty image', { image: '' }],
    ['pull policy', { imagePullPolicy: 'Sometimes' }],
    ['quantity', { storage: { size: 'lots' } }],
    ['resource quantity', { resources: { limits: { cpu: 'x1' } } }],
    ['reclaim policy', { storage: { reclaimPolicy: 'Recycle' } }],
    ['tick', { raft: { tickMs: 0 } }],
    ['election ticks', { raft: { electionTicks: 2 } }],
    ['snapshot entries', { raft: { snapshotEntries: 99 } }],
    ['secret name', { tls: { operatorManaged: false, nodeSecretName: 'Bad_Name', adminSecretName: 'a' } }],
    ['backup without destination', { backup: { schedule: '* * * * *' } }],
    ['backup uri', { backup: { schedule: '* * * * *', destination: { uri: 'http://x' } } }],
    [
      'backup endpoint',
      { backup: { schedule: '* * * * *', destination: { uri: 's3://b', endpoint: 'minio:9000' } } },
    ],
    [
      'keepLast 0',
      { backup: { schedule: '* * * * *', destination: { uri: 's3://b' }, retention: { keepLast: 0 } } },
    ],
    [
      'maxAgeDays 0',
      { backup: { schedule: '* * * * *', destination: { uri: 's3://b' }, retention: { maxAgeDays: 0 } } },
    ],
    ['restore without uri', { restore: {} }],
    ['paused as string', { paused: 'yes' }],
    ['unknown field', { replica: 3 }],
  ];

  it.each(invalidSpecs)('rejected by both (%s)', (_n, spec) => {
    expect(clusterSpecSchema.safeParse(spec).success).toBe(false);
    expect(admissionErrors(schemaAt(clusterRoot(), 'spec'), spec)).not.toEqual([]);
  });

  it.each([
    ['missing clusterName', {}],
    ['bad clusterName', { clusterName: 'Not A Label' }],
    ['bad destination', { clusterName: 'c', destination: { uri: 'ftp://x' } }],
  ])('ConfluxBackup spec rejected by both (%s)', (_n, spec) => {
    expect(backupSpecSchema.safeParse(spec).success).toBe(false);
    expect(admissionErrors(schemaAt(backupRoot(), 'spec'), spec)).not.toEqual([]);
  });

  it('every CEL rule sits on a node of its CRD', () => {
    for (const rule of CEL_RULES) {
      const root = openAPIV3Schema(rule.kind);
      const node = schemaAt(root, rule.path);
      expect(node['x-kubernetes-validations']?.map((r) => r.rule)).toContain(rule.rule);
      if (rule.fieldPath) expect(() => schemaAt(node, rule.fieldPath!.slice(1))).not.toThrow();
    }
  });
});
