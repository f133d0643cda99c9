// The chaos workload: concurrent clients doing linearizable reads, writes and compare-and-set on a
// small key set, through randomly chosen members (including paused and partitioned ones), while
// the nemesis works. Every operation goes into one history with call and return times.

import { SeededRng } from '../../node/raft/rng.js';
import type { KvInput, KvOperation } from '../../node/raft/sim/kv-model.js';
import { callKv, type Outcome, type ReadConsistency } from './client.js';

export interface WorkloadOptions {
  clients: number;
  keys: number;
  seed: number;
  /** Client-side limit for one call; beyond it the outcome is unknown. */
  timeoutMs: number;
  /** Pause between one client's operations, so the history stays checkable. */
  thinkMs: number;
}

export interface Counters {
  ok: number;
  refused: number;
  unknown: number;
  /** Acknowledged writes: successful puts and compare-and-sets that applied. */
  acknowledged: number;
  reasons: Map<string, number>;
}

/** The shared history of every client, the nemesis' probes and the final read-back. */
export class History {
  readonly ops: KvOperation[] = [];
  readonly counters: Counters = { ok: 0, refused: 0, unknown: 0, acknowledged: 0, reasons: new Map() };
  private readonly t0 = performance.now();

  /** `serializable` reads may be stale: a check that the checker notices (never for real runs). */
  constructor(private readonly readConsistency: ReadConsistency = 'linearizable') {}

  now(): number {
    return performance.now() - this.t0;
  }

  /** Call `baseUrl` and record the operation; returns the outcome. */
  async invoke(clientId: number, baseUrl: string, input: KvInput, timeoutMs: number): Promise<Outcome> {
    const call = this.now();
    const outcome = await callKv(baseUrl, input, timeoutMs, this.readConsistency);
    const ret = this.now();
    const c = this.counters;
    if (outcome.kind === 'ok') {
      c.ok += 1;
      const out = outcome.output;
      if (input.op !== 'get' && 'ok' in out && out.ok) c.acknowledged += 1;
      this.ops.push({ clientId, input, call, output: out, return: ret });
    } else {
      const reason = outcome.kind === 'refused' ? outcome.code : outcome.reason;
      c.reasons.set(reason, (c.reasons.get(reason) ?? 0) + 1);
      if (outcome.kind === 'refused') c.refused += 1;
      else {
        c.unknown += 1;
        // Unknown: it may take effect at any time after its call.
        this.ops.push({ clientId, input, call, output: undefined, return: Number.POSITIVE_INFINITY });
      }
    }
    return outcome;
  }
}

export const keyName = (i: number) => `chaos/k${i}`;

export class Workload {
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly history: History,
    private readonly opts: WorkloadOptions,
    /** The API base URLs clients may use right now (current members). */
    private readonly targets: () => string[],
  ) {}

  start(): void {
    this.running = true;
    this.loops = Array.from({ length: this.opts.clients }, (_, c) => this.client(c));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async client(clientId: number): Promise<void> {
    const rng = new SeededRng(this.opts.seed * 1000 + clientId);
    // The last value this client saw per key: the expected value of its compare-and-sets.
    const seen = new Map<string, string | null>();
    for (let seq = 0; this.running; seq++) {
      const key = keyName(rng.int(this.opts.keys));
      const value = `c${clientId}-${seq}`;
      const roll = rng.float();
      const input: KvInput =
        roll < 0.5
          ? { op: 'get', key }
          : roll < 0.75
            ? { op: 'put', key, value }
            : { op: 'cas', key, expected: seen.get(key) ?? null, value };
      const targets = this.targets();
      const target = targets[rng.int(targets.length)];
      if (!target) {
        await sleep(50);
        continue;
      }
      const outcome = await this.history.invoke(clientId, target, input, this.opts.timeoutMs);
      if (outcome.kind === 'ok') {
        const out = outcome.output;
        if ('value' in out) seen.set(key, out.value);
        else if (out.ok && (input.op === 'put' || input.op === 'cas')) seen.set(key, input.value);
      }
      await sleep(this.opts.thinkMs);
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
