// The chaos network: one Linux network namespace per Conflux node, each joined by a veth pair to a
// bridge in the root namespace, on a private 10.77.<net>.0/24 subnet. Clients reach every node from
// the root namespace over the bridge. Partitions are nftables drop rules inside the namespaces.
//
// Nodes run with --dev-insecure, which only binds loopback addresses: inside each namespace an
// nftables DNAT rule forwards the namespace address to 127.0.0.1 (with route_localnet), so nodes
// listen on loopback and advertise their namespace address to peers and clients.

import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The ports every node uses inside its own namespace. */
export const PORTS = { raft: 7000, api: 8080, admin: 8443 } as const;

/** Which peers a node drops: `all` traffic from them, or only connections they `initiate`. */
export interface Blocks {
  all: Set<number>;
  initiated: Set<number>;
}

/** Slot -> what it drops. Slots are 1-based node positions; a slot keeps its namespace and address. */
export type PartitionRules = Map<number, Blocks>;

const CHAOS_TABLE = 'conflux-chaos';

/** What the chaos harness needs from the host; the message says exactly what is missing. */
export function checkHost(): void {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (network namespaces need CAP_NET_ADMIN)');
  for (const [cmd, pkg] of [
    ['ip', 'iproute2'],
    ['nft', 'nftables'],
  ] as const) {
    try {
      execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    } catch {
      missing.push(`the ${cmd} command (Debian package ${pkg}: apt-get install -y ${pkg})`);
    }
  }
  if (missing.length === 0) {
    try {
      execFileSync('ip', ['netns', 'list'], { stdio: 'pipe' });
    } catch (err) {
      missing.push(`a usable "ip netns" (${(err as Error).message.split('\n')[0]})`);
    }
  }
  if (missing.length > 0)
    throw new Error(`the chaos harness cannot run on this host; missing: ${missing.join('; ')}`);
}

export class ChaosNetwork {
  /** Names start with `cfxc<net>-`, short enough for the 15-character interface name limit. */
  readonly prefix: string;

  constructor(
    readonly net: number,
    readonly slots: number,
  ) {
    if (!Number.isInteger(net) || net < 1 || net > 250) throw new RangeError('net must be 1..250');
    this.prefix = `cfxc${net}-`;
  }

  ns(slot: number): string {
    return `${this.prefix}n${slot}`;
  }

  ip(slot: number): string {
    return `10.77.${this.net}.${10 + slot}`;
  }

  /** The root namespace's address on the bridge (where clients come from). */
  get hostIp(): string {
    return `10.77.${this.net}.1`;
  }

  private get bridge(): string {
    return `${this.prefix}br`;
  }

  async setup(): Promise<void> {
    this.teardownSync();
    await ip('link', 'add', this.bridge, 'type', 'bridge');
    await ip('addr', 'add', `${this.hostIp}/24`, 'dev', this.bridge);
    await ip('link', 'set', this.bridge, 'up');
    for (let s = 1; s <= this.slots; s++) await this.addNamespace(s);
  }

  private async addNamespace(slot: number): Promise<void> {
    const ns = this.ns(slot);
    const host = `${this.prefix}v${slot}`;
    const peer = `${this.prefix}p${slot}`;
    await ip('netns', 'add', ns);
    await ip('link', 'add', host, 'type', 'veth', 'peer', 'name', peer);
    await ip('link', 'set', host, 'master', this.bridge, 'up');
    await ip('link', 'set', peer, 'netns', ns);
    await ip('-n', ns, 'link', 'set', peer, 'name', 'eth0');
    await ip('-n', ns, 'addr', 'add', `${this.ip(slot)}/24`, 'dev', 'eth0');
    await ip('-n', ns, 'link', 'set', 'eth0', 'up');
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    await run('ip', [
      'netns',
      'exec',
      ns,
      'sysctl',
      '-qw',
      'net.ipv4.conf.all.route_localnet=1',
      'net.ipv4.conf.eth0.route_localnet=1',
    ]);
    const ports = Object.values(PORTS).join(', ');
    await nft(
      ns,
      [
        'table ip conflux-nat {',
        '  chain prerouting {',
        '    type nat hook prerouting priority -100;',
        `    ip daddr ${this.ip(slot)} tcp dport { ${ports} } dnat to 127.0.0.1`,
        '  }',
        '}',
      ].join('\n'),
    );
  }

  /** Replace every node's drop rules at once (slots not in `rules` drop nothing). */
  async partition(rules: PartitionRules): Promise<void> {
    for (let s = 1; s <= this.slots; s++) {
      const b = rules.get(s);
      const lines = [`add table inet ${CHAOS_TABLE}`, `delete table inet ${CHAOS_TABLE}`];
      if (b && (b.all.size > 0 || b.initiated.size > 0)) {
        const addrs = (set: Set<number>) => [...set].map((x) => this.ip(x)).join(', ');
        lines.push(
          `table inet ${CHAOS_TABLE} {`,
          '  chain input {',
          '    type filter hook input priority 0;',
        );
        if (b.all.size > 0) lines.push(`    ip saddr { ${addrs(b.all)} } counter drop`);
        // Connections the peer dials are dropped; those this node dials still carry both ways.
        if (b.initiated.size > 0)
          lines.push(`    ip saddr { ${addrs(b.initiated)} } ct direction original counter drop`);
        lines.push('  }', '}');
      }
      await nft(this.ns(s), lines.join('\n'));
    }
  }

  /** Packets the current drop rules have dropped, over all namespaces: proof a partition bit. */
  async droppedPackets(): Promise<number> {
    let total = 0;
    for (let s = 1; s <= this.slots; s++) {
      try {
        const { stdout } = await run('ip', [
          'netns',
          'exec',
          this.ns(s),
          'nft',
          'list',
          'table',
          'inet',
          CHAOS_TABLE,
        ]);
        for (const m of stdout.matchAll(/counter packets (\d+)/g)) total += Number(m[1]);
      } catch {
        // no rules in this namespace
      }
    }
    return total;
  }

  async heal(): Promise<void> {
    await this.partition(new Map());
  }

  /** Remove everything with this prefix: processes in the namespaces, namespaces, links. */
  teardownSync(): void {
    const list = (args: string[]) => {
      try {
        return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      } catch {
        return '';
      }
    };
    const namespaces = list(['netns', 'list'])
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter((n) => n.startsWith(this.prefix));
    for (const ns of namespaces) {
      for (const pid of list(['netns', 'pids', ns]).split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
      list(['netns', 'del', ns]);
    }
    const links = list(['-o', 'link', 'show'])
      .split('\n')
      .map((l) => /^\d+:\s+([^:@]+)/.exec(l)?.[1] ?? '')
      .filter((n) => n.startsWith(this.prefix));
    for (const link of links) list(['link', 'del', link]);
  }
}

async function ip(...args: string[]): Promise<void> {
  try {
    await run('ip', args);
  } catch (err) {
    throw new Error(`ip ${args.join(' ')} failed: ${(err as { stderr?: string }).stderr ?? err}`);
  }
}

async function nft(ns: string, script: string): Promise<void> {
  const child = execFile('ip', ['netns', 'exec', ns, 'nft', '-f', '-']);
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += String(d);
  });
  child.stdin?.end(script);
  const code = await new Promise<number | null>((ok) => child.once('exit', ok));
  if (code !== 0) throw new Error(`nft in ${ns} failed (${code}): ${stderr.trim()}\n${script}`);
}
