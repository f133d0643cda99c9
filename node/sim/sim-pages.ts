// The page cache of one simulated file (node/sim/sim-disk.ts): what a reader sees (the medium plus
// every write not yet synced, in order) and what reached the medium.

export const PAGE_BYTES = 4096;

/** A growable, zero-filled byte array. */
export class Bytes {
  buf = new Uint8Array(0);
  size = 0;

  private ensure(n: number): void {
    if (n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(n, this.buf.length * 2, 256));
    next.set(this.buf.subarray(0, this.size));
    this.buf = next;
  }

  write(pos: number, data: Uint8Array): void {
    this.ensure(pos + data.length);
    this.buf.set(data, pos);
    this.size = Math.max(this.size, pos + data.length);
  }

  truncate(len: number): void {
    if (len < this.size) this.buf.fill(0, len, this.size);
    else this.ensure(len);
    this.size = len;
  }

  read(pos: number, len: number): Uint8Array {
    const end = Math.min(this.size, pos + len);
    return end <= pos ? new Uint8Array(0) : this.buf.slice(pos, end);
  }

  clone(): Bytes {
    const b = new Bytes();
    b.write(0, this.buf.subarray(0, this.size));
    b.size = this.size;
    return b;
  }
}

export type DataOp =
  | { kind: 'write'; pos: number; bytes: Uint8Array; lost: boolean }
  | { kind: 'truncate'; len: number; lost: boolean };

export function applyOp(b: Bytes, op: DataOp): void {
  if (op.kind === 'write') b.write(op.pos, op.bytes);
  else b.truncate(op.len);
}

export class Inode {
  /** What a reader sees: `disk` plus every op in `unsynced`, in order. */
  data = new Bytes();
  /** What reached the medium. */
  disk = new Bytes();
  unsynced: DataOp[] = [];

  constructor(readonly id: number) {}

  apply(op: DataOp): void {
    applyOp(this.data, op);
    this.unsynced.push(op);
  }

  rebuild(): void {
    this.data = this.disk.clone();
    for (const op of this.unsynced) applyOp(this.data, op);
  }
}
