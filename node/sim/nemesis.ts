// The fault schedule of the safety phase, drawn from the seed: network partitions, kills and
// power losses, disk faults (ENOSPC, EIO, slow, misdirected writes), process pauses; and the
// operator's work, one flow at a time as the admin API's operation queue runs it: add a learner
// and promote it once caught up, remove a node (refused when the voters left could not form a
// quorum, as removalCheck rules), transfer leadership, replace a node whose storage refused to
// open (remove it, add a fresh one), take snapshots.

import type { KvApplyResult } from '../kv/types.js';
import { bestTransferTarget, removalCheck } from '../ops/membership.js';
import { RaftError } from '../raft/errors.js';
import * as M from '../raft/membership.js';
import type { MembershipChange, RaftNode } from '../raft/raft-node.js';
import type { NodeId } from '../raft/types.js';
import {
  ELECTION_TICKS,
  ELECTION_TIMEOUT_MS,
  type Life,
  nodeInfo,
  type StackCluster,
  type StackNode,
} from './cluster.js';
import type { Coverage } from './coverage.js';
import type { SimNetwork } from './network.js';
import type { Oracle } from './oracle.js';
import type { StackProfile } from './profile.js';
import type { DiskErrno } from './sim-disk.js';
import { settle } from './workload.js';
import { Violation, type World } from './world.js';

/** Most nodes (voters and learners) a cluster grows to. */
const MAX_MEMBERS = 6;

export interface NemesisCtx {
  world: World;
  cluster: StackCluster;
  net: SimNetwork;
  profile: StackProfile;
  coverage: Coverage;
  oracle: () => Oracle;
}

type Leader = { node: StackNode; life: Life; raft: RaftNode<KvApplyResult> };

export class Operator {
  busy = false;

  constructor(private readonly c: NemesisCtx) {}

  private leader(): Leader | null {
    const l = this.c.cluster.leader(this.c.oracle());
    return l?.life.raft ? { node: l.node, life: l.life, raft: l.life.raft } : null;
  }

  /** Run one admin flow unless another runs. */
  run(flow: () => Promise<void>): void {
    if (this.busy) return;
    this.busy = true;
    flow()
      .catch((err: unknown) => {
        if (!(err instanceof RaftError))
          this.c.world.fail(err instanceof Error ? err : new Error(String(err)));
      })
      .finally(() => {
        this.busy = false;
      });
  }

  /**
   * A membership change on the current leader, retried while another change settles (as
   * MembershipOps.settled does); false when it did not succeed in time.
   */
  private async change(fn: (raft: RaftNode<KvApplyResult>) => Promise<MembershipChange>, patienceMs = 600) {
    const { world } = this.c;
    const deadline = world.now + patienceMs;
    while (world.now < deadline) {
      const l = this.leader();
      if (!l) {
        await world.sleep(20);
        continue;
      }
      const r = await settle(world, l.life, fn(l.raft), 400);
      if (r.kind === 'ok') return true;
      if (r.kind === 'error') {
        const retry =
          r.err instanceof RaftError &&
          ['MEMBERSHIP_CHANGE_IN_PROGRESS', 'NOT_LEADER', 'TRANSFER_IN_PROGRESS'].includes(r.err.code);
        if (!retry) return false;
      }
      await world.sleep(20);
    }
    return false;
  }

  /** Prepare, add as learner, wait until caught up, promote (node/ops/membership.ts runAdd). */
  async addNode(patienceMs = 600, maxMembers = MAX_MEMBERS, fresh?: StackNode): Promise<StackNode | null> {
    const { cluster, coverage } = this.c;
    const l = this.leader();
    if (!l) return null;
    const m = l.raft.metrics().membership;
    if ((!fresh && M.members(m).length >= maxMembers) || !m.cluster) return null;
    const node = fresh ?? cluster.newNode(this.c.oracle());
    for (const id of M.members(m)) node.toldOf.add(id);
    node.toldOf.add(node.id);
    node.preparedCluster = m.cluster.id;
    void node.start();
    if (!(await this.change((raft) => raft.addLearner(node.id, nodeInfo(node.id)), patienceMs))) return node;
    coverage.learnersAdded++;
    if (!(await this.waitCaughtUp(node.id, patienceMs * 2))) return node;
    const promoted = await this.change((raft) => {
      const voters = raft.metrics().membership.configs.at(-1) ?? [];
      return raft.changeMembership([...voters.filter((v) => v !== node.id), node.id]);
    }, patienceMs);
    if (promoted) coverage.promotions++;
    return node;
  }

  private async waitCaughtUp(id: NodeId, timeoutMs: number): Promise<boolean> {
    const { world } = this.c;
    const deadline = world.now + timeoutMs;
    let since: number | null = null;
    while (world.now < deadline) {
      const l = this.leader();
      const m = l?.raft.metrics();
      const matched = m?.replication?.[id]?.matched ?? 0;
      if (m && m.lastLogIndex - matched <= 3) {
        since ??= world.now;
        if (world.now - since >= 30) return true;
      } else since = null;
      await world.sleep(10);
    }
    return false;
  }

  /** Remove a voter (not the leader) or a learner; refused when quorum is at risk unless forced. */
  async removeNode(id: NodeId, force: boolean): Promise<boolean> {
    const { cluster, coverage } = this.c;
    const l = this.leader();
    if (!l || id === l.node.id) return false;
    const m = l.raft.metrics();
    if (!M.members(m.membership).includes(id)) return false;
    if (M.isVoter(m.membership, id)) {
      const check = removalCheck(m, id, ELECTION_TICKS);
      if (check.remaining.length === 0 || (!check.ok && !force)) return false;
    }
    const ok = await this.change((raft) => {
      const mm = raft.metrics().membership;
      return M.isVoter(mm, id)
        ? raft.changeMembership((mm.configs.at(-1) ?? []).filter((v) => v !== id))
        : raft.removeLearner(id);
    });
    if (!ok) return false;
    coverage.removals++;
    // The operator deletes the removed node's pod and volume.
    cluster.nodes.get(id)?.retire();
    return true;
  }

  async transfer(target?: NodeId): Promise<void> {
    const { world, coverage } = this.c;
    const l = this.leader();
    if (!l) return;
    const m = l.raft.metrics();
    const to =
      target ??
      (world.rng.chance(0.5)
        ? bestTransferTarget(m, ELECTION_TICKS)
        : world.rng.pick([...M.voters(m.membership).filter((v) => v !== l.node.id), l.node.id]));
    if (!to || to === l.node.id) return;
    coverage.transfers++;
    const r = await settle(
      world,
      l.life,
      l.raft.transferLeader(to, 2 * ELECTION_TIMEOUT_MS),
      3 * ELECTION_TIMEOUT_MS,
    );
    if (r.kind === 'ok') coverage.transfersSucceeded++;
  }

  /** A node refused to open its storage: remove it from the cluster and add a fresh node. */
  async replace(node: StackNode): Promise<void> {
    if (await this.removeNode(node.id, true)) {
      this.c.coverage.replacements++;
      await this.addNode();
    }
  }

  async snapshot(): Promise<void> {
    const { world } = this.c;
    const up = this.c.cluster.up(this.c.oracle());
    if (up.length === 0) return;
    const life = world.rng.pick(up).up as Life;
    if (life.raft) await settle(world, life, life.raft.triggerSnapshot(), 400);
  }

  /** Pick a member to remove: any voter but the leader (keeping three) or a learner. */
  async removeSomeone(): Promise<void> {
    const { world } = this.c;
    const l = this.leader();
    if (!l) return;
    const m = l.raft.metrics().membership;
    const voters = M.voters(m).filter((v) => v !== l.node.id);
    const candidates = [...(M.voters(m).length > 3 ? voters : []), ...m.learners];
    if (candidates.length === 0) return;
    await this.removeNode(world.rng.pick(candidates), false);
  }
}

export class StackNemesis {
  stopped = false;
  readonly operator: Operator;

  constructor(private readonly c: NemesisCtx) {
    this.operator = new Operator(c);
  }

  start(): void {
    this.schedule();
  }

  private schedule(): void {
    const { nemesisMsMin, nemesisMsMax } = this.c.profile;
    const { world } = this.c;
    world.after(nemesisMsMin + world.rng.int(Math.max(1, nemesisMsMax - nemesisMsMin)), () => {
      if (this.stopped) return;
      const stopped = this.c.cluster.stoppedNode();
      if (stopped) throw new Violation(stopped);
      this.act();
      this.schedule();
    });
  }

  private nodes(): StackNode[] {
    return [...this.c.cluster.nodes.values()].filter(
      (n) => n.status !== 'retired' && n.oracle === this.c.oracle(),
    );
  }

  private act(): void {
    const { world, profile, net } = this.c;
    const { rng } = world;
    const nodes = this.nodes();
    if (nodes.length === 0) return;
    // A power-loss profile spends most faults on crashes, the rest as the mixed one.
    const roll = profile.powerLosses && rng.chance(0.5) ? 29 + rng.int(16) : rng.int(100);
    if (roll < 12) this.partition(nodes);
    else if (roll < 16) {
      const [a, b] = rng.shuffle(nodes);
      if (a && b) {
        net.block(a.id, b.id);
        this.c.coverage.oneWayLinks++;
      }
      this.healLater();
    } else if (roll < 21) this.isolateLeader(nodes);
    else if (roll < 29) net.heal();
    else if (roll < 36) {
      const n = rng.pick(nodes);
      n.kill();
      n.restartLater(20 + rng.int(500));
    } else if (roll < 42) {
      const n = rng.pick(nodes);
      n.powerOff();
      n.restartLater(20 + rng.int(500));
    } else if (roll < 45) {
      for (const n of nodes) {
        n.powerOff();
        n.restartLater(20 + rng.int(300));
      }
    } else if (roll < 57 && profile.diskFaults) this.diskFault(rng.pick(nodes));
    else if (roll < 61 && profile.corruption) this.corrupt(nodes);
    else if (roll < 66 && profile.pauses) rng.pick(nodes).pause(20 + rng.int(300));
    else if (roll < 100 && profile.admin) this.admin(nodes);
  }

  private partition(nodes: StackNode[]): void {
    const { rng } = this.c.world;
    const ids = rng.shuffle(nodes.map((n) => n.id));
    const cut = 1 + rng.int(Math.max(1, ids.length - 1));
    for (const x of ids.slice(0, cut))
      for (const y of ids.slice(cut)) {
        this.c.net.block(x, y);
        this.c.net.block(y, x);
      }
    this.c.coverage.partitions++;
    this.healLater();
  }

  private isolateLeader(nodes: StackNode[]): void {
    const l = this.c.cluster.leader(this.c.oracle());
    if (!l) return;
    for (const n of nodes) {
      if (n === l.node) continue;
      this.c.net.block(l.node.id, n.id);
      this.c.net.block(n.id, l.node.id);
    }
    this.c.coverage.partitions++;
    this.healLater();
  }

  private healLater(): void {
    this.c.world.after(100 + this.c.world.rng.int(700), () => this.c.net.heal());
  }

  private diskFault(node: StackNode): void {
    const { rng } = this.c.world;
    const roll = rng.int(5);
    const errno: DiskErrno = rng.chance(0.5) ? 'ENOSPC' : 'EIO';
    if (roll === 0) {
      node.disk.faults = { ...node.disk.faults, slowMs: 20 + rng.int(200) };
      this.c.coverage.slowDisks++;
    } else if (roll <= 2) node.disk.faults = { ...node.disk.faults, write: { errno, probability: 0.3 } };
    else node.disk.faults = { ...node.disk.faults, fsync: { errno, probability: 0.3 } };
    // The operator frees space / swaps the disk after a while.
    this.c.world.after(50 + rng.int(400), () => {
      node.disk.faults = {};
    });
  }

  /** Misdirected writes on one node, and only while no other node's data is bad. */
  private corrupt(nodes: StackNode[]): void {
    const { rng } = this.c.world;
    if (nodes.some((n) => n.disk.corrupted || n.status === 'refused')) return;
    // Never the last copies: a cluster of fewer than three voters cannot replace a bad node.
    const m = this.c.cluster.membership(this.c.oracle());
    if (!m || M.voters(m).length < 3) return;
    const node = rng.pick(nodes);
    node.disk.faults = { ...node.disk.faults, misdirect: 0.2 };
    this.c.world.after(20 + rng.int(100), () => {
      node.disk.faults = { ...node.disk.faults, misdirect: 0 };
    });
  }

  private admin(nodes: StackNode[]): void {
    const { rng } = this.c.world;
    const op = this.operator;
    const refused = nodes.find((n) => n.status === 'refused');
    if (refused) {
      op.run(() => op.replace(refused));
      return;
    }
    const roll = rng.int(100);
    if (roll < 30) op.run(() => op.transfer());
    else if (roll < 55) op.run(async () => void (await op.addNode()));
    else if (roll < 80) op.run(() => op.removeSomeone());
    else op.run(() => op.snapshot());
  }
}
