// A short seeded chaos run on real conflux-node processes in network namespaces: every kind of
// fault once, then the verdict. Needs root, iproute2 and nftables (CI installs them); without
// them this fails and says what is missing.

import { describe, expect, it } from 'vitest';
import { checkHost } from './netns.js';
import { type RunResult, runOnce } from './run-once.js';
import { FAULT_KINDS } from './schedule.js';

const SEED = 20261204;

describe('chaos smoke: real processes under crashes, pauses, partitions and membership changes', () => {
  it('has what it needs: root, ip netns and nft', () => {
    expect(() => checkHost()).not.toThrow();
  });

  it('keeps every acknowledged write and stays linearizable through every kind of fault', async () => {
    const lines: string[] = [];
    let r: RunResult | undefined;
    try {
      r = await runOnce({ seed: SEED, seconds: 1, nodes: 3, clients: 3, net: 2, log: (l) => lines.push(l) });
    } finally {
      console.log(lines.join('\n'));
    }
    const replay = `npm run chaos -- --runs 1 --seed ${SEED} --seconds 1 --nodes 3 --clients 3`;
    expect(r.details, `replay: ${replay}; logs in ${r.dir}`).toEqual([]);
    expect(r.liveness).toBeNull();
    expect(r.lost).toBe(0);
    expect(r.anomalies).toBe(0);
    expect(r.counters.acknowledged).toBeGreaterThan(50);

    // Every kind of fault ran, and each one demonstrably happened.
    expect(new Set(r.faults.map((f) => f.kind))).toEqual(new Set(FAULT_KINDS));
    expect(r.faults.filter((f) => !f.effective).map((f) => `${f.what}: ${f.evidence.join('; ')}`)).toEqual(
      [],
    );

    // The partitions blocked traffic: writes sent to the side without quorum were not acknowledged.
    for (const kind of ['partition-split', 'isolate-leader'] as const) {
      const f = r.faults.find((x) => x.kind === kind);
      const probes = f?.evidence.filter((e) => e.startsWith('write to cut-off')) ?? [];
      expect(probes.length, kind).toBeGreaterThan(0);
      expect(
        probes.filter((e) => e.includes('ACKNOWLEDGED')),
        kind,
      ).toEqual([]);
      expect(f?.minorityAcks).toBe(0);
    }
    // The cut-off old leader was asked to read (those reads are in the checked history).
    const isolated = r.faults.find((x) => x.kind === 'isolate-leader');
    expect(isolated?.evidence.some((e) => e.startsWith('old leader answered'))).toBe(true);
  }, 300_000);
});
