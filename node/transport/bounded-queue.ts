// A FIFO ring buffer with a fixed capacity that evicts its OLDEST item when full. For Raft traffic
// the newest message is the most useful one (it carries the latest term, commit and log position),
// and whatever is evicted the engine re-sends on its own schedule.

export class BoundedQueue<T> {
  private readonly slots: (T | undefined)[];
  private head = 0;
  private size = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('capacity must be a positive integer');
    this.slots = [];
  }

  get length(): number {
    return this.size;
  }

  /** Appends `item`; returns the evicted oldest item when the queue was full, else undefined. */
  push(item: T): T | undefined {
    const tail = (this.head + this.size) % this.capacity;
    if (this.size < this.capacity) {
      this.slots[tail] = item;
      this.size++;
      return undefined;
    }
    // Full: the tail slot is the head slot. Overwrite the oldest and advance the head past it.
    const evicted = this.slots[tail];
    this.slots[tail] = item;
    this.head = (this.head + 1) % this.capacity;
    return evicted;
  }

  /** Removes and returns the oldest item, or undefined when empty. */
  shift(): T | undefined {
    if (this.size === 0) return undefined;
    const item = this.slots[this.head];
    this.slots[this.head] = undefined; // release the reference for the GC
    this.head = (this.head + 1) % this.capacity;
    this.size--;
    return item;
  }

  /** Removes and returns every item, oldest first. */
  drain(): T[] {
    const out: T[] = [];
    for (let item = this.shift(); item !== undefined; item = this.shift()) out.push(item);
    return out;
  }
}
