// The Argo CD custom health checks in deploy/argocd/, run in fengari (a Lua VM in JS) the way Argo CD
// runs them: the live object as the global `obj`, the script returns { status, message }.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { BACKUP_HEALTH_SCRIPT, CLUSTER_HEALTH_SCRIPT, runHealth } from './cluster/argocd-health.js';

const argocd = new URL('../deploy/argocd/', import.meta.url);
const clusterScript = CLUSTER_HEALTH_SCRIPT;
const backupScript = BACKUP_HEALTH_SCRIPT;

const T = '2026-01-01T00:00:00Z';
function cond(type: string, status: 'True' | 'False' | 'Unknown', message = '', observedGeneration = 3) {
  return { type, status, reason: `${type}${status}`, message, lastTransitionTime: T, observedGeneration };
}
const healthyConditions = () => [
  cond('Ready', 'True', '3/3 members ready'),
  cond('Available', 'True', 'quorum held'),
  cond('Progressing', 'False'),
  cond('Degraded', 'False'),
  cond('Bootstrapped', 'True'),
  cond('Stalled', 'False'),
];
function cluster(opts: { spec?: Record<string, unknown>; status?: Record<string, unknown> | null } = {}) {
  return {
    apiVersion: 'conflux.io/v1alpha1',
    kind: 'ConfluxCluster',
    metadata: { name: 'config', namespace: 'platform', generation: 3 },
    spec: { replicas: 3, ...opts.spec },
    ...(opts.status === null ? {} : { status: opts.status ?? { observedGeneration: 3, phase: 'Running' } }),
  };
}
/** The healthy conditions with one replaced. */
function withCondition(c: ReturnType<typeof cond>) {
  return [...healthyConditions().filter((x) => x.type !== c.type), c];
}

describe('ConfluxCluster health', () => {
  const run = (obj: unknown) => runHealth(clusterScript, obj);

  it('is Progressing without a status', () => {
    expect(run(cluster({ status: null }))).toEqual({
      status: 'Progressing',
      message: 'Waiting for the operator to observe the cluster',
    });
  });

  it('is Progressing with an empty status', () => {
    expect(run(cluster({ status: {} })).status).toBe('Progressing');
  });

  it('is Progressing while the observed generation is behind, even with Ready/Available True', () => {
    const res = run(cluster({ status: { observedGeneration: 2, conditions: healthyConditions() } }));
    expect(res).toEqual({
      status: 'Progressing',
      message: 'Waiting for the operator to observe generation 3',
    });
  });

  it('is Progressing when status.observedGeneration is missing but generation is set', () => {
    expect(run(cluster({ status: { conditions: healthyConditions() } })).status).toBe('Progressing');
  });

  it('is Healthy when Ready and Available are True for the current generation', () => {
    const res = run(
      cluster({ status: { observedGeneration: 3, phase: 'Running', conditions: healthyConditions() } }),
    );
    expect(res).toEqual({ status: 'Healthy', message: '3/3 members ready' });
  });

  it('ignores the phase string: phase Degraded with healthy conditions is Healthy', () => {
    const res = run(
      cluster({ status: { observedGeneration: 3, phase: 'Degraded', conditions: healthyConditions() } }),
    );
    expect(res.status).toBe('Healthy');
  });

  it('ignores the phase string: phase Running without conditions is not Healthy', () => {
    expect(run(cluster({ status: { observedGeneration: 3, phase: 'Running' } })).status).toBe('Progressing');
  });

  it('treats conditions from an older generation as stale', () => {
    const conditions = healthyConditions().map((c) => ({ ...c, observedGeneration: 2 }));
    const res = run(cluster({ status: { observedGeneration: 3, conditions } }));
    expect(res).toEqual({
      status: 'Progressing',
      message: 'Waiting for the cluster to become ready and available',
    });
  });

  it('is Progressing when Progressing=True', () => {
    const conditions = withCondition(cond('Progressing', 'True', 'scaling up: adding member 3'));
    const res = run(cluster({ status: { observedGeneration: 3, conditions } }));
    expect(res).toEqual({ status: 'Progressing', message: 'scaling up: adding member 3' });
  });

  it('is Degraded when Stalled=True', () => {
    const conditions = withCondition(cond('Stalled', 'True', 'restore snapshot not found'));
    const res = run(cluster({ status: { observedGeneration: 3, conditions } }));
    expect(res).toEqual({ status: 'Degraded', message: 'Stalled: restore snapshot not found' });
  });

  it('Stalled wins over Progressing', () => {
    const conditions = withCondition(cond('Stalled', 'True', 'stuck')).map((c) =>
      c.type === 'Progressing' ? cond('Progressing', 'True', 'scaling') : c,
    );
    expect(run(cluster({ status: { observedGeneration: 3, conditions } })).status).toBe('Degraded');
  });

  it('is Progressing while the cluster is created or restored, though it is not Available yet', () => {
    // What the operator writes before the first member is initialized.
    const conditions = [
      cond('Bootstrapped', 'False', 'the cluster has not been initialized yet'),
      cond('Available', 'False', 'not initialized yet'),
      cond('Ready', 'False', 'not initialized yet'),
      cond('Degraded', 'False', 'not initialized yet'),
      cond('Progressing', 'False', 'waiting for pods'),
      cond('Stalled', 'False'),
    ];
    expect(run(cluster({ status: { observedGeneration: 3, conditions } }))).toEqual({
      status: 'Progressing',
      message: 'Bootstrapping: the cluster has not been initialized yet',
    });
    const creating = conditions.map((c) =>
      c.type === 'Progressing' ? cond('Progressing', 'True', 'initializing demo-0') : c,
    );
    expect(run(cluster({ status: { observedGeneration: 3, conditions: creating } }))).toEqual({
      status: 'Progressing',
      message: 'initializing demo-0',
    });
    const stalled = withCondition(cond('Stalled', 'True', 'restore snapshot not found')).map((c) =>
      c.type === 'Bootstrapped' ? cond('Bootstrapped', 'False', 'waiting to restore the snapshot') : c,
    );
    expect(run(cluster({ status: { observedGeneration: 3, conditions: stalled } })).status).toBe('Degraded');
  });

  it('a rollout restarting a member is Progressing, though that member is unreachable meanwhile', () => {
    const conditions = withCondition(cond('Degraded', 'True', 'unreachable: demo-2')).map((c) =>
      c.type === 'Progressing' ? cond('Progressing', 'True', 'restarting demo-2') : c,
    );
    expect(run(cluster({ status: { observedGeneration: 3, conditions } }))).toEqual({
      status: 'Progressing',
      message: 'restarting demo-2',
    });
  });

  it('no quorum is Degraded, even while the operator is acting', () => {
    const conditions = withCondition(cond('Available', 'False', 'no quorum')).map((c) =>
      c.type === 'Progressing' ? cond('Progressing', 'True', 'restarting demo-2') : c,
    );
    expect(run(cluster({ status: { observedGeneration: 3, conditions } })).status).toBe('Degraded');
  });

  it('is Degraded when Degraded=True', () => {
    const conditions = withCondition(cond('Degraded', 'True', '1 of 3 members unreachable'));
    const res = run(cluster({ status: { observedGeneration: 3, conditions } }));
    expect(res).toEqual({ status: 'Degraded', message: '1 of 3 members unreachable' });
  });

  it('is Degraded when Available=False', () => {
    const conditions = withCondition(cond('Available', 'False', 'no quorum: 1 of 3 members reachable'));
    const res = run(cluster({ status: { observedGeneration: 3, conditions } }));
    expect(res).toEqual({
      status: 'Degraded',
      message: 'Not available: no quorum: 1 of 3 members reachable',
    });
  });

  it('falls back to the reason when a condition has no message', () => {
    const conditions = withCondition({ ...cond('Available', 'False'), reason: 'NoQuorum' });
    expect(run(cluster({ status: { observedGeneration: 3, conditions } })).message).toBe(
      'Not available: NoQuorum',
    );
  });

  it('is Progressing when Ready=False but Available=True', () => {
    const conditions = withCondition(cond('Ready', 'False', '2/3 members ready'));
    const res = run(cluster({ status: { observedGeneration: 3, conditions } }));
    expect(res).toEqual({ status: 'Progressing', message: 'Not ready: 2/3 members ready' });
  });

  it('is Progressing when Available is Unknown', () => {
    const conditions = withCondition(cond('Available', 'Unknown'));
    expect(run(cluster({ status: { observedGeneration: 3, conditions } })).status).toBe('Progressing');
  });

  it('is Suspended when spec.paused, whatever the status', () => {
    const suspended = { status: 'Suspended', message: 'Reconciliation is paused (spec.paused)' };
    expect(run(cluster({ spec: { paused: true }, status: null }))).toEqual(suspended);
    const conditions = withCondition(cond('Stalled', 'True', 'stuck'));
    expect(run(cluster({ spec: { paused: true }, status: { observedGeneration: 1, conditions } }))).toEqual(
      suspended,
    );
  });

  it('is not Suspended when spec.paused is false', () => {
    const res = run(
      cluster({
        spec: { paused: false },
        status: { observedGeneration: 3, conditions: healthyConditions() },
      }),
    );
    expect(res.status).toBe('Healthy');
  });

  it('accepts conditions without observedGeneration and objects without metadata.generation', () => {
    const conditions = healthyConditions().map(({ observedGeneration: _, ...c }) => c);
    const obj = cluster({ status: { conditions } });
    expect(run({ ...obj, metadata: { name: 'config' } }).status).toBe('Healthy');
  });
});

function backup(conditions?: ReturnType<typeof cond>[]) {
  return {
    apiVersion: 'conflux.io/v1alpha1',
    kind: 'ConfluxBackup',
    metadata: { name: 'config-on-demand', namespace: 'platform', generation: 1 },
    spec: { clusterName: 'config' },
    ...(conditions ? { status: { observedGeneration: 1, conditions } } : {}),
  };
}

describe('ConfluxBackup health', () => {
  const run = (obj: unknown) => runHealth(backupScript, obj);

  it('is Progressing without a status', () => {
    expect(run(backup())).toEqual({ status: 'Progressing', message: 'Waiting for the backup to run' });
  });

  it('is Progressing while pending (no Succeeded condition yet), whatever the phase says', () => {
    const obj = { ...backup([]), status: { phase: 'Succeeded', conditions: [] } };
    expect(run(obj).status).toBe('Progressing');
  });

  it('is Progressing while Succeeded is Unknown', () => {
    expect(run(backup([cond('Succeeded', 'Unknown', 'writing snapshot', 1)]))).toEqual({
      status: 'Progressing',
      message: 'writing snapshot',
    });
  });

  it('is Healthy when Succeeded=True', () => {
    expect(run(backup([cond('Succeeded', 'True', 'snapshot at revision 42', 1)]))).toEqual({
      status: 'Healthy',
      message: 'snapshot at revision 42',
    });
  });

  it('is Degraded when Succeeded=False', () => {
    expect(run(backup([cond('Succeeded', 'False', 'S3 PutObject: AccessDenied', 1)]))).toEqual({
      status: 'Degraded',
      message: 'Backup failed: S3 PutObject: AccessDenied',
    });
  });
});

describe('argocd-cm.yaml', () => {
  const cm = parse(readFileSync(new URL('argocd-cm.yaml', argocd), 'utf8')) as {
    kind: string;
    metadata: { name: string; namespace: string };
    data: Record<string, string>;
  };

  it('embeds the health scripts verbatim', () => {
    expect(cm.kind).toBe('ConfigMap');
    expect(cm.metadata.name).toBe('argocd-cm');
    expect(cm.data['resource.customizations.health.conflux.io_ConfluxCluster']).toBe(clusterScript);
    expect(cm.data['resource.customizations.health.conflux.io_ConfluxBackup']).toBe(backupScript);
  });

  it('ignores /spec/replicas differences on ConfluxCluster', () => {
    const ignore = parse(
      cm.data['resource.customizations.ignoreDifferences.conflux.io_ConfluxCluster'] ?? '',
    );
    expect(ignore).toEqual({ jsonPointers: ['/spec/replicas'] });
  });
});
