// Awkward keys and values: what a configuration store's users really send. A leading U+FEFF (a
// different key from the one without it), NUL, combining marks (NFC and NFD spellings are
// different keys), astral characters, and random code points from across Unicode, always
// well-formed (the API refuses lone surrogates).

import type { SeededRng } from '../raft/rng.js';

const FIXED = [
  '\uFEFFa',
  'a',
  '\uFEFF',
  '\uFEFF\uFEFFa',
  'k\u0000v',
  '\u0000',
  'e\u0301',
  '\u00e9',
  '\u{1D11E}',
  '\u{1F600}/x',
  'a/b',
  '\u200B',
  '\uFFFF',
  'z\uFEFF',
  '\u0915\u094D\u0937',
];

function randomCodePoint(rng: SeededRng): number {
  switch (rng.int(6)) {
    case 0:
      return 0x20 + rng.int(0x5f); // ASCII
    case 1:
      return 0x300 + rng.int(0x70); // combining marks
    case 2:
      return 0x10000 + rng.int(0x100000 - 0x10000); // astral
    case 3:
      return rng.pick([0, 0xfeff, 0x200b, 0xfffd, 0xffff]);
    case 4:
      return 0x4e00 + rng.int(0x5000); // CJK
    default: {
      const cp = rng.int(0xfffe);
      return cp >= 0xd800 && cp <= 0xdfff ? 0xe000 : cp;
    }
  }
}

export function randomKey(rng: SeededRng): string {
  const n = 1 + rng.int(5);
  let s = rng.chance(0.3) ? '\uFEFF' : '';
  for (let i = 0; i < n; i++) s += String.fromCodePoint(randomCodePoint(rng));
  return s;
}

/** `count` distinct keys for one run; always a key with a leading U+FEFF and its twin without. */
export function pickKeys(rng: SeededRng, count: number): string[] {
  const keys = new Set<string>(['\uFEFFa', 'a']);
  while (keys.size < count) keys.add(rng.chance(0.5) ? rng.pick(FIXED) : randomKey(rng));
  return [...keys].slice(0, Math.max(count, 2));
}

/** A unique value: its writer and sequence number, sometimes with binary and Unicode bytes. */
export function makeValue(rng: SeededRng, tag: string): Uint8Array {
  const head = new TextEncoder().encode(tag);
  if (!rng.chance(0.3)) return head;
  const tail = new Uint8Array(1 + rng.int(24));
  for (let i = 0; i < tail.length; i++) tail[i] = rng.int(256);
  const out = new Uint8Array(head.length + 1 + tail.length);
  out.set(head);
  out[head.length] = 0;
  out.set(tail, head.length + 1);
  return out;
}
