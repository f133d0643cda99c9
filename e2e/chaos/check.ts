// The verdict on one chaos history: linearizability per key (the project's porcupine-style checker
// with the KV model), and an explicit count of lost acknowledged writes against the values read
// back after every fault was healed.

import { type KvOperation, kvModel } from '../../node/raft/sim/kv-model.js';
import { checkOperations } from '../../node/raft/sim/linearizability.js';

export interface Verdict {
  /** Acknowledged writes the final state contradicts. */
  lost: number;
  /** Keys whose history is not linearizable, or that the checker could not decide. */
  anomalies: number;
  details: string[];
}

/** The final read-back of each key: the value a linearizable read returned after healing. */
export type FinalValues = Map<string, string | null>;

export function checkHistory(ops: KvOperation[], finals: FinalValues, maxSteps?: number): Verdict {
  const details: string[] = [];
  let anomalies = 0;
  const byKey = new Map<string, KvOperation[]>();
  for (const op of ops) {
    const list = byKey.get(op.input.key) ?? [];
    list.push(op);
    byKey.set(op.input.key, list);
  }
  for (const [key, list] of byKey) {
    const r = checkOperations(kvModel, list, maxSteps === undefined ? {} : { maxSteps });
    if (r.ok === true) continue;
    anomalies += 1;
    details.push(
      r.ok === false ? `${key}: not linearizable: ${r.description}` : `${key}: undecided: ${r.reason}`,
    );
  }
  let lost = 0;
  for (const [key, final] of finals) {
    const n = lostWrites(byKey.get(key) ?? [], final);
    if (n > 0) details.push(`${key}: final value ${JSON.stringify(final)} drops ${n} acknowledged write(s)`);
    lost += n;
  }
  return { lost, anomalies, details };
}

const isAckedWrite = (op: KvOperation) =>
  op.input.op !== 'get' && op.output !== undefined && 'ok' in op.output && op.output.ok;

/**
 * Written values are unique, so the final value names the write that produced it. Every
 * acknowledged write that began after that write had returned must have replaced it: if the value
 * survived, those writes are lost. An absent key, or a value no write produced, loses them all.
 */
export function lostWrites(ops: KvOperation[], final: string | null): number {
  const acked = ops.filter(isAckedWrite);
  const source =
    final === null
      ? undefined
      : ops.find((op) => (op.input.op === 'put' || op.input.op === 'cas') && op.input.value === final);
  if (!source) return acked.length;
  return acked.filter((op) => op !== source && op.call > source.return).length;
}
