// Clients of the simulated cluster, going through the same path as the API: a write is
// validated against the node's limits, encoded (commands.ts), proposed with RaftNode.clientWrite
// and answered with the KvStore's apply result; a linearizable read is a ReadIndex
// (ensureLinearizable) followed by a local read; a serializable read is a local read on any node.
// One operation at a time per client; a client follows NOT_LEADER hints as the API's forwarding
// does. A reply is definite; a timeout or a dead server is an unknown outcome (settle.ts). A
// share of the operations goes through the node's HTTP API instead (workload-http.ts).

import type { KeyValueJson } from '../api/json.js';
import { encodeCommand, type KvCommand } from '../kv/commands.js';
import type { KeyValue, KvApplyResult, OpResponse } from '../kv/types.js';
import { RaftError } from '../raft/errors.js';
import type { Life, StackCluster } from './cluster.js';
import type { Coverage } from './coverage.js';
import { keyPath } from './http.js';
import { makeValue } from './keys.js';
import type { Oracle } from './oracle.js';
import { OP_TIMEOUT_MS, type Settled, settle } from './settle.js';
import type { KeyInput, KeyOperation, KeyOutput, Observed } from './stack-model.js';
import { fromJson, HttpRefusal, httpRequest, httpWrite, viaHttp, type Written } from './workload-http.js';
import { Violation, type World } from './world.js';

export { OP_TIMEOUT_MS, type Settled, settle } from './settle.js';

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
const observe = (kv: KeyValue | undefined): Observed =>
  kv ? { v: hex(kv.value), mod: kv.modRevision } : null;

/** An operation's position in the store's revision order, for the cross-key order check. */
export interface RevisionOp {
  call: number;
  return: number;
  rev: number;
  /** It created a revision (else it read one). */
  changed: boolean;
  what: string;
}

/** Errors that say the command was not proposed (or can no longer apply): a definite no-op. */
const refused = (err: unknown): boolean =>
  err instanceof RaftError &&
  ['NOT_LEADER', 'TRANSFER_IN_PROGRESS', 'PROPOSAL_DROPPED', 'READ_ABORTED', 'NOT_INITIALIZED'].includes(
    err.code,
  );

/** The share of client operations sent through the node's HTTP API (the rest call RaftNode). */
export const HTTP_SHARE = 0.4;

export class Workload {
  readonly history: KeyOperation[] = [];
  readonly revisions: RevisionOp[] = [];
  /** Serializable reads, checked once the run is over. */
  readonly serializable: { node: string; oracle: Oracle; key: string; mod: number; v: string }[] = [];
  stopped = false;
  private inflight = 0;
  private seq = 0;

  constructor(
    readonly world: World,
    private readonly cluster: StackCluster,
    readonly coverage: Coverage,
    readonly keys: string[],
    public oracle: Oracle,
    private readonly clients: number,
  ) {}

  start(): void {
    this.stopped = false;
    for (let c = 0; c < this.clients; c++) {
      const client = new Client(c, this);
      this.world.after(this.world.rng.int(20), () => void client.loop());
    }
  }

  /** Stop issuing; resolves when every operation in flight has an outcome. */
  async stop(): Promise<void> {
    this.stopped = true;
    while (this.inflight > 0) await this.world.sleep(5);
  }

  // -- for clients -------------------------------------------------------------------------------

  get rng() {
    return this.world.rng;
  }

  now(): number {
    return this.world.now;
  }

  nextValue(client: number): Uint8Array {
    return makeValue(this.world.rng, `c${client}.${++this.seq}`);
  }

  pickLife(hint: string | null): Life | null {
    const up = this.cluster.up(this.oracle);
    if (up.length === 0) return null;
    const hinted = hint ? up.find((n) => n.id === hint) : undefined;
    const node = hinted && !this.world.rng.chance(0.1) ? hinted : this.world.rng.pick(up);
    return node.up;
  }

  async track<T>(fn: () => Promise<T>): Promise<T> {
    this.inflight++;
    try {
      return await fn();
    } finally {
      this.inflight--;
    }
  }

  record(op: KeyOperation): void {
    this.history.push(op);
  }

  violation(message: string): void {
    this.world.fail(new Violation(message));
  }

  /** Every serializable read returned a write the log holds at that revision. */
  checkSerializable(): string | null {
    for (const r of this.serializable) {
      const wrote = r.oracle.writeAt(r.mod, r.key);
      if (r.mod > r.oracle.base && wrote !== r.v) {
        return `serializable read on ${r.node}: ${JSON.stringify(r.key)} = ${r.v} at revision ${r.mod}, but the log wrote ${wrote === undefined ? 'nothing' : wrote} there`;
      }
    }
    return null;
  }
}

class Client {
  private hint: string | null = null;
  /** Last modRevision this client saw per key (for compare-and-set). */
  private readonly seen = new Map<string, number>();
  private reads = 0;

  constructor(
    readonly id: number,
    private readonly w: Workload,
  ) {}

  async loop(): Promise<void> {
    while (!this.w.stopped) {
      await this.w.track(() => this.one());
      await sleepRandom(this.w, 1, 15);
    }
  }

  private async one(): Promise<void> {
    const life = this.w.pickLife(this.hint);
    if (!life) return;
    const { rng } = this.w;
    const key = rng.pick(this.w.keys);
    const roll = rng.int(100);
    if (roll < 25) return this.linearizableRead(life, key);
    if (roll < 33) return this.serializableRead(life, key);
    const value = this.w.nextValue(this.id);
    const v = hex(value);
    const other = rng.pick(this.w.keys.filter((k) => k !== key));
    if (roll < 53) return this.write(life, { type: 'put', key, value }, [{ op: 'put', key, value: v }]);
    if (roll < 65) {
      const expectMod = rng.chance(0.2) ? 0 : rng.chance(0.2) ? rng.int(50) : (this.seen.get(key) ?? 0);
      return this.write(life, { type: 'put', key, value, expectModRevision: expectMod }, [
        { op: 'cas', key, expectMod, value: v },
      ]);
    }
    if (roll < 75) return this.write(life, { type: 'delete', key }, [{ op: 'del', key }]);
    if (roll < 85) {
      const current = life.kv?.get(key);
      const expected = rng.chance(0.3) ? null : current ? current.value : value;
      return this.write(
        life,
        {
          type: 'txn',
          compare: [
            expected === null
              ? { key, target: 'exists', op: '=', operand: false }
              : { key, target: 'value', op: '=', operand: expected },
          ],
          success: [{ type: 'put', key, value }],
          failure: [{ type: 'get', key }],
        },
        [{ op: 'vcas', key, expected: expected === null ? null : hex(expected), value: v }],
      );
    }
    if (roll < 93 && other !== undefined) {
      return this.write(
        life,
        {
          type: 'txn',
          compare: [],
          success: [
            { type: 'put', key, value },
            { type: 'delete', key: other },
          ],
          failure: [],
        },
        [
          { op: 'put', key, value: v },
          { op: 'del', key: other },
        ],
      );
    }
    if (other === undefined) return;
    return this.write(
      life,
      {
        type: 'txn',
        compare: [],
        success: [
          { type: 'get', key },
          { type: 'get', key: other },
        ],
        failure: [],
      },
      [
        { op: 'get', key },
        { op: 'get', key: other },
      ],
    );
  }

  private refusedBy(err: unknown): void {
    this.hint = err instanceof RaftError || err instanceof HttpRefusal ? err.leader : null;
  }

  private async direct(
    life: Life,
    raft: NonNullable<Life['raft']>,
    cmd: KvCommand,
  ): Promise<Settled<Written>> {
    const r = await settle(this.w.world, life, raft.clientWrite(encodeCommand(cmd)), OP_TIMEOUT_MS);
    if (r.kind !== 'ok') return r;
    const { response, index } = r.value;
    return { kind: 'ok', value: { result: response, changed: response.revision === index } };
  }

  /** A GET through the node's API: linearizable (forwarded by a follower) or served locally. */
  private async httpRead(life: Life, key: string, consistency: 'linearizable' | 'serializable') {
    // Every other read asks for base64, the rest take the API's choice (UTF-8 text when the
    // value is text): both spellings must give the bytes back. (Not drawn from the seed's random
    // stream: the choice changes no state.)
    const encoding = ++this.reads % 2 === 0 ? '&encoding=base64' : '';
    const query = `?consistency=${consistency}${encoding}`;
    const call = this.w.now();
    const r = await httpRequest(this.w, life, { method: 'GET', url: `${keyPath(key)}${query}` });
    const ret = this.w.now();
    if (r.kind !== 'ok') {
      if (r.kind === 'error') this.refusedBy(r.err);
      return;
    }
    const { status, json, revision } = r.value;
    const got = status === 404 ? undefined : fromJson(json as KeyValueJson);
    if (got && got.key !== key) {
      this.w.violation(
        `GET ${JSON.stringify(key)} on ${life.id} answered the key ${JSON.stringify(got.key)}`,
      );
      return;
    }
    if (consistency === 'linearizable') {
      this.linearizableAnswer(life, key, got, { call, ret, rev: revision, verb: 'GET' });
      return;
    }
    this.w.coverage.serializableReads++;
    if (!got) return;
    this.serializableAnswer(life, key, got);
  }

  /**
   * A linearizable read's answer (over HTTP or in process), into the history the checkers read;
   * the client asks the node that answered next time.
   */
  private linearizableAnswer(
    life: Life,
    key: string,
    got: KeyValue | undefined,
    at: { call: number; ret: number; rev: number; verb: string },
  ): void {
    this.hint = life.id;
    this.w.coverage.linearizableReads++;
    this.w.record({
      clientId: this.id,
      input: { op: 'get', key },
      call: at.call,
      output: { kind: 'read', kv: observe(got) },
      return: at.ret,
    });
    this.w.revisions.push({
      call: at.call,
      return: at.ret,
      rev: at.rev,
      changed: false,
      what: `${at.verb} ${JSON.stringify(key)} on ${life.id}`,
    });
    if (got) this.seen.set(key, got.modRevision);
  }

  private async linearizableRead(life: Life, key: string): Promise<void> {
    if (this.w.rng.chance(HTTP_SHARE)) return this.httpRead(life, key, 'linearizable');
    const raft = life.raft;
    const kv = life.kv;
    if (!raft || !kv) return;
    const call = this.w.now();
    const r = await settle(this.w.world, life, raft.ensureLinearizable(), OP_TIMEOUT_MS);
    if (r.kind !== 'ok') {
      if (r.kind === 'error') this.refusedBy(r.err);
      return;
    }
    const got = kv.get(key);
    const ret = this.w.now();
    this.linearizableAnswer(life, key, got, { call, ret, rev: kv.revision, verb: 'read' });
  }

  /** A local read of whatever this node applied: it must be some write the log really holds. */
  private async serializableRead(life: Life, key: string): Promise<void> {
    if (this.w.rng.chance(HTTP_SHARE)) return this.httpRead(life, key, 'serializable');
    const kv = life.kv;
    if (!kv) return;
    const got = kv.get(key);
    this.w.coverage.serializableReads++;
    if (!got) return;
    if (got.modRevision > kv.applied) {
      this.w.violation(
        `${life.id} serves ${JSON.stringify(key)} at revision ${got.modRevision} > applied ${kv.applied}`,
      );
      return;
    }
    this.serializableAnswer(life, key, got);
  }

  /** A serializable read's answer: checked at the end, against the reference's complete record of writes. */
  private serializableAnswer(life: Life, key: string, got: KeyValue): void {
    this.w.serializable.push({
      node: life.id,
      oracle: life.node.oracle,
      key,
      mod: got.modRevision,
      v: hex(got.value),
    });
    this.seen.set(key, got.modRevision);
  }

  private async write(life: Life, cmd: KvCommand, parts: KeyInput[]): Promise<void> {
    const raft = life.raft;
    const kv = life.kv;
    if (!raft || !kv) return;
    try {
      kv.validate(cmd);
    } catch (err) {
      this.w.violation(`the workload made a command the API refuses: ${String(err)}`);
      return;
    }
    const call = this.w.now();
    const r =
      viaHttp(cmd) && this.w.rng.chance(HTTP_SHARE)
        ? await httpWrite(this.w, life, cmd)
        : await this.direct(life, raft, cmd);
    const ret = this.w.now();
    if (r.kind === 'error' && (refused(r.err) || r.err instanceof HttpRefusal)) {
      this.refusedBy(r.err);
      return;
    }
    const cov = this.w.coverage;
    cov.writes++;
    if (r.kind !== 'ok') {
      // Timed out, the node died, or an outcome the node itself cannot know: may or may not apply.
      cov.unknownOutcomes++;
      for (const input of parts)
        this.w.record({
          clientId: this.id,
          input,
          call,
          output: undefined,
          return: Number.POSITIVE_INFINITY,
        });
      return;
    }
    this.hint = life.id;
    const { result, changed } = r.value;
    const outs = outputs(result, parts);
    if (!outs) {
      this.w.violation(`unexpected result for ${cmd.type}: ${JSON.stringify(result)}`);
      return;
    }
    parts.forEach((input, i) => {
      const output = outs[i] as KeyOutput;
      this.w.record({ clientId: this.id, input, call, output, return: ret });
      if (output.kind === 'put' || (output.kind === 'cas' && output.ok)) this.seen.set(input.key, output.rev);
    });
    this.w.revisions.push({
      call,
      return: ret,
      rev: result.revision,
      changed,
      what: `${cmd.type} at revision ${result.revision}`,
    });
  }
}

/** The per-key outputs of a command's result (null when the result has an unexpected shape). */
function outputs(result: KvApplyResult, parts: KeyInput[]): KeyOutput[] | null {
  switch (result.type) {
    case 'put':
      if (parts[0]?.op === 'put') return result.ok ? [{ kind: 'put', rev: result.revision }] : null;
      return [
        result.ok
          ? { kind: 'cas', ok: true, rev: result.revision }
          : { kind: 'cas', ok: false, current: observe(result.current) },
      ];
    case 'delete':
      return [{ kind: 'del', existed: result.prev !== undefined, rev: result.revision }];
    case 'txn': {
      if (parts[0]?.op === 'vcas') {
        if (result.succeeded) return [{ kind: 'cas', ok: true, rev: result.revision }];
        const got = result.responses[0] as OpResponse | undefined;
        return got?.type === 'get' ? [{ kind: 'cas', ok: false, current: observe(got.kv) }] : null;
      }
      if (!result.succeeded) return null;
      return parts.map((p, i): KeyOutput => {
        const resp = result.responses[i] as OpResponse;
        if (p.op === 'put') return { kind: 'put', rev: result.revision };
        if (p.op === 'del')
          return {
            kind: 'del',
            existed: resp.type === 'delete' && resp.prev !== undefined,
            rev: result.revision,
          };
        return { kind: 'read', kv: resp.type === 'get' ? observe(resp.kv) : null };
      });
    }
    default:
      return null;
  }
}

async function sleepRandom(w: Workload, lo: number, hi: number): Promise<void> {
  await new Promise<void>((resolve) => w.world.after(lo + w.rng.int(hi - lo + 1), resolve));
}
