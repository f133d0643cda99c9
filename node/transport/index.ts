// Public surface of the peer transport.

export { InvalidPeerAddressError, type PeerAddress, parsePeerAddress } from './address.js';
export { FrameError } from './framing.js';
export { MembershipAdmission } from './membership-admission.js';
export { messageSchema, PROTOCOL_VERSION } from './message-schema.js';
export type {
  DropReason,
  PeerAdmission,
  PeerTlsOptions,
  ProtocolErrorReason,
  TransportMetricsHooks,
} from './options.js';
export {
  type PeerStatus,
  PeerTransport,
  type PeerTransportOptions,
  type TransportStats,
} from './peer-transport.js';
