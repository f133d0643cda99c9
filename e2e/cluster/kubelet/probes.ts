// Running probes. httpGet and tcpSocket go through the pod's sandbox agent (sandbox-agent.mjs),
// which lives in the pod's network namespace, so they reach the pod IP on the pod's network (HTTPS
// without certificate verification, as the kubelet). exec probes run the command inside the
// container's namespaces (nsenter) as the container's user, with its environment.

import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { V1Container, V1Probe } from '@kubernetes/client-node';
import type { RunAs } from './container.js';

const AGENT = join(import.meta.dirname, 'sandbox-agent.mjs');

export interface ProbeResult {
  ok: boolean;
  message: string;
}

/** The per-pod agent in the pod's network namespace. */
export class SandboxAgent {
  private child: ChildProcess | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, (r: ProbeResult) => void>();
  private ready: Promise<void> | null = null;

  constructor(
    private readonly execPrefix: string[],
    private readonly log: (line: string) => void,
  ) {}

  pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the agent (again, if it died). */
  start(): Promise<void> {
    if (this.child && this.child.exitCode === null && this.ready) return this.ready;
    const argv = [...this.execPrefix, process.execPath, AGENT];
    const [bin, ...args] = argv as [string, ...string[]];
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.child = child;
    child.stderr?.on('data', (d: Buffer) => this.log(`sandbox agent: ${d.toString().trim()}`));
    child.stdin?.on('error', () => {});
    this.ready = new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (line) => {
        let msg: { id?: number; ok?: boolean; message?: string; ready?: boolean };
        try {
          msg = JSON.parse(line);
        } catch {
          return;
        }
        if (msg.ready) return resolve();
        const cb = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
        if (cb) {
          this.pending.delete(msg.id!);
          cb({ ok: msg.ok === true, message: msg.message ?? '' });
        }
      });
      child.once('exit', (code) => {
        reject(new Error(`sandbox agent exited (${code})`));
        for (const cb of this.pending.values()) cb({ ok: false, message: 'sandbox agent exited' });
        this.pending.clear();
        if (this.child === child) {
          this.child = null;
          this.ready = null;
        }
      });
    });
    this.ready.catch(() => {});
    return this.ready;
  }

  async request(req: Record<string, unknown> & { timeoutMs: number }): Promise<ProbeResult> {
    try {
      await this.start();
    } catch (err) {
      return { ok: false, message: `sandbox agent unavailable: ${(err as Error).message}` };
    }
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve({ ok: false, message: 'probe timed out in the sandbox agent' });
      }, req.timeoutMs + 2000);
      this.pending.set(id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      this.child?.stdin?.write(`${JSON.stringify({ ...req, id })}\n`);
    });
  }

  stop(): void {
    const child = this.child;
    this.child = null;
    this.ready = null;
    if (child?.pid) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }
  }
}

/** A named container port ("api") or a number. */
export function resolvePort(port: number | string | undefined, container: V1Container): number | undefined {
  if (typeof port === 'number') return port;
  if (port === undefined) return undefined;
  if (/^\d+$/.test(port)) return Number(port);
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

export interface ProbeTarget {
  agent: SandboxAgent;
  podIP: string;
  container: V1Container;
  /** The container's main process, its user and environment (for exec probes). */
  pid: number;
  runAs: RunAs;
  env: Record<string, string>;
  workingDir: string;
}

export async function runProbe(probe: V1Probe, t: ProbeTarget, timeoutMs: number): Promise<ProbeResult> {
  if (probe.httpGet) {
    const g = probe.httpGet;
    const port = resolvePort(g.port as number | string, t.container);
    if (!port) return { ok: false, message: `unknown port ${g.port}` };
    return t.agent.request({
      kind: 'http',
      scheme: g.scheme ?? 'HTTP',
      host: g.host || t.podIP,
      port,
      path: g.path ?? '/',
      headers: Object.fromEntries((g.httpHeaders ?? []).map((h) => [h.name, h.value])),
      timeoutMs,
    });
  }
  if (probe.tcpSocket) {
    const port = resolvePort(probe.tcpSocket.port as number | string, t.container);
    if (!port) return { ok: false, message: `unknown port ${probe.tcpSocket.port}` };
    return t.agent.request({ kind: 'tcp', host: probe.tcpSocket.host || t.podIP, port, timeoutMs });
  }
  if (probe.exec?.command?.length) return execProbe(probe.exec.command, t, timeoutMs);
  if (probe.grpc) {
    // No gRPC client here: a TCP connect to the port is the closest check.
    return t.agent.request({ kind: 'tcp', host: t.podIP, port: probe.grpc.port, timeoutMs });
  }
  return { ok: false, message: 'probe has no handler' };
}

function execProbe(command: string[], t: ProbeTarget, timeoutMs: number): Promise<ProbeResult> {
  const r = t.runAs;
  const args = [
    `--target=${t.pid}`,
    '--mount',
    '--uts',
    '--net',
    `--wd=${t.workingDir}`,
    '--',
    '/usr/bin/setpriv',
    `--reuid=${r.uid}`,
    `--regid=${r.gid}`,
    r.groups.length ? `--groups=${[...new Set(r.groups)].join(',')}` : '--clear-groups',
    '--',
    ...command,
  ];
  return new Promise((resolve) => {
    const child = spawn('/usr/bin/nsenter', args, { env: t.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const collect = (d: Buffer) => {
      if (out.length < 4096) out += d.toString();
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      resolve({ ok: false, message: e.message });
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve({ ok: false, message: `command timed out after ${timeoutMs} ms` });
      else resolve({ ok: code === 0, message: out.trim() || `exit code ${code}` });
    });
  });
}
