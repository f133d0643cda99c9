// The README, walked as a new user types it: `npm start` (operator/local.ts, what `npm start` runs
// once built, here from source on ports of its own), the five-minute tour, then the second day:
// a restart, a crash (kill -9 of the whole process group), a member whose data is lost, a lost
// quorum recovered with spec.recovery, the restore drill and a certificate rotation by hand. Every
// step runs the real `conflux` CLI (operator/cli.ts in a child process) against real processes,
// and checks what the README says the user will see. The README's own lines are checked against
// the CLI's flags in e2e/readme-walk-docs.test.ts.

import { type ChildProcess, spawn } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConfluxCluster } from '../operator/api/cluster.js';
import { type CliRun, cleanEnv, conflux, REPO, startConflux } from './support/cli-run.js';
import { until } from './support/local-operator.js';

// Ports BASE-1 .. BASE+204: below the ephemeral range (32768+, where other suites' free ports and
// outgoing connections live) and away from the other suites' ranges (cli 12000+, data-dir-loss
// 18000+, local-restart 20000+, npm-start 28400+).
const BASE = 10_000 + 400 * Math.floor(Math.random() * 4);
const CONTROL = `http://127.0.0.1:${BASE - 1}/apis/conflux.io/v1alpha1/namespaces/default/confluxclusters`;

describe('the README, first and second day', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conflux-readme-'));
  const root = join(dir, '.conflux');
  let run: { child: ChildProcess; out: () => string; exit: Promise<void> } | undefined;
  const extra: ChildProcess[] = [];

  afterAll(async () => {
    for (const c of extra) c.kill('SIGKILL');
    if (run?.child.pid && run.child.exitCode === null && run.child.signalCode === null) {
      process.kill(-run.child.pid, 'SIGKILL');
      await run.exit;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** `npm start`: the operator on this machine, in its own process group, as a terminal runs it. */
  function npmStart() {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(REPO, 'operator/local.ts'), '--root', root],
      {
        cwd: REPO,
        env: cleanEnv({ CONFLUX_BASE_PORT: String(BASE) }),
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      },
    );
    let out = '';
    child.stdout?.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => (out += d));
    const exit = new Promise<void>((ok) => child.once('exit', () => ok()));
    run = { child, out: () => out, exit };
    return run;
  }

  const running = (r: NonNullable<typeof run>, ms = 120_000) =>
    until(
      'Conflux is running',
      () => r.out().includes('Conflux is running: cluster "local" with 3 members'),
      ms,
    );

  /** `npx conflux ARGS`, as the README types it (CONFLUX_BASE_PORT set as npm start had it). */
  const cli = (args: string[]): Promise<CliRun> => conflux(args, { CONFLUX_BASE_PORT: String(BASE) });
  const ok = async (args: string[]) => {
    const r = await cli(args);
    expect(r.code, `conflux ${args.join(' ')}\n${r.out}\n${r.err}`).toBe(0);
    return r.out;
  };

  const cluster = async (name = 'local'): Promise<ConfluxCluster | null> => {
    const res = await fetch(`${CONTROL}/${name}`).catch(() => null);
    return res?.status === 200 ? ((await res.json()) as ConfluxCluster) : null;
  };
  const settled = (c: ConfluxCluster | null, replicas: number) =>
    c?.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True' &&
    c.status.readyReplicas === replicas &&
    c.status.members?.length === replicas &&
    c.status.members.every((m) => m.reachable && (m.role === 'Leader' || m.role === 'Follower')) &&
    !c.status.operation;
  const until3 = (what: string, ms = 90_000) =>
    until(what, async () => ((await cluster()) && settled(await cluster(), 3) ? true : undefined), ms);
  const slots = () =>
    JSON.parse(readFileSync(join(root, 'default/local/slots.json'), 'utf8')) as {
      slots: Record<string, { pid: number | null; api: number }>;
    };
  const volume = (k: number) => join(root, 'default/local/volumes', `local-${k}`);
  const reasons = async () =>
    ((await cli(['cluster', 'events', 'local'])).out.match(/ (Normal|Warning) {2}(\w+)/g) ?? []).join();

  it('first day: npm start prints the endpoints the README names', async () => {
    const r = npmStart();
    await running(r);
    for (let k = 0; k < 3; k++) {
      expect(r.out()).toContain(
        `local-${k}  client API http://127.0.0.1:${BASE + 100 + k}   admin http://127.0.0.1:${BASE + 200 + k}`,
      );
    }
    expect(r.out()).toContain(
      `curl -X PUT http://127.0.0.1:${BASE - 1}/apis/conflux.io/v1alpha1/namespaces/default/confluxclusters/local/scale`,
    );
    // The README's curl lines: any node takes a write, a serializable read answers raw.
    const put = await fetch(`http://127.0.0.1:${BASE + 100}/v1/kv/app/greeting`, {
      method: 'PUT',
      body: 'hello',
    });
    expect(put.status).toBe(200);
    const raw = await fetch(
      `http://127.0.0.1:${BASE + 102}/v1/kv/app/greeting?consistency=serializable&raw=1`,
    );
    expect(await raw.text()).toBe('hello');
    await until3('the cluster to settle');
  }, 150_000);

  it('the five-minute tour', async () => {
    const status = await ok(['status']);
    expect(status).toMatch(/fault tolerance: 1 \(of 3 voters\)/);
    expect(await ok(['kv', 'put', 'app/greeting', 'hello'])).toMatch(/^OK app\/greeting \(revision \d+\)/);
    const watch = startConflux(['kv', 'watch', 'app/'], { CONFLUX_BASE_PORT: String(BASE) });
    extra.push(watch.child);
    await new Promise((r) => setTimeout(r, 2_500)); // the watch is established
    await ok(['kv', 'put', 'app/greeting', 'hello again']);
    await until('the watch to print the change', () => watch.out().includes('hello again'), 20_000);
    watch.child.kill('SIGINT');

    expect(await ok(['scale', '5'])).toMatch(/^local: 3 → 5 replicas requested/);
    await until('five members', async () => (settled(await cluster(), 5) ? true : undefined), 120_000);
    expect(await ok(['status'])).toMatch(/fault tolerance: 2 \(of 5 voters\)/);
    expect(await ok(['leader', 'transfer'])).toMatch(/^leader is now \S+ \(term \d+\), was \S+/);
    const backup = await ok(['backup', '--destination', `file://${dir}/conflux-backups`]);
    expect(backup).toMatch(new RegExp(`^backup written: file://${dir}/conflux-backups/\\S+\\.snap`));
    expect(await ok(['scale', '3'])).toMatch(/^local: 5 → 3 replicas requested/);
    await until3('three members again', 120_000);
    const get = await ok(['cluster', 'get', 'local']);
    expect(get).toMatch(/^local: Running, 3\/3 ready, leader local-\d-[0-9a-f]{8}/);
    expect(get).toContain(
      `local-0  ready  api http://127.0.0.1:${BASE + 100}  admin http://127.0.0.1:${BASE + 200}`,
    );
  }, 300_000);

  it('restart: Ctrl-C and npm start again, the data is still there', async () => {
    const first = run as NonNullable<typeof run>;
    process.kill(-(first.child.pid as number), 'SIGINT');
    await first.exit;
    expect(first.out()).toContain('Stopping…');
    const again = npmStart();
    await running(again);
    await until3('the cluster after the restart');
    expect((await ok(['kv', 'get', 'app/greeting'])).trim()).toBe('hello again');
  }, 150_000);

  it('crash: kill -9 of the whole process group, then npm start resumes', async () => {
    const first = run as NonNullable<typeof run>;
    process.kill(-(first.child.pid as number), 'SIGKILL');
    await first.exit;
    const again = npmStart();
    await running(again);
    await until3('the cluster after the crash');
    expect((await ok(['kv', 'get', 'app/greeting'])).trim()).toBe('hello again');
  }, 150_000);

  it('a member is lost: its data dir deleted shows in /readyz, and the operator replaces it', async () => {
    const api = `http://127.0.0.1:${BASE + 102}`;
    const idBefore = ((await (await fetch(`${api}/readyz`)).json()) as { node: string }).node;
    rmSync(volume(2), { recursive: true, force: true });
    const readyz = await until(
      'local-2 to report its data directory',
      async () => {
        const r = await fetch(`${api}/readyz`).catch(() => null);
        const doc = r ? ((await r.json()) as { dataDir?: string }) : null;
        return doc?.dataDir ? doc : undefined;
      },
      20_000,
    );
    expect(readyz.dataDir).toBe(`data directory ${volume(2)} was deleted while the node ran`);
    // Stop its process: the slot starts again empty, under a new id, and the member is replaced.
    process.kill(slots().slots['2']?.pid as number, 'SIGKILL');
    await until(
      'the replacement',
      async () => ((await reasons()).includes('MemberReplaced') ? true : undefined),
      120_000,
    );
    await until3('three healthy members');
    const idAfter = ((await (await fetch(`${api}/readyz`)).json()) as { node: string }).node;
    expect(idAfter).toMatch(/^local-2-[0-9a-f]{8}$/);
    expect(idAfter).not.toBe(idBefore);
    expect(await reasons()).toContain('ReplacingMember');
    expect((await ok(['kv', 'get', 'app/greeting', '--api', api])).trim()).toBe('hello again');
  }, 200_000);

  it('quorum is lost: status exits 1, serializable reads answer, spec.recovery rebuilds from the survivor', async () => {
    const before = (await cluster())?.status?.clusterId;
    const doc = slots();
    for (const k of [1, 2]) rmSync(volume(k), { recursive: true, force: true });
    for (const k of ['1', '2']) process.kill(doc.slots[k]?.pid as number, 'SIGKILL');
    const lost = await until(
      'conflux status to say the quorum is lost',
      async () => {
        const r = await cli(['status']);
        return r.code === 1 && /quorum lost/.test(r.err) ? r : undefined;
      },
      60_000,
    );
    expect(lost.err).toMatch(/^error: QUORUM_LOST: quorum lost: 1 of 3 voters reachable, 2 needed/m);
    expect(
      (await ok(['kv', 'get', 'app/greeting', '--serializable', '--api', `127.0.0.1:${BASE + 100}`])).trim(),
    ).toBe('hello again');
    // A slot that came back empty answers NOT_INITIALIZED rather than an empty store.
    const empty = await until(
      'local-1 back, empty',
      async () => {
        const r = await fetch(
          `http://127.0.0.1:${BASE + 101}/v1/kv/app/greeting?consistency=serializable`,
        ).catch(() => null);
        return r?.status === 503 ? ((await r.json()) as { error: { code: string } }) : undefined;
      },
      30_000,
    );
    expect(empty.error.code).toBe('NOT_INITIALIZED');
    await until(
      'the QuorumLost warning',
      async () => ((await reasons()).includes('QuorumLost') ? true : undefined),
      60_000,
    );

    expect(
      await ok([
        'cluster',
        'patch',
        'local',
        '-p',
        '{"spec":{"recovery":{"forceNewClusterFrom":"local-0"}}}',
      ]),
    ).toBe('confluxcluster/local patched\n');
    await until3('the recovered cluster', 180_000);
    const get = await ok(['cluster', 'get', 'local']);
    expect(get).toMatch(/recovered from local-0 at \S+ \(old cluster \S+, request local-0\)/);
    expect((await cluster())?.status?.clusterId).not.toBe(before);
    expect(await reasons()).toContain('QuorumRecovered');
    expect(await ok(['cluster', 'patch', 'local', '-p', '{"spec":{"recovery":null}}'])).toBe(
      'confluxcluster/local patched\n',
    );
    expect((await cluster())?.spec.recovery).toBeUndefined();
    expect((await ok(['kv', 'get', 'app/greeting'])).trim()).toBe('hello again');
  }, 300_000);

  it('restore drill: a second ConfluxCluster restored from the newest backup, compared, deleted', async () => {
    const backup = await ok(['backup', '--destination', `file://${dir}/conflux-backups`, '--force']);
    const uri = /^backup written: (\S+)/.exec(backup)?.[1] as string;
    const clusterId = (await cluster())?.status?.clusterId as string;
    writeFileSync(
      join(dir, 'drill.yaml'),
      [
        'apiVersion: conflux.io/v1alpha1',
        'kind: ConfluxCluster',
        'metadata: {name: drill}',
        `spec: {replicas: 1, restore: {snapshotUri: "${uri}", expectedClusterId: "${clusterId}"}}`,
        '',
      ].join('\n'),
    );
    expect(await ok(['cluster', 'apply', '-f', join(dir, 'drill.yaml')])).toBe(
      'confluxcluster/drill created\n',
    );
    const get = await until(
      'the drill to be Running',
      async () => {
        const out = (await cli(['cluster', 'get', 'drill'])).out;
        return /^drill: Running, 1\/1 ready/.test(out) ? out : undefined;
      },
      120_000,
    );
    expect(get).toContain(`restored from ${uri} (cluster ${clusterId})`);
    const api = /drill-0 {2}ready {2}api (\S+)/.exec(get)?.[1] as string;
    expect((await ok(['--api', api, 'kv', 'get', 'app/greeting'])).trim()).toBe('hello again');
    expect(await ok(['cluster', 'delete', 'drill'])).toMatch(/^confluxcluster\/drill deleted/);
    expect((await cli(['cluster', 'get', 'drill'])).err).toMatch(
      /^error: NotFound: confluxclusters "drill" not found/,
    );
    await until(
      'the drill node to stop',
      async () => ((await fetch(`${api}/readyz`).catch(() => null)) ? undefined : true),
      30_000,
    );
  }, 200_000);

  it('certificate rotation by hand, as the README types it', async () => {
    const certs = join(dir, 'certs');
    mkdirSync(certs);
    const inCerts = (args: string[]) => conflux(args, { CONFLUX_BASE_PORT: String(BASE) });
    for (const set of ['old', 'new'])
      expect((await inCerts(['certs', '--out', join(certs, set), '--nodes', 'n1'])).code).toBe(0);
    const tls = join(certs, 'tls');
    mkdirSync(tls);
    copyFileSync(join(certs, 'old/ca.crt'), join(tls, 'ca.crt'));
    copyFileSync(join(certs, 'old/n1.crt'), join(tls, 'tls.crt'));
    copyFileSync(join(certs, 'old/n1.key'), join(tls, 'tls.key'));
    const [raft, api, admin] = [BASE + 3, BASE + 103, BASE + 203];
    const node = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'node/main.ts',
        '--node-id',
        'n1',
        '--data-dir',
        join(dir, 'n1'),
        '--raft-addr',
        `127.0.0.1:${raft}`,
        '--api-addr',
        `127.0.0.1:${api}`,
        '--admin-addr',
        `127.0.0.1:${admin}`,
        '--initial-cluster',
        `n1=127.0.0.1:${raft}/127.0.0.1:${api}/127.0.0.1:${admin}`,
        '--tls-cert',
        join(tls, 'tls.crt'),
        '--tls-key',
        join(tls, 'tls.key'),
        '--tls-ca',
        join(tls, 'ca.crt'),
        '--tls-reload-interval-ms',
        '500',
      ],
      { cwd: REPO, env: cleanEnv(), stdio: 'ignore' },
    );
    extra.push(node);
    const status = (set: string) =>
      conflux([
        'status',
        '--admin',
        `https://127.0.0.1:${admin}`,
        '--api',
        `https://127.0.0.1:${api}`,
        '--cert',
        join(certs, set, 'admin.crt'),
        '--key',
        join(certs, set, 'admin.key'),
        '--ca',
        join(certs, set, 'ca.crt'),
      ]);
    const answers = async (set: string) => (await status(set)).code === 0;
    await until('the TLS node', async () => ((await answers('old')) ? true : undefined), 60_000);
    expect(await answers('new')).toBe(false);
    // 1. Trust both CAs.
    writeFileSync(
      join(tls, 'ca.crt.tmp'),
      readFileSync(join(certs, 'old/ca.crt'), 'utf8') + readFileSync(join(certs, 'new/ca.crt'), 'utf8'),
    );
    renameSync(join(tls, 'ca.crt.tmp'), join(tls, 'ca.crt'));
    // 2. The new certificate (key first, then the certificate, each renamed into place).
    await new Promise((r) => setTimeout(r, 1_500));
    copyFileSync(join(certs, 'new/n1.crt'), join(tls, 'tls.crt.tmp'));
    copyFileSync(join(certs, 'new/n1.key'), join(tls, 'tls.key.tmp'));
    renameSync(join(tls, 'tls.key.tmp'), join(tls, 'tls.key'));
    renameSync(join(tls, 'tls.crt.tmp'), join(tls, 'tls.crt'));
    await until(
      'the node to serve the new certificate',
      async () => ((await answers('new')) ? true : undefined),
      20_000,
    );
    // 3. Drop the old CA: a client certificate of the old CA is refused.
    copyFileSync(join(certs, 'new/ca.crt'), join(tls, 'ca.crt.tmp'));
    renameSync(join(tls, 'ca.crt.tmp'), join(tls, 'ca.crt'));
    const refused = await until(
      'the old CA to be dropped',
      async () => {
        const r = await conflux([
          'status',
          '--admin',
          `https://127.0.0.1:${admin}`,
          '--cert',
          join(certs, 'old/admin.crt'),
          '--key',
          join(certs, 'old/admin.key'),
          '--ca',
          join(certs, 'new/ca.crt'),
        ]);
        return r.code !== 0 ? r : undefined;
      },
      20_000,
    );
    expect(refused.err).toMatch(
      /^error: cannot reach any member: 127\.0\.0\.1:\d+ \(client certificate refused/,
    );
    expect(await answers('new')).toBe(true);
    node.kill('SIGTERM');
  }, 120_000);
});
