// The nemesis: runs one scheduled fault against the real cluster, heals it, and records evidence
// that the fault really happened (a process died of SIGKILL or sat stopped, drop rules dropped
// packets, a write sent to the cut-off side was not acknowledged, leadership really moved).

import { SeededRng } from '../../node/raft/rng.js';
import { callKv } from './client.js';
import type { ChaosCluster } from './cluster.js';
import type { Blocks, ChaosNetwork, PartitionRules } from './netns.js';
import type { FaultStep } from './schedule.js';
import { type History, keyName } from './workload.js';

export interface FaultRecord {
  kind: FaultStep['kind'];
  what: string;
  evidence: string[];
  /** False when the fault could not be shown to have happened. */
  effective: boolean;
  /** Writes sent to a side without quorum that were acknowledged anyway (must stay 0). */
  minorityAcks: number;
}

export interface NemesisContext {
  cluster: ChaosCluster;
  net: ChaosNetwork;
  history: History;
  keys: number;
  timeoutMs: number;
}

/** Client ids of the nemesis' own operations in the history (the workload uses 0..clients-1). */
const PROBE_WRITER = 1_000;
const OLD_LEADER_READER = 1_001;
let probeSeq = 0;

export async function runFault(step: FaultStep, ctx: NemesisContext): Promise<FaultRecord> {
  const rng = new SeededRng(step.pick);
  const { cluster } = ctx;
  const leader = await cluster.waitLeader();
  const members = cluster.members().map((s) => s.slot);
  const followers = members.filter((s) => s !== leader);
  const rec: FaultRecord = { kind: step.kind, what: '', evidence: [], effective: false, minorityAcks: 0 };
  const id = (s: number) => cluster.slot(s).id;
  switch (step.kind) {
    case 'kill-leader':
    case 'kill-follower': {
      const victim = step.kind === 'kill-leader' ? leader : rng.pick(followers);
      rec.what = `kill -9 ${id(victim)}${victim === leader ? ' (leader)' : ''}, restart after ${step.holdMs} ms`;
      const how = await cluster.kill(victim);
      rec.evidence.push(`${id(victim)} exited by ${how}`);
      rec.effective = how === 'SIGKILL';
      await sleep(step.holdMs);
      cluster.spawn(victim);
      await cluster.waitReady(victim, 60_000);
      break;
    }
    case 'pause-leader':
    case 'pause-follower': {
      const victim = step.kind === 'pause-leader' ? leader : rng.pick(followers);
      rec.what = `SIGSTOP ${id(victim)}${victim === leader ? ' (leader)' : ''} for ${step.holdMs} ms`;
      cluster.pause(victim);
      await sleep(step.holdMs);
      const state = cluster.procState(victim);
      rec.evidence.push(`${id(victim)} process state ${state}`);
      rec.effective = state === 'T';
      cluster.resume(victim);
      break;
    }
    case 'partition-split': {
      const order = rng.shuffle(members);
      const minority = order.slice(0, Math.floor((members.length - 1) / 2));
      const majority = order.slice(minority.length);
      rec.what = `partition {${minority.map(id)}} | {${majority.map(id)}} for ${step.holdMs} ms`;
      await ctx.net.partition(split([minority, majority]));
      await holdWithProbes(ctx, rec, step.holdMs, minority);
      break;
    }
    case 'partition-bridge': {
      const bridge = rng.pick(members);
      const rest = rng.shuffle(members.filter((s) => s !== bridge));
      const half = Math.ceil(rest.length / 2);
      const [a, b] = [rest.slice(0, half), rest.slice(half)];
      rec.what = `bridge ${id(bridge)} between {${a.map(id)}} and {${b.map(id)}} for ${step.holdMs} ms`;
      await ctx.net.partition(split([a, b]));
      await holdWithProbes(ctx, rec, step.holdMs, []);
      break;
    }
    case 'isolate-leader': {
      rec.what = `isolate leader ${id(leader)} for ${step.holdMs} ms, reading from it`;
      await ctx.net.partition(split([[leader], followers]));
      await Promise.all([
        holdWithProbes(ctx, rec, step.holdMs, [leader]),
        readsFromOldLeader(ctx, rec, leader, followers, step.holdMs),
      ]);
      break;
    }
    case 'one-way': {
      const victim = rng.chance(0.5) ? leader : rng.pick(followers);
      const inbound = rng.chance(0.5);
      const rules: PartitionRules = new Map();
      for (const s of members) rules.set(s, blocks());
      // Each node only sends on connections it dials, so dropping those one way is a one-way cut.
      if (inbound) for (const o of members.filter((s) => s !== victim)) rules.get(victim)?.initiated.add(o);
      else for (const o of members.filter((s) => s !== victim)) rules.get(o)?.initiated.add(victim);
      rec.what = `one-way: ${id(victim)}${victim === leader ? ' (leader)' : ''} ${inbound ? 'hears nobody' : 'is heard by nobody'} for ${step.holdMs} ms`;
      await ctx.net.partition(rules);
      await holdWithProbes(ctx, rec, step.holdMs, []);
      break;
    }
    case 'transfer-leader': {
      const target = rng.pick(followers);
      rec.what = `transfer leadership ${id(leader)} -> ${id(target)}`;
      // A transfer is refused while the target is not caught up: try again, as an operator would.
      for (let attempt = 1; attempt <= 5 && !rec.effective; attempt++) {
        const res = await fetch(`${cluster.adminUrl(leader)}/_cluster/leader/transfer`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ target_node_id: id(target) }),
          signal: AbortSignal.timeout(15_000),
        }).catch((err: Error) => err);
        const body =
          res instanceof Error ? {} : ((await res.json().catch(() => ({}))) as { leader_id?: string });
        const status = res instanceof Error ? res.message : res.status;
        rec.evidence.push(`attempt ${attempt} answered ${status}, leader ${body.leader_id}`);
        rec.effective = status === 200 && body.leader_id === id(target);
        if (!rec.effective) await sleep(1_000);
      }
      break;
    }
    case 'membership':
      await membershipChange(ctx, rec, rng, leader, followers);
      break;
  }
  return rec;
}

/**
 * Remove a follower and add its slot back as a fresh node, under a concurrent fault: with five
 * members another follower stays paused throughout; with three, the new node is paused for a
 * second while it catches up.
 */
async function membershipChange(
  ctx: NemesisContext,
  rec: FaultRecord,
  rng: SeededRng,
  leader: number,
  followers: number[],
): Promise<void> {
  const { cluster } = ctx;
  const victim = rng.pick(followers);
  const old = cluster.slot(victim).id;
  const paused = followers.length >= 4 ? rng.pick(followers.filter((s) => s !== victim)) : null;
  if (paused !== null) cluster.pause(paused);
  try {
    await cluster.remove(victim, leader);
    rec.evidence.push(`${old} removed`);
    const pauseNewcomer = async () => {
      if (paused !== null) return;
      await sleep(800);
      cluster.pause(victim);
      await sleep(1_000);
      rec.evidence.push(`newcomer paused while catching up: state ${cluster.procState(victim)}`);
      cluster.resume(victim);
    };
    const [fresh] = await Promise.all([cluster.addFresh(victim, leader), pauseNewcomer()]);
    rec.evidence.push(`${fresh} added as a fresh node`);
    const under =
      paused === null ? 'pausing it while it catches up' : `while ${cluster.slot(paused).id} is paused`;
    rec.what = `remove ${old}, add ${fresh}, ${under}`;
  } finally {
    if (paused !== null) cluster.resume(paused);
  }
  await cluster.waitReady(victim, 60_000);
  rec.effective = cluster.slot(victim).id !== old;
}

function blocks(): Blocks {
  return { all: new Set(), initiated: new Set() };
}

/** Every node drops all traffic from nodes outside its own group (nodes in no group drop nothing). */
function split(groups: number[][]): PartitionRules {
  const rules: PartitionRules = new Map();
  for (const g of groups) {
    for (const s of g) {
      const b = blocks();
      for (const other of groups) if (other !== g) for (const o of other) b.all.add(o);
      rules.set(s, b);
    }
  }
  return rules;
}

/**
 * Hold the partition, send a write to each node of the side without quorum (it must not be
 * acknowledged), then check that the drop rules dropped packets and heal.
 */
async function holdWithProbes(
  ctx: NemesisContext,
  rec: FaultRecord,
  holdMs: number,
  minority: number[],
): Promise<void> {
  const started = Date.now();
  await sleep(Math.min(500, holdMs / 3));
  const probes = minority.map(async (s) => {
    const key = `chaos/probe/${probeSeq++}`;
    const timeoutMs = Math.max(1_000, holdMs - (Date.now() - started) - 200);
    const out = await callKv(ctx.cluster.apiUrl(s), { op: 'put', key, value: 'x' }, timeoutMs);
    const acked = out.kind === 'ok';
    if (acked) rec.minorityAcks += 1;
    rec.evidence.push(
      `write to cut-off ${ctx.cluster.slot(s).id}: ${acked ? 'ACKNOWLEDGED' : out.kind === 'refused' ? out.code : out.reason}`,
    );
  });
  await Promise.all([...probes, sleep(holdMs - (Date.now() - started))]);
  const dropped = await ctx.net.droppedPackets();
  rec.evidence.push(`${dropped} packets dropped`);
  rec.effective = dropped > 0 && rec.minorityAcks === 0;
  await ctx.net.heal();
}

/**
 * While the old leader is cut off: write a fresh value to every key through the majority, then
 * read each key from the old leader. Both go into the history, so a stale read from the old
 * leader is a linearizability violation the checker finds.
 */
async function readsFromOldLeader(
  ctx: NemesisContext,
  rec: FaultRecord,
  oldLeader: number,
  majority: number[],
  holdMs: number,
): Promise<void> {
  const timeoutMs = Math.max(1_000, Math.min(ctx.timeoutMs, holdMs / 2));
  await sleep(Math.min(300, holdMs / 4));
  const answers = await Promise.all(
    Array.from({ length: ctx.keys }, async (_, k) => {
      const key = keyName(k);
      const via = majority[k % majority.length] as number;
      const value = `old-leader-${probeSeq++}`;
      await ctx.history.invoke(PROBE_WRITER, ctx.cluster.apiUrl(via), { op: 'put', key, value }, timeoutMs);
      const read = ctx.cluster.apiUrl(oldLeader);
      return (await ctx.history.invoke(OLD_LEADER_READER, read, { op: 'get', key }, timeoutMs)).kind;
    }),
  );
  const served = answers.filter((a) => a === 'ok').length;
  rec.evidence.push(`old leader answered ${served} of ${answers.length} reads (each checked)`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
