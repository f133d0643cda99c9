// Disk-fault injection for tests of whole node processes: `CONFLUX_FAULT_INJECT` makes the
// storage's writes or fsyncs fail the way a full or broken disk does. Testing only; it is read
// here and nowhere else, and without it the storage has no injector at all (the I/O path only
// tests one undefined field).
//
//   CONFLUX_FAULT_INJECT=write=ENOSPC                  every WAL and snapshot write fails
//   CONFLUX_FAULT_INJECT=fsync=EIO,when=/tmp/disk-bad  fsyncs fail while /tmp/disk-bad exists
//
// `when` names a trigger file, so a test can "fill the disk" of a running node and "free" it
// before the restart without changing the node's environment.

import * as fs from 'node:fs';
import { z } from 'zod';
import { StorageError } from './errors.js';
import type { FaultInjector } from './io.js';

export const FAULT_INJECT_ENV = 'CONFLUX_FAULT_INJECT';

const ERRNO = { ENOSPC: 'no space left on device', EIO: 'i/o error' } as const;
const errnoSchema = z.enum(['ENOSPC', 'EIO']);
type Errno = z.infer<typeof errnoSchema>;

const specSchema = z
  .strictObject({
    write: errnoSchema.optional(),
    fsync: errnoSchema.optional(),
    when: z.string().min(1).optional(),
  })
  .refine((s) => s.write !== undefined || s.fsync !== undefined, 'name write=ERRNO or fsync=ERRNO');

export type FaultSpec = z.infer<typeof specSchema>;

/** Parse `write=ENOSPC,fsync=EIO,when=/path`; throws StorageError FAULT_INJECTION_INVALID. */
export function parseFaultSpec(text: string): FaultSpec {
  const fields: Record<string, string> = {};
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
    else fields[part.trim()] = '';
  }
  const parsed = specSchema.safeParse(fields);
  if (!parsed.success) {
    throw new StorageError(
      'FAULT_INJECTION_INVALID',
      `${FAULT_INJECT_ENV}=${JSON.stringify(text)} is not valid (${z.prettifyError(parsed.error)}); ` +
        'expected for example write=ENOSPC or fsync=EIO,when=/path/to/trigger-file',
    );
  }
  return parsed.data;
}

/** An error shaped like the one Node's fs gives for a real failure. */
function systemError(errno: Errno, syscall: string, file: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${errno}: ${ERRNO[errno]} (injected), ${syscall} '${file}'`), {
    code: errno,
    syscall,
    path: file,
  });
}

export function faultInjector(spec: FaultSpec): FaultInjector {
  const armed = () => spec.when === undefined || fs.existsSync(spec.when);
  const { write, fsync } = spec;
  return {
    ...(write && {
      beforeWrite(file: string) {
        if (armed()) throw systemError(write, 'write', file);
      },
    }),
    ...(fsync && {
      beforeFsync(file: string) {
        if (armed()) throw systemError(fsync, 'fsync', file);
      },
    }),
  };
}

/** The injector `env` asks for, or undefined (the normal case). */
export function faultInjectorFromEnv(
  env: NodeJS.ProcessEnv,
): { spec: FaultSpec; faults: FaultInjector } | undefined {
  const text = env[FAULT_INJECT_ENV];
  if (text === undefined || text === '') return undefined;
  const spec = parseFaultSpec(text);
  return { spec, faults: faultInjector(spec) };
}
