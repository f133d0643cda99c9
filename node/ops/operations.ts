// Long-running membership operations (add, remove) run one at a time, in the order accepted:
// Raft allows one membership change in flight, and two interleaved flows (one adding a learner
// while another promotes) would make each other's decisions stale. Each operation has an id the
// caller polls (`GET /_cluster/operations/{id}`); the newest ones are kept for inspection.

import { randomUUID } from 'node:crypto';
import type { Operation } from '../api/admin-contract.js';
import { toHttpError } from '../api/http-errors.js';
import { ConfluxError } from '../errors.js';

/** How a running operation reports progress. */
export interface OperationHandle {
  step(name: string): void;
  lag(value: number | null): void;
}

const KEEP_FINISHED = 100;

export class OperationQueue {
  private readonly ops = new Map<string, Operation>();
  private tail: Promise<void> = Promise.resolve();

  constructor(private readonly now: () => Date = () => new Date()) {}

  get(id: string): Operation | undefined {
    const op = this.ops.get(id);
    return op && { ...op };
  }

  /** The unfinished operation of `kind` for `nodeId`, if any (what makes a repeated request idempotent). */
  active(kind: Operation['kind'], nodeId: string): Operation | undefined {
    for (const op of this.ops.values()) {
      if (op.kind === kind && op.node_id === nodeId && (op.state === 'pending' || op.state === 'running'))
        return { ...op };
    }
    return undefined;
  }

  /** Whether any operation is waiting or running. */
  busy(): boolean {
    return [...this.ops.values()].some((op) => op.state === 'pending' || op.state === 'running');
  }

  /** Queue `run`; it starts once every operation accepted before it finished. */
  enqueue(kind: Operation['kind'], nodeId: string, run: (h: OperationHandle) => Promise<void>): Operation {
    const op: Operation = {
      id: `op-${randomUUID()}`,
      kind,
      node_id: nodeId,
      state: 'pending',
      step: 'queued',
      created_at: this.now().toISOString(),
      finished_at: null,
      error: null,
      lag: null,
    };
    this.ops.set(op.id, op);
    const handle: OperationHandle = {
      step: (name) => {
        op.step = name;
      },
      lag: (value) => {
        op.lag = value;
      },
    };
    this.tail = this.tail.then(async () => {
      op.state = 'running';
      try {
        await run(handle);
        op.state = 'succeeded';
        op.step = 'done';
      } catch (err) {
        op.state = 'failed';
        const { body } = toHttpError(err);
        op.error = { code: body.error.code, message: body.error.message };
      }
      op.finished_at = this.now().toISOString();
      this.prune();
    });
    return { ...op };
  }

  /** Record an operation that needed no work (the node already is what was asked). */
  done(kind: Operation['kind'], nodeId: string, step: string): Operation {
    const at = this.now().toISOString();
    const op: Operation = {
      id: `op-${randomUUID()}`,
      kind,
      node_id: nodeId,
      state: 'succeeded',
      step,
      created_at: at,
      finished_at: at,
      error: null,
      lag: null,
    };
    this.ops.set(op.id, op);
    this.prune();
    return { ...op };
  }

  /** Resolves when every operation accepted so far has finished (for shutdown and tests). */
  idle(): Promise<void> {
    return this.tail;
  }

  private prune(): void {
    const finished = [...this.ops.values()].filter((op) => op.finished_at !== null);
    for (const op of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.ops.delete(op.id);
  }
}

export function operationNotFound(id: string): ConfluxError {
  return new ConfluxError('OPERATION_NOT_FOUND', `no operation ${id} on this node`);
}
