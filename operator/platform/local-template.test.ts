import { describe, expect, it } from 'vitest';
import { type ConfluxCluster, confluxClusterSchema } from '../api/cluster.js';
import { commandFor, localRevision, specEnv, UnknownImageError } from './local-template.js';

const cluster = (spec: Record<string, unknown> = {}): ConfluxCluster =>
  confluxClusterSchema.parse({
    apiVersion: 'conflux.io/v1alpha1',
    kind: 'ConfluxCluster',
    metadata: { name: 'demo' },
    spec,
  });

const node = { execPath: '/usr/bin/node', args: ['main.js'] };

describe('the local template revision', () => {
  const base = localRevision(cluster(), undefined);

  it('is stable for the same spec', () => {
    expect(localRevision(cluster(), undefined)).toBe(base);
  });

  it.each([
    ['spec.env', { env: [{ name: 'CONFLUX_LOG_LEVEL', value: 'warn' }] }],
    ['spec.raft', { raft: { electionTicks: 12 } }],
    ['backup settings', { backup: { schedule: '0 * * * *', destination: { uri: 'file:///b' } } }],
  ])('changes with %s', (_what, spec) => {
    expect(localRevision(cluster(spec), undefined)).not.toBe(base);
  });

  it.each([
    ['spec.replicas', { replicas: 5 }],
    ['spec.resources (no meaning for a process)', { resources: { limits: { memory: '1Gi' } } }],
    ['spec.image without an image map', { image: 'conflux:2' }],
  ])('does not change with %s', (_what, spec) => {
    expect(localRevision(cluster(spec), undefined)).toBe(base);
  });

  it('counts spec.image once the platform maps images to commands', () => {
    const images = { 'conflux:1': node, 'conflux:2': node };
    expect(localRevision(cluster({ image: 'conflux:2' }), images)).not.toBe(
      localRevision(cluster({ image: 'conflux:1' }), images),
    );
  });
});

describe('the local node command', () => {
  it('is the fallback without an image map, the mapped one with it', () => {
    const fallback = { execPath: '/bin/x', args: [] };
    expect(commandFor(cluster({ image: 'anything' }), undefined, fallback)).toBe(fallback);
    expect(commandFor(cluster({ image: 'conflux:1' }), { 'conflux:1': node }, fallback)).toBe(node);
  });

  it('refuses an image the map does not know, naming the known ones', () => {
    expect(() => commandFor(cluster({ image: 'conflux:9' }), { 'conflux:1': node }, node)).toThrow(
      new UnknownImageError(
        'image conflux:9 has no node command on the local platform (known images: conflux:1)',
      ),
    );
  });

  it('passes spec.env as the process environment', () => {
    expect(specEnv(cluster({ env: [{ name: 'A', value: '1' }] }))).toEqual({ A: '1' });
  });
});

describe('spec.env validation', () => {
  it.each([
    ['a reserved name', [{ name: 'CONFLUX_DATA_DIR', value: '/x' }], /set by the operator/],
    ['a name that is no variable name', [{ name: '1A', value: 'x' }], /environment variable name/],
    [
      'a duplicate',
      [
        { name: 'A', value: '1' },
        { name: 'A', value: '2' },
      ],
      /unique/,
    ],
  ])('refuses %s', (_what, env, message) => {
    const r = confluxClusterSchema.safeParse({
      apiVersion: 'conflux.io/v1alpha1',
      kind: 'ConfluxCluster',
      metadata: { name: 'demo' },
      spec: { env },
    });
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.message).join('; ')).toMatch(message);
  });
});
