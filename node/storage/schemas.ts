// Zod schemas for everything the storage reads back from disk. Decoded WAL payloads and snapshot
// footers are parsed here once; past this boundary the types are trusted.

import { z } from 'zod';
import type { Entry, HardState, Membership, SnapshotMeta } from '../raft/types.js';

const index = z.number().int().nonnegative();
const nodeId = z.string().min(1);

export const membershipSchema = z.object({
  configs: z.array(z.array(nodeId)),
  learners: z.array(nodeId),
  retired: z.array(nodeId),
  // Data written before memberships carried addresses and the cluster identity reads as empty.
  nodes: z.record(nodeId, z.object({ raft: z.string(), api: z.string(), admin: z.string() })).default({}),
  cluster: z
    .object({
      id: z.string().min(1),
      restoredFrom: z.object({ clusterId: z.string(), uri: z.string(), index }).nullable(),
      recoveredFrom: z.object({ clusterId: z.string(), nodeId, index, at: z.string() }).nullable().optional(),
    })
    .nullable()
    .default(null),
}) satisfies z.ZodType<Membership, unknown>;

/** msgpackr decodes binary as Buffer; hand out plain Uint8Array views, the type the engine uses. */
const bytes = z
  .instanceof(Uint8Array)
  .transform((b) => (Buffer.isBuffer(b) ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : b));

export const entrySchema = z.discriminatedUnion('type', [
  z.object({ index: index.min(1), term: index, type: z.literal('blank') }),
  z.object({ index: index.min(1), term: index, type: z.literal('normal'), data: bytes }),
  z.object({ index: index.min(1), term: index, type: z.literal('membership'), membership: membershipSchema }),
]) satisfies z.ZodType<Entry>;

export const hardStateSchema = z.object({
  term: index,
  vote: nodeId.nullable(),
  commit: index,
}) satisfies z.ZodType<HardState>;

export const snapshotMetaSchema = z.object({
  index: index.min(1),
  term: index,
  membership: membershipSchema,
  sizeBytes: index,
  id: z.string().min(1),
}) satisfies z.ZodType<SnapshotMeta>;

/** A snapshot as the WAL refers to it: its meta and its file name inside `snap/`. */
export const snapshotRefSchema = z.object({
  meta: snapshotMetaSchema,
  file: z.string().regex(/^[0-9]{16}-[0-9a-f]{8}\.snap$/),
});

export type SnapshotRef = z.infer<typeof snapshotRefSchema>;
