import { beforeAll, describe, expect, it } from 'vitest';
import { type CertKeyPair, generateCa, generateNodeCert } from '../../node/certs/index.js';
import { parseTlsMaterial } from '../../node/certs/tls-material.js';
import {
  applyCaRotation,
  type CaSet,
  rotationAnnotations,
  rotationFromAnnotations,
  trustBundle,
} from './tls-rotation.js';

const DAY = 24 * 60 * 60 * 1000;
const now = new Date('2030-06-01T12:00:00Z');
const names = { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] };

let oldCa: CertKeyPair;
let newCa: CertKeyPair;
let oldLeaf: CertKeyPair;
let newLeaf: CertKeyPair;

beforeAll(async () => {
  // 30 days lived of 90: two thirds left, not due. 70 of 90: due.
  oldCa = await generateCa({
    commonName: 'old',
    validDays: 90,
    notBefore: new Date(now.getTime() - 70 * DAY),
  });
  newCa = await generateCa({ commonName: 'new', validDays: 90, notBefore: new Date(now.getTime() - DAY) });
  oldLeaf = await generateNodeCert(oldCa, { nodeId: 'demo', ...names, validDays: 10, notBefore: now });
  newLeaf = await generateNodeCert(newCa, { nodeId: 'demo', ...names, validDays: 10, notBefore: now });
});

describe('applyCaRotation and the trust bundle through every phase', () => {
  it('grows the bundle before leaves change and shrinks it only after', async () => {
    const bundleNames = (s: CaSet) =>
      parseTlsMaterial({
        cert: Buffer.from((s.ca === newCa ? newLeaf : oldLeaf).certPem),
        key: Buffer.from((s.ca === newCa ? newLeaf : oldLeaf).keyPem),
        ca: Buffer.from(trustBundle(s)),
      }).summary.ca.map((c) => c.subject);
    let set: CaSet = { ca: oldCa, phase: null, since: null };
    expect(bundleNames(set)).toEqual(['CN=old']);

    set = await applyCaRotation(set, { kind: 'start', reason: '' }, now, async () => newCa);
    expect(set).toMatchObject({ ca: oldCa, next: newCa, phase: 'trust-new', since: now });
    expect(bundleNames(set)).toEqual(['CN=old', 'CN=new']);
    // Both the old and the new leaf are valid against the bundle while it overlaps.
    expect(() =>
      parseTlsMaterial({
        cert: Buffer.from(newLeaf.certPem),
        key: Buffer.from(newLeaf.keyPem),
        ca: Buffer.from(trustBundle(set)),
      }),
    ).not.toThrow();

    const later = new Date(now.getTime() + 60_000);
    set = await applyCaRotation(set, { kind: 'promote', reason: '' }, later, async () => {
      throw new Error('no new CA on promote');
    });
    expect(set).toMatchObject({ ca: newCa, previous: oldCa.certPem, phase: 'issue-new', since: later });
    expect(bundleNames(set)).toEqual(['CN=new', 'CN=old']);

    set = await applyCaRotation(set, { kind: 'finish', reason: '' }, later, async () => newCa);
    expect(set).toEqual({ ca: newCa, phase: null, since: null });
    expect(bundleNames(set)).toEqual(['CN=new']);
    // An old-CA leaf no longer fits the bundle.
    expect(() =>
      parseTlsMaterial({
        cert: Buffer.from(oldLeaf.certPem),
        key: Buffer.from(oldLeaf.keyPem),
        ca: Buffer.from(trustBundle(set)),
      }),
    ).toThrow(/not issued by any CA in the bundle/);
  });

  it('the phase survives a restart through the annotations', () => {
    const set: CaSet = { ca: oldCa, next: newCa, phase: 'trust-new', since: now };
    const stored = Object.fromEntries(
      Object.entries(rotationAnnotations(set)).filter((e): e is [string, string] => e[1] !== null),
    );
    expect(rotationFromAnnotations(stored)).toEqual({ phase: 'trust-new', since: now });
    expect(rotationFromAnnotations({ 'conflux.io/ca-rotation-phase': 'bogus' })).toEqual({
      phase: null,
      since: null,
    });
    expect(rotationFromAnnotations(undefined)).toEqual({ phase: null, since: null });
    expect(
      rotationFromAnnotations({
        'conflux.io/ca-rotation-phase': 'issue-new',
        'conflux.io/ca-rotation-phase-since': 'yesterday',
      }),
    ).toEqual({ phase: 'issue-new', since: null });
    expect(rotationAnnotations({ ca: newCa, phase: null, since: null })).toEqual({
      'conflux.io/ca-rotation-phase': null,
      'conflux.io/ca-rotation-phase-since': null,
    });
  });
});
