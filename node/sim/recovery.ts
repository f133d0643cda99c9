// The operator's last resorts, through the real services of node/ops:
//
// - Backup and restore into a new cluster (BackupService, RestoreService, node/backup on a real
//   temporary directory). The backup runs while clients write; it is checked as what it claims to
//   be, an atomic linearizable read of every key (its keys join the linearizability history as
//   reads between the request and the capture). The restored node's state must re-encode to the
//   backup's bytes exactly, and the new cluster then grows and takes writes like any other.
// - Force-new-cluster (RecoveryService) after a quorum is lost for good at a quiet moment: every
//   member but one is destroyed, the survivor becomes the only voter of a new cluster that keeps
//   its whole log, and fresh nodes are added back.
//
// Real file I/O must not interleave with simulated time, or a seed would not replay: the world is
// paused (no world.run in progress) whenever a service awaits the real file system.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { downloadBackup } from '../backup/index.js';
import { SnapshotDecoder } from '../kv/snapshot-decoder.js';
import type { KeyValue, KvApplyResult } from '../kv/types.js';
import { BackupService } from '../ops/backup-service.js';
import { RecoveryService } from '../ops/recovery.js';
import { RestoreService } from '../ops/restore-service.js';
import * as M from '../raft/membership.js';
import type { RaftNode } from '../raft/raft-node.js';
import type { SnapshotMeta } from '../raft/types.js';
import { type Life, nodeInfo, referenceStore, type StackCluster, type StackNode } from './cluster.js';
import type { Coverage } from './coverage.js';
import type { Operator } from './nemesis.js';
import { Oracle } from './oracle.js';
import type { Workload } from './workload.js';
import { Violation, type World } from './world.js';

const silent = { info() {}, warn() {} };

export interface RecoveryCtx {
  world: World;
  cluster: StackCluster;
  coverage: Coverage;
  workload: Workload;
}

/** Run the world until `p` settles (or `ms` pass); its outcome, or null when still pending. */
async function runUntilSettled<T>(
  world: World,
  p: Promise<T>,
  ms: number,
): Promise<{ ok: true; value: T } | { ok: false; err: unknown } | null> {
  let out: { ok: true; value: T } | { ok: false; err: unknown } | null = null;
  p.then(
    (value) => (out = { ok: true, value }),
    (err: unknown) => (out = { ok: false, err }),
  );
  await world.run(world.now + ms, () => out !== null);
  return out;
}

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

type Backup = Awaited<ReturnType<BackupService['run']>>;

/**
 * A backup of `leader`'s store into `dir`, taken while the world runs; null when it cannot be
 * checked (its ReadIndex barrier never passed, it failed, or the leader died meanwhile). `call`
 * and `ret` bound the moment it read.
 */
async function takeBackup(
  world: World,
  leader: { node: StackNode; life: Life },
  raft: NonNullable<Life['raft']>,
  kv: NonNullable<Life['kv']>,
  dir: string,
): Promise<{ res: Backup; call: number; ret: number } | null> {
  let barrier = false;
  const backups = new BackupService({
    raft: {
      metrics: () => raft.metrics(),
      ensureLinearizable: () =>
        raft.ensureLinearizable().then((i) => {
          barrier = true;
          return i;
        }),
    },
    kv,
    nodeId: leader.node.id,
    logger: silent,
    backupOptions: {},
    now: () => new Date(Date.UTC(2026, 0, 1) + world.now),
  });
  const call = world.now;
  const taking = backups.run({ destination: pathToFileURL(dir).href, force: true });
  const settled = taking.then(
    () => true,
    () => true,
  );
  let done = false;
  void settled.then(() => (done = true));
  // Simulated time runs until the ReadIndex barrier passed; the rest is real I/O, world paused.
  await world.run(world.now + 500, () => barrier || done);
  if (!barrier) {
    // The barrier never passed (the leader lost its role): nothing was read, nothing to check.
    await world.run(world.now + 1_000, () => done);
    return null;
  }
  const res = await taking.catch(() => null);
  if (!res || leader.life.dead) return null;
  return { res, call, ret: world.now };
}

/**
 * The backup's bytes, recorded as what it is: an atomic read of every key, between the request
 * (`call`) and the capture (`ret`).
 */
async function recordBackupRead(workload: Workload, uri: string, call: number, ret: number) {
  const kvs: KeyValue[] = [];
  const data = await readBackup(uri);
  const decoder = new SnapshotDecoder({ onRecord: (r) => kvs.push(r) });
  decoder.push(data);
  const { header } = decoder.finish();
  const byKey = new Map(kvs.map((r) => [r.key, r]));
  for (const key of workload.keys) {
    const r = byKey.get(key);
    workload.record({
      clientId: -1,
      input: { op: 'get', key },
      call,
      output: { kind: 'read', kv: r ? { v: hex(r.value), mod: r.modRevision } : null },
      return: ret,
    });
  }
  workload.revisions.push({ call, return: ret, rev: header.revision, changed: false, what: 'the backup' });
  return { data, header };
}

/**
 * A pristine node restores the backup and becomes the only voter of a new cluster, whose lineage
 * (the oracle of what it must hold) starts at the backup; null when the node died meanwhile.
 */
async function restoreIntoNewCluster(
  ctx: RecoveryCtx,
  oracle: Oracle,
  res: Backup,
  { data, header }: Awaited<ReturnType<typeof recordBackupRead>>,
  makeOperator: (oracle: Oracle) => Operator,
): Promise<{ oracle: Oracle; nodes: StackNode[] } | null> {
  const { world, cluster, coverage } = ctx;
  const meta: SnapshotMeta = {
    index: header.applied,
    term: 1,
    membership: M.initialMembership(['restore-ref']),
    sizeBytes: data.byteLength,
    id: 'restore-ref',
  };
  const ref = referenceStore();
  ref.restore(meta, data);
  const lineage = new Oracle(`restored from ${oracle.name} at ${header.applied}`, ref, header.applied);
  lineage.recordMade(header.applied, data);
  const node = cluster.newNode(lineage);
  node.toldOf.add(node.id);
  void node.start();
  await world.run(world.now + 1_000, () => node.up !== null);
  const life = node.up;
  if (!life?.raft || !life.kv) return null;
  let reached = false;
  const target = life.raft;
  const restores = new RestoreService({
    raft: {
      metrics: () => target.metrics(),
      bootstrapFromSnapshot: (m, d) => {
        reached = true;
        return target.bootstrapFromSnapshot(m, d);
      },
    },
    kv: life.kv,
    nodeId: node.id,
    selfInfo: nodeInfo(node.id),
    logger: silent,
    backupOptions: {},
    mintClusterId: () => `restored-${world.seed}-${node.id}`,
    leaderTimeoutMs: 0,
  });
  const restoring = restores.run({ snapshot_uri: res.uri, expected_cluster_id: res.cluster_id });
  // The download and its checks are real I/O: the world waits.
  await Promise.race([restoring.catch(() => undefined), until(() => reached)]);
  const out = await runUntilSettled(world, restoring, 2_000);
  if (!out?.ok) {
    if (life.dead) return null;
    throw new Violation(
      `restore of ${res.uri} into ${node.id} failed: ${out ? String(out.err) : 'timed out'}`,
    );
  }
  coverage.restores++;
  // The new cluster grows and serves like any other (checked at the end of the run).
  const op = makeOperator(lineage);
  op.run(async () => {
    await op.addNode(1_000);
  });
  return { oracle: lineage, nodes: [node] };
}

/** A backup of the main cluster restored into a new one; returns the new cluster's lineage. */
export async function backupAndRestore(
  ctx: RecoveryCtx,
  oracle: Oracle,
  makeOperator: (oracle: Oracle) => Operator,
): Promise<{ oracle: Oracle; nodes: StackNode[] } | null> {
  const leader = ctx.cluster.leader(oracle);
  const raft = leader?.life.raft;
  const kv = leader?.life.kv;
  if (!leader || !raft || !kv) return null;
  const dir = mkdtempSync(join(tmpdir(), 'conflux-sim-backup-'));
  try {
    const taken = await takeBackup(ctx.world, leader, raft, kv, dir);
    if (!taken) return null;
    const backup = await recordBackupRead(ctx.workload, taken.res.uri, taken.call, taken.ret);
    return await restoreIntoNewCluster(ctx, oracle, taken.res, backup, makeOperator);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function readBackup(uri: string): Promise<Uint8Array> {
  const dl = await downloadBackup(uri);
  const chunks: Uint8Array[] = [];
  for await (const c of dl.stream) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Resolves once `cond` holds, checking on every turn of the event loop (real time). */
function until(cond: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const poll = () => (cond() ? resolve() : setImmediate(poll));
    poll();
  });
}

/**
 * Destroy every member but one at a quiet moment (all applied the same index, nothing in flight),
 * then recover with force-new-cluster on the survivor. False when no quiet moment came.
 */
export async function forceNewCluster(ctx: RecoveryCtx, oracle: Oracle, op: Operator): Promise<boolean> {
  const { world, cluster, coverage } = ctx;
  let quiet: { survivor: StackNode; raft: RaftNode<KvApplyResult> } | null = null;
  for (let waited = 0; waited < 2_000 && !quiet; waited += 20) {
    await world.run(world.now + 20);
    // No admin flow in flight: none may add a node to the old cluster's log meanwhile.
    if (op.busy) continue;
    const l = cluster.leader(oracle);
    if (!l) continue;
    const members = M.members(l.metrics.membership).map((id) => cluster.nodes.get(id));
    const lives = members.map((n) => n?.up);
    if (M.isJoint(l.metrics.membership) || lives.some((x) => x?.kv?.applied !== l.metrics.committed))
      continue;
    if (l.metrics.lastLogIndex !== l.metrics.committed) continue;
    // The operator recovers from a node whose disk is sound.
    const voters = M.voters(l.metrics.membership).filter((id) => !cluster.nodes.get(id)?.disk.corrupted);
    if (voters.length === 0) return false;
    const survivor = cluster.nodes.get(world.rng.pick(voters)) as StackNode;
    quiet = { survivor, raft: (survivor.up as Life).raft as RaftNode<KvApplyResult> };
  }
  if (!quiet) return false;
  const { survivor } = quiet;
  const oldCluster = quiet.raft.metrics().membership.cluster?.id;
  for (const n of cluster.nodes.values()) {
    if (n !== survivor && n.oracle === oracle && n.status !== 'retired') n.retire();
  }
  // The request names the old cluster, so that a retry after a crash is answered, not redone.
  const req = {
    node_id: survivor.id,
    force: true,
    ...(oldCluster ? { expected_cluster_id: oldCluster } : {}),
  };
  for (let attempt = 0; ; attempt++) {
    await world.run(world.now + 2_000, () => survivor.up !== null);
    const life = survivor.up;
    if (!life?.raft) throw new Violation(`${survivor.id} did not come back to be recovered`);
    const service = new RecoveryService({
      raft: life.raft,
      nodeId: survivor.id,
      selfInfo: nodeInfo(survivor.id),
      clusterStatus: () => Promise.reject(new Error('not asked with force')),
      logger: silent,
      mintClusterId: () => `recovered-${world.seed}-${survivor.id}-${attempt}`,
      now: () => new Date(Date.UTC(2026, 0, 1) + world.now),
      leaderTimeoutMs: 0,
    });
    const running = service.run(req);
    // Sometimes the survivor crashes in the middle, and the operator sends the request again.
    if (attempt === 0 && world.rng.chance(0.3)) {
      world.after(world.rng.int(30), () => {
        survivor.kill();
        survivor.restartLater(20);
      });
    }
    const out = await runUntilSettled(world, running, 2_000);
    if (out?.ok) break;
    if (!life.dead || attempt >= 3) {
      throw new Violation(
        `force-new-cluster on ${survivor.id} failed: ${out ? String(out.err) : 'timed out'}`,
      );
    }
  }
  coverage.forceNewClusters++;
  op.run(async () => {
    await op.addNode(1_000);
    await op.addNode(1_000);
  });
  return true;
}
