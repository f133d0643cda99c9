// Peer addresses as configured: "host:port", with IPv6 literals in brackets ("[::1]:7000").

import { isIP } from 'node:net';

export interface PeerAddress {
  host: string;
  port: number;
  /** The address as configured, for logs and change detection. */
  text: string;
}

export class InvalidPeerAddressError extends Error {
  override readonly name = 'InvalidPeerAddressError';
}

export function parsePeerAddress(text: string): PeerAddress {
  const colon = text.lastIndexOf(':');
  if (colon <= 0) throw new InvalidPeerAddressError(`peer address "${text}" is not host:port`);
  let host = text.slice(0, colon);
  const portText = text.slice(colon + 1);
  if (host.startsWith('[') && host.endsWith(']')) {
    host = host.slice(1, -1);
    if (isIP(host) !== 6) throw new InvalidPeerAddressError(`peer address "${text}" has a bad IPv6 literal`);
  } else if (host.includes(':')) {
    throw new InvalidPeerAddressError(`peer address "${text}": write IPv6 hosts in brackets`);
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) {
    throw new InvalidPeerAddressError(`peer address "${text}" has a bad port`);
  }
  if (host.length === 0) throw new InvalidPeerAddressError(`peer address "${text}" has no host`);
  return { host, port, text };
}
