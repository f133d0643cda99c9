import { beforeAll, describe, expect, it } from 'vitest';
import { type CertKeyPair, generateCa, generateNodeCert } from '../../node/certs/index.js';
import { parseTlsMaterial } from '../../node/certs/tls-material.js';
import {
  applyCaRotation,
  type CaSet,
  caDueForRotation,
  decideCaRotation,
  fingerprintOf,
  type MemberTlsReport,
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

const report = (leaf: CertKeyPair, ...cas: CertKeyPair[]): MemberTlsReport => ({
  certFingerprint: fingerprintOf(leaf.certPem),
  caFingerprints: cas.map((c) => fingerprintOf(c.certPem)),
});
const minutesAgo = (m: number) => new Date(now.getTime() - m * 60_000);

describe('caDueForRotation', () => {
  it('is due once less than a third of the lifetime is left', () => {
    expect(caDueForRotation(newCa.certPem, now)).toBe(false);
    expect(caDueForRotation(oldCa.certPem, now)).toBe(true);
    expect(caDueForRotation(newCa.certPem, new Date(now.getTime() + 59 * DAY))).toBe(false);
    expect(caDueForRotation(newCa.certPem, new Date(now.getTime() + 61 * DAY))).toBe(true);
  });
});

describe('decideCaRotation', () => {
  it('stays steady while the CA has most of its life ahead', () => {
    const set: CaSet = { ca: newCa, phase: null, since: null };
    expect(decideCaRotation(set, { now, members: [], nodeCertPem: newLeaf.certPem })).toEqual({
      kind: 'steady',
    });
  });

  it('phase 0 -> trust-new: starts when the CA is due', () => {
    const set: CaSet = { ca: oldCa, phase: null, since: null };
    const d = decideCaRotation(set, { now, members: [report(oldLeaf, oldCa)], nodeCertPem: oldLeaf.certPem });
    expect(d.kind).toBe('start');
  });

  describe('trust-new', () => {
    const set = (): CaSet => ({ ca: oldCa, next: newCa, phase: 'trust-new', since: minutesAgo(1) });
    it('waits while a member does not trust the new CA yet, or does not answer', () => {
      const members = [report(oldLeaf, oldCa, newCa), report(oldLeaf, oldCa), null];
      const d = decideCaRotation(set(), { now, members, nodeCertPem: oldLeaf.certPem });
      expect(d).toMatchObject({ kind: 'wait', phase: 'trust-new' });
      expect(d.kind === 'wait' && d.reason).toMatch(/1 of 3 members did not report/);
      const d2 = decideCaRotation(set(), { now, members: members.slice(0, 2), nodeCertPem: oldLeaf.certPem });
      expect(d2.kind === 'wait' && d2.reason).toMatch(/1 of 2 members have not loaded it yet/);
    });
    it('promotes once every member trusts the new CA', () => {
      const members = [report(oldLeaf, oldCa, newCa), report(oldLeaf, newCa, oldCa)];
      expect(decideCaRotation(set(), { now, members, nodeCertPem: oldLeaf.certPem }).kind).toBe('promote');
    });
    it("promotes after the phase's wait even without every report", () => {
      const members = [null, report(oldLeaf, oldCa)];
      const late = { ...set(), since: minutesAgo(6) };
      expect(decideCaRotation(late, { now, members, nodeCertPem: oldLeaf.certPem }).kind).toBe('promote');
      const custom = decideCaRotation(set(), {
        now,
        members,
        nodeCertPem: oldLeaf.certPem,
        phaseWaitMs: 30_000,
      });
      expect(custom.kind).toBe('promote');
    });
    it('a phase without a recorded start waits for reports', () => {
      const members = [report(oldLeaf, oldCa)];
      const d = decideCaRotation({ ...set(), since: null }, { now, members, nodeCertPem: oldLeaf.certPem });
      expect(d.kind).toBe('wait');
    });
    it('makes the new CA again if it was lost', () => {
      const { next: _, ...lost } = set();
      expect(decideCaRotation(lost, { now, members: [], nodeCertPem: oldLeaf.certPem }).kind).toBe('start');
    });
  });

  describe('issue-new', () => {
    const set = (): CaSet => ({
      ca: newCa,
      previous: oldCa.certPem,
      phase: 'issue-new',
      since: minutesAgo(1),
    });
    it('waits while a member still serves the old certificate', () => {
      const members = [report(newLeaf, newCa, oldCa), report(oldLeaf, newCa, oldCa)];
      expect(decideCaRotation(set(), { now, members, nodeCertPem: newLeaf.certPem })).toMatchObject({
        kind: 'wait',
        phase: 'issue-new',
      });
    });
    it('finishes once every member serves the new certificate, or after the wait', () => {
      const all = [report(newLeaf, newCa, oldCa), report(newLeaf, newCa, oldCa)];
      expect(decideCaRotation(set(), { now, members: all, nodeCertPem: newLeaf.certPem }).kind).toBe(
        'finish',
      );
      const late = { ...set(), since: minutesAgo(10) };
      expect(decideCaRotation(late, { now, members: [null], nodeCertPem: newLeaf.certPem }).kind).toBe(
        'finish',
      );
    });
  });
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
