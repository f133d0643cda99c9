// The `conflux` CLI against a real three-node cluster in this process (plain HTTP, --dev-insecure).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessCluster, startInProcess, startPristine } from '../e2e/support/in-process-cluster.js';
import { freePort } from '../e2e/support/process-cluster.js';
import { clusterStatusSchema, leaderResponseSchema } from '../node/api/admin-contract.js';
import { runConflux } from './cli/program.js';

interface Run {
  code: number;
  out: string;
  err: string;
}

let cluster: InProcessCluster;
let target: string[];
let backupDir: string;
let backupUri = '';

async function conflux(...argv: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runConflux(
    argv,
    { stdout: (t) => out.push(t), stderr: (t) => err.push(t) },
    { env: {}, pollMs: 50 },
  );
  return { code, out: out.join('\n'), err: err.join('\n') };
}

beforeAll(async () => {
  cluster = await startInProcess(['n1', 'n2', 'n3']);
  const p = cluster.ports[0]!;
  target = ['--admin', `http://127.0.0.1:${p.admin}`, '--api', `http://127.0.0.1:${p.api}`];
  backupDir = mkdtempSync(join(tmpdir(), 'conflux-cli-backup-'));
}, 20_000);

afterAll(async () => {
  await cluster?.stop();
  if (backupDir) rmSync(backupDir, { recursive: true, force: true });
});

describe('conflux CLI', () => {
  it('status prints every member and the leader', async () => {
    const r = await conflux('status', ...target);
    expect(r.code, r.err).toBe(0);
    for (const id of ['n1', 'n2', 'n3']) expect(r.out).toContain(id);
    const leaderId = ['n1', 'n2', 'n3'][cluster.nodes.indexOf(cluster.leader()!)];
    expect(r.out).toMatch(new RegExp(`leader:\\s+${leaderId}\n`));
    expect(r.out).toContain('Leader');
    expect(r.out).toMatch(/fault tolerance:\s+1/);
  });

  it('status --json prints the /_cluster/status document', async () => {
    // Global options may also come before the command.
    const r = await conflux(...target, '--json', 'status');
    expect(r.code, r.err).toBe(0);
    const doc = clusterStatusSchema.parse(JSON.parse(r.out));
    expect(Object.keys(doc.nodes).sort()).toEqual(['n1', 'n2', 'n3']);
  });

  it('kv put, get, ls (paged), del round trip', async () => {
    expect((await conflux('kv', 'put', 'app/a', 'one', ...target)).code).toBe(0);
    const put = await conflux('kv', 'put', 'app/b', 'two', ...target);
    expect(put.code, put.err).toBe(0);
    expect(put.out).toMatch(/OK app\/b \(revision \d+\)/);
    expect((await conflux('kv', 'put', 'app/c', 'three', ...target)).code).toBe(0);

    const get = await conflux('kv', 'get', 'app/b', ...target);
    expect(get).toMatchObject({ code: 0, out: 'two' });
    const getJson = await conflux('kv', 'get', 'app/b', '--json', ...target);
    expect(JSON.parse(getJson.out)).toMatchObject({ key: 'app/b', value: 'two', version: 1 });

    const ls = await conflux('kv', 'ls', 'app/', '--page-size', '2', ...target);
    expect(ls.code, ls.err).toBe(0);
    expect(ls.out.split('\n')).toEqual(['app/a\tone', 'app/b\ttwo', 'app/c\tthree']);
    // --json: one pretty-printed document of the API's shape holding every page.
    const lsJson = await conflux('kv', 'ls', 'app/', '--page-size', '2', '--json', ...target);
    expect(lsJson.out).toContain('\n  "kvs": [');
    const all = JSON.parse(lsJson.out) as { kvs: { key: string }[]; more: boolean; revision: number };
    expect(all.kvs.map((kv) => kv.key)).toEqual(['app/a', 'app/b', 'app/c']);
    expect(all.more).toBe(false);

    const del = await conflux('kv', 'del', 'app/b', ...target);
    expect(del.code, del.err).toBe(0);
    expect(del.out).toContain('deleted app/b');
    const gone = await conflux('kv', 'get', 'app/b', ...target);
    expect(gone.code).toBe(1);
    expect(gone.err).toMatch(/^error: KEY_NOT_FOUND: /);
    // With --json the error is a document on stderr.
    const goneJson = await conflux('kv', 'get', 'app/b', '--json', ...target);
    expect(goneJson.code).toBe(1);
    expect(JSON.parse(goneJson.err)).toEqual({
      error: { code: 'KEY_NOT_FOUND', message: expect.any(String) },
    });
  });

  it('kv watch --once prints the events since a revision', async () => {
    const put = await conflux('kv', 'put', 'w/x', 'v1', '--json', ...target);
    const rev = (JSON.parse(put.out) as { revision: number }).revision;
    const r = await conflux(
      'kv',
      'watch',
      'w/',
      '--from',
      String(rev),
      '--once',
      '--timeout-ms',
      '1000',
      ...target,
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(`${rev} PUT w/x = v1`);
  });

  it('leader transfer changes the leader', async () => {
    const before = leaderResponseSchema.parse(JSON.parse((await conflux('leader', '--json', ...target)).out));
    const to = ['n1', 'n2', 'n3'].find((id) => id !== before.leader_id)!;
    const r = await conflux('leader', 'transfer', to, ...target);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(`leader is now ${to}`);
    const after = await conflux('leader', ...target);
    expect(after.out).toContain(`leader ${to}`);
  });

  it('backup to a file:// destination names the URI', async () => {
    const destination = `file://${backupDir}`;
    const r = await conflux('backup', '--destination', destination, '--force', ...target);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(new RegExp(`backup written: ${destination}/\\S+`));
    backupUri = /backup written: (\S+)/.exec(r.out)?.[1] ?? '';
  });

  it('restore into an empty node prints progress, then the result', async () => {
    const status = clusterStatusSchema.parse(JSON.parse((await conflux('status', '--json', ...target)).out));
    const node = await startPristine('r1', backupDir);
    try {
      const admin = `http://${node.addresses.admin_address}`;
      const r = await conflux(
        'restore',
        backupUri,
        '--expected-cluster-id',
        status.cluster_id!,
        '--admin',
        admin,
      );
      expect(r.code, r.err).toBe(0);
      const [first, second] = r.out.split('\n');
      expect(first).toMatch(/^restoring .*…$/);
      expect(second).toMatch(/^restored \d+ keys at revision \d+ into node r1/);
      const again = await conflux(
        'restore',
        backupUri,
        '--expected-cluster-id',
        'another-cluster',
        '--admin',
        admin,
      );
      expect(again.code).toBe(1);
      expect(again.err).toMatch(/^error: [A-Z_]+: /);
    } finally {
      await node.stop();
    }
  });

  it('nodes add polls the operation until the node is a voter', async () => {
    const node = await startPristine('n4', cluster.dir);
    try {
      const a = node.addresses;
      const r = await conflux(
        'nodes',
        'add',
        'n4',
        '--api',
        a.api_address,
        '--raft',
        a.raft_address,
        '--admin-addr',
        a.admin_address,
        '--admin',
        target[1]!,
      );
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/add-node n4: succeeded/);
      const s = clusterStatusSchema.parse(JSON.parse((await conflux('status', '--json', ...target)).out));
      expect(s.nodes.n4?.voter).toBe(true);
      const rm = await conflux('nodes', 'remove', 'n4', ...target);
      expect(rm.code, rm.err).toBe(0);
      expect(rm.out).toMatch(/remove-node n4: succeeded/);
    } finally {
      await node.stop();
    }
  });

  it('an unreachable admin API prints the npm start hint and exits 1', async () => {
    const port = await freePort();
    const r = await conflux('status', '--admin', `http://127.0.0.1:${port}`);
    expect(r.code).toBe(1);
    expect(r.err).toContain('is the cluster running? npm start');
  });

  it('with --json, usage errors and unreachable clusters are JSON on stderr too', async () => {
    const usage = await conflux('kv', 'get', '--json');
    expect(usage.code).toBe(2);
    expect(JSON.parse(usage.err)).toMatchObject({
      error: { code: 'USAGE', message: expect.stringMatching(/key/) },
    });
    const port = await freePort();
    const down = await conflux('status', '--json', '--admin', `http://127.0.0.1:${port}`);
    expect(down.code).toBe(1);
    expect(down.out).toBe('');
    expect(JSON.parse(down.err)).toMatchObject({
      error: { code: 'UNREACHABLE', message: expect.stringContaining(String(port)) },
    });
  });

  it('a list of members: the first does not answer, the next does', async () => {
    const port = await freePort();
    const admins = [`http://127.0.0.1:${port}`, target[1]].join(',');
    const apis = [`http://127.0.0.1:${port}`, target[3]].join(',');
    const put = await conflux('kv', 'put', 'list/a', 'x', '--admin', admins, '--api', apis);
    expect(put.code, put.err).toBe(0);
    const status = await conflux('status', '--admin', admins, '--api', apis);
    expect(status.code, status.err).toBe(0);
    expect(status.out).toContain(`problem:         127.0.0.1:${port} does not answer`);
  });

  it('bad usage exits 2', async () => {
    expect((await conflux('frobnicate')).code).toBe(2);
    expect((await conflux('kv', 'get')).code).toBe(2);
    expect((await conflux('scale', 'many')).code).toBe(2);
    expect((await conflux('kv', 'put', 'k', ...target)).code).toBe(2); // neither VALUE nor --file
    const remote = await conflux('scale', '5', '--admin', 'https://conflux.example.com:7300');
    expect(remote.code).toBe(2);
    expect(remote.err).toContain('kubectl scale confluxcluster/');
  });

  it('nodes remove follows the operation to its end', async () => {
    const r = await conflux('nodes', 'remove', 'n3', ...target);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/remove-node n3: succeeded/);
    const s = clusterStatusSchema.parse(JSON.parse((await conflux('status', '--json', ...target)).out));
    expect(Object.keys(s.nodes)).not.toContain('n3');
  });
});
