// A listen or advertised address: `host:port`, IPv6 literals in brackets (`[::1]:7000`). One rule
// for flags, the admin API's member addresses and the node's own listeners.

import { z } from 'zod';

export const hostPortSchema = z
  .string()
  .max(300)
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port')
  .refine((s) => Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535, 'port out of range');

/** `host:port` as [host without brackets, port]; the address must have passed hostPortSchema. */
export function splitHostPort(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i).replace(/^\[|\]$/g, ''), Number(addr.slice(i + 1))];
}

/** Whether the address's host is loopback (127.0.0.0/8, ::1, localhost). */
export function isLoopback(addr: string): boolean {
  const [host] = splitHostPort(addr);
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
