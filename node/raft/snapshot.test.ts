// Snapshots: compaction behind the applied index, chunked InstallSnapshot, atomic install.
import { describe, expect, it } from 'vitest';
import * as M from './membership.js';
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
