// The Argo CD custom health checks in deploy/argocd/, run in fengari (a Lua VM in JS) the way Argo CD
// runs them: the live object as the global `obj`, the script returns { status, message }.
// e2e/argocd-health.test.ts checks the scripts on hand-made objects; the real-cluster suites
// (real-cluster.test.ts, operations.test.ts, tls-rotation.test.ts) run them on the live
// ConfluxCluster objects at each step through watchHealth(), so a wrong verdict fails them.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { GROUP, VERSION } from '../../operator/api/cluster.js';
import { getCluster, type KubeEnv } from '../scenarios/env.js';

// fengari ships no type declarations: type the few functions used here.
type LuaState = object;
interface Fengari {
  to_luastring(s: string): Uint8Array;
  to_jsstring(s: Uint8Array): string;
  lua: {
    LUA_OK: number;
    LUA_MULTRET: number;
    LUA_TSTRING: number;
    lua_pushnil(L: LuaState): void;
    lua_pushboolean(L: LuaState, b: boolean): void;
    lua_pushinteger(L: LuaState, n: number): void;
    lua_pushnumber(L: LuaState, n: number): void;
    lua_pushstring(L: LuaState, s: Uint8Array): void;
    lua_createtable(L: LuaState, narr: number, nrec: number): void;
    lua_setfield(L: LuaState, idx: number, k: Uint8Array): void;
    lua_seti(L: LuaState, idx: number, n: number): void;
    lua_setglobal(L: LuaState, name: Uint8Array): void;
    lua_getfield(L: LuaState, idx: number, k: Uint8Array): number;
    lua_tostring(L: LuaState, idx: number): Uint8Array | null;
    lua_istable(L: LuaState, idx: number): boolean;
    lua_pcall(L: LuaState, nargs: number, nresults: number, msgh: number): number;
    lua_pop(L: LuaState, n: number): void;
    lua_gettop(L: LuaState): number;
    lua_settop(L: LuaState, idx: number): void;
  };
  lauxlib: {
    luaL_newstate(): LuaState;
    luaL_loadstring(L: LuaState, s: Uint8Array): number;
  };
  lualib: { luaL_openlibs(L: LuaState): void };
}
const fengari = createRequire(import.meta.url)('fengari') as Fengari;
const { lua, lauxlib, lualib, to_luastring, to_jsstring } = fengari;

/** Push a JSON-like JS value as a Lua value (arrays become 1-based sequences, objects tables). */
function pushValue(L: LuaState, value: unknown): void {
  if (value === null || value === undefined) {
    lua.lua_pushnil(L);
  } else if (typeof value === 'boolean') {
    lua.lua_pushboolean(L, value);
  } else if (typeof value === 'number') {
    if (Number.isInteger(value)) lua.lua_pushinteger(L, value);
    else lua.lua_pushnumber(L, value);
  } else if (typeof value === 'string') {
    lua.lua_pushstring(L, to_luastring(value));
  } else if (Array.isArray(value)) {
    lua.lua_createtable(L, value.length, 0);
    value.forEach((item, i) => {
      pushValue(L, item);
      lua.lua_seti(L, -2, i + 1);
    });
  } else if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    lua.lua_createtable(L, 0, entries.length);
    for (const [k, v] of entries) {
      pushValue(L, v);
      lua.lua_setfield(L, -2, to_luastring(k));
    }
  } else {
    throw new Error(`cannot convert ${typeof value} to Lua`);
  }
}

export interface HealthStatus {
  status: string;
  message: string;
}

function readField(L: LuaState, name: string): string {
  lua.lua_getfield(L, -1, to_luastring(name));
  const raw = lua.lua_tostring(L, -1);
  lua.lua_pop(L, 1);
  if (raw === null) throw new Error(`hs.${name} is not a string`);
  return to_jsstring(raw);
}

/** Run a health script against `obj`, as Argo CD does. */
export function runHealth(script: string, obj: unknown): HealthStatus {
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  pushValue(L, obj);
  lua.lua_setglobal(L, to_luastring('obj'));
  const fail = (what: string) => {
    const raw = lua.lua_tostring(L, -1);
    return new Error(`${what}: ${raw ? to_jsstring(raw) : '?'}`);
  };
  if (lauxlib.luaL_loadstring(L, to_luastring(script)) !== lua.LUA_OK) throw fail('load');
  if (lua.lua_pcall(L, 0, 1, 0) !== lua.LUA_OK) throw fail('run');
  if (!lua.lua_istable(L, -1)) throw new Error('the script did not return a table');
  const result = { status: readField(L, 'status'), message: readField(L, 'message') };
  lua.lua_settop(L, 0);
  return result;
}

const ARGOCD = new URL('../../deploy/argocd/', import.meta.url);
export const CLUSTER_HEALTH_SCRIPT = readFileSync(new URL('confluxcluster-health.lua', ARGOCD), 'utf8');
export const BACKUP_HEALTH_SCRIPT = readFileSync(new URL('confluxbackup-health.lua', ARGOCD), 'utf8');

/** What Argo CD shows for a ConfluxCluster. */
export const clusterHealth = (obj: unknown): HealthStatus => runHealth(CLUSTER_HEALTH_SCRIPT, obj);

export type ArgoStatus = 'Healthy' | 'Progressing' | 'Degraded' | 'Suspended' | 'Missing' | 'Unknown';

/**
 * Samples Argo CD's verdict on the live ConfluxCluster `name` about once a second, from start()
 * to stop(): each distinct verdict in order, with the message it came with. A script that fails
 * on a live object, or returns a status Argo CD does not know, is recorded as an error.
 */
export class HealthWatch {
  readonly seen: { status: string; message: string; at: number }[] = [];
  readonly errors: string[] = [];
  private running = false;
  private loop: Promise<void> | null = null;
  private watching: Promise<void> | null = null;
  private stopWatch: () => void = () => {};

  constructor(
    private readonly env: KubeEnv,
    readonly name: string,
    private readonly periodMs = 1000,
  ) {}

  /**
   * With a kubeconfig (the real control plane), judges every version of the object its watch
   * delivers, as Argo CD does, so a state shorter than any sampling period (a scale-down of a
   * second) is seen too; otherwise samples every periodMs. One source only, so that a late
   * sample never reorders what the watch delivered.
   */
  start(): this {
    this.running = true;
    const kubeconfig = (this.env as Partial<{ cp: { kubeconfigPath: string } }>).cp?.kubeconfigPath;
    if (kubeconfig) {
      this.watching = this.watchVersions(kubeconfig);
      return this;
    }
    this.loop = (async () => {
      while (this.running) {
        await this.sample();
        await new Promise((r) => setTimeout(r, this.periodMs));
      }
    })();
    return this;
  }

  /**
   * Watches until stopped: a watch the API server or client-node ends (client-node closes one
   * that has been quiet for its request timeout) starts again, its first event the current
   * version, so a quiet cluster is still watched when it changes.
   */
  private async watchVersions(kubeconfigPath: string): Promise<void> {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    const path = `/apis/${GROUP}/${VERSION}/namespaces/${this.env.namespace}/confluxclusters`;
    const onEvent = (type: string, obj: unknown) => {
      if (this.running && (type === 'ADDED' || type === 'MODIFIED'))
        this.judge(obj as Record<string, unknown>);
    };
    while (this.running) {
      const ended = new Promise<void>((resolve) => {
        new Watch(kc)
          .watch(path, { fieldSelector: `metadata.name=${this.name}` }, onEvent, () => resolve())
          .then((controller) => {
            this.stopWatch = () => controller.abort();
            if (!this.running) controller.abort();
          })
          .catch((err: Error) => {
            this.errors.push(`watching ${this.name}: ${err.message}`);
            this.running = false;
            resolve();
          });
      });
      await ended;
      if (this.running) await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** One verdict now (also recorded). */
  async sample(): Promise<HealthStatus | null> {
    const obj = await getCluster(this.env, this.name).catch((err: Error) => {
      this.errors.push(`reading ${this.name}: ${err.message}`);
      return null;
    });
    if (!obj) return null;
    return this.judge(obj);
  }

  /** Argo CD's verdict on one version of the object, recorded when it differs from the last. */
  private judge(obj: Record<string, unknown>): HealthStatus | null {
    let h: HealthStatus;
    try {
      h = clusterHealth(obj);
    } catch (err) {
      this.errors.push(`the health script failed on ${this.name}: ${(err as Error).message}`);
      return null;
    }
    if (!['Healthy', 'Progressing', 'Degraded', 'Suspended'].includes(h.status)) {
      this.errors.push(`unknown health status ${h.status} for ${this.name}`);
    }
    const last = this.seen.at(-1);
    if (!last || last.status !== h.status || last.message !== h.message) {
      this.seen.push({ ...h, at: Date.now() });
    }
    return h;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    this.stopWatch();
    await this.watching;
  }

  /** The statuses seen, consecutive repeats collapsed. */
  statuses(): string[] {
    return this.seen.map((s) => s.status).filter((s, i, all) => i === 0 || all[i - 1] !== s);
  }

  /** The verdicts seen, one line each, for a failure message. */
  describe(): string {
    return this.seen
      .map((s, i) => `${s.status}: ${s.message} (${(this.seen[i + 1]?.at ?? Date.now()) - s.at} ms)`)
      .join('\n');
  }

  /** Each run of one status (consecutive verdicts of that status), with how long it was shown. */
  spans(): { status: string; messages: string[]; ms: number }[] {
    const out: { status: string; messages: string[]; ms: number }[] = [];
    this.seen.forEach((s, i) => {
      const until = this.seen[i + 1]?.at ?? Date.now();
      const last = out.at(-1);
      if (last && last.status === s.status) {
        last.messages.push(s.message);
        last.ms += until - s.at;
      } else {
        out.push({ status: s.status, messages: [s.message], ms: until - s.at });
      }
    });
    return out;
  }
}

/** Argo CD's verdict on the live ConfluxCluster `name` now. */
export async function liveHealth(env: KubeEnv, name: string): Promise<HealthStatus> {
  const obj = await getCluster(env, name);
  if (!obj) throw new Error(`ConfluxCluster ${name} does not exist`);
  return clusterHealth(obj);
}

/** Until Argo CD's verdict on `name` is `status` (the operator writes conditions a pass later). */
export async function settlesAs(
  env: KubeEnv,
  name: string,
  status: ArgoStatus,
  ms = 60_000,
): Promise<HealthStatus> {
  const deadline = Date.now() + ms;
  let last: HealthStatus | null = null;
  for (;;) {
    last = await liveHealth(env, name);
    if (last.status === status) return last;
    if (Date.now() > deadline) {
      throw new Error(`Argo CD health of ${name} is ${last.status} (${last.message}), expected ${status}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * What Argo CD must have shown of a cluster during one step of a scenario: `seen` statuses each
 * shown at least once, `never` statuses never shown, and `end` once the step is done.
 */
export interface HealthExpectation {
  cluster: string;
  seen?: ArgoStatus[];
  never?: ArgoStatus[];
  /**
   * `never` statuses tolerated for at most BRIEF_MS at a time: a new cluster reports "no leader
   * elected" (Available=False) for the moment of its first election, which Argo CD shows as
   * Degraded for one refresh.
   */
  briefly?: boolean;
  end?: ArgoStatus;
}

/** How long a `briefly` status may be shown at a time (a few samples). */
export const BRIEF_MS = 5_000;

/** Checks one step's verdicts (the watch is stopped first); throws with what was seen. */
export async function checkHealthStep(env: KubeEnv, watch: HealthWatch, e: HealthExpectation): Promise<void> {
  await watch.stop();
  const problems = [...watch.errors];
  if (e.end) {
    try {
      const h = await settlesAs(env, e.cluster, e.end);
      if (watch.seen.at(-1)?.status !== h.status) watch.seen.push({ ...h, at: Date.now() });
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  const statuses = watch.statuses();
  for (const s of e.seen ?? []) {
    if (!statuses.includes(s)) problems.push(`Argo CD never showed ${e.cluster} ${s}`);
  }
  for (const span of watch.spans()) {
    if (!(e.never ?? []).includes(span.status as ArgoStatus)) continue;
    if (e.briefly && span.ms <= BRIEF_MS) continue;
    problems.push(
      `Argo CD showed ${e.cluster} ${span.status} for ${span.ms} ms (${span.messages.join('; ')})`,
    );
  }
  if (problems.length > 0) {
    throw new Error(`${problems.join('; ')}\nverdicts seen for ${e.cluster}:\n${watch.describe()}`);
  }
}
