import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateNodeId } from './identity.js';
import { tempDir } from './test-util.js';

let dir: string;
let cleanup: () => Promise<void>;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(() => cleanup());

describe('loadOrCreateNodeId', () => {
  it('creates a random n-<8 hex> id at first start and keeps it', () => {
    const id = loadOrCreateNodeId(dir);
    expect(id).toMatch(/^n-[0-9a-f]{8}$/);
    expect(fs.readFileSync(path.join(dir, 'node-id'), 'utf8').trim()).toBe(id);
    expect(loadOrCreateNodeId(dir)).toBe(id);
    expect(loadOrCreateNodeId(dir, id)).toBe(id);
    expect(fs.readdirSync(dir)).toEqual(['node-id']); // no temp file left behind
  });

  it('stores a requested id, creating the directory', () => {
    const sub = path.join(dir, 'a', 'b');
    expect(loadOrCreateNodeId(sub, 'conflux-0')).toBe('conflux-0');
    const pod = path.join(dir, 'pod');
    const made = loadOrCreateNodeId(pod, undefined, 'demo-2');
    expect(made).toMatch(/^demo-2-[0-9a-f]{8}$/);
    expect(loadOrCreateNodeId(pod, undefined, 'demo-2')).toBe(made);
    expect(loadOrCreateNodeId(sub)).toBe('conflux-0');
  });

  it('refuses another requested id, naming both', () => {
    loadOrCreateNodeId(dir, 'n1');
    expect(() => loadOrCreateNodeId(dir, 'n2')).toThrow(/belongs to node n1, refusing to start it as n2/);
    expect(() => loadOrCreateNodeId(dir, 'n2')).toThrow(
      expect.objectContaining({ code: 'NODE_ID_MISMATCH' }),
    );
  });

  it('refuses an invalid requested or stored id', () => {
    expect(() => loadOrCreateNodeId(dir, 'has space')).toThrow(
      expect.objectContaining({ code: 'INVALID_NODE_ID' }),
    );
    expect(() => loadOrCreateNodeId(dir, '')).toThrow(/requested node id "" is invalid/);
    fs.writeFileSync(path.join(dir, 'node-id'), '\u0000garbage');
    expect(() => loadOrCreateNodeId(dir)).toThrow(/node id in .*node-id/);
  });

  it('refuses an id from an older version that is not a lowercase DNS label, saying what to do', () => {
    for (const old of ['Node_1', 'n.1', 'N1']) {
      fs.writeFileSync(path.join(dir, 'node-id'), `${old}\n`);
      expect(() => loadOrCreateNodeId(dir)).toThrow(
        expect.objectContaining({
          code: 'INVALID_NODE_ID',
          message: expect.stringMatching(/older Conflux .* add the node back under a new id/),
        }),
      );
    }
    expect(() => loadOrCreateNodeId(dir, 'N1')).toThrow(/requested node id "N1" is invalid: lowercase/);
  });
});
