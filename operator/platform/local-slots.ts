// LocalPlatform's persisted slots: where a cluster's state lives under the root, its `slots.json`
// (the set size, and each slot's ports and last pid), and the choice of ports for a new slot, kept
// apart from every other cluster's.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';
import type { ConfluxCluster } from '../api/cluster.js';
import type { MemberPod } from './platform.js';

export const slotsFileSchema = z.object({
  size: z.int().min(0),
  /** Set when this cluster owns the base port range. */
  basePort: z.int().nullable().default(null),
  slots: z.record(
    z.string(),
    z.object({
      raft: z.int(),
      api: z.int(),
      admin: z.int(),
      pid: z.int().nullable().default(null),
      /** The template revision the slot's process was last started with (see local-template.ts). */
      revision: z.string().nullable().default(null),
    }),
  ),
});
export type SlotsFile = z.infer<typeof slotsFileSchema>;
export type SlotPorts = SlotsFile['slots'][string];

/** A cluster's slots as loaded: its directory and its slots.json. */
export interface LoadedSlots {
  dir: string;
  doc: SlotsFile;
}

/** The slots.json under `dir`, or an empty set when there is none yet. */
export function readSlotsFile(dir: string): SlotsFile {
  const file = join(dir, 'slots.json');
  let doc: SlotsFile = { size: 0, basePort: null, slots: {} };
  if (existsSync(file)) {
    const parsed = slotsFileSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    if (!parsed.success) throw new Error(`${file} is not a slots file: ${parsed.error.issues[0]?.message}`);
    doc = parsed.data;
  }
  return doc;
}

/** Replace the slots.json under `dir` (write, then rename). */
export function writeSlotsFile(dir: string, doc: SlotsFile): void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'slots.json');
  writeFileSync(`${file}.tmp`, `${JSON.stringify(doc, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** `<root>/<namespace>/<name>`: a cluster's directory (names checked, so they stay under root). */
export function clusterDirUnder(root: string, metadata: { namespace: string; name: string }): string {
  const { namespace, name } = metadata;
  if (!DNS_LABEL.test(namespace) || !DNS_LABEL.test(name)) {
    throw new Error(`invalid cluster name ${namespace}/${name}`);
  }
  return join(root, namespace, name);
}

/** The ordinals of the `volumes/<name>-<k>` directories under a cluster's directory, ascending. */
export function volumeOrdinals(clusterDir: string, name: string): number[] {
  const dir = join(clusterDir, 'volumes');
  const prefix = `${name}-`;
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && /^\d+$/.test(f.slice(prefix.length)))
    .map((f) => Number(f.slice(prefix.length)))
    .sort((a, b) => a - b);
}

/** `<namespace>/<name>`: how loaded clusters are keyed (see PortAllocator's `loaded`). */
export function clusterKey(cluster: ConfluxCluster): string {
  return `${cluster.metadata.namespace}/${cluster.metadata.name}`;
}

export function slotName(cluster: string, ordinal: number): string {
  return `${cluster}-${ordinal}`;
}

export function addressesOf(p: SlotPorts): MemberPod['addresses'] {
  return { raft: `127.0.0.1:${p.raft}`, api: `127.0.0.1:${p.api}`, admin: `127.0.0.1:${p.admin}` };
}

export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => ok(port));
    });
  });
}

/**
 * Chooses ports for the slots of every cluster under `root`: the base range for the first cluster
 * to ask (when `o.basePort` is set), free ports that no other cluster holds for the rest.
 */
export class PortAllocator {
  constructor(
    private readonly root: string,
    private readonly o: { readonly basePort?: number },
    /** The clusters loaded in memory, by `<namespace>/<name>`: newer than their files. */
    private readonly loaded: ReadonlyMap<string, { readonly doc: SlotsFile }>,
  ) {}

  /** The slot's ports, chosen once and kept in slots.json. */
  async allocate(state: LoadedSlots, ordinal: number): Promise<SlotPorts> {
    const known = state.doc.slots[ordinal];
    if (known) return known;
    let ports: SlotPorts;
    const base = this.o.basePort;
    if (base !== undefined && this.ownsBasePorts(state)) {
      if (ordinal >= 100) throw new Error(`slot ${ordinal} does not fit the base port layout`);
      state.doc.basePort = base;
      ports = {
        raft: base + ordinal,
        api: base + 100 + ordinal,
        admin: base + 200 + ordinal,
        pid: null,
        revision: null,
      };
    } else {
      const taken = this.reservedPorts();
      const pick = async () => {
        for (;;) {
          const port = await freePort();
          if (!taken.has(port)) {
            taken.add(port);
            return port;
          }
        }
      };
      ports = { raft: await pick(), api: await pick(), admin: await pick(), pid: null, revision: null };
    }
    state.doc.slots[ordinal] = ports;
    writeSlotsFile(state.dir, state.doc);
    return ports;
  }

  /** The first cluster to ask owns the base port range, for good (recorded in its slots.json). */
  private ownsBasePorts(state: LoadedSlots): boolean {
    if (state.doc.basePort !== null) return state.doc.basePort === this.o.basePort;
    return !this.allSlotFiles().some(({ doc }) => doc.basePort === this.o.basePort);
  }

  /** Ports any cluster under root holds, and the whole base range. */
  private reservedPorts(): Set<number> {
    const taken = new Set<number>();
    for (const { doc } of this.allSlotFiles()) {
      for (const s of Object.values(doc.slots)) for (const p of [s.raft, s.api, s.admin]) taken.add(p);
    }
    for (const state of this.loaded.values()) {
      for (const s of Object.values(state.doc.slots)) for (const p of [s.raft, s.api, s.admin]) taken.add(p);
    }
    if (this.o.basePort !== undefined) for (let i = 0; i < 300; i++) taken.add(this.o.basePort + i);
    return taken;
  }

  private allSlotFiles(): LoadedSlots[] {
    const found: LoadedSlots[] = [];
    const dirs = (path: string) => {
      try {
        return readdirSync(path, { withFileTypes: true })
          .filter((d) => d.isDirectory())
          .map((d) => d.name);
      } catch {
        return [];
      }
    };
    for (const ns of dirs(this.root)) {
      for (const name of dirs(join(this.root, ns))) {
        const dir = join(this.root, ns, name);
        const loaded = this.loaded.get(`${ns}/${name}`);
        if (loaded) {
          found.push({ dir, doc: loaded.doc });
          continue;
        }
        try {
          const doc = slotsFileSchema.parse(JSON.parse(readFileSync(join(dir, 'slots.json'), 'utf8')));
          found.push({ dir, doc });
        } catch {
          // not a cluster directory
        }
      }
    }
    return found;
  }
}
