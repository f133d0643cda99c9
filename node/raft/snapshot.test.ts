// Snapshots: compaction behind the applied index, chunked InstallSnapshot, atomic install.
import { describe, expect, it } from 'vitest';
import * as M from './membership.js';
import { MAX_SNAPSHOT_RESTARTS } from './replicator.js';
import { bootstrap, put } from './sim/manual-network.js';

describe('snapshots', () => {
  it('the leader compacts its log and a lagging follower is sent the snapshot in chunks', () => {
    const net = bootstrap(['n1', 'n2', 'n3'], { snapshotChunkBytes: 32 });
    net.isolate('n3');
    for (let i = 0; i < 10; i++) net.on('n1', (c) => c.propose(put(`k${i}`, `v${i}`)));
    net.stabilize();
    const meta = net.snapshot('n1');
    expect(meta?.index).toBe(12);
    expect(net.core('n1').log.firstIndex()).toBe(13);
    net.on('n1', (c) => c.propose(put('after', 'snapshot')));
    net.heal();
    net.tick('n1');
    net.transcript = [];
    net.stabilize();
    const chunks = net.transcript.filter((l) => l.startsWith('n1->n3 snapshot '));
    const offsets = new Set(chunks.map((l) => /offset=(\d+)/.exec(l)?.[1]));
    expect(offsets.size).toBe(Math.ceil((meta?.sizeBytes ?? 0) / 32));
    expect(chunks.some((l) => l.endsWith('done'))).toBe(true);
    expect(net.node('n3').sm.get('k9')).toBe('v9');
    expect(net.node('n3').sm.get('after')).toBe('snapshot');
    expect(net.core('n3').log.snapshotIndex()).toBe(12);
  });

  it('a slow transfer keeps a bounded number of copies in flight: answers to copies send nothing', () => {
    // Every round the leader ticks (one heartbeat) and the network delivers what was queued, so
    // a chunk and its answer take two rounds: longer than a heartbeat, as on a loaded machine.
    const net = bootstrap(['n1', 'n2', 'n3'], { snapshotChunkBytes: 16 });
    net.isolate('n3');
    for (let i = 0; i < 40; i++) net.on('n1', (c) => c.propose(put(`k${i}`, `v${i}`)));
    net.stabilize();
    const meta = net.snapshot('n1');
    const chunks = Math.ceil((meta?.sizeBytes ?? 0) / 16);
    expect(chunks).toBeGreaterThan(20);
    net.heal();
    let sent = 0;
    let mostInFlight = 0;
    let rounds = 0;
    while (net.core('n3').log.snapshotIndex() === 0 && rounds < 10 * chunks) {
      net.tick('n1');
      const inFlight = net.pending((m) => m.type === 'snapshot' && m.to === 'n3').length;
      mostInFlight = Math.max(mostInFlight, inFlight);
      sent += inFlight;
      net.deliver();
      rounds++;
    }
    expect(net.core('n3').log.snapshotIndex()).toBe(meta?.index);
    // One chunk per round trip, plus at most the copy resent at each heartbeat while it travels
    // (a round trip is two rounds here): never a number of copies that grows with time.
    expect(rounds).toBeLessThanOrEqual(2 * chunks + 4);
    expect(mostInFlight).toBeLessThanOrEqual(2);
    expect(sent).toBeLessThanOrEqual(3 * chunks);
    net.stabilize();
    expect(net.node('n3').sm.get('k39')).toBe('v39');
  });

  it('a lost chunk is sent again at the next heartbeat and the transfer goes on', () => {
    const net = bootstrap(['n1', 'n2', 'n3'], { snapshotChunkBytes: 16 });
    net.isolate('n3');
    for (let i = 0; i < 10; i++) net.on('n1', (c) => c.propose(put(`k${i}`, `v${i}`)));
    net.stabilize();
    const meta = net.snapshot('n1');
    net.heal();
    net.tick('n1');
    net.stabilize(4); // heartbeat, its answer, then chunks start flowing
    const lost = net.pending((m) => m.type === 'snapshot' && m.to === 'n3');
    expect(lost).toHaveLength(1);
    net.drop((m) => m.type === 'snapshot');
    net.stabilize();
    expect(net.pending()).toEqual([]); // nothing left in flight: only a heartbeat restarts it
    net.tick('n1');
    net.stabilize(1000);
    expect(net.core('n3').log.snapshotIndex()).toBe(meta?.index);
    expect(net.node('n3').sm.get('k9')).toBe('v9');
  });

  it('a transfer cut short by a leader change restarts with the snapshot of the new leader', () => {
    const net = bootstrap(['n1', 'n2', 'n3'], { snapshotChunkBytes: 16 });
    net.isolate('n3');
    for (let i = 0; i < 20; i++) net.on('n1', (c) => c.propose(put(`k${i}`, `v${i}`)));
    net.stabilize();
    net.tick('n1');
    net.stabilize();
    net.snapshot('n1');
    const second = net.snapshot('n2');
    net.heal();
    for (let r = 0; r < 12; r++) {
      net.tick('n1');
      net.deliver();
    }
    expect(net.core('n3').log.snapshotIndex()).toBe(0); // halfway through n1's snapshot
    net.isolate('n1');
    const leader = net.electAmong(['n2', 'n3']);
    expect(leader).toBe('n2');
    net.on('n2', (c) => c.propose(put('after', 'change')));
    for (let r = 0; r < 1000 && net.node('n3').sm.get('after') !== 'change'; r++) {
      net.tick('n2');
      net.deliver();
    }
    expect(net.core('n3').log.snapshot?.id).toBe(second?.id);
    expect(net.node('n3').sm.get('k19')).toBe('v19');
    expect(net.node('n3').sm.get('after')).toBe('change');
    expect(net.leaders()).toContain('n2');
  });

  it('a transfer slower than the snapshot interval finishes: the leader keeps sending the snapshot it started', () => {
    const net = bootstrap(['n1', 'n2', 'n3'], { snapshotChunkBytes: 16 });
    // A host that can still read the snapshots it replaced (DiskStorage keeps them open).
    const disk = net.node('n1').disk;
    const kept = new Map<string, Uint8Array>();
    const save = disk.saveSnapshot.bind(disk);
    disk.saveSnapshot = (meta, data) => {
      kept.set(meta.id, data);
      save(meta, data);
    };
    disk.chunk = (meta, offset, length) => kept.get(meta.id)?.slice(offset, offset + length) ?? null;
    net.isolate('n3');
    for (let i = 0; i < 40; i++) net.on('n1', (c) => c.propose(put(`k${i}`, `v${i}`)));
    net.stabilize();
    const first = net.snapshot('n1');
    const chunks = Math.ceil((first?.sizeBytes ?? 0) / 16);
    net.heal();
    // One chunk per round trip (two rounds); a new snapshot every `chunks / 2` rounds, so every
    // transfer takes about four snapshot intervals: before, each one started over and none finished.
    const sent = new Set<string>();
    let rounds = 0;
    while (net.core('n3').log.snapshotIndex() === 0 && rounds < 20 * chunks) {
      net.tick('n1');
      for (const m of net.pending((m) => m.type === 'snapshot' && m.to === 'n3')) {
        if (m.type === 'snapshot') sent.add(m.meta.id);
      }
      net.deliver();
      rounds++;
      if (rounds % Math.ceil(chunks / 2) === 0) {
        net.on('n1', (c) => c.propose(put(`later${rounds}`, 'x')));
        net.stabilize(2);
        net.snapshot('n1');
      }
    }
    // It started over while less than half was sent, at most MAX_SNAPSHOT_RESTARTS times, then
    // finished the snapshot it had although the leader had newer ones by then.
    const installed = net.core('n3').log.snapshot;
    expect(installed).not.toBeNull();
    expect(sent.size).toBeLessThanOrEqual(MAX_SNAPSHOT_RESTARTS + 1);
    expect(installed?.id).not.toBe(net.core('n1').log.snapshot?.id);
    expect(rounds).toBeLessThan(20 * chunks);
    // It then catches up with the newest snapshot, and the log after it.
    net.on('n1', (c) => c.propose(put('final', 'write')));
    for (let r = 0; r < 20 * chunks && net.node('n3').sm.get('final') !== 'write'; r++) {
      net.tick('n1');
      net.deliver();
    }
    expect(net.node('n3').sm.get('final')).toBe('write');
    expect(net.node('n3').sm.get('k39')).toBe('v39');
    expect(net.core('n3').log.snapshotIndex()).toBeGreaterThan(first?.index ?? 0);
  });

  it('a transfer whose old snapshot the host no longer holds starts over with the current one', () => {
    const net = bootstrap(['n1', 'n2', 'n3'], { snapshotChunkBytes: 16 });
    net.isolate('n3');
    for (let i = 0; i < 40; i++) net.on('n1', (c) => c.propose(put(`k${i}`, `v${i}`)));
    net.stabilize();
    net.snapshot('n1');
    net.heal();
    for (let r = 0; r < 12; r++) {
      net.tick('n1');
      net.deliver();
    }
    expect(net.core('n3').log.snapshotIndex()).toBe(0); // halfway through
    // The sim disk serves only its current snapshot: the old one's chunks are dropped from now on.
    net.on('n1', (c) => c.propose(put('after', 'second')));
    net.stabilize(2);
    const second = net.snapshot('n1');
    for (let r = 0; r < 1000 && net.node('n3').sm.get('after') !== 'second'; r++) {
      net.tick('n1');
      net.deliver();
    }
    expect(net.core('n3').log.snapshot?.id).toBe(second?.id);
    expect(net.node('n3').sm.get('k39')).toBe('v39');
  });

  it('a host that says it lost the old snapshot (snapshotUnavailable) gets the current one sent at once', () => {
    const net = bootstrap(['n1', 'n2', 'n3'], { snapshotChunkBytes: 16 });
    net.isolate('n3');
    for (let i = 0; i < 40; i++) net.on('n1', (c) => c.propose(put(`k${i}`, `v${i}`)));
    net.stabilize();
    const first = net.snapshot('n1');
    net.heal();
    for (let r = 0; r < 12; r++) {
      net.tick('n1');
      net.deliver();
    }
    net.on('n1', (c) => c.propose(put('after', 'second')));
    net.stabilize(2);
    const second = net.snapshot('n1');
    net.drop((m) => m.type === 'snapshot');
    net.on('n1', (c) => c.snapshotUnavailable('n3', second?.id ?? '')); // the current one: ignored
    expect(net.pending((m) => m.type === 'snapshot')).toEqual([]);
    net.on('n1', (c) => c.snapshotUnavailable('n3', first?.id ?? ''));
    const sent = net.pending((m) => m.type === 'snapshot');
    expect(sent.map((m) => (m.type === 'snapshot' ? `${m.meta.id}@${m.offset}` : ''))).toEqual([
      `${second?.id}@0`,
    ]);
  });

  it('the snapshot carries the membership at its index, so a new member learns the cluster from it', () => {
    const net = bootstrap();
    for (let i = 0; i < 3; i++) net.on('n1', (c) => c.propose(put('k', `${i}`)));
    net.stabilize();
    net.snapshot('n1');
    net.add('n4');
    net.on('n1', (c) => c.proposeMembership((m) => M.withLearner(m, 'n4')));
    net.stabilize();
    net.tick('n1');
    net.stabilize();
    expect(net.core('n4').log.snapshot?.membership.configs).toEqual([['n1', 'n2', 'n3']]);
    expect(net.core('n4').membership.learners).toEqual(['n4']);
    expect(net.node('n4').sm.get('k')).toBe('2');
  });

  it('a snapshot no newer than the commit index is not installed', () => {
    const net = bootstrap();
    const meta = net.snapshot('n1');
    expect(meta).not.toBeNull();
    expect(() => net.core('n2').installSnapshot({ ...(meta as NonNullable<typeof meta>), id: 'x' })).toThrow(
      /not newer/,
    );
  });

  it('a restarted node recovers its state from its snapshot plus its log', () => {
    const net = bootstrap();
    for (let i = 0; i < 4; i++) net.on('n1', (c) => c.propose(put('k', `${i}`)));
    net.stabilize();
    const snap = net.snapshot('n2');
    net.on('n1', (c) => c.propose(put('k', 'last')));
    net.stabilize();
    net.tick('n1');
    net.stabilize();
    expect(net.core('n2').log.committed).toBe(7);
    net.restart('n2');
    // The snapshot and the log are durable; a commit index learned from a heartbeat alone is
    // not written (Ready.mustSync) and is learned again from the leader.
    expect(net.core('n2').log.snapshotIndex()).toBe(snap?.index);
    expect(net.core('n2').log.lastIndex()).toBe(7);
    net.tick('n1');
    net.stabilize();
    expect(net.core('n2').log.committed).toBe(7);
    expect(net.node('n2').sm.get('k')).toBe('last');
  });
});
