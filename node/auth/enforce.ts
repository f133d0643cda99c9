// Client authorization on the client API (docs/ARCHITECTURE.md §6): the node that receives a
// client's request checks it against its applied auth state before it reads, forwards or
// proposes anything. Who calls comes from the TLS connection only (identity.ts): a follower that
// forwards a request to the leader connects with its node certificate, so the leader sees a
// member and does not check again (the follower already did); no header can make anyone a member.

import type { FastifyRequest } from 'fastify';
import { identityOf } from './identity.js';
import { type AuthState, authorize, type Need } from './permissions.js';

/** Throws UNAUTHENTICATED / FORBIDDEN unless the caller of `req` may have every need. */
export function authorizeRequest(auth: AuthState, req: FastifyRequest, needs: readonly Need[]): void {
  if (!auth.enabled) return;
  const who = identityOf(req.raw.socket);
  if (who.kind === 'member') return;
  authorize(auth, who.kind === 'user' ? who.name : null, needs);
}
