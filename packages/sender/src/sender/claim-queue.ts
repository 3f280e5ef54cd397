import type pg from "pg";
import type { Logger } from "../log.js";
import type { ClaimedItem } from "../rows.js";
import { backoffMs } from "./backoff.js";
import type { ItemDelivery } from "./delivery.js";
import type { Leases } from "./leases.js";
import type { OutcomeRecorder } from "./outcomes.js";
import * as q from "./queries.js";
import type { Wakeup } from "./wakeup.js";

export interface ClaimQueueSettings {
  senderId: string;
  batchSize: number;
  concurrency: number;
  leaseSeconds: number;
  pollIntervalMs: number;
  /** Claims stop while this many outcomes wait to be recorded (the database is slow or away). */
  outcomeBacklog: number;
}

/**
 * The claim loop and the local queue of one database. Each item goes:
 *
 *   claimed (a batch, under a lease) -> ready (waiting for a slot) -> in flight (ItemDelivery.send, at
 *   most `concurrency` at once) -> its outcome recorded (ItemDelivery.record, in the background, while
 *   the next item takes the slot) -> done (its lease forgotten).
 *
 * A whole batch is claimed while half a batch still waits, so a slot that frees finds the next item at
 * once and claims stay whole batches. The loop wakes on a notification (wakeup) and polls. While delivery
 * is stopped, or on shutdown, the ready items are given back: claimable by others at once.
 */
export class ClaimQueue {
  /** Whether delivery is started (the heartbeat says). */
  started = true;
  /** When mail was last claimed (or the queue was made): for --exit-when-idle. */
  lastActivity = Date.now();
  /** Why the last claim failed, until one succeeds: polling does not work meanwhile. */
  claimError?: string;
  private readonly ready = new Map<string, ClaimedItem>();
  /** Items whose SMTP part is under way, until the server has answered. */
  private readonly inFlight = new Map<string, Promise<void>>();
  private stopping = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly settings: ClaimQueueSettings,
    private readonly leases: Leases,
    private readonly delivery: ItemDelivery,
    private readonly outcomes: OutcomeRecorder,
    private readonly wakeup: Wakeup,
    private readonly log: Logger,
  ) {}

  /** Every item this sender holds in this database (their leases must be renewed). */
  held(): string[] {
    return [...this.ready.keys(), ...this.inFlight.keys(), ...this.outcomes.ids()];
  }

  /** Delivery was started or stopped: stopped, the ready items go back; either way, look again. */
  setStarted(started: boolean): void {
    this.started = started;
    if (!started) void this.giveBackReady();
    this.wakeup.wake();
  }

  /** Claims and delivers until stop(). */
  async run(): Promise<void> {
    const { batchSize, pollIntervalMs } = this.settings;
    for (let failures = 0; !this.stopping; ) {
      try {
        this.fill();
        const claimed = this.wantsMore() ? await this.claim() : 0;
        failures = 0;
        this.claimError = undefined;
        // A full batch: there may be more due at once.
        if (claimed === batchSize) continue;
      } catch (error) {
        const delay = backoffMs(++failures);
        this.claimError = (error as Error).message;
        this.log.warn({ err: (error as Error).message, retryInMs: delay }, "claim failed");
        await this.wakeup.sleep(delay);
        continue;
      }
      await this.wakeup.sleep(pollIntervalMs);
    }
  }

  /** Stops claiming and starting items at once; finish() then winds the queue down. */
  halt(): void {
    this.stopping = true;
    this.wakeup.wake();
  }

  /**
   * After halt(): gives back what has not started, and waits up to `timeoutMs` for what is in flight and
   * for every outcome known to be recorded. Returns the ids still in flight after the timeout.
   */
  async finish(timeoutMs: number): Promise<string[]> {
    await this.giveBackReady();
    const finished = Promise.all(this.inFlight.values())
      .then(() => this.outcomes.drain())
      .then(() => true);
    const timedOut = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs).unref());
    return (await Promise.race([finished, timedOut])) ? [] : [...this.inFlight.keys()];
  }

  /** Claim a whole batch while half a batch still waits; not while outcomes pile up unrecorded. */
  private wantsMore(): boolean {
    return (
      this.started &&
      this.ready.size < Math.ceil(this.settings.batchSize / 2) &&
      this.outcomes.pending < this.settings.outcomeBacklog
    );
  }

  /** Claims a batch into the queue; returns how many items the database gave. */
  private async claim(): Promise<number> {
    const { senderId, batchSize, leaseSeconds } = this.settings;
    const asked = performance.now();
    const items = await q.claim(this.pool, senderId, batchSize, leaseSeconds);
    if (items.length === 0) return 0;
    this.lastActivity = Date.now();
    this.leases.granted(items, asked);
    for (const item of items) {
      // One this sender still holds (its lease ran out in a long outage, and this claim took it back) is
      // being sent, or its outcome is on its way: never start it a second time.
      const id = item.mailitem_id;
      if (!this.inFlight.has(id) && !this.outcomes.has(id)) this.ready.set(id, item);
    }
    // Delivery was stopped while this claim was on its way (its transaction began before the stop
    // committed): give the batch back rather than holding it until delivery starts again.
    if (!this.started || this.stopping) await this.giveBackReady();
    else this.fill();
    return items.length;
  }

  /** Starts ready items while there is room (not while stopping or stopped: they are given back). */
  private fill(): void {
    for (const [id, item] of this.ready) {
      if (this.stopping || !this.started || this.inFlight.size >= this.settings.concurrency) return;
      this.ready.delete(id);
      this.dispatch(item);
    }
  }

  private dispatch(item: ClaimedItem): void {
    const id = item.mailitem_id;
    const leave = () => {
      if (!this.inFlight.delete(id)) return;
      this.fill();
      this.wakeup.wake();
    };
    const sent = this.delivery
      .send(item)
      .then((delivered) => {
        leave();
        if (delivered) void this.delivery.record(item, delivered).finally(() => this.done(id, true));
        else this.done(id);
      })
      .catch((error: unknown) => {
        this.log.error({ mailitemId: id, err: (error as Error).message }, "delivery failed");
        leave();
        this.done(id);
      });
    this.inFlight.set(id, sent);
  }

  /**
   * The item's lease is no longer this sender's concern (its outcome recorded or given up, or nothing
   * to record), unless a later claim gave the item back.
   */
  private done(id: string, recorded = false): void {
    if (this.ready.has(id) || this.inFlight.has(id)) return;
    if (recorded || !this.outcomes.has(id)) this.leases.forget(id);
  }

  /**
   * Gives back the items claimed ahead that have not started (shutdown, or delivery stopped): claimable
   * by others at once. Should that fail, they come back after their leases.
   */
  private async giveBackReady(): Promise<void> {
    if (this.ready.size === 0) return;
    const ids = [...this.ready.keys()];
    this.ready.clear();
    await this.leases.release(ids).catch((error: Error) => {
      this.log.warn(
        { err: error.message, ids },
        "giving back claimed items failed; they return after their lease",
      );
    });
    for (const id of ids) this.done(id);
  }
}
