// A cluster id: minted as a UUID at initialize, derived from the member list for a static
// --initial-cluster (ops/bootstrap.ts), carried in peer hellos, admin requests and backup names.

import { z } from 'zod';

export const CLUSTER_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export const clusterIdSchema = z
  .string()
  .regex(CLUSTER_ID, 'not a cluster id: letters, digits, ".", "_", "-" (≤ 128), not starting with a symbol');
