import { it } from 'vitest';
import { bootstrap, put } from './sim/manual-network.js';

it('exp', () => {
  const net = bootstrap(['n1', 'n2', 'n3'], { snapshotChunkBytes: 16 });
  net.isolate('n3');
  for (let i = 0; i < 40; i++) net.on('n1', (c) => c.propose(put(`k${i}`, `v${i}`)));
  net.stabilize();
  const meta = net.snapshot('n1');
  console.log('snap size', meta?.sizeBytes, 'chunks', Math.ceil((meta?.sizeBytes ?? 0) / 16));
  net.heal();
  for (let r = 0; r < 60; r++) {
    net.tick('n1');
    const inflight = net.pending((m) => m.type === 'snapshot').length;
    const lines = net.deliver();
    const snaps = lines.filter((l) => l.includes(' snapshot ')).length;
    console.log(r, 'inflight snapshot msgs', inflight, 'delivered snapshot', snaps, 'n3 snapIdx', net.core('n3').log.snapshotIndex());
    if (net.core('n3').log.snapshotIndex() > 0) break;
  }
});
