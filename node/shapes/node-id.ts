// A node id: the one rule every part of Conflux applies (flags, the data directory's id file, the
// admin API, peer frames, certificates). An id names a vote, a directory, a DNS name in a node
// certificate and a pod, so it is a DNS label (RFC 1123): lowercase letters, digits and dashes.

import { z } from 'zod';

/** An RFC 1123 DNS label: 1–63 lowercase letters, digits and dashes, no dash at either end. */
export const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const NODE_ID_RULE = 'lowercase letters, digits and dashes, up to 63, no dash at either end';

export const nodeIdSchema = z.string().regex(DNS_LABEL, NODE_ID_RULE);

/** A prefix that `<prefix>-<8 hex>` turns into a node id (54 + 1 + 8 = 63). */
export const nodeIdPrefixSchema = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,52}[a-z0-9])?$/, 'lowercase letters, digits and dashes, up to 54');

/**
 * An id written before this rule, as kept in old records (backup manifests made by an older
 * version): letters, digits, ".", "_" and "-". Never accepted for a running node.
 */
export const recordedNodeIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'letters, digits, ".", "_", "-" (≤ 128)');
