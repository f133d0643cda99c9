// Disk faults on real node processes, under a continuous write load: a follower whose WAL was
// bit-flipped in the middle refuses to start (STORAGE_CORRUPTION, naming the file and offset)
// while the other two keep serving, and the operator's fix (remove it, wipe it, add it back
// under a new id) restores three members with all the data; a torn WAL tail restarts fine and
// catches up; an injected ENOSPC fail-stops a node (exit 74) and a restart with space recovers it.
// Nobody ever serves a value other than the acknowledged one.

import { appendFileSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanFrames } from '../node/storage/wal-record.js';
import { call, ProcessCluster, sleep } from './support/process-cluster.js';

async function waitFor(what: string, pred: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pred().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Resolves with the exit code, or rejects if the process is still running after `timeoutMs`. */
async function exitOf(cluster: ProcessCluster, id: string, timeoutMs = 30_000): Promise<number | null> {
  const m = cluster.member(id);
  const code = await Promise.race([m.exit, sleep(timeoutMs).then(() => 'running' as const)]);
  if (code === 'running') throw new Error(`${id} is still running after ${timeoutMs} ms`);
  m.proc = null;
  return code;
}

/** The member's log once it contains `text` (its output may still be draining after the exit). */
async function logOnceContains(cluster: ProcessCluster, id: string, text: string | RegExp): Promise<string> {
  let log = '';
  const has = () => (typeof text === 'string' ? log.includes(text) : text.test(log));
  await waitFor(`${id}'s log to contain ${text}`, async () => {
    log = readFileSync(cluster.member(id).logFile, 'utf8');
    return has();
  }).catch(() => undefined);
  return log;
}

const lastSegment = (dataDir: string): string => {
  const walDir = join(dataDir, 'wal');
  const names = readdirSync(walDir)
    .filter((n) => n.endsWith('.wal'))
    .sort();
  return join(walDir, names.at(-1) as string);
};

describe('disk faults on a three-node cluster of real processes', () => {
  let cluster: ProcessCluster;
  /** Members clients may use (as a Service would route). */
  const live = ['n1', 'n2', 'n3'];
  const acked = new Map<string, string>();
  const failures: string[] = [];
  let writers: Promise<void>[] = [];
  let loads = 0;
  let running = false;

  const writer = async (client: number) => {
    for (let seq = 0; running; seq++) {
      const target = live[seq % live.length] as string;
      const key = `disk/${client}/${seq}`;
      const value = `${client}:${seq}`;
      try {
        const r = await call(`${cluster.url(target)}/v1/kv/${key}`, 'PUT', value);
        if (r.status === 200) acked.set(key, value);
        else failures.push(`${target} ${r.status} ${JSON.stringify(r.body)}`);
      } catch (err) {
        failures.push(`${target} ${(err as Error).message}`);
      }
    }
  };
  const startLoad = () => {
    running = true;
    const first = 10 * loads++; // fresh client numbers, so every load writes new keys
    writers = [0, 1, 2].map((c) => writer(first + c));
  };
  const stopLoad = async () => {
    running = false;
    await Promise.all(writers);
  };
  const admin = (id: string) => cluster.adminUrl(id);
  const waitOp = async (id: string, location: string) => {
    await waitFor(
      `operation ${location}`,
      async () => {
        const op = (await call(`${admin(id)}${location}`)).body;
        if (op.state === 'failed') throw new Error(`operation failed: ${JSON.stringify(op.error)}`);
        return op.state === 'succeeded';
      },
      60_000,
    );
  };
  const aFollower = async () => {
    const leader = await cluster.leader();
    return live.find((id) => id !== leader) as string;
  };
  /** kill -9 a member; it no longer counts as live (its data is not checked until it is back). */
  const killMember = async (id: string) => {
    live.splice(live.indexOf(id), 1);
    await cluster.kill(id);
  };
  /**
   * What is wrong in `id`'s own state (serializable reads, no forwarding): acknowledged writes it
   * lacks, and any value other than the one its writer wrote (`disk/C/S` always holds `C:S`).
   */
  const holdsAll = async (id: string): Promise<string[]> => {
    const seen = new Map<string, string>();
    let after: string | undefined;
    for (;;) {
      const q = `prefix=disk/&limit=10000&consistency=serializable${after ? `&after=${after}` : ''}`;
      const page = (await call(`${cluster.url(id)}/v1/kv?${q}`)).body as {
        kvs: { key: string; value: string }[];
        next?: string;
      };
      for (const kv of page.kvs) seen.set(kv.key, kv.value);
      if (!page.next) break;
      after = page.next;
    }
    const wrong = [...seen].filter(([k, v]) => v !== k.split('/').slice(1).join(':'));
    const missing = [...acked.keys()].filter((k) => !seen.has(k));
    return [...wrong.map(([k, v]) => `${k}=${v}`), ...missing.map((k) => `${k} missing`)];
  };
  const waitHoldsAll = async (id: string, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    let problems: string[] = [];
    while (Date.now() < deadline) {
      problems = await holdsAll(id);
      // Wrong data is never acceptable, not even for a moment; missing data may still arrive.
      expect(problems.filter((p) => !p.endsWith(' missing'))).toEqual([]);
      if (problems.length === 0) return;
      await sleep(200);
    }
    throw new Error(`${id} lacks acknowledged writes: ${problems.slice(0, 5).join(', ')}`);
  };
  const refusesConnections = async (id: string) => {
    const r = await fetch(`${cluster.url(id)}/readyz`).then(
      () => 'answered',
      () => 'refused',
    );
    return r === 'refused';
  };

  beforeAll(async () => {
    // Frequent snapshots, so the faults below also meet compacted logs and snapshot files.
    cluster = await ProcessCluster.create(3, ['--catch-up-stable-ms', '300', '--snapshot-entries', '150']);
    await cluster.start();
  }, 120_000);
  afterAll(async () => {
    running = false;
    await cluster?.destroy();
  }, 60_000);

  it('a follower whose WAL was bit-flipped in the middle refuses to start; the fix brings back three members', async () => {
    startLoad();
    await sleep(1_500);
    const victim = await aFollower();
    await killMember(victim);
    const file = lastSegment(cluster.member(victim).dataDir);
    const buf = readFileSync(file);
    const { frames } = scanFrames(buf);
    expect(frames.length).toBeGreaterThan(10);
    const target = frames[Math.floor(frames.length / 2)] as { offset: number; end: number };
    buf[target.offset + 12] = (buf[target.offset + 12] as number) ^ 0x20;
    writeFileSync(file, buf);

    cluster.spawn(victim);
    expect(await exitOf(cluster, victim)).not.toBe(0);
    const log = await logOnceContains(cluster, victim, 'STORAGE_CORRUPTION');
    expect(log).toContain('STORAGE_CORRUPTION');
    expect(log).toContain(`${file} is corrupt at byte offset ${target.offset}`);
    expect(log).toContain('wipe its data directory and add it back as a new member');
    expect(await refusesConnections(victim)).toBe(true);

    // The other two keep serving writes and reads meanwhile.
    const before = acked.size;
    await waitFor('writes to continue on two members', async () => acked.size > before + 50);

    // The operator's fix: remove the dead member, wipe its data, add it back under a new id.
    const removal = await call(`${admin(live[0] as string)}/_cluster/nodes/${victim}`, 'DELETE');
    expect(removal.status).toBe(202);
    await waitOp(live[0] as string, removal.location as string);
    rmSync(cluster.member(victim).dataDir, { recursive: true, force: true });
    await cluster.addMember('n4', []);
    cluster.spawn('n4');
    const add = await call(
      `${admin(live[0] as string)}/_cluster/nodes`,
      'POST',
      JSON.stringify({ node_id: 'n4', ...cluster.addresses('n4') }),
    );
    expect(add.status).toBe(202);
    await waitOp(live[0] as string, add.location as string);
    live.push('n4');
    await sleep(500);
    await stopLoad();

    const status = await call(`${admin('n4')}/_cluster/status`);
    const nodes = status.body.nodes as Record<string, { is_reachable: boolean; status: string }>;
    expect(Object.keys(nodes).sort()).toEqual([...live].sort());
    expect(Object.values(nodes).every((n) => n.is_reachable)).toBe(true);
    expect(Object.values(nodes).filter((n) => n.status === 'Leader')).toHaveLength(1);
    console.log(`corrupt follower: ${acked.size} acknowledged writes, ${failures.length} failed`);
    expect(failures.length).toBeLessThanOrEqual(Math.ceil((acked.size + failures.length) * 0.02));
    for (const id of live) await waitHoldsAll(id);
  }, 240_000);

  it('a torn WAL tail restarts fine and the node catches up', async () => {
    startLoad();
    await sleep(1_000);
    const victim = await aFollower();
    await killMember(victim);
    // What a crash in the middle of a write leaves: the first half of a record.
    const file = lastSegment(cluster.member(victim).dataDir);
    const buf = readFileSync(file);
    const last = scanFrames(buf).frames.at(-1) as { offset: number; end: number };
    appendFileSync(file, buf.subarray(last.offset, last.offset + Math.ceil((last.end - last.offset) / 2)));
    await sleep(1_000);

    cluster.spawn(victim);
    await cluster.waitReady(victim);
    live.push(victim);
    await sleep(1_000);
    await stopLoad();
    const log = readFileSync(cluster.member(victim).logFile, 'utf8');
    expect(log).toContain(`WAL ends in a torn record: truncating ${file}`);
    await waitHoldsAll(victim);
    expect(failures.length).toBeLessThanOrEqual(Math.ceil((acked.size + failures.length) * 0.02));
  }, 240_000);

  it('an injected ENOSPC fail-stops a node (exit 74) while the cluster stays available; it recovers with space', async () => {
    const victim = await aFollower();
    await cluster.kill(victim);
    const trigger = join(cluster.dir, `${victim}-disk-full`);
    // The testing-only seam, read once at start; the trigger file arms it later.
    process.env.CONFLUX_FAULT_INJECT = `write=ENOSPC,when=${trigger}`;
    try {
      cluster.spawn(victim);
    } finally {
      delete process.env.CONFLUX_FAULT_INJECT;
    }
    await cluster.waitReady(victim);
    startLoad();
    await sleep(1_000);

    writeFileSync(trigger, ''); // the disk is full from now on
    expect(await exitOf(cluster, victim)).toBe(74);
    live.splice(live.indexOf(victim), 1);
    const log = await logOnceContains(cluster, victim, 'fail-stop');
    expect(log).toContain('disk faults are injected on purpose');
    expect(log).toMatch(/STORAGE_FAILED: .*ENOSPC.*fail-stop/);
    expect(await refusesConnections(victim)).toBe(true);
    const before = acked.size;
    await waitFor('writes to continue without the failed node', async () => acked.size > before + 50);

    rmSync(trigger); // space is available again
    process.env.CONFLUX_FAULT_INJECT = `write=ENOSPC,when=${trigger}`;
    try {
      cluster.spawn(victim);
    } finally {
      delete process.env.CONFLUX_FAULT_INJECT;
    }
    await cluster.waitReady(victim);
    live.push(victim);
    await sleep(1_000);
    await stopLoad();
    console.log(`ENOSPC: ${acked.size} acknowledged writes in all, ${failures.length} failed`);
    expect(failures.length).toBeLessThanOrEqual(Math.ceil((acked.size + failures.length) * 0.02));
    for (const id of live) await waitHoldsAll(id);
  }, 240_000);

  it('a follower whose newest snapshot file is corrupt restarts from the older one and the WAL', async () => {
    startLoad();
    const victim = await aFollower();
    const snapDir = join(cluster.member(victim).dataDir, 'snap');
    const snapshots = () =>
      readdirSync(snapDir)
        .filter((n) => n.endsWith('.snap'))
        .sort();
    // The current snapshot and the older one it keeps as a fallback.
    await waitFor('two snapshot files', async () => snapshots().length === 2, 60_000);
    await killMember(victim);
    const newest = join(snapDir, snapshots().at(-1) as string);
    const buf = readFileSync(newest);
    buf[Math.floor(buf.length / 3)] = (buf[Math.floor(buf.length / 3)] as number) ^ 0x08;
    writeFileSync(newest, buf);

    cluster.spawn(victim);
    await cluster.waitReady(victim);
    live.push(victim);
    await sleep(1_000);
    await stopLoad();
    const log = await logOnceContains(cluster, victim, 'recovered from the older snapshot');
    expect(log).toContain(`snapshot ${newest} is unusable`);
    for (const id of live) await waitHoldsAll(id);
    expect(failures.length).toBeLessThanOrEqual(Math.ceil((acked.size + failures.length) * 0.02));
  }, 240_000);
});
