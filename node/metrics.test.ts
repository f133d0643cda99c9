// The event-loop delay histogram: what a stall adds to it and how the bench reads its p99.9.
import { describe, expect, it } from 'vitest';
import { bucketQuantile, EventLoopDelaySampler, NodeMetrics, parseHistogramBuckets } from './metrics.js';

const NAME = 'conflux_event_loop_delay_seconds';

function manualClock() {
  const clock = {
    now: 0,
    cancelled: false,
    nowMs: () => clock.now,
    setInterval: () => ({ cancel: () => (clock.cancelled = true) }),
  };
  return clock;
}

describe('conflux_event_loop_delay_seconds', () => {
  it('counts a stall once for every sample it swallowed, so p99.9 sees a single long stall', async () => {
    const metrics = new NodeMetrics(false);
    const clock = manualClock();
    const sampler = new EventLoopDelaySampler(metrics.eventLoopDelay, 10, clock);
    const before = parseHistogramBuckets(await metrics.registry.metrics(), NAME);
    for (let i = 0; i < 10_000; i++) {
      clock.now += 10.5; // 0.5 ms late: a healthy loop
      sampler.sample();
    }
    clock.now += 1_010; // one 1 s stall in 100 s
    sampler.sample();
    const after = parseHistogramBuckets(await metrics.registry.metrics(), NAME);
    expect(after.get(Number.POSITIVE_INFINITY)).toBe(10_000 + 100);
    expect(bucketQuantile(after, before, 0.5)).toBe(0.001);
    // 100 of 10,100 samples (1 %) are late by 10 ms .. 1 s: p99.9 lands among them.
    expect(bucketQuantile(after, before, 0.999)).toBe(1);
    expect(bucketQuantile(after, before, 0.98)).toBe(0.001);
    sampler.stop();
    expect(clock.cancelled).toBe(true);
  });

  it('a timer that runs early or on time records no delay', async () => {
    const metrics = new NodeMetrics(false);
    const clock = manualClock();
    const sampler = new EventLoopDelaySampler(metrics.eventLoopDelay, 10, clock);
    clock.now += 9;
    sampler.sample();
    const buckets = parseHistogramBuckets(await metrics.registry.metrics(), NAME);
    expect(buckets.get(0.001)).toBe(1);
    expect(bucketQuantile(buckets, new Map(), 0.999)).toBe(0.001);
    expect(bucketQuantile(new Map(), new Map(), 0.999)).toBeNull();
  });

  it('refuses a sampling interval that is not positive', () => {
    const metrics = new NodeMetrics(false);
    expect(() => new EventLoopDelaySampler(metrics.eventLoopDelay, 0, manualClock())).toThrow(/must be > 0/);
  });

  it('a node with default metrics samples the real loop and stops on close', async () => {
    const metrics = new NodeMetrics(true);
    await new Promise((resolve) => setTimeout(resolve, 60));
    const buckets = parseHistogramBuckets(await metrics.registry.metrics(), NAME);
    expect(buckets.get(Number.POSITIVE_INFINITY)).toBeGreaterThan(0);
    metrics.close();
  });
});
