import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareKeys, fromSortKey, isWellFormed, toSortKey } from './keys.js';

const utf8Order = (a: string, b: string) => Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b)));
// Strings rich in the units where UTF-16 and UTF-8 order disagree.
const tricky = fc.string({
  unit: fc.constantFrom(
    'a',
    'b',
    '/',
    'é',
    '\uE000',
    '\uFF21',
    '\uFFFF',
    '\u{10000}',
    '\u{1F600}',
    '\u{10FFFF}',
  ),
  maxLength: 6,
});

describe('keys: UTF-8 byte order', () => {
  it('compareKeys agrees with comparing UTF-8 bytes', () => {
    fc.assert(
      fc.property(fc.oneof(tricky, fc.string({ unit: 'grapheme' })), tricky, (a, b) => {
        expect(Math.sign(compareKeys(a, b))).toBe(utf8Order(a, b));
      }),
    );
  });

  it('sort keys: native order is UTF-8 order, the mapping round-trips and keeps prefixes', () => {
    fc.assert(
      fc.property(tricky, tricky, (a, b) => {
        const x = toSortKey(a);
        const y = toSortKey(b);
        expect(Math.sign(x < y ? -1 : x > y ? 1 : 0)).toBe(utf8Order(a, b));
        expect(fromSortKey(x)).toBe(a);
        expect(x.startsWith(y)).toBe(a.startsWith(b));
      }),
    );
  });

  it('ASCII keys are their own sort key', () => {
    expect(toSortKey('/registry/pods/x')).toBe('/registry/pods/x');
  });

  it('isWellFormed finds lone surrogates', () => {
    expect(isWellFormed('ok \u{1F600}')).toBe(true);
    expect(isWellFormed('\ud83d')).toBe(false);
    expect(isWellFormed('\ude00x')).toBe(false);
    expect(isWellFormed('x\ud83dx')).toBe(false);
  });
});
