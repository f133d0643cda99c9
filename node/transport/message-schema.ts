// The boundary check for peer frames: every decoded body is parsed here before anything else sees
// it, so the engine only ever receives a well-typed `Message`.
//
// Objects strip unknown keys rather than refusing them: a newer peer may add a field during a
// rolling upgrade, and what reaches the engine is exactly the shape below either way. Numbers must
// be safe non-negative integers; binary fields must be byte arrays.

import { z } from 'zod';
import type { Entry, Membership, Message, NodeId, SnapshotMeta } from '../raft/types.js';

/** The version a dialer announces in its hello; a receiver refuses any other. */
export const PROTOCOL_VERSION = 1;

export const nodeIdSchema = z.string().min(1).max(256);
const count = z.int().min(0);
// `Uint8Array` as the engine declares it (any backing buffer); z.instanceof would narrow it.
const bytes = z.custom<Uint8Array>((value) => value instanceof Uint8Array, { message: 'expected bytes' });

export const membershipSchema = z.object({
  // One voter set, or two during a joint-consensus change; none before initialization.
  configs: z.array(z.array(nodeIdSchema)).max(2),
  learners: z.array(nodeIdSchema),
  retired: z.array(nodeIdSchema),
  nodes: z.record(
    nodeIdSchema,
    z.object({ raft: z.string().max(1024), api: z.string().max(1024), admin: z.string().max(1024) }),
  ),
  cluster: z
    .object({
      id: z.string().max(256),
      restoredFrom: z
        .object({ clusterId: z.string().max(256), uri: z.string().max(4096), index: count })
        .nullable(),
      recoveredFrom: z
        .object({
          clusterId: z.string().max(256),
          nodeId: nodeIdSchema,
          index: count,
          at: z.string().max(64),
        })
        .nullable()
        .optional(),
    })
    .nullable(),
});

const entryBase = { index: z.int().min(1), term: count };

export const entrySchema = z.discriminatedUnion('type', [
  z.object({ ...entryBase, type: z.literal('blank') }),
  z.object({ ...entryBase, type: z.literal('normal'), data: bytes }),
  z.object({ ...entryBase, type: z.literal('membership'), membership: membershipSchema }),
]);

export const snapshotMetaSchema = z.object({
  index: count,
  term: count,
  membership: membershipSchema,
  sizeBytes: count,
  id: z.string().max(1024),
});

const base = { from: nodeIdSchema, to: nodeIdSchema, term: count };

export const messageSchema = z.discriminatedUnion('type', [
  z.object({
    ...base,
    type: z.literal('vote'),
    pre: z.boolean(),
    lastLogIndex: count,
    lastLogTerm: count,
    transfer: z.boolean(),
  }),
  z.object({ ...base, type: z.literal('vote-response'), pre: z.boolean(), granted: z.boolean() }),
  z.object({
    ...base,
    type: z.literal('append'),
    prevIndex: count,
    prevTerm: count,
    entries: z.array(entrySchema),
    commit: count,
  }),
  z.object({
    ...base,
    type: z.literal('append-response'),
    index: count,
    reject: z.boolean(),
    hintIndex: count,
    hintTerm: count,
  }),
  z.object({ ...base, type: z.literal('heartbeat'), commit: count, readSeq: count }),
  z.object({ ...base, type: z.literal('heartbeat-response'), readSeq: count, lastIndex: count }),
  z.object({
    ...base,
    type: z.literal('snapshot'),
    meta: snapshotMetaSchema,
    offset: count,
    data: bytes,
    length: count,
    done: z.boolean(),
  }),
  z.object({
    ...base,
    type: z.literal('snapshot-response'),
    snapshotIndex: count,
    nextOffset: count,
    reject: z.boolean(),
  }),
  z.object({ ...base, type: z.literal('timeout-now') }),
]);

// Control frames of the transport itself; they never reach the engine.

/**
 * First frame a dialer sends, mandatory. `from` is the dialer's node id: it must not be a retired
 * id (with TLS, it must be one its certificate names), and every message on the connection must
 * carry it. `cluster` is the dialer's cluster id (null while it has none): a node that knows its
 * own cluster refuses any other, so two clusters never mix their logs. `address` is the dialer's
 * advertised peer address ("host:port"): a receiver with no address for it (a member that missed
 * the entry adding it) answers it there. Optional: older dialers do not send it.
 */
export const helloSchema = z.object({
  type: z.literal('hello'),
  from: nodeIdSchema,
  version: z.int(),
  cluster: z.string().max(256).nullable(),
  address: z.string().max(1024).optional(),
});
/** Liveness probe from the dialer; the receiver answers with a pong on the same connection. */
export const pingSchema = z.object({ type: z.literal('ping') });
export const pongSchema = z.object({ type: z.literal('pong') });

export type Hello = z.infer<typeof helloSchema>;

/** What a listener accepts on an inbound connection. */
export const inboundFrameSchema = z.discriminatedUnion('type', [
  helloSchema,
  pingSchema,
  ...messageSchema.options,
]);
export type InboundFrame = z.infer<typeof inboundFrameSchema>;

/** What a dialer accepts back on its outbound connection. */
export const outboundReplySchema = pongSchema;

/** A one-line description of a schema failure for logs (first issues only, paths included). */
export function describeIssues(error: z.ZodError, maxIssues = 3): string {
  const parts = error.issues
    .slice(0, maxIssues)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(root)'}: ${issue.message}`);
  const more = error.issues.length - maxIssues;
  return more > 0 ? `${parts.join('; ')}; and ${more} more` : parts.join('; ');
}

// Compile-time proof that the schemas and the engine's types describe the same values: if either
// side changes, these lines stop compiling.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameMessage: Same<z.infer<typeof messageSchema>, Message> = true;
const sameEntry: Same<z.infer<typeof entrySchema>, Entry> = true;
const sameMembership: Same<z.infer<typeof membershipSchema>, Membership> = true;
const sameMeta: Same<z.infer<typeof snapshotMetaSchema>, SnapshotMeta> = true;
const sameNodeId: Same<z.infer<typeof nodeIdSchema>, NodeId> = true;
void [sameMessage, sameEntry, sameMembership, sameMeta, sameNodeId];
