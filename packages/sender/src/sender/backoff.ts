/**
 * The wait before retry number `attempt` (from 0): exponential from `baseMs`, capped at `maxMs`, with
 * jitter (a random 50-100% of it), so that senders that failed together (a database restart, say) do
 * not all come back at the same instant.
 */
export function backoffMs(attempt: number, { baseMs = 250, maxMs = 30_000 } = {}): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling * (0.5 + Math.random() / 2));
}
