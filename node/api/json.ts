// How keys and values look in JSON answers: values are UTF-8 text when they are valid UTF-8
// (configuration usually is), else base64 with `encoding: "base64"`; `?encoding=base64` forces it.

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

export function decodeValue(value: string, encoding: Encoding = 'utf8'): Uint8Array {
  return encoding === 'base64' ? Buffer.from(value, 'base64') : Buffer.from(value, 'utf8');
}
