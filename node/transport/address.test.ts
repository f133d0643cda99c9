import { describe, expect, it } from 'vitest';
import { parsePeerAddress } from './address.js';

describe('parsePeerAddress', () => {
  it('parses host:port and bracketed IPv6', () => {
    expect(parsePeerAddress('node-0.conflux:7000')).toEqual({
      host: 'node-0.conflux',
      port: 7000,
      text: 'node-0.conflux:7000',
    });
    expect(parsePeerAddress('[::1]:7000')).toMatchObject({ host: '::1', port: 7000 });
  });

  it.each(['nohost', ':7000', 'h:0', 'h:65536', 'h:7x', '::1:7000', '[zz]:1', 'h:'])('refuses %s', (text) => {
    expect(() => parsePeerAddress(text)).toThrow(/peer address/);
  });
});
