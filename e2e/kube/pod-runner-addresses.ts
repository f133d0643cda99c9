// Loopback addresses for the pod runner's pods: each pod (namespace/name) gets its own
// 127.0.0.<n> (Linux routes all of 127.0.0.0/8 to lo), so every pod's node can listen on the
// container ports the pod spec names (7000, 8080, 8443) without colliding with the others.
//
// - Stable per pod name: the mapping lives in memory and in `<root>/addresses.json`, so a pod that
//   is deleted and created again, or a runner restarted on the same root, keeps its address (the
//   Raft membership records members by address).
// - Unique across runners on this machine: an address is claimed by a lock file
//   `<lockDir>/127.0.0.<n>` holding the owner's pid (created atomically with link(2)) and the pid
//   of the pod process on it; a lock whose owner is gone is taken over, and its pod process, if it
//   outlived its runner (a test worker killed hard) and still runs on that address, is killed so
//   it does not hold the ports. 127.0.0.1 is never handed out.
// - Synchronous, so the operator's `memberHost` callback can ask for a pod that does not exist yet.

import {
  closeSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Addresses claimed by any runner in this process. */
const HELD_HERE = new Set<string>();

export const DEFAULT_LOCK_DIR = join(tmpdir(), 'conflux-pod-runner-addresses');

export class LoopbackAddresses {
  private readonly byPod = new Map<string, string>();
  private readonly mine = new Set<string>();

  constructor(
    private readonly stateFile: string,
    private readonly lockDir = DEFAULT_LOCK_DIR,
  ) {
    mkdirSync(lockDir, { recursive: true });
    try {
      const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, string>;
      for (const [key, ip] of Object.entries(saved)) {
        if (/^127\.0\.0\.\d+$/.test(ip)) this.byPod.set(key, ip);
      }
    } catch {
      // no saved mapping yet
    }
  }

  /** The pod's address, claimed on first use. */
  of(namespace: string, pod: string): string {
    const key = `${namespace}/${pod}`;
    const known = this.byPod.get(key);
    if (known && this.claim(known)) return known;
    const taken = new Set(this.byPod.values());
    for (let n = 2; n <= 254; n++) {
      const ip = `127.0.0.${n}`;
      if (taken.has(ip) || !this.claim(ip)) continue;
      this.byPod.set(key, ip);
      this.save();
      return ip;
    }
    throw new Error(`no free loopback address left for ${key}`);
  }

  /** The pod's address if it has one (no claim). */
  peek(namespace: string, pod: string): string | undefined {
    return this.byPod.get(`${namespace}/${pod}`);
  }

  /** Records the pid of the process serving on `ip` (undefined: none), for a later takeover. */
  setProcess(ip: string, pid: number | undefined): void {
    if (!this.mine.has(ip)) return;
    const path = join(this.lockDir, ip);
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${process.pid}\n${pid ?? ''}\n`);
    renameSync(tmp, path);
  }

  /** Gives every claimed address back (the mapping file stays, for a runner on the same root). */
  release(): void {
    for (const ip of this.mine) {
      const path = join(this.lockDir, ip);
      try {
        if (readFileSync(path, 'utf8').split('\n')[0] === String(process.pid)) unlinkSync(path);
      } catch {
        // already gone
      }
      HELD_HERE.delete(ip);
    }
    this.mine.clear();
  }

  private claim(ip: string): boolean {
    if (this.mine.has(ip)) return true;
    if (HELD_HERE.has(ip)) return false;
    const path = join(this.lockDir, ip);
    for (let attempt = 0; attempt < 3; attempt++) {
      // Written under a private name first, then linked: a lock file is never seen empty.
      const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}`;
      const fd = openSync(tmp, 'wx');
      try {
        writeSync(fd, String(process.pid));
      } finally {
        closeSync(fd);
      }
      try {
        linkSync(tmp, path);
        this.mine.add(ip);
        HELD_HERE.add(ip);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      } finally {
        unlinkSync(tmp);
      }
      let owner = 0;
      let child = 0;
      try {
        const [ownerLine, childLine] = readFileSync(path, 'utf8').split('\n');
        owner = Number(ownerLine);
        child = Number(childLine);
      } catch {
        continue; // released meanwhile: try again
      }
      // Our own pid without HELD_HERE: left by an earlier runner of this process that did not stop.
      if (owner !== process.pid && isAlive(owner)) return false;
      if (child && servesOn(child, ip)) {
        try {
          process.kill(child, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      try {
        unlinkSync(path);
      } catch {
        // someone else took it over first; the next link decides
      }
    }
    return false;
  }

  private save(): void {
    writeFileSync(this.stateFile, `${JSON.stringify(Object.fromEntries(this.byPod), null, 2)}\n`);
  }
}

/** Whether process `pid` is alive and has `ip` in its environment (a pod process on that address). */
function servesOn(pid: number, ip: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .some((v) => v.includes(`=${ip}:`));
  } catch {
    return false; // no /proc, or not ours: leave it
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
