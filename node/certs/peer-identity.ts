// Whose certificate may speak for a node id on the peer port. A dialer announces its node id in
// its hello; with TLS the id counts only when the certificate it presented (already verified
// against the cluster CA by the handshake) carries the node role (O=conflux-node) and a DNS or IP
// subject alternative name that names either the node id itself or the host of the member's
// advertised peer address. On Kubernetes that host is the pod's stable DNS name
// (demo-1.demo-headless.ns.svc), which operator-issued certificates cover with a wildcard SAN,
// and `conflux certs --nodes` puts each node id (when it is a DNS name) and the given names and
// IPs into the SANs, so the certificates both issue pass as they are.
//
// Names match the way HTTPS matches a server name (tls.checkServerIdentity: a wildcard covers
// one label, IP addresses match IP SANs only).

import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { isNodeCertificate } from './roles.js';

/** Why `cert` cannot speak for node `nodeId`, or null when it can. */
export function peerIdentityProblem(
  cert: PeerCertificate,
  nodeId: string,
  advertisedHost: string | undefined,
): string | null {
  if (!isNodeCertificate(cert)) return 'the certificate lacks the node role (O=conflux-node)';
  // checkServerIdentity falls back to the subject CN when there is no DNS or IP SAN: refuse first.
  const sans = (cert.subjectaltname ?? '').split(', ');
  if (!sans.some((san) => san.startsWith('DNS:') || san.startsWith('IP Address:')))
    return 'the certificate has no DNS or IP subject alternative name';
  if (names(cert, nodeId)) return null;
  if (advertisedHost !== undefined && names(cert, advertisedHost)) return null;
  return advertisedHost === undefined
    ? `the certificate does not name node ${nodeId}, and its peer address is unknown`
    : `the certificate names neither node ${nodeId} nor its peer address host ${advertisedHost}`;
}

function names(cert: PeerCertificate, host: string): boolean {
  try {
    return checkServerIdentity(host, cert) === undefined;
  } catch {
    return false;
  }
}
