// The fault schedule of the safety phase: partitions (majority/minority, isolated leader,
// one-way), crashes and restarts (one node, or all at once as in a power loss), membership changes
// and leader transfers, all drawn from the seed.

import { RaftError } from '../errors.js';
import * as M from '../membership.js';
import type { NodeId } from '../types.js';
import type { SimCluster } from './cluster.js';

export class Nemesis {
  faults = 0;
  stopped = false;
  private spares: NodeId[];

  constructor(
    private readonly sim: SimCluster,
    spares: NodeId[],
  ) {
    this.spares = [...spares];
  }

  start(): void {
    this.schedule();
  }

  private schedule(): void {
    const { nemesisMsMin, nemesisMsMax } = this.sim.profile;
    this.sim.later(nemesisMsMin + this.sim.rng.int(nemesisMsMax - nemesisMsMin), () => {
      if (this.stopped) return;
      this.act();
      this.schedule();
    });
  }

  private act(): void {
    const { rng } = this.sim;
    const roll = rng.int(100);
    this.faults++;
    if (roll < 20) this.partition();
    else if (roll < 30) this.sim.heal();
    else if (roll < 45) this.crash();
    else if (roll < 50) this.powerLoss();
    else if (roll < 65) this.changeMembership();
    else if (roll < 80) this.transfer();
    else if (roll < 90) this.oneWay();
    else this.isolateLeader();
  }

  private ids(): NodeId[] {
    return [...this.sim.nodes.keys()];
  }

  private partition(): void {
    const ids = this.sim.rng.shuffle(this.ids());
    const cut = 1 + this.sim.rng.int(ids.length - 1);
    const [a, b] = [ids.slice(0, cut), ids.slice(cut)];
    for (const x of a)
      for (const y of b) {
        this.sim.block(x, y);
        this.sim.block(y, x);
      }
    this.healLater();
  }

  private oneWay(): void {
    const ids = this.ids();
    const from = this.sim.rng.pick(ids);
    const to = this.sim.rng.pick(ids.filter((i) => i !== from));
    if (to) this.sim.block(from, to);
    this.healLater();
  }

  private isolateLeader(): void {
    const leader = this.sim.leader();
    if (!leader) return;
    for (const other of this.ids()) {
      if (other === leader.id) continue;
      this.sim.block(leader.id, other);
      this.sim.block(other, leader.id);
    }
    this.healLater();
  }

  private healLater(): void {
    this.sim.later(100 + this.sim.rng.int(800), () => this.sim.heal());
  }

  private crash(): void {
    const { rng } = this.sim;
    const leader = this.sim.leader();
    const alive = this.sim.alive();
    if (alive.length === 0) return;
    // Often strike a node with a write in flight: that write is lost, the torn-tail case.
    const writing = alive.filter((n) => n.busy);
    const victim =
      writing.length > 0 && rng.chance(0.5)
        ? rng.pick(writing)
        : leader && rng.chance(0.4)
          ? leader
          : rng.pick(alive);
    this.sim.crash(victim.id);
    this.sim.later(20 + rng.int(600), () => this.sim.restart(victim.id));
  }

  /** Every node loses power at once: only what each had synced survives. */
  private powerLoss(): void {
    for (const n of this.sim.alive()) {
      this.sim.crash(n.id);
      this.sim.later(20 + this.sim.rng.int(300), () => this.sim.restart(n.id));
    }
  }

  private changeMembership(): void {
    const leader = this.sim.leader();
    const core = leader?.core;
    if (!leader || !core) return;
    const m = core.membership;
    const { rng } = this.sim;
    const current = m.configs[0] ?? [];
    try {
      const spare = this.spares[0];
      if (spare && rng.chance(0.4)) {
        this.sim.addNode(spare);
        this.spares.shift();
        this.sim.guard(leader, () => core.proposeMembership((mm) => M.withLearner(mm, spare)));
      } else if (m.learners.length > 0 && rng.chance(0.6)) {
        const learner = rng.pick(m.learners);
        this.sim.guard(leader, () =>
          core.proposeMembership((mm) => M.enterJoint(mm, [...current, learner], false)),
        );
      } else if (current.length > 2) {
        const victim = rng.pick(current);
        // Sometimes remove the leader itself: it must step down once the change commits.
        this.sim.guard(leader, () =>
          core.proposeMembership((mm) =>
            M.enterJoint(
              mm,
              current.filter((id) => id !== victim),
              rng.chance(0.3),
            ),
          ),
        );
      }
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
    }
  }

  private transfer(): void {
    const leader = this.sim.leader();
    const core = leader?.core;
    if (!leader || !core) return;
    const candidates = M.voters(core.membership).filter((id) => id !== leader.id);
    if (candidates.length === 0) return;
    const target = this.sim.rng.pick(candidates);
    try {
      this.sim.guard(leader, () => core.transferLeader(target));
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
    }
  }
}
