import type pg from "pg";
import type { ClaimedItem } from "../rows.js";
import * as q from "./queries.js";

/**
 * A sender whose heartbeat is this old is taken for dead, and its items are taken over at once, leases
 * or not (dbmail.claim_mailitems and dbmail.live_senders say 30 seconds too).
 */
const SENDER_DEAD_AFTER_MS = 30_000;
/** How far inside a lease, or inside SENDER_DEAD_AFTER_MS, the local clock stops vouching for it. */
const MARGIN_MS = 5000;

/**
 * The leases this sender holds in one database: each item's lease token (the claim's proof, which every
 * call about the item carries), and until when the item is surely still this sender's by the local
 * clock alone, so that the checks before and at the end of a message cost no database round trip in
 * normal operation.
 *
 * "Surely held" is counted on this process's monotonic clock (which keeps running while the process is
 * stopped) from when a claim or renewal was asked for, not answered: a few seconds inside the lease, and
 * a few seconds inside SENDER_DEAD_AFTER_MS from the last heartbeat or renewal that got through (past
 * that another sender may take the items over, leases or not). Past either, stillHeld() asks the
 * database, which renews the lease when it is still this sender's.
 */
export class Leases {
  /** By mailitem_id, the token of the claim that last leased the item here. */
  private readonly tokens = new Map<string, string>();
  private readonly surelyHeldUntil = new Map<string, number>();
  private aliveUntil = 0;

  constructor(
    private readonly pool: pg.Pool,
    private readonly senderId: string,
    private readonly leaseSeconds: number,
  ) {}

  /** A claim asked for at `asked` leased these items here (a new token for an item held already). */
  granted(items: ClaimedItem[], asked: number): void {
    for (const item of items) {
      this.tokens.set(item.mailitem_id, item.lease_token);
      this.markHeld(item.mailitem_id, asked);
    }
  }

  /** The database counted this sender alive in answer to a query (a heartbeat) sent at `asked`. */
  markAlive(asked: number): void {
    this.aliveUntil = Math.max(this.aliveUntil, asked + SENDER_DEAD_AFTER_MS - MARGIN_MS);
  }

  /** Whether the item is surely still this sender's by the local clock alone. */
  surelyHeld(id: string): boolean {
    const now = performance.now();
    return now < this.aliveUntil && now < (this.surelyHeldUntil.get(id) ?? 0);
  }

  /** Whether this sender still holds the item: known locally, or confirmed (and renewed) in the database. */
  async stillHeld(id: string): Promise<boolean> {
    if (this.surelyHeld(id)) return true;
    return (await this.extend([id])).has(id);
  }

  /** Renews the leases of these items that this sender still holds (which also counts as alive). */
  async extend(ids: string[]): Promise<Set<string>> {
    const asked = performance.now();
    const held = await q.extendLeases(this.pool, this.senderId, ids, this.tokens, this.leaseSeconds);
    this.markAlive(asked);
    for (const id of held) this.markHeld(id, asked);
    return held;
  }

  /** Gives items back, claimable by others at once (a no-op for one this sender no longer holds). */
  release(ids: string[]): Promise<number> {
    return q.release(this.pool, this.senderId, ids, this.tokens);
  }

  /** The item's lease token; read when a call is made, so an item taken back goes on under its new lease. */
  token(id: string): string | undefined {
    return this.tokens.get(id);
  }

  /** Every item's token, for the calls that name many (outcomes). */
  all(): ReadonlyMap<string, string> {
    return this.tokens;
  }

  /** The item is done with here: its lease ended, or is no longer this sender's. */
  forget(id: string): void {
    this.tokens.delete(id);
    this.surelyHeldUntil.delete(id);
  }

  private markHeld(id: string, asked: number): void {
    if (!this.tokens.has(id)) return;
    const until = asked + this.leaseSeconds * 1000 - MARGIN_MS;
    this.surelyHeldUntil.set(id, Math.max(until, this.surelyHeldUntil.get(id) ?? 0));
  }
}
