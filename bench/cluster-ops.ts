// What the Conflux and etcd bench clusters do alike with their member processes: wait for a fresh
// cluster (stopping it with every member's log tail when it does not come up), poll a member until
// it answers 200, kill and restart a member for the failover bench, and stop them all.

import type { FailoverOps, Member } from './load.js';
import { httpCall, killProcess, type Proc, startFailed, stopProcess, waitUntil } from './proc.js';

/** A member as started, with whatever else its system keeps for it. */
export interface StartedMember {
  member: Member;
}

/** The started entry of `m` (by identity), or an error naming the system. */
export function startedOf<S extends StartedMember>(system: string, started: S[], m: Member): S {
  const s = started.find((x) => x.member === m);
  if (!s) throw new Error(`${system}: unknown member ${m.id}`);
  return s;
}

/** Run `ready` on a freshly started cluster; if it throws, stop the cluster and throw with the members' logs. */
export async function whenStarted(
  members: Member[],
  stop: () => Promise<void>,
  ready: () => Promise<void>,
): Promise<void> {
  try {
    await ready();
  } catch (err) {
    await startFailed(
      stop,
      members.map((m) => m.proc),
      err,
    );
  }
}

/** Poll `method path` on member `m` until it answers 200; throws at once if the member exited. */
export async function waitMemberOk(
  system: string,
  m: Member,
  method: string,
  path: string,
  timeoutMs: number,
  body?: string,
): Promise<void> {
  await waitUntil(`${system} ${m.id} ${path}`, timeoutMs, async () => {
    if (m.proc.exited) throw new Error(`${system} ${m.id} exited`);
    const r = await httpCall(`http://${m.host}:${m.port}${path}`, method, body);
    return r.status === 200 || `HTTP ${r.status} ${r.body.slice(0, 200)}`;
  });
}

/**
 * The failover bench's kill and restart: SIGKILL a member; start a killed one again with `relaunch`
 * (same data directory and flags) and wait until `ready` says it serves.
 */
export function killRestart<S extends StartedMember>(
  system: string,
  started: S[],
  relaunch: (s: S) => Proc,
  ready: (m: Member) => Promise<void>,
): Pick<FailoverOps, 'kill' | 'restart'> {
  return {
    kill: (m) => killProcess(m.proc),
    async restart(m) {
      const s = startedOf(system, started, m);
      if (!m.proc.exited) throw new Error(`${system} ${m.id} is still running`);
      m.proc = relaunch(s);
      await ready(m);
    },
  };
}

/** Stop every member (SIGTERM, then SIGKILL after the grace time). */
export async function stopMembers(members: Member[]): Promise<void> {
  await Promise.all(members.map((m) => stopProcess(m.proc)));
}
