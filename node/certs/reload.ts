// Hot reload of a node's TLS files. Kubernetes updates a mounted Secret by writing a new directory
// and swapping a symlink, which file watchers report unreliably, so the files' contents are polled
// (every `intervalMs`) and compared by digest.
//
// Invariants:
// - `current` always holds material that passed parseTlsMaterial: a refused set of files (a
//   key that does not match, a broken CA bundle, a file caught half-written) is logged once and
//   the previous material stays in use until the files change again. A set that changes while
//   it is being read is not judged until it reads the same twice.
// - Listeners run only when the material actually changed, in registration order; a listener
//   that throws is logged and does not stop the others.
// - A poll never overlaps another one, and stop() ends polling for good.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { CertError } from './errors.js';
import { type CertSummary, parseTlsMaterial, type TlsMaterial } from './tls-material.js';

export interface TlsFilePaths {
  cert: string;
  key: string;
  ca: string;
  /** More CA files whose certificates are trusted as well (for example --admin-ca). */
  extraCa?: string[];
}

export type ReloadOutcome = 'unchanged' | 'applied' | 'refused';

/** What a node reports about its TLS material (`/_internal/status`, `tls`). */
export interface TlsReloadStatus {
  cert: CertSummary;
  ca: CertSummary[];
  loaded_at: string;
  reloads: number;
  reload_failures: number;
  /** Why the files on disk are not in use, while they are refused; null otherwise. */
  last_error: string | null;
}

export interface TlsReloaderOptions {
  intervalMs: number;
  logger: Logger;
  /** Called after every poll that changed something (for metrics). */
  onOutcome?: (outcome: Exclude<ReloadOutcome, 'unchanged'>, material: TlsMaterial) => void;
}

type Listener = (material: TlsMaterial) => void;

function readAllSync(paths: TlsFilePaths): Buffer[] {
  return [paths.cert, paths.key, paths.ca, ...(paths.extraCa ?? [])].map((p) => readFileSync(p));
}

async function readAll(paths: TlsFilePaths): Promise<Buffer[]> {
  return Promise.all([paths.cert, paths.key, paths.ca, ...(paths.extraCa ?? [])].map((p) => readFile(p)));
}

function digest(files: Buffer[]): string {
  const hash = createHash('sha256');
  for (const f of files) hash.update(createHash('sha256').update(f).digest());
  return hash.digest('hex');
}

function materialOf(files: Buffer[]): TlsMaterial {
  const [cert, key, ca, ...extraCa] = files as [Buffer, Buffer, Buffer, ...Buffer[]];
  return parseTlsMaterial({ cert, key, ca, extraCa });
}

export class TlsReloader {
  private material: TlsMaterial;
  private loadedAt = new Date();
  /** Digest of the files last looked at, whether they were applied or refused. */
  private seen: string;
  private reloads = 0;
  private failures = 0;
  private lastError: string | null = null;
  private readonly listeners: Listener[] = [];
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<ReloadOutcome> | null = null;
  private stopped = false;
  private readonly log: Logger;

  /** Reads and checks the files now; throws CertError (or the read error) when they are unusable. */
  constructor(
    private readonly paths: TlsFilePaths,
    private readonly opts: TlsReloaderOptions,
  ) {
    if (!(Number.isInteger(opts.intervalMs) && opts.intervalMs > 0)) {
      throw new RangeError('intervalMs must be a positive integer');
    }
    this.log = opts.logger.child({ component: 'tls-reload' });
    const files = readAllSync(paths);
    this.material = materialOf(files);
    this.seen = digest(files);
  }

  get current(): TlsMaterial {
    return this.material;
  }

  /** Runs `listener` with every newly applied material. */
  onChange(listener: Listener): void {
    this.listeners.push(listener);
  }

  start(): void {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => void this.check(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Looks at the files once (polls call this; tests may too). */
  check(): Promise<ReloadOutcome> {
    this.polling ??= this.poll().finally(() => {
      this.polling = null;
    });
    return this.polling;
  }

  status(): TlsReloadStatus {
    return {
      cert: this.material.summary.cert,
      ca: this.material.summary.ca,
      loaded_at: this.loadedAt.toISOString(),
      reloads: this.reloads,
      reload_failures: this.failures,
      last_error: this.lastError,
    };
  }

  private async poll(): Promise<ReloadOutcome> {
    if (this.stopped) return 'unchanged';
    let files: Buffer[];
    try {
      files = await readAll(this.paths);
    } catch (err) {
      // Mid-swap a path can be missing for an instant: not a verdict on the new files yet.
      this.log.debug({ err: (err as Error).message }, 'cannot read the TLS files; will look again');
      return 'unchanged';
    }
    const next = digest(files);
    if (next === this.seen || this.stopped) return 'unchanged';
    let material: TlsMaterial;
    try {
      material = materialOf(files);
    } catch (err) {
      if (!(err instanceof CertError)) throw err;
      // The files are read one by one: a swap in between gives a mix of two versions. Judge the
      // set only if it reads the same again; otherwise look at it on the next poll.
      const again = await readAll(this.paths).then(digest, () => null);
      if (again !== next) return 'unchanged';
      this.seen = next;
      this.failures++;
      this.lastError = err.message;
      this.log.error(
        { reason: err.message, files: this.paths, keeping: this.material.summary.cert.fingerprint_sha256 },
        'refused the changed TLS files; still serving the previous certificate',
      );
      this.opts.onOutcome?.('refused', this.material);
      return 'refused';
    }
    this.seen = next;
    this.material = material;
    this.loadedAt = new Date();
    this.reloads++;
    this.lastError = null;
    this.log.info(
      {
        cert: material.summary.cert.fingerprint_sha256,
        notAfter: material.summary.cert.not_after,
        cas: material.summary.ca.map((c) => c.fingerprint_sha256),
      },
      'TLS files changed; now serving the new material',
    );
    for (const listener of this.listeners) {
      try {
        listener(material);
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'applying reloaded TLS material failed');
      }
    }
    this.opts.onOutcome?.('applied', material);
    return 'applied';
  }
}
