// The CEL rules of the CRDs (CEL_RULES in crd.ts), evaluated with @bufbuild/cel the way the API
// server applies them: defaults first, transition rules only on update.

import { type CelInput, isCelError, run } from '@bufbuild/cel';
import { describe, expect, it } from 'vitest';
import { API_VERSION } from './cluster.js';
import { backupCrd, CEL_RULES, clusterCrd, schemaAt } from './crd.js';
import { authCases } from './test-auth-cases.js';
import { admissionErrors, CelEvaluationError, celFailures } from './test-k8s-schema.js';

const clusterSchema = clusterCrd().spec.versions[0]!.schema.openAPIV3Schema;
const backupSchema = backupCrd().spec.versions[0]!.schema.openAPIV3Schema;

const cluster = (spec: Record<string, unknown>) => ({
  apiVersion: API_VERSION,
  kind: 'ConfluxCluster',
  metadata: { name: 'c', namespace: 'default' },
  spec,
});
const backup = (spec: Record<string, unknown>, labels?: Record<string, string>) => ({
  apiVersion: API_VERSION,
  kind: 'ConfluxBackup',
  metadata: { name: 'b', namespace: 'default', ...(labels ? { labels } : {}) },
  spec,
});

const RESTORE = 'spec.restore can only be set when the cluster is created and never changed';
const TLS_REQUIRED =
  'tls.nodeSecretName and tls.adminSecretName are required when tls.operatorManaged is false';
const TLS_FORBIDDEN =
  'tls.nodeSecretName and tls.adminSecretName are used only when tls.operatorManaged is false';
const RETENTION = 'backup.retention needs keepLast, maxAgeDays or both';
const S3_ONLY = 'endpoint, region, pathStyle and credentialsSecret apply only to s3:// destinations';
const BACKUP_IMMUTABLE = 'the spec of a ConfluxBackup is immutable; create a new ConfluxBackup instead';
const NAME =
  'metadata.name must be a DNS label (lowercase letters, digits and dashes, at most 63): it names pods and Services';
const RESERVED = CEL_RULES.find((r) => r.path === 'spec.env')!.message;
const CRON = 'backup.schedule must be a cron expression of 5 to 7 fields (for example "0 */6 * * *")';
const named = <T extends { metadata: object }>(o: T, name: string): T => ({
  ...o,
  metadata: { ...o.metadata, name },
});

const restore = { snapshotUri: 's3://bk/c/snap-1', expectedClusterId: 'id-1' };
const ownTls = { operatorManaged: false, nodeSecretName: 'node-tls', adminSecretName: 'admin-tls' };
const s3 = (extra: Record<string, unknown> = {}) => ({ uri: 's3://bk/c', ...extra });
const withBackup = (destination: Record<string, unknown>, retention?: Record<string, unknown>) => ({
  backup: { schedule: '0 3 * * *', destination, ...(retention ? { retention } : {}) },
});

type Case = [name: string, next: object, old: object | undefined, expected: string[]];

/** Expected: the messages of the failures ([] = accepted). `old` undefined = create. */
const clusterCases: Case[] = [
  ['create without restore', cluster({}), undefined, []],
  ['create with restore', cluster({ restore }), undefined, []],
  ['update without restore', cluster({ replicas: 5 }), cluster({}), []],
  ['update keeps restore unchanged', cluster({ replicas: 5, restore }), cluster({ restore }), []],
  ['update adds restore', cluster({ restore }), cluster({}), [RESTORE]],
  [
    'update changes restore.snapshotUri',
    cluster({ restore: { ...restore, snapshotUri: 's3://x/y' } }),
    cluster({ restore }),
    [RESTORE],
  ],
  [
    'update adds restore.expectedClusterId',
    cluster({ restore }),
    cluster({ restore: { snapshotUri: restore.snapshotUri } }),
    [RESTORE],
  ],
  ['update removes restore', cluster({}), cluster({ restore }), [RESTORE]],
  ['tls default', cluster({ tls: {} }), undefined, []],
  ['tls own secrets', cluster({ tls: ownTls }), undefined, []],
  ['tls not managed, no secrets', cluster({ tls: { operatorManaged: false } }), undefined, [TLS_REQUIRED]],
  [
    'tls not managed, node secret only',
    cluster({ tls: { operatorManaged: false, nodeSecretName: 'n' } }),
    undefined,
    [TLS_REQUIRED],
  ],
  [
    'tls not managed, admin secret only',
    cluster({ tls: { operatorManaged: false, adminSecretName: 'a' } }),
    undefined,
    [TLS_REQUIRED],
  ],
  [
    'tls managed (default) with a secret name',
    cluster({ tls: { nodeSecretName: 'n' } }),
    undefined,
    [TLS_FORBIDDEN],
  ],
  [
    'tls managed with both names',
    cluster({ tls: { ...ownTls, operatorManaged: true } }),
    undefined,
    [TLS_FORBIDDEN],
  ],
  [
    'tls rule also on update',
    cluster({ tls: { operatorManaged: false } }),
    cluster({ tls: ownTls }),
    [TLS_REQUIRED],
  ],
  ['backup without retention', cluster(withBackup(s3())), undefined, []],
  ['retention keepLast', cluster(withBackup(s3(), { keepLast: 3 })), undefined, []],
  ['retention maxAgeDays', cluster(withBackup(s3(), { maxAgeDays: 1.5 })), undefined, []],
  ['retention both', cluster(withBackup(s3(), { keepLast: 3, maxAgeDays: 30 })), undefined, []],
  ['retention empty', cluster(withBackup(s3(), {})), undefined, [RETENTION]],
  [
    's3 destination with everything',
    cluster(
      withBackup(
        s3({
          endpoint: 'http://minio:9000',
          region: 'eu',
          pathStyle: true,
          credentialsSecret: { name: 'creds' },
        }),
      ),
    ),
    undefined,
    [],
  ],
  ['file destination', cluster(withBackup({ uri: 'file:///var/backups' })), undefined, []],
  [
    'file destination with endpoint',
    cluster(withBackup({ uri: 'file:///b', endpoint: 'http://minio' })),
    undefined,
    [S3_ONLY],
  ],
  [
    'file destination with region',
    cluster(withBackup({ uri: 'file:///b', region: 'eu' })),
    undefined,
    [S3_ONLY],
  ],
  [
    'file destination with pathStyle',
    cluster(withBackup({ uri: 'file:///b', pathStyle: true })),
    undefined,
    [S3_ONLY],
  ],
  [
    'file destination with pathStyle false',
    cluster(withBackup({ uri: 'file:///b', pathStyle: false })),
    undefined,
    [],
  ],
  [
    'file destination with credentials',
    cluster(withBackup({ uri: 'file:///b', credentialsSecret: { name: 's' } })),
    undefined,
    [S3_ONLY],
  ],
  [
    'two rules at once',
    cluster({ tls: { operatorManaged: false }, ...withBackup(s3(), {}) }),
    undefined,
    [TLS_REQUIRED, RETENTION],
  ],
  ['a dotted name', named(cluster({}), 'my.cluster'), undefined, [NAME]],
  ['an upper-case name', named(cluster({}), 'Prod'), undefined, [NAME]],
  ['a name of 64 characters', named(cluster({}), 'a'.repeat(64)), undefined, [NAME]],
  ['env of the user', cluster({ env: [{ name: 'LOG_FORMAT', value: 'json' }] }), undefined, []],
  [
    'env replacing an operator variable',
    cluster({ env: [{ name: 'CONFLUX_JOIN', value: 'x:1' }] }),
    undefined,
    [RESERVED],
  ],
  ['a cron nickname', cluster({ backup: { schedule: '@hourly', destination: s3() } }), undefined, []],
  ['six cron fields', cluster({ backup: { schedule: '0 0 */6 * * *', destination: s3() } }), undefined, []],
  ['four cron fields', cluster({ backup: { schedule: '0 */6 * *', destination: s3() } }), undefined, [CRON]],
  [
    'status changes never trip spec rules',
    { ...cluster({ restore }), status: { phase: 'Running' } },
    cluster({ restore }),
    [],
  ],
  ...authCases(),
];

const backupCases: Case[] = [
  ['create', backup({ clusterName: 'c' }), undefined, []],
  ['a dotted name', named(backup({ clusterName: 'c' }), 'b.1'), undefined, [NAME]],
  [
    'create with a file destination',
    backup({ clusterName: 'c', destination: { uri: 'file:///b' } }),
    undefined,
    [],
  ],
  [
    'file destination with credentials',
    backup({ clusterName: 'c', destination: { uri: 'file:///b', credentialsSecret: { name: 's' } } }),
    undefined,
    [S3_ONLY],
  ],
  ['metadata-only update', backup({ clusterName: 'c' }, { team: 'a' }), backup({ clusterName: 'c' }), []],
  [
    'update changes clusterName',
    backup({ clusterName: 'd' }),
    backup({ clusterName: 'c' }),
    [BACKUP_IMMUTABLE],
  ],
  [
    'update adds a destination',
    backup({ clusterName: 'c', destination: s3() }),
    backup({ clusterName: 'c' }),
    [BACKUP_IMMUTABLE],
  ],
  [
    'update spelling out a default',
    backup({ clusterName: 'c', destination: s3({ pathStyle: false }) }),
    backup({ clusterName: 'c', destination: s3() }),
    [],
  ],
];

describe('CEL rules: ConfluxCluster', () => {
  it.each(clusterCases)('%s', (_name, next, old, expected) => {
    expect(admissionErrors(clusterSchema, next, old).map((e) => e.replace(/^[^:]*: /, ''))).toEqual(expected);
  });

  it('reports the restore rule at spec.restore (its fieldPath)', () => {
    expect(celFailures(clusterSchema, cluster({ restore }), cluster({}))).toEqual([
      expect.objectContaining({ path: '.spec.restore', message: RESTORE }),
    ]);
  });
});

describe('CEL rules: ConfluxBackup', () => {
  it.each(backupCases)('%s', (_name, next, old, expected) => {
    expect(admissionErrors(backupSchema, next, old).map((e) => e.replace(/^[^:]*: /, ''))).toEqual(expected);
  });
});

describe('CEL rules: coverage and evaluator', () => {
  it('every rule in CEL_RULES is seen failing by some case', () => {
    const seen = new Set([...clusterCases, ...backupCases].flatMap(([, , , expected]) => expected));
    for (const rule of CEL_RULES) expect(seen, rule.message).toContain(rule.message);
  });

  it('every rule parses and evaluates to a bool on the defaulted minimal objects', () => {
    for (const rule of CEL_RULES) {
      const minimal: Record<string, CelInput> = {
        '': { metadata: { name: 'c' } },
        'spec.tls': { operatorManaged: true },
        'spec.env': [],
        'spec.backup': { schedule: '0 * * * *' },
      };
      const self = minimal[rule.path] ?? { uri: 's3://b', keepLast: 1n };
      const r = run(rule.rule, { self, oldSelf: self });
      expect(isCelError(r) ? r.message : typeof r, rule.rule).toBe('boolean');
    }
  });

  it('every field a rule names exists in the schema (@bufbuild/cel has no type check: has(self.typo) is false)', () => {
    for (const rule of CEL_RULES) {
      const root = rule.kind === 'ConfluxCluster' ? clusterSchema : backupSchema;
      const node = schemaAt(root, rule.path);
      for (const m of rule.rule.matchAll(/\b(?:self|oldSelf)((?:\.[A-Za-z_]\w*)+)(\()?/g)) {
        const fields = m[1]!.slice(1).split('.');
        if (m[2]) fields.pop(); // a method call: self.uri.startsWith(...)
        // At the root, metadata.name (and generateName) are always there for CEL, schema or not.
        if (rule.path === '' && fields[0] === 'metadata' && ['name', undefined].includes(fields[1])) continue;
        if (fields.length > 0)
          expect(() => schemaAt(node, fields.join('.')), `${rule.rule}: ${m[0]}`).not.toThrow();
      }
    }
  });

  it('has() on oldSelf and object equality work in @bufbuild/cel', () => {
    const rule = CEL_RULES.find((r) => r.message === RESTORE)!.rule;
    expect(run(rule, { self: { restore: { snapshotUri: 'a' } }, oldSelf: {} })).toBe(false);
    expect(run(rule, { self: {}, oldSelf: {} })).toBe(true);
    expect(
      run(rule, { self: { restore: { snapshotUri: 'a' } }, oldSelf: { restore: { snapshotUri: 'a' } } }),
    ).toBe(true);
    expect(run('self == oldSelf', { self: { a: [1n, { b: 'x' }] }, oldSelf: { a: [1n, { b: 'x' }] } })).toBe(
      true,
    );
  });

  it('an expression it cannot evaluate is an error, not a pass', () => {
    const schema = {
      type: 'object' as const,
      properties: { a: { type: 'string' as const } },
      'x-kubernetes-validations': [{ rule: 'self.a.frobnicate()', message: 'x' }],
    };
    expect(() => celFailures(schema, { a: 'v' })).toThrow(CelEvaluationError);
  });
});
