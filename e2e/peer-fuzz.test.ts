// The peer-frame fuzzer, short run: 20 seconds of seeded attacks with a stolen node certificate
// on the peer ports of a live three-node TLS cluster under a write load (e2e/support/peer-fuzz-run.ts).
// No member may stop, every acknowledged write must be in every member's history, the members
// must agree on every key and revision, the history must be linearizable, and every attack
// carrying a frame no correct member sends must cost its connection. The long run is
// `npm run fuzz:peer -- --seconds N [--seed S]`; CONFLUX_FUZZ_SEED replays a seed here.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FuzzCluster } from './support/peer-fuzz-cluster.js';
import { fuzzPeers } from './support/peer-fuzz-run.js';

const SEED = Number(process.env.CONFLUX_FUZZ_SEED ?? 1);

describe('peer-frame fuzzer against three real TLS members', () => {
  let cluster: FuzzCluster;

  beforeAll(async () => {
    cluster = await FuzzCluster.start();
  }, 60_000);
  afterAll(async () => cluster?.destroy(Boolean(process.env.CONFLUX_KEEP_E2E)));

  it(`survives 20 s of random and mutated peer frames (seed ${SEED})`, async () => {
    const report = await fuzzPeers(cluster, SEED, 20);
    const summary = { ...report, linearizable: report.linearizable.ok };
    console.log(`peer fuzz: ${JSON.stringify(summary)}`);
    expect(report.failures, JSON.stringify(summary)).toEqual([]);
    expect(report.attacks).toBeGreaterThan(30);
    expect(report.acknowledged).toBeGreaterThan(50);
    expect(report.linearizable).toEqual({ ok: true });
    expect(report.protocolErrors).toBeGreaterThan(0);
    // Every refusable kind was drawn and refused (a kind never drawn would go unchecked).
    for (const kind of ['bad-length', 'wrong-type', 'malformed', 'no-hello', 'bad-hello'] as const)
      expect(report.byKind[kind]?.closed, kind).toBeGreaterThan(0);
  }, 60_000);
});
