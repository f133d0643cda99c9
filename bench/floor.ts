// The physical floor of a replicated write on this machine: one fsync of a small append on the
// data directory's filesystem, and a loopback round trip between two processes. A 3-node write
// needs at least the client's round trip, one replication round trip and one fsync (the leader's
// and the followers' fsyncs overlap), so its floor is fsync + 2 x RTT.

import { spawn } from 'node:child_process';
import { closeSync, fdatasyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { percentile } from './load.js';

export interface Floor {
  fsyncP50Ms: number;
  fsyncP99Ms: number;
  rttP50Ms: number;
  rttP99Ms: number;
  /** fsync p50 + 2 x loopback RTT p50 */
  writeFloorMs: number;
}

/** open, then `n` times: append 100 bytes and fdatasync. */
export function measureFsync(dir: string, n = 1000): { p50: number; p99: number } {
  const file = join(dir, 'fsync-probe');
  const fd = openSync(file, 'a');
  const chunk = Buffer.alloc(100, 'x');
  const samples = new Float64Array(n);
  try {
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      writeSync(fd, chunk);
      fdatasyncSync(fd);
      samples[i] = performance.now() - t;
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  samples.sort();
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

const ECHO_SERVER = `
const net = require('node:net');
const s = net.createServer((c) => { c.setNoDelay(true); c.on('data', (d) => c.write(d)); c.on('error', () => {}); });
s.listen(0, '127.0.0.1', () => process.stdout.write(String(s.address().port) + '\\n'));
process.stdin.on('end', () => process.exit(0)); process.stdin.resume();
`;

/** Round trips of 64 bytes to an echo server in another process (so both ends have their own loop). */
export async function measureLoopback(n = 1000, warmup = 200): Promise<{ p50: number; p99: number }> {
  const server = spawn(process.execPath, ['-e', ECHO_SERVER], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.once('exit', (code) => reject(new Error(`echo server exited (${code})`)));
      server.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    });
    const sock = connect({ host: '127.0.0.1', port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const msg = Buffer.alloc(64, 'p');
    const samples = new Float64Array(n);
    for (let i = 0; i < n + warmup; i++) {
      const t = performance.now();
      await new Promise<void>((resolve) => {
        let got = 0;
        const onData = (d: Buffer) => {
          got += d.length;
          if (got >= msg.length) {
            sock.off('data', onData);
            resolve();
          }
        };
        sock.on('data', onData);
        sock.write(msg);
      });
      if (i >= warmup) samples[i - warmup] = performance.now() - t;
    }
    sock.destroy();
    samples.sort();
    return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
  } finally {
    server.stdin?.end();
    server.kill();
  }
}

export async function measureFloor(dir: string): Promise<Floor> {
  const fsync = measureFsync(dir);
  const rtt = await measureLoopback();
  return {
    fsyncP50Ms: fsync.p50,
    fsyncP99Ms: fsync.p99,
    rttP50Ms: rtt.p50,
    rttP99Ms: rtt.p99,
    writeFloorMs: fsync.p50 + 2 * rtt.p50,
  };
}
