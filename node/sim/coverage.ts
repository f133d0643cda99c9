// What a run (or many) exercised: printed at the end of every simulator run, so a run that checked
// nothing (no transfer, no snapshot install, no disk fault) shows as such.

import { type DiskStats, emptyDiskStats } from './sim-disk.js';

export interface Coverage {
  seeds: number;
  starts: number;
  kills: number;
  powerLosses: number;
  failStops: number;
  refusedOpens: number;
  replacements: number;
  pauses: number;
  partitions: number;
  oneWayLinks: number;
  messagesLost: number;
  messagesDuplicated: number;
  longDelays: number;
  /** Peer messages encoded, decoded and parsed as the transport does (network.ts). */
  wireMessages: number;
  /** Nodes whose clock ran at another rate than real time. */
  skewedClocks: number;
  slowDisks: number;
  transfers: number;
  transfersSucceeded: number;
  learnersAdded: number;
  promotions: number;
  removals: number;
  snapshotsMade: number;
  snapshotInstalls: number;
  restores: number;
  forceNewClusters: number;
  watchReconnects: number;
  watchCompacted: number;
  writes: number;
  linearizableReads: number;
  serializableReads: number;
  unknownOutcomes: number;
  /** Client operations through the HTTP API (app.inject on the node they target). */
  httpRequests: number;
  /** Requests a follower forwarded to the leader over the simulated network. */
  forwarded: number;
  disk: DiskStats;
}

export const emptyCoverage = (): Coverage => ({
  seeds: 0,
  starts: 0,
  kills: 0,
  powerLosses: 0,
  failStops: 0,
  refusedOpens: 0,
  replacements: 0,
  pauses: 0,
  partitions: 0,
  oneWayLinks: 0,
  messagesLost: 0,
  messagesDuplicated: 0,
  longDelays: 0,
  wireMessages: 0,
  skewedClocks: 0,
  slowDisks: 0,
  transfers: 0,
  transfersSucceeded: 0,
  learnersAdded: 0,
  promotions: 0,
  removals: 0,
  snapshotsMade: 0,
  snapshotInstalls: 0,
  restores: 0,
  forceNewClusters: 0,
  watchReconnects: 0,
  watchCompacted: 0,
  writes: 0,
  linearizableReads: 0,
  serializableReads: 0,
  unknownOutcomes: 0,
  httpRequests: 0,
  forwarded: 0,
  disk: emptyDiskStats(),
});

export function addCoverage(into: Coverage, c: Coverage): void {
  for (const k of Object.keys(c) as (keyof Coverage)[]) {
    if (k === 'disk') {
      for (const d of Object.keys(c.disk) as (keyof DiskStats)[]) into.disk[d] += c.disk[d];
    } else into[k] += c[k];
  }
}

/** A zero count shows as `0 (NONE)` and is listed again at the end: nothing of it was checked. */
export function formatCoverage(c: Coverage): string {
  const d = c.disk;
  const none: string[] = [];
  const row = (label: string, parts: [string, number][]) =>
    `  ${label.padEnd(12)} ${parts
      .map(([k, v]) => {
        if (v > 0) return `${v} ${k}`;
        none.push(k);
        return `0 ${k} (NONE)`;
      })
      .join(', ')}`;
  const rows = [
    'coverage:',
    row('admin', [
      ['transfers', c.transfers],
      ['took effect', c.transfersSucceeded],
      ['learners added', c.learnersAdded],
      ['promotions', c.promotions],
      ['removals', c.removals],
      ['replaced nodes', c.replacements],
    ]),
    row('recovery', [
      ['restores into a new cluster', c.restores],
      ['force-new-clusters', c.forceNewClusters],
    ]),
    row('snapshots', [
      ['made', c.snapshotsMade],
      ['installed', c.snapshotInstalls],
    ]),
    row('processes', [
      ['starts', c.starts],
      ['kills', c.kills],
      ['power losses', c.powerLosses],
      ['fail-stops', c.failStops],
      ['refused opens', c.refusedOpens],
      ['pauses', c.pauses],
      ['skewed clocks', c.skewedClocks],
    ]),
    row('disk faults', [
      ['ENOSPC on write', d.enospcWrite],
      ['EIO on write', d.eioWrite],
      ['EIO on fsync', d.eioFsync],
      ['ENOSPC on fsync', d.enospcFsync],
      ['slow disks', c.slowDisks],
      ['misdirected writes', d.misdirected],
      ['torn writes', d.torn],
      ['dropped writes', d.dropped],
      ['metadata ops rolled back', d.metadataRolledBack],
    ]),
    row('network', [
      ['partitions', c.partitions],
      ['one-way links', c.oneWayLinks],
      ['messages lost', c.messagesLost],
      ['duplicated', c.messagesDuplicated],
      ['long delays', c.longDelays],
      ['through the wire codec', c.wireMessages],
    ]),
    row('clients', [
      ['writes', c.writes],
      ['linearizable reads', c.linearizableReads],
      ['serializable reads', c.serializableReads],
      ['unknown outcomes', c.unknownOutcomes],
    ]),
    row('http api', [
      ['requests', c.httpRequests],
      ['forwarded to the leader', c.forwarded],
    ]),
    row('watches', [
      ['reconnects', c.watchReconnects],
      ['COMPACTED answers', c.watchCompacted],
    ]),
  ];
  rows.push(
    none.length === 0
      ? '  every fault family and operation above was exercised'
      : `  NOT EXERCISED (${none.length}): ${none.join(', ')}`,
  );
  return rows.join('\n');
}
