// Users and roles as part of the replicated state: applied from the log by KvStore, carried in
// every form of its snapshot, and absent (byte-identical snapshots) while nobody uses them.

import { describe, expect, it } from 'vitest';
import { encodeCommand, tryDecodeCommand } from '../kv/commands.js';
import { SnapshotFormatError } from '../kv/errors.js';
import { SnapshotDecoder } from '../kv/snapshot-decoder.js';
import { encodeSnapshotBuffer } from '../kv/snapshot-format.js';
import { KvStore } from '../kv/store.js';
import { put, run } from '../kv/test-helpers.js';
import type { SnapshotMeta } from '../raft/types.js';
import type { AuthChange } from './permissions.js';
import { decodeAuthSection, encodeAuthSection } from './section.js';

const meta = (index: number): SnapshotMeta => ({
  index,
  term: 1,
  membership: { configs: [['n1']], learners: [], retired: [], nodes: {}, cluster: null },
  sizeBytes: 0,
  id: `snap-${index}`,
});
const auth = (store: KvStore, ...changes: AuthChange[]) => run(store, { type: 'auth', changes });

function withUsers(): KvStore {
  const s = new KvStore();
  put(s, '/app/x', '1');
  auth(s, { op: 'user-add', user: 'admin' });
  auth(s, { op: 'user-grant-role', user: 'admin', role: 'root' });
  auth(s, { op: 'role-add', role: 'app-reader' });
  auth(s, { op: 'role-grant', role: 'app-reader', permission: { prefix: '/app/', access: 'read' } });
  auth(s, { op: 'user-add', user: 'alice' });
  auth(s, { op: 'user-grant-role', user: 'alice', role: 'app-reader' });
  auth(s, { op: 'enable' });
  return s;
}

describe('auth commands in the log', () => {
  it('encode, decode and apply; the data revision does not move', () => {
    const s = withUsers();
    expect(s.auth.enabled).toBe(true);
    expect(s.auth.users.alice?.roles).toEqual(['app-reader']);
    expect(s.revision).toBe(1);
    expect(s.applied).toBe(8);
    const cmd = { type: 'auth' as const, changes: [{ op: 'disable' as const }] };
    expect(tryDecodeCommand(encodeCommand(cmd))).toEqual({ ok: true, command: cmd });
  });

  it('a change that cannot apply is a result with the reason, and changes nothing', () => {
    const s = new KvStore();
    const r = auth(s, { op: 'enable' });
    expect(r).toMatchObject({ type: 'auth', ok: false });
    expect((r as { reason: string }).reason).toMatch(/root/);
    expect(s.auth.enabled).toBe(false);
    expect(s.applied).toBe(1);
  });

  it('a batch applies all or none', () => {
    const s = new KvStore();
    const r = auth(s, { op: 'user-add', user: 'a' }, { op: 'user-grant-role', user: 'a', role: 'nope' });
    expect(r).toMatchObject({ type: 'auth', ok: false, reason: 'no role nope' });
    expect(s.auth.users).toEqual({});
    auth(
      s,
      { op: 'user-add', user: 'a' },
      { op: 'user-grant-role', user: 'a', role: 'root' },
      { op: 'enable' },
    );
    expect(s.auth.enabled).toBe(true);
  });

  it('an auth command with an unknown op is undecodable (applied as a counted no-op)', () => {
    expect(() => encodeCommand({ type: 'auth', changes: [{ op: 'everything' }] } as never)).toThrow(
      /invalid command/,
    );
    expect(() => encodeCommand({ type: 'auth', changes: [] })).toThrow(/invalid command/);
  });
});

describe('auth state in snapshots', () => {
  it('survives snapshot/restore, snapshotAsync/restoreAsync and the chunked stream', async () => {
    const a = withUsers();
    const snap = a.snapshot();
    const b = new KvStore();
    b.restore(meta(snap.index), snap.data);
    expect(b.auth).toEqual(a.auth);
    expect(b.get('/app/x')).toBeDefined();

    const slow = await a.snapshotAsync(0);
    expect(Buffer.from(slow.data).equals(Buffer.from(snap.data))).toBe(true);
    const c = new KvStore();
    await c.restoreAsync(meta(slow.index), slow.data);
    expect(c.auth).toEqual(a.auth);

    const small = new KvStore({ snapshotChunkBytes: 32 });
    small.restore(meta(snap.index), snap.data);
    const d = new KvStore();
    await d.restoreFromStream(small.snapshotStream());
    expect(d.auth).toEqual(a.auth);
    // The same state reached by another path writes the same bytes.
    expect(Buffer.from(d.snapshot().data).equals(Buffer.from(snap.data))).toBe(true);
  });

  it('a store that never used authorization writes the snapshot of before (flags 0, no section)', () => {
    const s = new KvStore();
    put(s, 'k', 'v');
    const data = s.snapshot().data;
    expect(Buffer.from(data).readUInt16LE(6)).toBe(0);
    const old = encodeSnapshotBuffer({ applied: 1, revision: 1, keyCount: 1 }, [s.get('k')!]);
    expect(Buffer.from(data).equals(Buffer.from(old))).toBe(true);
    const t = withUsers();
    t.restore(meta(1), old); // an old snapshot replaces the users too
    expect(t.auth.enabled).toBe(false);
    expect(Object.keys(t.auth.users)).toEqual([]);
  });

  it('refuses a truncated or altered section, leaving the store untouched', () => {
    const a = withUsers();
    const { data, index } = a.snapshot();
    const b = new KvStore();
    expect(() => b.restore(meta(index), data.subarray(0, data.byteLength - 10))).toThrow(SnapshotFormatError);
    const flipped = Uint8Array.from(data);
    flipped[flipped.byteLength - 20]! ^= 1;
    expect(() => b.restore(meta(index), flipped)).toThrow(/checksum/);
    expect(b.applied).toBe(0);
    expect(b.auth.enabled).toBe(false);
  });

  it('decodes only states the log could have produced', () => {
    const good = encodeAuthSection(withUsers().auth)!;
    expect(decodeAuthSection(good).users.admin?.roles).toEqual(['root']);
    const forge = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
    expect(() =>
      decodeAuthSection(forge({ v: 1, enabled: true, users: [{ name: 'a', roles: [] }], roles: [] })),
    ).toThrow(/enabled while no user holds root/);
    expect(() =>
      decodeAuthSection(forge({ v: 1, enabled: false, users: [{ name: 'a', roles: ['x'] }], roles: [] })),
    ).toThrow(/unknown role x/);
    expect(() => decodeAuthSection(forge({ v: 2 }))).toThrow(SnapshotFormatError);
    expect(() => decodeAuthSection(new Uint8Array([0xff]))).toThrow(/not JSON/);
  });

  it('a verify-only decode checks the section too', () => {
    const { data } = withUsers().snapshot();
    const d = new SnapshotDecoder({ verifyOnly: true });
    d.push(data);
    expect(d.finish().header.auth).toBeDefined();
  });
});
