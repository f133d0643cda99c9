// Real conflux-node processes on 127.0.0.1: formation from static configuration, reads and writes
// through any node, kill -9 of the leader under load (every acknowledged write survives and the
// history is linearizable), and recovery from damaged WAL files.

import { readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KvOperation, kvModel } from '../node/raft/sim/kv-model.js';
import { checkOperations } from '../node/raft/sim/linearizability.js';
import { ProcessCluster, sleep } from './support/process-cluster.js';

describe('a three-node cluster of real processes', () => {
  let cluster: ProcessCluster;
  beforeAll(async () => {
    cluster = await ProcessCluster.create(3);
    await cluster.start();
  }, 60_000);
  afterAll(async () => cluster?.destroy());

  it('elects a leader and serves writes and reads through any node', async () => {
    const leader = await cluster.leader();
    const follower = cluster.members.find((m) => m.id !== leader)?.id as string;
    const put = await fetch(`${cluster.url(follower)}/v1/kv/app/db-url`, {
      method: 'PUT',
      body: 'postgres://db:5432',
    });
    expect(put.status).toBe(200);
    expect(put.headers.get('x-conflux-leader')).toBe(leader);
    const { revision } = (await put.json()) as { revision: number };
    for (const m of cluster.members) {
      const res = await fetch(`${cluster.url(m.id)}/v1/kv/app/db-url`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({
        key: 'app/db-url',
        value: 'postgres://db:5432',
        modRevision: revision,
      });
      expect(Number(res.headers.get('x-conflux-revision'))).toBeGreaterThanOrEqual(revision);
    }
  });

  it('keeps every acknowledged write and stays linearizable through kill -9 of the leader', async () => {
    const history: KvOperation[] = [];
    const t0 = performance.now();
    const now = () => performance.now() - t0;
    let running = true;
    const clients = Array.from({ length: 4 }, (_, c) => runClient(cluster, c, history, now, () => running));
    await sleep(1_500);
    const victim = await cluster.leader();
    const killedAt = now();
    await cluster.kill(victim);
    await sleep(1_500);
    cluster.spawn(victim);
    await cluster.waitReady(victim);
    await sleep(1_000);
    running = false;
    await Promise.all(clients);
    // Final reads of every key, after the dust settled, join the history.
    await cluster.leader();
    for (const key of KEYS) await observe(cluster, 'n1', { op: 'get', key }, 0, history, now);

    const acknowledged = history.filter((h) => h.input.op !== 'get' && h.output !== undefined);
    expect(acknowledged.length).toBeGreaterThan(50);
    // The survivors elected a new leader and kept acknowledging writes while the old one was down.
    expect(
      acknowledged.filter((h) => h.call > killedAt && h.return < killedAt + 1_500).length,
    ).toBeGreaterThan(0);
    const check = checkOperations(kvModel, history);
    expect(check).toEqual({ ok: true });
  }, 60_000);

  it('truncates a torn WAL tail on restart and catches up', async () => {
    const leader = await cluster.leader();
    const victim = cluster.members.find((m) => m.id !== leader) as (typeof cluster.members)[number];
    await cluster.kill(victim.id);
    const wal = lastSegment(victim.dataDir);
    truncateSync(wal, statSync(wal).size - 3); // the last record loses its final bytes
    await fetch(`${cluster.url(leader)}/v1/kv/after-torn`, { method: 'PUT', body: 'yes' });
    cluster.spawn(victim.id);
    await cluster.waitReady(victim.id);
    await waitFor(
      async () =>
        (await fetch(`${cluster.url(victim.id)}/v1/kv/after-torn?consistency=serializable`)).status === 200,
    );
    expect(readFileSync(victim.logFile, 'utf8')).toMatch(
      /torn record: truncating .*\.wal at byte offset \d+/,
    );
  }, 60_000);

  it('refuses to start on a WAL corrupted in the middle, naming the file and offset', async () => {
    const leader = await cluster.leader();
    const victim = cluster.members.find((m) => m.id !== leader) as (typeof cluster.members)[number];
    for (let i = 0; i < 20; i++)
      await fetch(`${cluster.url(leader)}/v1/kv/fill/${i}`, { method: 'PUT', body: `v${i}` });
    await sleep(300);
    await cluster.kill(victim.id);
    const wal = lastSegment(victim.dataDir);
    const bytes = readFileSync(wal);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] as number) ^ 0xff;
    writeFileSync(wal, bytes);
    const m = cluster.spawn(victim.id);
    const code = await m.exit;
    m.proc = null;
    expect(code).not.toBe(0);
    expect(readFileSync(victim.logFile, 'utf8')).toMatch(/\.wal is corrupt at byte offset \d+/);
  }, 60_000);
});

const KEYS = ['a', 'b', 'c', 'd', 'e'];

async function runClient(
  cluster: ProcessCluster,
  client: number,
  history: KvOperation[],
  now: () => number,
  running: () => boolean,
): Promise<void> {
  let n = 0;
  while (running()) {
    const node = cluster.members[(client + n) % cluster.members.length]?.id as string;
    if (!cluster.member(node).proc) {
      n++;
      continue;
    }
    const key = KEYS[n % KEYS.length] as string;
    const value = `c${client}-${n}`;
    const roll = n % 5;
    const input: KvOperation['input'] =
      roll < 2
        ? { op: 'get', key }
        : roll < 4
          ? { op: 'put', key, value }
          : { op: 'cas', key, expected: null, value };
    await observe(cluster, node, input, client, history, now);
    n++;
  }
}

/** Run one operation and record it: definite outcomes with their result, unknown ones as timed out. */
async function observe(
  cluster: ProcessCluster,
  node: string,
  input: KvOperation['input'],
  client: number,
  history: KvOperation[],
  now: () => number,
): Promise<void> {
  const call = now();
  const base = `${cluster.url(node)}`;
  let output: KvOperation['output'] | 'refused';
  try {
    const signal = AbortSignal.timeout(3_000);
    if (input.op === 'get') {
      const res = await fetch(`${base}/v1/kv/${input.key}`, { signal });
      output =
        res.status === 200
          ? { value: ((await res.json()) as { value: string }).value }
          : res.status === 404
            ? { value: null }
            : 'refused';
    } else if (input.op === 'put') {
      const res = await fetch(`${base}/v1/kv/${input.key}`, { method: 'PUT', body: input.value, signal });
      output = res.status === 200 ? { ok: true } : await refusalOrUnknown(res);
    } else if (input.op === 'cas') {
      const compare =
        input.expected === null
          ? [{ key: input.key, target: 'exists', op: '=', operand: false }]
          : [{ key: input.key, target: 'value', op: '=', value: input.expected }];
      const res = await fetch(`${base}/v1/txn`, {
        method: 'POST',
        body: JSON.stringify({ compare, success: [{ type: 'put', key: input.key, value: input.value }] }),
        signal,
      });
      output =
        res.status === 200
          ? { ok: ((await res.json()) as { succeeded: boolean }).succeeded }
          : await refusalOrUnknown(res);
    } else {
      output = 'refused';
    }
  } catch (err) {
    // A refused connection never delivered the request; a reset or a timeout may have.
    if ((err as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED') return;
    output = undefined;
  }

  if (output === 'refused') return;
  history.push({
    clientId: client,
    input,
    call,
    output,
    return: output === undefined ? Number.POSITIVE_INFINITY : now(),
  });
}

/** Refusals that guarantee nothing was written are left out; anything else may have happened. */
async function refusalOrUnknown(res: Response): Promise<undefined | 'refused'> {
  const body = (await res.json().catch(() => ({}))) as { error?: { code?: string } };
  const code = body.error?.code ?? '';
  return ['NOT_LEADER', 'NO_LEADER', 'TRANSFER_IN_PROGRESS', 'PROPOSAL_DROPPED'].includes(code)
    ? 'refused'
    : undefined;
}

function lastSegment(dataDir: string): string {
  const dir = join(dataDir, 'wal');
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.wal'))
    .sort();
  return join(dir, files.at(-1) as string);
}

async function waitFor(pred: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pred()) return;
    await sleep(50);
  }
  throw new Error('condition not reached');
}
