// How keys and values look in JSON answers: values are UTF-8 text when they are valid UTF-8
// (configuration usually is), else base64 with `encoding: "base64"`; `?encoding=base64` forces it.

import { ConfluxError } from '../errors.js';
import type { KeyValue, WatchEvent } from '../kv/types.js';

// ignoreBOM keeps a leading U+FEFF: it is part of the stored value, not a marker to strip.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export type Encoding = 'utf8' | 'base64';

export interface KeyValueJson {
  key: string;
  value: string;
  encoding: Encoding;
  createRevision: number;
  modRevision: number;
  version: number;
}

export function encodeValue(value: Uint8Array, force?: Encoding): { value: string; encoding: Encoding } {
  if (force !== 'base64') {
    try {
      return { value: strictUtf8.decode(value), encoding: 'utf8' };
    } catch {
      // not text: fall through to base64
    }
  }
  return {
    value: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64'),
    encoding: 'base64',
  };
}

export function kvJson(kv: KeyValue, force?: Encoding): KeyValueJson {
  return {
    key: kv.key,
    ...encodeValue(kv.value, force),
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
  };
}

export function eventJson(e: WatchEvent, force?: Encoding) {
  return {
    type: e.type,
    revision: e.revision,
    kv: kvJson(e.kv, force),
    ...(e.prevKv ? { prevKv: kvJson(e.prevKv, force) } : {}),
  };
}

/**
 * Whether `text` is canonical base64 (RFC 4648 alphabet, padding optional): Node's decoder skips
 * any character it does not know, so `Buffer.from('!!', 'base64')` is an empty value, and a
 * typo would be stored as different bytes instead of refused.
 */
export function isBase64(text: string): boolean {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1) return false;
  const bare = text.replace(/=+$/, '');
  if (text.length !== bare.length && text.length % 4 !== 0) return false;
  return Buffer.from(bare, 'base64').toString('base64').replace(/=+$/, '') === bare;
}

/** Bytes of a JSON value; `field` names it when base64 is invalid (INVALID_REQUEST). */
export function decodeValue(value: string, encoding: Encoding = 'utf8', field = 'value'): Uint8Array {
  if (encoding === 'utf8') return Buffer.from(value, 'utf8');
  if (!isBase64(value)) throw new ConfluxError('INVALID_REQUEST', `${field}: not valid base64`);
  return Buffer.from(value, 'base64');
}
