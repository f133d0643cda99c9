// Validation of the names that end up in certificates and file names.

import { isIP } from 'node:net';
import { invalid } from './errors.js';

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/** RFC 1123 host name, optionally with a leading `*.` wildcard label; at most 253 characters. */
export function isDnsName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.startsWith('*.') ? name.slice(2).split('.') : name.split('.');
  return labels.every((label) => DNS_LABEL.test(label));
}

export function assertDnsNames(names: readonly string[]): void {
  for (const name of names)
    if (!isDnsName(name)) throw invalid(`not a valid DNS name: ${JSON.stringify(name)}`);
}

export function assertIpAddresses(addresses: readonly string[]): void {
  for (const ip of addresses)
    if (isIP(ip) === 0) throw invalid(`not a valid IP address: ${JSON.stringify(ip)}`);
}

/** A node id or client name that is safe as a file name stem (`<id>.crt`, `<id>.key`). */
export function isFileStem(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name);
}

/** Removes duplicates while keeping the first occurrence's position. */
export function unique<T>(items: readonly T[]): T[] {
  return [...new Set(items)];
}
