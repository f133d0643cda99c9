// Clients doing reads (ReadIndex), writes and compare-and-set on a small key space, recording a
// history for the linearizability checker. One operation at a time per client, each sent to one
// node without retries: a reply is definite, silence (crash, timeout) is "may or may not have happened".

import { RaftError } from '../errors.js';
import type { NodeId } from '../types.js';
import type { SimCluster } from './cluster.js';
import { encodeCommand, type KvCommand } from './kv-machine.js';
import type { KvInput, KvOperation } from './kv-model.js';

const OP_TIMEOUT_MS = 1_500;

export class Workload {
  readonly history: KvOperation[] = [];
  private opSeq = 0;
  private hints = new Map<number, NodeId>();
  stopped = false;
  completed = 0;
  /** Calls still waiting for an answer, keyed by a unique id: settled as unknown at the end. */
  private inflight = new Map<string, () => void>();

  constructor(private readonly sim: SimCluster) {}

  start(): void {
    for (let c = 0; c < this.sim.profile.clients; c++)
      this.sim.later(this.sim.rng.int(20), () => this.next(c));
  }

  private next(client: number): void {
    if (this.stopped) return;
    const { rng } = this.sim;
    const key = `k${rng.int(this.sim.profile.keys)}`;
    const value = `c${client}.${++this.opSeq}`;
    const roll = rng.int(10);
    const input: KvInput =
      roll < 4
        ? { op: 'get', key }
        : roll < 7
          ? { op: 'put', key, value }
          : roll < 9
            ? { op: 'cas', key, expected: rng.chance(0.3) ? null : this.recentValue(key), value }
            : { op: 'delete', key };
    const target = this.pickTarget(client);
    if (!target) {
      this.thinkThen(client);
      return;
    }
    if (input.op === 'get') this.read(client, target, input);
    else this.write(client, target, input, `op${this.opSeq}`);
  }

  /** End of run: whatever is still in flight may or may not have happened. */
  stop(): void {
    this.stopped = true;
    for (const settle of [...this.inflight.values()]) settle();
  }

  private recentValue(key: string): string | null {
    for (let i = this.history.length - 1; i >= 0; i--) {
      const h = this.history[i];
      if (h && h.input.key === key && h.input.op !== 'get' && h.input.op !== 'delete') return h.input.value;
    }
    return null;
  }

  private pickTarget(client: number): NodeId | null {
    const alive = this.sim.alive().map((n) => n.id);
    if (alive.length === 0) return null;
    const hint = this.hints.get(client);
    if (hint && alive.includes(hint) && !this.sim.rng.chance(0.1)) return hint;
    return this.sim.rng.pick(alive);
  }

  private thinkThen(client: number): void {
    this.sim.later(1 + this.sim.rng.int(15), () => this.next(client));
  }

  /** Run a client call against a node; a refusal (not leader, transfer) is a definite no-op. */
  private attempt(client: number, node: NodeId, call: () => void): boolean {
    const sn = this.sim.node(node);
    try {
      this.sim.guard(sn, call);
      return true;
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
      if (err.leader) this.hints.set(client, err.leader);
      else this.hints.delete(client);
      this.thinkThen(client);
      return false;
    }
  }

  private write(client: number, node: NodeId, input: Exclude<KvInput, { op: 'get' }>, id: string): void {
    const cmd: KvCommand = { ...input, id } as KvCommand;
    const op: KvOperation = {
      clientId: client,
      input,
      call: this.sim.now,
      output: undefined,
      return: Infinity,
    };
    let done = false;
    const finish = (output: KvOperation['output'] | 'refused') => {
      if (done) return;
      done = true;
      this.inflight.delete(id);
      if (output !== 'refused') {
        op.output = output;
        op.return = output === undefined ? Infinity : this.sim.now;
        this.history.push(op);
        this.completed++;
      }
      this.thinkThen(client);
    };
    const sn = this.sim.node(node);
    this.inflight.set(id, () => finish(undefined));
    const accepted = this.attempt(client, node, () => {
      const index = (sn.core as NonNullable<typeof sn.core>).propose(encodeCommand(cmd));
      this.hints.set(client, node);
      sn.writes.set(index, {
        // Our entry applied: definite result. Another entry at our index: ours was overwritten, never applied.
        onApplied: (result) => finish(result?.id === id ? { ok: result.ok } : 'refused'),
        onLost: () => finish(undefined),
      });
      this.sim.later(OP_TIMEOUT_MS, () => finish(undefined));
    });
    if (!accepted) this.inflight.delete(id);
  }

  private read(client: number, node: NodeId, input: Extract<KvInput, { op: 'get' }>): void {
    const ctx = `r${++this.opSeq}`;
    const call = this.sim.now;
    const sn = this.sim.node(node);
    let done = false;
    const finish = (value?: string | null) => {
      if (done) return;
      done = true;
      this.inflight.delete(ctx);
      // A read that failed or timed out observed nothing and is left out of the history.
      if (value !== undefined) {
        this.history.push({ clientId: client, input, call, output: { value }, return: this.sim.now });
        this.completed++;
      }
      this.thinkThen(client);
    };
    this.inflight.set(ctx, () => finish());
    const accepted = this.attempt(client, node, () => {
      sn.core?.readIndex(ctx);
      sn.reads.set(ctx, {
        onConfirmed: () => finish(sn.sm.get(input.key)),
        onDropped: () => finish(),
      });
      this.sim.later(OP_TIMEOUT_MS, () => finish());
    });
    if (!accepted) this.inflight.delete(ctx);
  }
}
