import type { V1ConfigMap, V1Container, V1Pod, V1Secret, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  ContainerConfigError,
  containerEnv,
  type EnvSources,
  expandVars,
  fieldValue,
  parseQuantity,
  resourceValue,
  serviceEnv,
} from './env.js';
import { containerArgv, type ImageSpec } from './images.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

const pod: V1Pod = {
  metadata: { name: 'db-0', namespace: 'prod', uid: 'u-1', labels: { app: 'db', tier: 'x' } },
  spec: { nodeName: 'worker-2', serviceAccountName: 'db', containers: [] },
};
const addr = { podIP: '10.244.1.5', hostIP: '10.245.0.1' };

function sources(o: { secrets?: V1Secret[]; maps?: V1ConfigMap[]; services?: V1Service[] } = {}): EnvSources {
  return {
    secret: async (ns, name) =>
      o.secrets?.find((s) => s.metadata?.name === name && s.metadata.namespace === ns) ?? null,
    configMap: async (ns, name) =>
      o.maps?.find((c) => c.metadata?.name === name && c.metadata.namespace === ns) ?? null,
    services: async () => o.services ?? [],
  };
}

describe('environment', () => {
  it('expands $(VAR) like Kubernetes', () => {
    const env = new Map([['A', 'x']]);
    expect(expandVars('$(A)-$(B)-$$(A)-$', (n) => env.get(n))).toBe('x-$(B)-$(A)-$');
  });

  it('resolves downward-API fields', () => {
    expect(fieldValue(pod, 'metadata.name', addr)).toBe('db-0');
    expect(fieldValue(pod, 'metadata.namespace', addr)).toBe('prod');
    expect(fieldValue(pod, 'status.podIP', addr)).toBe('10.244.1.5');
    expect(fieldValue(pod, 'status.hostIP', addr)).toBe('10.245.0.1');
    expect(fieldValue(pod, 'spec.nodeName', addr)).toBe('worker-2');
    expect(fieldValue(pod, "metadata.labels['app']", addr)).toBe('db');
    expect(fieldValue(pod, 'metadata.labels', addr)).toBe('app="db"\ntier="x"');
    expect(() => fieldValue(pod, 'spec.bogus', addr)).toThrow(ContainerConfigError);
  });

  it('computes a container environment in order, with Secrets and ConfigMaps', async () => {
    const container: V1Container = {
      name: 'c',
      envFrom: [{ configMapRef: { name: 'cfg' }, prefix: 'CFG_' }],
      env: [
        { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: 'ID', value: '$(POD)-$(LATER)' },
        { name: 'PASS', valueFrom: { secretKeyRef: { name: 'creds', key: 'password' } } },
        { name: 'OPT', valueFrom: { secretKeyRef: { name: 'absent', key: 'x', optional: true } } },
        { name: 'MODE', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'mode' } } },
        { name: 'LATER', value: 'late' },
      ],
    };
    const env = await containerEnv({
      pod,
      container,
      addresses: addr,
      allocatable: {},
      sources: sources({
        secrets: [{ metadata: { name: 'creds', namespace: 'prod' }, data: { password: b64('s3cret') } }],
        maps: [{ metadata: { name: 'cfg', namespace: 'prod' }, data: { mode: 'fast' } }],
      }),
    });
    expect(Object.fromEntries(env)).toEqual({
      CFG_mode: 'fast',
      POD: 'db-0',
      ID: 'db-0-$(LATER)',
      PASS: 's3cret',
      MODE: 'fast',
      LATER: 'late',
    });
  });

  it('keeps a container waiting on a missing Secret or key', async () => {
    const run = (env: V1Container['env']) =>
      containerEnv({
        pod,
        container: { name: 'c', env },
        addresses: addr,
        allocatable: {},
        sources: sources(),
      });
    await expect(
      run([{ name: 'X', valueFrom: { secretKeyRef: { name: 'nope', key: 'k' } } }]),
    ).rejects.toThrow('secret "nope" not found');
    await expect(
      run([{ name: 'X', valueFrom: { configMapKeyRef: { name: 'nope', key: 'k' } } }]),
    ).rejects.toThrow(ContainerConfigError);
  });

  it('sets Service link variables, and always the master Service', () => {
    const svc = (ns: string, name: string, ip: string, port: number): V1Service => ({
      metadata: { namespace: ns, name },
      spec: { clusterIP: ip, ports: [{ name: 'https', port, protocol: 'TCP' }] },
    });
    const services = [
      svc('default', 'kubernetes', '10.96.0.1', 443),
      svc('prod', 'db-api', '10.96.3.4', 8080),
    ];
    const env = serviceEnv(pod, services);
    expect(env.get('KUBERNETES_SERVICE_HOST')).toBe('10.96.0.1');
    expect(env.get('KUBERNETES_SERVICE_PORT')).toBe('443');
    expect(env.get('KUBERNETES_PORT_443_TCP')).toBe('tcp://10.96.0.1:443');
    expect(env.get('DB_API_SERVICE_HOST')).toBe('10.96.3.4');
    expect(env.get('DB_API_SERVICE_PORT_HTTPS')).toBe('8080');
    const noLinks = serviceEnv({ ...pod, spec: { ...pod.spec!, enableServiceLinks: false } }, services);
    expect(noLinks.get('DB_API_SERVICE_HOST')).toBeUndefined();
    expect(noLinks.get('KUBERNETES_SERVICE_HOST')).toBe('10.96.0.1');
  });

  it('reads resource fields with divisors and the node allocatable as default limit', () => {
    const c: V1Container = {
      name: 'c',
      resources: { limits: { memory: '512Mi' }, requests: { cpu: '250m' } },
    };
    expect(parseQuantity('128Mi')).toBe(128 * 2 ** 20);
    expect(resourceValue(c, 'limits.memory', '1Mi', {})).toBe('512');
    expect(resourceValue(c, 'requests.cpu', '1m', {})).toBe('250');
    expect(resourceValue(c, 'limits.cpu', undefined, { cpu: '2' })).toBe('2');
  });
});

describe('command and args', () => {
  const image: ImageSpec = { command: ['node', 'dist/node/main.js'], args: ['--serve'] };
  const env = new Map([['NAME', 'db-0']]);
  it('follows the entrypoint/cmd rules', () => {
    expect(containerArgv(image, { name: 'c' }, env)).toEqual(['node', 'dist/node/main.js', '--serve']);
    expect(containerArgv(image, { name: 'c', args: ['--id=$(NAME)'] }, env)).toEqual([
      'node',
      'dist/node/main.js',
      '--id=db-0',
    ]);
    expect(containerArgv(image, { name: 'c', command: ['node', 'dist/operator/main.js'] }, env)).toEqual([
      'node',
      'dist/operator/main.js',
    ]);
    expect(containerArgv(image, { name: 'c', command: ['sh', '-c'], args: ['echo $(NAME)'] }, env)).toEqual([
      'sh',
      '-c',
      'echo db-0',
    ]);
  });
});
