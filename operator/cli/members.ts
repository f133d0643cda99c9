// Which member a `conflux` command talks to. The CLI knows several: the --admin and --api lists
// (comma-separated), or the slots of `npm start` (as many as its spec asks for), and, once one
// member answers, the cluster's own member list from /_cluster/status. A member that does not
// answer, or answers that it holds no cluster or knows no leader (nothing was done), is passed
// over for the next (so is a client API that never saw a leader: its empty state is no answer);
// a NOT_LEADER naming the leader is followed to it, a few hops at most. A
// request that may have reached a member that then failed is never sent to another unless it is
// safe to repeat (reads), so a write is never applied twice.

import { clusterStatusSchema } from '../../node/api/admin-contract.js';
import {
  CliError,
  type CommandContext,
  errorOf,
  type HttpAnswer,
  type HttpRequest,
  httpCall,
  LOCAL_SLOTS,
  START_HINT,
} from './context.js';

/** Answers that say nothing was done here and another member may do it. */
const TRY_ANOTHER = new Set(['NOT_INITIALIZED', 'NO_LEADER', 'SHUTTING_DOWN', 'NOT_LEADER']);
/** How many NOT_LEADER hints one request follows. */
const MAX_HOPS = 3;

export interface MemberRequest extends HttpRequest {
  /** Safe to send again after a failure that may have reached the member (default: GET only). */
  repeatable?: boolean;
}

export interface MemberAnswer {
  url: URL;
  answer: HttpAnswer;
}

type Role = 'admin' | 'api';

/** One request to the cluster: the first member that can take it, following the leader. */
export async function callMember(
  ctx: CommandContext,
  role: Role,
  r: MemberRequest,
  first?: URL,
): Promise<MemberAnswer> {
  const repeatable = r.repeatable ?? r.method === 'GET';
  const queue = [...(first ? [first] : []), ...candidates(ctx, role)];
  const tried = new Set<string>();
  const failures: string[] = [];
  let refused: MemberAnswer | undefined;
  let hops = 0;
  let discovered = false;
  for (;;) {
    const url = queue.shift();
    if (!url) {
      if (discovered) break;
      discovered = true;
      queue.push(...(await discover(ctx, role)).filter((u) => !tried.has(u.href)));
      if (queue.length === 0) break;
      continue;
    }
    if (tried.has(url.href)) continue;
    tried.add(url.href);
    let answer: HttpAnswer;
    try {
      answer = await httpCall(url, { ...r, tls: ctx.target.tls });
    } catch (err) {
      if (!(err instanceof CliError) || err.detail.code !== 'UNREACHABLE') throw err;
      if (err.detail.sent && !repeatable) {
        throw new CliError(
          `${err.message.split('\n')[0]}\n` +
            'the request may or may not have been carried out: check before you repeat it',
          1,
          err.detail,
        );
      }
      failures.push(`${url.host} (${err.detail.message?.replace(/^cannot reach \S+: /, '')})`);
      continue;
    }
    if (role === 'api' && holdsNoCluster(answer)) {
      // Its empty state would answer a serializable read or a watch as if the cluster were empty.
      refused ??= { url, answer };
      failures.push(`${url.host} (holds no cluster)`);
      continue;
    }
    const e = errorOf(answer);
    if (!e || !TRY_ANOTHER.has(e.code)) return { url, answer };
    refused = { url, answer };
    const leader = typeof e.leader === 'string' ? e.leader : undefined;
    if (e.code === 'NOT_LEADER' && leader && hops < MAX_HOPS) {
      const there = await memberUrl(ctx, role, url, leader);
      if (there) {
        hops++;
        tried.delete(there.href);
        queue.unshift(there);
      }
    }
  }
  if (refused) return refused;
  throw unreachable(failures);
}

/**
 * A node that never saw a leader (term 0): pristine, or one whose data was lost. Every member of
 * an initialized cluster has been through an election.
 */
export function holdsNoCluster(answer: HttpAnswer): boolean {
  return answer.headers['x-conflux-term'] === '0';
}

export function unreachable(failures: readonly string[]): CliError {
  const list = failures.join(', ');
  return new CliError(`error: cannot reach any member: ${list}\n${START_HINT}`, 1, {
    code: 'UNREACHABLE',
    message: `cannot reach any member: ${list}`,
  });
}

/** The URLs to try first: the given list, or the slots of `npm start`. */
export function candidates(ctx: CommandContext, role: Role): URL[] {
  return role === 'admin' ? ctx.target.admins : ctx.target.apis;
}

/**
 * More members to try: the local cluster's further slots (when npm start runs more than three)
 * and the members that /_cluster/status of any reachable admin lists.
 */
export async function discover(ctx: CommandContext, role: Role): Promise<URL[]> {
  const found: URL[] = [];
  const add = (u: URL) => {
    if (!found.some((f) => f.href === u.href)) found.push(u);
  };
  if (!ctx.target.explicitAdmin && !ctx.target.explicitApi) {
    const replicas = await localReplicas(ctx);
    const offset = role === 'admin' ? 200 : 100;
    for (let k = LOCAL_SLOTS; k < replicas; k++)
      add(new URL(`http://127.0.0.1:${ctx.target.basePort + offset + k}`));
  }
  const statuses = await Promise.all(
    ctx.target.admins.map((a) =>
      httpCall(a, { method: 'GET', path: '/_cluster/status', tls: ctx.target.tls, timeoutMs: 3_000 }).then(
        (answer) =>
          answer.status === 200 ? clusterStatusSchema.safeParse(JSON.parse(answer.body.toString())) : null,
        () => null,
      ),
    ),
  );
  for (const s of statuses) {
    if (!s?.success) continue;
    for (const m of Object.values(s.data.nodes)) {
      const address = role === 'admin' ? m.admin_address : m.api_address;
      if (address) add(withAddress(ctx.target.adminUrl, address));
    }
  }
  return found;
}

/** The replicas the npm start control endpoint asks for (0 if it does not answer). */
export async function localReplicas(ctx: CommandContext): Promise<number> {
  if (!ctx.target.controlUrl) return 0;
  try {
    const answer = await httpCall(ctx.target.controlUrl, {
      method: 'GET',
      path: '/apis/conflux.io/v1alpha1/namespaces/default/confluxclusters/local',
      timeoutMs: 1_000,
    });
    if (answer.status !== 200) return 0;
    const c = JSON.parse(answer.body.toString('utf8')) as {
      spec?: { replicas?: number };
      status?: { replicas?: number };
    };
    return Math.max(c.spec?.replicas ?? 0, c.status?.replicas ?? 0);
  } catch {
    return 0;
  }
}

/** `host:port` as a URL with the scheme of `like`. */
export function withAddress(like: URL, address: string): URL {
  return new URL(`${like.protocol}//${address}`);
}

/** Where member `id` serves `role`, as `asked` knows it (from its /_cluster/status). */
async function memberUrl(ctx: CommandContext, role: Role, asked: URL, id: string): Promise<URL | undefined> {
  const admins = role === 'admin' ? [asked, ...ctx.target.admins] : ctx.target.admins;
  for (const admin of admins) {
    try {
      const answer = await httpCall(admin, {
        method: 'GET',
        path: '/_cluster/status',
        tls: ctx.target.tls,
        timeoutMs: 3_000,
      });
      if (answer.status !== 200) continue;
      const s = clusterStatusSchema.safeParse(JSON.parse(answer.body.toString('utf8')));
      const m = s.success ? s.data.nodes[id] : undefined;
      const address = role === 'admin' ? m?.admin_address : m?.api_address;
      if (address) return withAddress(asked, address);
    } catch {
      // ask the next one
    }
  }
  return undefined;
}
