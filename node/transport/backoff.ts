// Reconnect delays: exponential growth with full jitter (AWS architecture blog, "Exponential
// Backoff And Jitter"), kept inside [minMs, maxMs]. Jitter spreads the redials of a whole cluster
// after a shared event (a leader restart, a healed partition) instead of synchronising them.

/**
 * Delay before reconnect attempt number `attempt` (0 for the first retry): uniform in
 * [minMs, min(maxMs, minMs * 2^(attempt + 1))]. `random` returns a float in [0, 1).
 */
export function backoffDelayMs(attempt: number, minMs: number, maxMs: number, random: () => number): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt + 1, 30));
  return Math.round(minMs + random() * Math.max(0, ceiling - minMs));
}
