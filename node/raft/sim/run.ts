// One simulated run per seed: a safety phase with faults, then a liveness phase with faults
// healed, then a linearizability check of every client history.

import * as M from '../membership.js';
import type { Mutation } from '../raft.js';
import type { NodeId } from '../types.js';
import { SimCluster } from './cluster.js';
import { Violation } from './invariants.js';
import { encodeCommand } from './kv-machine.js';
import { kvModel } from './kv-model.js';
import { checkOperations } from './linearizability.js';
import { Nemesis } from './nemesis.js';
import { deriveProfile, type Profile } from './profile.js';
import { Workload } from './workload.js';

export interface RunOptions {
  mutations?: ReadonlySet<Mutation>;
  profile?: Partial<Profile>;
}

export interface RunResult {
  seed: number;
  violation: string | null;
  /** The checker gave up on a pathological history (bounded search): neither pass nor fail. */
  inconclusive: boolean;
  events: number;
  ops: number;
  faults: number;
  committed: number;
  terms: number;
  livenessMs: number | null;
}

export function runSeed(seed: number, options: RunOptions = {}): RunResult {
  const profile = deriveProfile(seed, options.profile);
  const sim = new SimCluster(seed, profile, options.mutations);
  const voters = Array.from({ length: profile.voters }, (_, i) => `n${i + 1}`);
  const spares = Array.from({ length: profile.spares }, (_, i) => `n${profile.voters + i + 1}`);
  for (const id of voters) sim.addNode(id);
  const first = sim.node(voters[0] as NodeId);
  sim.guard(first, () => first.core?.initialize(voters));

  const workload = new Workload(sim);
  const nemesis = new Nemesis(sim, spares);
  const result: RunResult = {
    seed,
    violation: null,
    inconclusive: false,
    events: 0,
    ops: 0,
    faults: 0,
    committed: 0,
    terms: 0,
    livenessMs: null,
  };
  try {
    workload.start();
    nemesis.start();
    sim.runUntil(profile.safetyMs);

    nemesis.stopped = true;
    sim.faultsOn = false;
    sim.heal();
    for (const n of sim.nodes.values()) sim.restart(n.id);
    // A power loss before the bootstrap entry was durable leaves nobody initialized: initialize
    // again, as the operator does when every pod reports an empty node.
    if ([...sim.nodes.values()].every((n) => n.core?.log.lastIndex() === 0 && n.core.term === 0)) {
      sim.guard(first, () => first.core?.initialize(voters));
    }
    const healedAt = sim.now;
    const live = livenessProbe(sim);
    sim.runUntil(healedAt + profile.livenessMs, () => live.done);
    if (!live.done)
      throw new Violation(
        `liveness: no committed write reached every member within ${profile.livenessMs} ms of healing (${live.state()})`,
      );
    result.livenessMs = sim.now - healedAt;
    workload.stop();

    const check = checkOperations(kvModel, workload.history);
    if (check.ok === false) throw new Violation(`linearizability: ${check.description}`);
    result.inconclusive = check.ok === 'unknown';
  } catch (err) {
    // An exception from the engine (a failed assertion) is as much a violation as a broken invariant.
    result.violation =
      err instanceof Violation ? err.message : `engine threw: ${(err as Error).stack ?? String(err)}`;
  } finally {
    result.events = sim.events;
    result.ops = workload.completed;
    result.faults = nemesis.faults;
    Object.assign(result, {
      committed: sim.invariants.stats().maxCommitted,
      terms: sim.invariants.stats().terms,
    });
  }
  return result;
}

/** Every 20 ms: with a leader, write once per leadership; done when every live member applied it. */
function livenessProbe(sim: SimCluster): { done: boolean; state(): string } {
  const probe = { done: false, index: 0, leader: '', term: 0, state: () => describe(sim) };
  const poll = () => {
    const leader = sim.leader();
    const core = leader?.core;
    if (leader && core && probe.index > 0) {
      const everyone = M.members(core.membership).map((id) => sim.nodes.get(id));
      if (everyone.every((n) => n?.alive && n.sm.applied >= probe.index)) probe.done = true;
    }
    if (
      leader &&
      core &&
      (leader.id !== probe.leader || core.term !== probe.term) &&
      !core.isTransferring()
    ) {
      probe.leader = leader.id;
      probe.term = core.term;
      probe.index = 0;
      const index = core.propose(
        encodeCommand({ op: 'put', key: 'liveness', value: `${core.term}`, id: `live${core.term}` }),
      );
      sim.guard(leader, () => {});
      leader.writes.set(index, {
        onApplied: (r) => {
          if (r?.id === `live${core.term}`) probe.index = index;
        },
        onLost: () => {},
      });
    }
    if (!probe.done) sim.later(20, poll);
  };
  sim.later(0, poll);
  return probe;
}

function describe(sim: SimCluster): string {
  return [...sim.nodes.values()]
    .map((n) => {
      const c = n.core;
      return c
        ? `${n.id}:${c.role}/t${c.term}/c${c.log.committed}/a${n.sm.applied}/l${c.log.lastIndex()}`
        : `${n.id}:down`;
    })
    .join(' ');
}
