// Event-loop delay of Conflux nodes during a bench step: each node's conflux_event_loop_delay_seconds
// histogram is scraped before and after, and the step reports the worst node's p99.9 (the upper
// bound of the bucket it falls in). A node restarted in between starts its counts from zero.

import { type BucketCounts, bucketQuantile, parseHistogramBuckets } from '../node/metrics.js';
import type { Member } from './load.js';
import { httpCall } from './proc.js';

const NAME = 'conflux_event_loop_delay_seconds';

async function scrape(m: Member): Promise<BucketCounts | null> {
  if (m.proc.exited) return null;
  const r = await httpCall(`http://${m.host}:${m.port}/metrics`, 'GET', undefined, 5000).catch(() => null);
  return r?.status === 200 ? parseHistogramBuckets(r.body, NAME) : null;
}

const total = (b: BucketCounts) => b.get(Number.POSITIVE_INFINITY) ?? 0;

export class LoopDelay {
  private last = new Map<Member, BucketCounts>();

  constructor(private readonly members: () => Member[]) {}

  /** Start counting from now. */
  async reset(): Promise<void> {
    await this.step();
  }

  /**
   * The largest p99.9 in ms over the nodes since the last call (NaN when no node answered), and
   * each node's, by id.
   */
  async step(): Promise<{ worstMs: number; byNode: Record<string, number> }> {
    const byNode: Record<string, number> = {};
    for (const m of this.members()) {
      const now = await scrape(m);
      if (!now) continue;
      const before = this.last.get(m);
      const from = before && total(before) <= total(now) ? before : new Map<number, number>();
      const q = bucketQuantile(now, from, 0.999);
      if (q !== null) byNode[m.id] = q * 1000;
      this.last.set(m, now);
    }
    const values = Object.values(byNode);
    return { worstMs: values.length ? Math.max(...values) : Number.NaN, byNode };
  }
}
