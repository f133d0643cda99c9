// One container process: started inside the pod's network namespace (the sandbox's execPrefix,
// `ip netns exec <ns>`, which already gives it a private mount namespace with
// /etc/netns/<ns>/resolv.conf over /etc/resolv.conf) in a mount and UTS namespace of its own,
// where every volume is bind-mounted at its mountPath (read-only ones remounted ro), the pod's
// hostname is set, and the command is exec'd as the container's user with setpriv:
//
//   ip netns exec <ns> unshare --mount --uts --propagation private sh -c <script> sh <argv...>
//
// The whole chain execs in place, so the pid the kubelet holds is the container's main process;
// it leads its own process group, and signals go to the group.
//
// Mount sources are opened as file descriptors before anything is mounted, and mounted through
// /proc/self/fd/N: a volume mounted over a directory that holds other sources (e.g. an emptyDir at
// /tmp while the kubelet's state lives under /tmp) cannot hide them.

import { spawn } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { constants } from 'node:os';

export interface Mount {
  hostPath: string;
  mountPath: string;
  readOnly?: boolean;
}

export interface RunAs {
  uid: number;
  gid: number;
  /** Supplementary groups (fsGroup first, then supplementalGroups). */
  groups: number[];
  noNewPrivs?: boolean;
  /** capabilities.drop: [ALL] */
  dropAllCaps?: boolean;
}

export interface ContainerSpec {
  /** `ip netns exec <ns>` (empty for a hostNetwork pod). */
  execPrefix: string[];
  hostname: string;
  mounts: Mount[];
  runAs: RunAs;
  /** securityContext.readOnlyRootFilesystem: `/` read-only in the container's mount namespace. */
  readOnlyRoot?: boolean;
  workingDir: string;
  argv: string[];
  env: Record<string, string>;
  logFile: string;
  /** First line written to the log before the process starts. */
  banner?: string;
}

export interface ContainerProcess {
  pid: number;
  startedAt: Date;
  exited: Promise<ExitStatus>;
  /** Signals the container's process group. */
  signal(sig: NodeJS.Signals): void;
}

export interface ExitStatus {
  exitCode: number;
  signal?: NodeJS.Signals;
  finishedAt: Date;
}

/** Process groups of every container of this process: killed if it exits without stopping them. */
const LIVE = new Set<number>();
let exitHook = false;
function track(pid: number, exited: Promise<unknown>): void {
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const p of LIVE) signalGroup(p, 'SIGKILL');
    });
  }
  LIVE.add(pid);
  void exited.then(() => LIVE.delete(pid));
}

/** Single-quoted for sh. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The script run inside the new namespaces: mounts (shallowest mountPath first, so nested mounts
 * land inside their parent), a read-only root if asked, hostname, working directory, then exec of
 * `setpriv ... -- "$@"`.
 */
export function containerScript(
  spec: Pick<ContainerSpec, 'hostname' | 'mounts' | 'runAs' | 'workingDir' | 'readOnlyRoot'>,
): string {
  const mounts = [...spec.mounts].sort(
    (a, b) => a.mountPath.split('/').length - b.mountPath.split('/').length,
  );
  const lines = ['set -e'];
  // Descriptors 3.. hold the sources; sh allows single-digit ones, so batch past 9.
  for (let start = 0; start < mounts.length; start += 7) {
    const batch = mounts.slice(start, start + 7);
    lines.push(`exec ${batch.map((m, i) => `${i + 3}<${shq(m.hostPath)}`).join(' ')}`);
    for (const [i, m] of batch.entries()) {
      const fd = i + 3;
      // A file mounted over a file (subPath, /etc/hosts) needs a file to mount on.
      lines.push(
        `if [ -d /proc/self/fd/${fd} ]; then /usr/bin/mkdir -p ${shq(m.mountPath)}; ` +
          `else /usr/bin/mkdir -p "$(/usr/bin/dirname ${shq(m.mountPath)})"; ` +
          `[ -e ${shq(m.mountPath)} ] || : > ${shq(m.mountPath)}; fi`,
      );
      lines.push(`/usr/bin/mount -c --bind /proc/self/fd/${fd} ${shq(m.mountPath)}`);
      if (m.readOnly) lines.push(`/usr/bin/mount -c -o remount,bind,ro ${shq(m.mountPath)}`);
    }
    lines.push(`exec ${batch.map((_, i) => `${i + 3}<&-`).join(' ')}`);
  }
  // Only this namespace's view of `/` turns read-only; volumes, /dev, /proc are mounts of their own.
  if (spec.readOnlyRoot) lines.push('/usr/bin/mount -o remount,bind,ro /');
  lines.push(`/usr/bin/hostname ${shq(spec.hostname)}`);
  lines.push(`cd ${shq(spec.workingDir)}`);
  const r = spec.runAs;
  const setpriv = [
    '/usr/bin/setpriv',
    `--reuid=${r.uid}`,
    `--regid=${r.gid}`,
    r.groups.length ? `--groups=${[...new Set(r.groups)].join(',')}` : '--clear-groups',
    ...(r.noNewPrivs ? ['--no-new-privs'] : []),
    ...(r.dropAllCaps ? ['--inh-caps=-all', '--bounding-set=-all'] : []),
  ];
  lines.push(`exec ${setpriv.join(' ')} -- "$@"`);
  return lines.join('\n');
}

const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Starts the container; its stdout and stderr are appended to `logFile`. */
export function startContainer(spec: ContainerSpec): ContainerProcess {
  const chain = [
    ...spec.execPrefix,
    '/usr/bin/unshare',
    '--mount',
    '--uts',
    '--propagation',
    'private',
    '/bin/sh',
    '-c',
    containerScript(spec),
    'sh',
    ...spec.argv,
  ];
  const fd = openSync(spec.logFile, 'a');
  let child: ReturnType<typeof spawn>;
  try {
    if (spec.banner) writeSync(fd, `${spec.banner}\n`);
    // The tools of the chain are found on the system PATH; the container's own PATH applies to
    // its command (setpriv execs with the container's environment).
    const [bin, ...args] = chain as [string, ...string[]];
    child = spawn(resolveSystem(bin), args, {
      detached: true,
      env: { ...spec.env, PATH: spec.env.PATH ?? SYSTEM_PATH },
      stdio: ['ignore', fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  const startedAt = new Date();
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) =>
      resolve({
        exitCode: code ?? 128 + ((signal && constants.signals[signal]) || 0),
        ...(signal ? { signal } : {}),
        finishedAt: new Date(),
      }),
    );
    child.once('error', () => resolve({ exitCode: 127, finishedAt: new Date() }));
  });
  const pid = child.pid ?? -1;
  if (pid > 0) track(pid, exited);
  return {
    pid,
    startedAt,
    exited,
    signal(sig) {
      signalGroup(pid, sig);
    },
  };
}

export function signalGroup(pid: number, sig: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

/** `ip` -> `/usr/sbin/ip`: the kubelet's tools live on the system PATH, not the container's. */
function resolveSystem(bin: string): string {
  if (bin.includes('/')) return bin;
  for (const dir of SYSTEM_PATH.split(':')) {
    try {
      closeSync(openSync(`${dir}/${bin}`, 'r'));
      return `${dir}/${bin}`;
    } catch {
      // next
    }
  }
  return bin;
}
