// The node's identity lives in its data directory (`node-id`), written once at first start. A
// node id is a vote's name: a data directory that voted as n-1 must never come back as n-2 (or
// the reverse), so a start that asks for another id than the stored one is refused.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NODE_ID_RULE, nodeIdSchema, recordedNodeIdSchema } from '../shapes/node-id.js';
import { errnoCode, StorageError } from './errors.js';
import { DIR_MODE, FILE_MODE } from './permissions.js';

const ID_FILE = 'node-id';

/**
 * The id stored in `dir`, creating `dir` and the id on first start (`requested`, or a random
 * `<prefix>-<8 hex>`). Throws NODE_ID_MISMATCH when `requested` differs from the stored id.
 */
export function loadOrCreateNodeId(dir: string, requested?: string, prefix = 'n'): string {
  if (requested !== undefined) parseId(requested, 'requested node id');
  fs.mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  const file = path.join(dir, ID_FILE);
  const stored = readId(file) ?? create(file, requested ?? `${prefix}-${randomBytes(4).toString('hex')}`);
  if (requested !== undefined && requested !== stored) {
    throw new StorageError(
      'NODE_ID_MISMATCH',
      `data directory ${dir} belongs to node ${stored}, refusing to start it as ${requested}`,
    );
  }
  return stored;
}

function readId(file: string): string | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw err;
  }
  const id = text.trim();
  if (!nodeIdSchema.safeParse(id).success && recordedNodeIdSchema.safeParse(id).success) {
    // Before node ids were one rule, a data directory could hold an id (written by hand or by an
    // older version) that the admin API, certificates and --node-id refuse.
    throw new StorageError(
      'INVALID_NODE_ID',
      `node id in ${file} ${JSON.stringify(id)} was accepted by an older Conflux but is not a node id ` +
        `now (${NODE_ID_RULE}): the admin API could never name this member. Move the data directory ` +
        `aside, remove the member (conflux nodes remove ${id}) and add the node back under a new id`,
    );
  }
  return parseId(id, `node id in ${file}`);
}

/**
 * Write the id to a temp file, fsync it, and link it into place: link fails if the file exists,
 * so of two racing first starts one wins and the other reads the winner's id.
 */
function create(file: string, id: string): string {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = fs.openSync(tmp, 'w', FILE_MODE);
  try {
    fs.writeSync(fd, `${id}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.linkSync(tmp, file);
  } catch (err) {
    if (errnoCode(err) !== 'EEXIST') throw err;
    return readId(file) ?? id;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  const dirFd = fs.openSync(path.dirname(file), 'r');
  try {
    fs.fsyncSync(dirFd);
  } finally {
    fs.closeSync(dirFd);
  }
  return id;
}

function parseId(id: string, what: string): string {
  const parsed = nodeIdSchema.safeParse(id);
  if (!parsed.success) {
    throw new StorageError(
      'INVALID_NODE_ID',
      `${what} ${JSON.stringify(id)} is invalid: ${parsed.error.issues[0]?.message ?? 'bad format'}`,
    );
  }
  return parsed.data;
}
