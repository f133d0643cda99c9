// The nemesis schedule: a pure function of the seed. It starts with every kind of fault once, in a
// seeded order, and then draws faults at random until the time budget is spent. Targets that
// depend on the cluster (the leader) are chosen when the step runs, from the step's own `pick`.

import { SeededRng } from '../../node/raft/rng.js';

export const FAULT_KINDS = [
  'kill-leader',
  'kill-follower',
  'pause-leader',
  'pause-follower',
  'partition-split',
  'partition-bridge',
  'isolate-leader',
  'one-way',
  'transfer-leader',
  'membership',
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultStep {
  kind: FaultKind;
  /** How long the fault lasts before it is healed. */
  holdMs: number;
  /** The seed of this step's own choices (which follower, which sides). */
  pick: number;
}

/** A rough cost of one step (hold, heal, settle), for the time budget only. */
const OVERHEAD_MS: Record<FaultKind, number> = {
  'kill-leader': 5_000,
  'kill-follower': 4_000,
  'pause-leader': 3_000,
  'pause-follower': 2_000,
  'partition-split': 3_000,
  'partition-bridge': 2_000,
  'isolate-leader': 4_000,
  'one-way': 3_000,
  'transfer-leader': 2_000,
  membership: 10_000,
};

export function planSchedule(seed: number, seconds: number): FaultStep[] {
  const rng = new SeededRng(seed);
  const step = (kind: FaultKind): FaultStep => ({
    kind,
    holdMs: kind === 'transfer-leader' || kind === 'membership' ? 0 : 1_500 + rng.int(2_500),
    pick: rng.int(2 ** 31),
  });
  const steps = rng.shuffle(FAULT_KINDS).map(step);
  const cost = (s: FaultStep) => s.holdMs + OVERHEAD_MS[s.kind];
  let spent = steps.reduce((t, s) => t + cost(s), 0);
  while (spent < seconds * 1_000) {
    const s = step(rng.pick(FAULT_KINDS));
    steps.push(s);
    spent += cost(s);
  }
  return steps;
}
