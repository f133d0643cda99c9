// Unit tests of the pod runner's mapping rules: env resolution and rewriting, loopback addresses.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod, V1Secret } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { type ConfluxCluster, confluxClusterSchema } from '../../operator/api/cluster.js';
import { buildStatefulSet, DEV_INSECURE_ANNOTATION } from '../../operator/platform/kubernetes-objects.js';
import { LoopbackAddresses } from './pod-runner-addresses.js';
import {
  ContainerConfigError,
  containerEnv,
  type EnvSources,
  expandVars,
  hostEnv,
  mapMountPath,
  mapPodDnsNames,
} from './pod-runner-env.js';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'pod-runner-unit-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function cluster(
  spec: Record<string, unknown> = {},
  annotations: Record<string, string> = {},
): ConfluxCluster {
  return confluxClusterSchema.parse({
    apiVersion: 'conflux.io/v1alpha1',
    kind: 'ConfluxCluster',
    metadata: { name: 'demo', namespace: 'db', uid: 'uid-1', annotations },
    spec,
  });
}

function podOf(c: ConfluxCluster, ordinal: number): V1Pod {
  const sts = buildStatefulSet(c, 3);
  return {
    metadata: { name: `demo-${ordinal}`, namespace: 'db', uid: `pod-uid-${ordinal}` },
    spec: sts.spec!.template.spec!,
  };
}

const noSources: EnvSources = { secret: async () => null, configMap: async () => null };
const mounts = [
  { mountPath: '/data', hostPath: '/r/pvc/db/data-demo-0' },
  { mountPath: '/tls', hostPath: '/r/secrets/db/demo-0/tls' },
];

describe('expandVars', () => {
  const vars = new Map([
    ['A', 'x'],
    ['B', 'y'],
  ]);
  const lookup = (n: string) => vars.get(n);
  it('expands known references, keeps unknown ones, honours $$ escapes', () => {
    expect(expandVars('$(A).$(B):1', lookup)).toBe('x.y:1');
    expect(expandVars('$(C)-$(A)', lookup)).toBe('$(C)-x');
    expect(expandVars('$$(A) $$ $x $(A', lookup)).toBe('$(A) $ $x $(A');
  });
});

describe('the operator pod template on the runner', () => {
  const dev = cluster({}, { [DEV_INSECURE_ANNOTATION]: 'true' });

  it('resolves POD_NAME, expands it in order and maps addresses and the data dir', async () => {
    const pod = podOf(dev, 1);
    const container = pod.spec!.containers[0]!;
    const raw = await containerEnv(pod, container, '127.0.0.9', noSources);
    expect(raw.get('POD_NAME')).toBe('demo-1');
    expect(raw.get('CONFLUX_NODE_ID_PREFIX')).toBe('demo-1');
    expect(raw.get('CONFLUX_ADVERTISE_API_ADDR')).toBe('demo-1.demo-headless.db.svc:8080');
    const env = hostEnv(raw, {
      ip: '127.0.0.9',
      mounts,
      ports: container.ports ?? [],
      hostOf: () => '127.0.0.200',
    });
    expect(env).toMatchObject({
      CONFLUX_DATA_DIR: '/r/pvc/db/data-demo-0',
      CONFLUX_RAFT_ADDR: '127.0.0.9:7000',
      CONFLUX_API_ADDR: '127.0.0.9:8080',
      CONFLUX_ADMIN_ADDR: '127.0.0.9:8443',
      CONFLUX_ADVERTISE_RAFT_ADDR: '127.0.0.9:7000',
      CONFLUX_ADVERTISE_API_ADDR: '127.0.0.9:8080',
      CONFLUX_ADVERTISE_ADMIN_ADDR: '127.0.0.9:8443',
      CONFLUX_DEV_INSECURE: 'true',
    });
  });

  it('maps TLS file paths into the Secret volume and reads secretKeyRef from the API', async () => {
    const c = cluster({
      backup: {
        schedule: '0 3 * * *',
        destination: { uri: 's3://b/p', endpoint: 'http://minio:9000', credentialsSecret: { name: 's3' } },
      },
    });
    const pod = podOf(c, 0);
    const container = pod.spec!.containers[0]!;
    const s3: V1Secret = {
      data: {
        AWS_ACCESS_KEY_ID: Buffer.from('AK').toString('base64'),
        AWS_SECRET_ACCESS_KEY: Buffer.from('SK').toString('base64'),
      },
    };
    const asked: string[] = [];
    const sources: EnvSources = {
      secret: async (ns, name) => {
        asked.push(`${ns}/${name}`);
        return name === 's3' ? s3 : null;
      },
      configMap: async () => null,
    };
    const raw = await containerEnv(pod, container, '127.0.0.9', sources);
    expect(asked).toEqual(['db/s3', 'db/s3']);
    const env = hostEnv(raw, { ip: '127.0.0.9', mounts, ports: [], hostOf: () => '' });
    expect(env).toMatchObject({
      AWS_ACCESS_KEY_ID: 'AK',
      AWS_SECRET_ACCESS_KEY: 'SK',
      CONFLUX_TLS_CERT: '/r/secrets/db/demo-0/tls/tls.crt',
      CONFLUX_TLS_KEY: '/r/secrets/db/demo-0/tls/tls.key',
      CONFLUX_TLS_CA: '/r/secrets/db/demo-0/tls/ca.crt',
      CONFLUX_S3_ENDPOINT: 'http://minio:9000',
    });
    await expect(containerEnv(pod, container, '127.0.0.9', noSources)).rejects.toThrow(ContainerConfigError);
  });
});

describe('rewrites', () => {
  it('maps mount paths longest first, whole path components only, also file:// URIs', () => {
    const m = [
      { mountPath: '/data', hostPath: '/h/data' },
      { mountPath: '/data/wal', hostPath: '/h/wal' },
    ];
    expect(mapMountPath('/data', m)).toBe('/h/data');
    expect(mapMountPath('/data/x/y', m)).toBe('/h/data/x/y');
    expect(mapMountPath('/data/wal/1', m)).toBe('/h/wal/1');
    expect(mapMountPath('/database', m)).toBe('/database');
    expect(mapMountPath('file:///data/backups', m)).toBe('file:///h/data/backups');
    expect(mapMountPath('s3://data/x', m)).toBe('s3://data/x');
  });

  it('maps pod DNS names to pod IPs wherever they appear, and 0.0.0.0 listen addresses', () => {
    const hostOf = (ns: string, pod: string) => `ip(${ns}/${pod})`;
    expect(mapPodDnsNames('demo-0.demo-headless.db.svc:8443', hostOf)).toBe('ip(db/demo-0):8443');
    expect(mapPodDnsNames('http://demo-2.demo-headless.db.svc.cluster.local:8080/x', hostOf)).toBe(
      'http://ip(db/demo-2):8080/x',
    );
    expect(mapPodDnsNames('a=x.demo-0.h.db.svc:1', hostOf)).toBe('a=x.demo-0.h.db.svc:1');
    expect(mapPodDnsNames('minio.db.svc:9000', hostOf)).toBe('minio.db.svc:9000');
    const env = hostEnv(new Map([['OTHER_LISTEN', '0.0.0.0:9090']]), {
      ip: '127.0.0.4',
      mounts: [],
      ports: [{ name: 'api', containerPort: 8080 }],
      hostOf,
    });
    // A missing listen variable is filled in from the container port; advertise ones are not.
    expect(env).toEqual({ OTHER_LISTEN: '127.0.0.4:9090', CONFLUX_API_ADDR: '127.0.0.4:8080' });
  });
});

describe('loopback addresses', () => {
  it('are unique per pod, stable per pod name (also for a new runner on the same root)', () => {
    const root = tempDir();
    const lockDir = tempDir();
    const a = new LoopbackAddresses(join(root, 'addresses.json'), lockDir);
    const ip0 = a.of('db', 'demo-0');
    const ip1 = a.of('db', 'demo-1');
    expect(ip0).toMatch(/^127\.0\.0\.\d+$/);
    expect(ip0).not.toBe('127.0.0.1');
    expect(ip1).not.toBe(ip0);
    expect(a.of('db', 'demo-0')).toBe(ip0);
    expect(a.of('other', 'demo-0')).not.toBe(ip0);
    // Another runner in this process cannot take them while the first holds them.
    const b = new LoopbackAddresses(join(tempDir(), 'addresses.json'), lockDir);
    expect([ip0, ip1]).not.toContain(b.of('db', 'x'));
    b.release();
    a.release();
    const again = new LoopbackAddresses(join(root, 'addresses.json'), lockDir);
    expect(again.of('db', 'demo-1')).toBe(ip1);
    expect(again.of('db', 'demo-0')).toBe(ip0);
    again.release();
  });

  it('skips addresses locked by a live process and takes over stale locks', () => {
    const lockDir = tempDir();
    writeFileSync(join(lockDir, '127.0.0.2'), String(process.ppid)); // alive
    writeFileSync(join(lockDir, '127.0.0.3'), '999999999'); // no such process
    const a = new LoopbackAddresses(join(tempDir(), 'addresses.json'), lockDir);
    expect(a.of('db', 'p')).toBe('127.0.0.3');
    expect(readFileSync(join(lockDir, '127.0.0.3'), 'utf8')).toBe(String(process.pid));
    a.release();
    expect(readFileSync(join(lockDir, '127.0.0.2'), 'utf8')).toBe(String(process.ppid));
  });

  it('kills the orphaned pod process of a stale lock when it still runs on that address', async () => {
    const lockDir = tempDir();
    const orphan = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {
      env: { CONFLUX_API_ADDR: '127.0.0.2:8080' },
      stdio: 'ignore',
    });
    const bystander = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    try {
      const exited = new Promise((resolve) => orphan.once('exit', (_code, signal) => resolve(signal)));
      writeFileSync(join(lockDir, '127.0.0.2'), `999999999\n${orphan.pid}\n`);
      writeFileSync(join(lockDir, '127.0.0.3'), `999999999\n${bystander.pid}\n`); // not on .3: spared
      const a = new LoopbackAddresses(join(tempDir(), 'addresses.json'), lockDir);
      expect(a.of('db', 'p')).toBe('127.0.0.2');
      expect(await exited).toBe('SIGKILL');
      expect(a.of('db', 'q')).toBe('127.0.0.3');
      await new Promise((r) => setTimeout(r, 200));
      expect(bystander.signalCode).toBeNull();
      a.setProcess('127.0.0.2', 4242);
      expect(readFileSync(join(lockDir, '127.0.0.2'), 'utf8')).toBe(`${process.pid}\n4242\n`);
      a.release();
    } finally {
      orphan.kill('SIGKILL');
      bystander.kill('SIGKILL');
    }
  });
});
