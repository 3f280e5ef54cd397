/** The wait before retry number `attempt` (from 0): capped exponential backoff, 200 ms to 10 s. */
export function backoffMs(attempt: number): number {
  return Math.min(10_000, 200 * 2 ** Math.min(attempt, 6));
}
