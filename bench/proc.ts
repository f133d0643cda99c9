// Child processes for the benchmark: free ports, spawning with a log file, stopping, and reading a
// process's RSS and CPU time from /proc. Every process started here is killed when the bench exits.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, type Server } from 'node:net';

export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  logPath: string;
  exited: boolean;
  /** Set before we stop it ourselves, so its exit is not reported as a crash. */
  stopping: boolean;
}

const running = new Set<Proc>();

/** Ports the kernel hands out for port 0; all held open together so none repeats. */
export async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = createServer();
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve());
    });
    servers.push(s);
    const addr = s.address();
    if (addr === null || typeof addr === 'string') throw new Error('could not get a free port');
    ports.push(addr.port);
  }
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/**
 * Start `cmd` in its own process group (so the terminal's Ctrl-C reaches only the bench, which
 * then stops everything in order), with stdout and stderr appended to `logPath`.
 */
export function startProcess(
  name: string,
  cmd: string,
  args: string[],
  logPath: string,
  onCrash: (p: Proc, why: string) => void,
  env: NodeJS.ProcessEnv = process.env,
): Proc {
  const fd = openSync(logPath, 'a');
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd], detached: true, env });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
  const p: Proc = { name, child, pid: child.pid, logPath, exited: false, stopping: false };
  running.add(p);
  child.on('error', (err) => {
    if (!p.stopping) onCrash(p, `could not be started: ${err.message}`);
  });
  child.on('exit', (code, signal) => {
    p.exited = true;
    running.delete(p);
    if (!p.stopping) onCrash(p, `exited unexpectedly (code ${code}, signal ${signal})`);
  });
  return p;
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stopProcess(p: Proc, graceMs = 5000): Promise<void> {
  p.stopping = true;
  if (p.exited) return;
  const exited = new Promise<void>((resolve) => p.child.once('exit', () => resolve()));
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** SIGKILL on purpose (a crash the bench causes, not reported as one); resolves once it exited. */
export async function killProcess(p: Proc, timeoutMs = 10_000): Promise<void> {
  p.stopping = true;
  if (p.exited) return;
  const exited = new Promise<void>((resolve) => p.child.once('exit', () => resolve()));
  p.child.kill('SIGKILL');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${p.name} did not exit within ${timeoutMs} ms of SIGKILL`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Last resort, from process.on('exit'): nothing async is possible there. */
export function killAllSync(): void {
  for (const p of running) {
    p.stopping = true;
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export function logTail(p: Proc, lines = 15): string {
  try {
    const text = readFileSync(p.logPath, 'utf8').trimEnd().split('\n');
    return text
      .slice(-lines)
      .map((l) => `    | ${l.length > 300 ? `${l.slice(0, 300)}...` : l}`)
      .join('\n');
  } catch {
    return '    | (no log)';
  }
}

/** VmRSS and VmHWM (peak RSS) in KiB. */
/** A cluster failed to start: stop it and report the error with the end of every member's log. */
export async function startFailed(stop: () => Promise<void>, procs: Proc[], err: unknown): Promise<never> {
  await stop();
  const tails = procs.map((p) => `end of ${p.name}'s log:\n${logTail(p, 10)}`);
  throw new Error(`${(err as Error).message}\n${tails.join('\n')}`);
}

export function memoryKiB(pid: number): { rssKiB: number; peakKiB: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) =>
      Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rssKiB: field('VmRSS'), peakKiB: field('VmHWM') };
  } catch {
    return null;
  }
}

let clockTicks: number | undefined;

/** User + system CPU time of a process in milliseconds (0 when it is gone). */
export function cpuMs(pid: number): number {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    clockTicks = Number(r.stdout?.trim()) || 100;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return ((utime + stime) * 1000) / clockTicks;
  } catch {
    return 0;
  }
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request on a fresh connection (for setup and probes, not for load). */
export function httpCall(
  url: string,
  method: string,
  body?: string | Buffer,
  timeoutMs = 3000,
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, timeout: timeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    if (body !== undefined) req.setHeader('content-length', Buffer.byteLength(body));
    req.end(body);
  });
}

/** Poll `check` until it returns true; on timeout throw with the last reason it gave. */
export async function waitUntil(
  what: string,
  timeoutMs: number,
  check: () => Promise<true | string>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'not tried';
  while (Date.now() < deadline) {
    try {
      const r = await check();
      if (r === true) return;
      last = r;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${what}: not ready after ${timeoutMs} ms (last: ${last})`);
}
