/**
 * Slows down guessing. After a failed sign-in, further attempts for the same user name are refused
 * until a wait has passed, which doubles with each failure (up to 5 minutes). An address gets the
 * same from its fifth failure on, across user names: a little later, because on loopback or behind a
 * proxy one address is everyone. A right password clears its user name's wait; entries are forgotten
 * an hour after their last failure.
 */
export class SignInThrottle {
  private readonly failures = new Map<string, { count: number; until: number; last: number }>();

  /** User names with an attempt under way: parallel guesses must not all slip in before the wait. */
  private readonly inFlight = new Set<string>();

  constructor(private readonly firstDelayMs: number) {}

  /** Claims the user name for one attempt; false while another attempt for it is under way. */
  begin(username: string): boolean {
    const key = username.toLowerCase();
    if (this.inFlight.has(key)) return false;
    this.inFlight.add(key);
    return true;
  }

  finish(username: string): void {
    this.inFlight.delete(username.toLowerCase());
  }

  /** Milliseconds until an attempt for `username` from `address` may be made (0: now). */
  wait(username: string, address: string): number {
    this.forgetOld();
    const until = Math.max(
      ...this.keys(username, address).map(([key]) => this.failures.get(key)?.until ?? 0),
    );
    return Math.max(0, until - Date.now());
  }

  failed(username: string, address: string): void {
    const now = Date.now();
    for (const [key, free] of this.keys(username, address)) {
      const count = (this.failures.get(key)?.count ?? 0) + 1;
      const delay = count <= free ? 0 : Math.min(this.firstDelayMs * 2 ** (count - free - 1), 5 * 60_000);
      this.failures.set(key, { count, until: now + delay, last: now });
    }
  }

  succeeded(username: string): void {
    this.failures.delete(`user:${username.toLowerCase()}`);
  }

  /** Each key with the number of failures it may have before any wait. */
  private keys(username: string, address: string): [string, number][] {
    return [
      [`user:${username.toLowerCase()}`, 0],
      [`address:${address}`, 4],
    ];
  }

  private forgetOld(): void {
    const old = Date.now() - 60 * 60_000;
    for (const [key, entry] of this.failures) if (entry.last < old) this.failures.delete(key);
  }
}
