import type pg from "pg";
import type { Logger } from "../log.js";
import type { ClaimedItem } from "../rows.js";
import { backoffMs } from "./backoff.js";
import type { ItemDelivery } from "./delivery.js";
import type { Leases } from "./leases.js";
import type { OutcomeRecorder } from "./outcomes.js";
import * as q from "./queries.js";
import type { Wakeup } from "./wakeup.js";

/** This sender's watch (the wake-up protocol, 000017), held on its LISTEN connection (wake-listener.ts). */
export interface Watch {
  readonly watched: boolean;
  watch(): Promise<boolean>;
  unwatch(): Promise<boolean>;
}

/**
 * A watcher keeps the watch while it has mail in flight and has looked within this long; it sleeps no
 * longer than this meanwhile. Shorter cost multi-sender drains a fifth (each watcher that could not claim
 * for a while gave the watch back and took it again); mail queued counting on a watcher that cannot take
 * more waits at most about this long before the other senders are woken.
 */
const WATCH_MS = 1000;
/** How long one settle waits for open transactions; after that it is tried again after SETTLE_RETRY_MS. */
const SETTLE_WAIT_MS = 100;
const SETTLE_RETRY_MS = 200;
/** A watcher that claims full batches (a backlog) wakes the other senders, at most this often. */
const WAKE_OTHERS_MS = 250;

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
 *
 * The wake-up protocol (000017): each claim also takes the watch if no sender holds it, so sp_send_dbmail
 * sends no NOTIFY while this sender is awake; it keeps it while busy (each item finishing wakes the loop,
 * which claims again). Before sleeping with nothing to do it gives the watch back, settles (waits for the
 * transactions that counted on it) and looks once more; so too after the LISTEN connection (re)connects.
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
  /** The watch was given back (or the LISTEN connection changed): settle and look once more. */
  private unsettled = false;
  /** When a claim was last asked for, and when the other senders were last woken. */
  private lastClaimAt = 0;
  private lastWokeOthers = 0;
  /** When taking the watch last failed: another sender watches, so this one asks again only later. */
  private lastWatchRefused = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly pool: pg.Pool,
    private readonly settings: ClaimQueueSettings,
    private readonly leases: Leases,
    private readonly delivery: ItemDelivery,
    private readonly outcomes: OutcomeRecorder,
    private readonly wakeup: Wakeup,
    private readonly watch: Watch,
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

  /**
   * The LISTEN connection (re)connected or was lost: what was notified meanwhile was not heard, and a
   * watch it held is gone. Settle and look.
   */
  settleSoon(): void {
    this.unsettled = true;
    this.wakeup.wake();
  }

  /** Claims and delivers until stop(). */
  async run(): Promise<void> {
    const { batchSize, pollIntervalMs } = this.settings;
    for (let failures = 0; !this.stopping; ) {
      let delay = pollIntervalMs;
      try {
        this.fill();
        const claimed = this.wantsMore() ? await this.claim() : 0;
        failures = 0;
        this.claimError = undefined;
        // A full batch: there may be more due at once.
        if (claimed === batchSize) continue;
        if (await this.beforeSleep()) continue;
        if (this.unsettled) delay = SETTLE_RETRY_MS;
        else if (this.watch.watched) delay = Math.min(delay, WATCH_MS);
      } catch (error) {
        delay = backoffMs(++failures);
        this.claimError = (error as Error).message;
        this.log.warn({ err: (error as Error).message, retryInMs: delay }, "claim failed");
      }
      await this.wakeup.sleep(delay);
    }
  }

  /**
   * Before the loop sleeps: a watcher that is no longer busy (nothing in flight, or no claim for
   * WATCH_MS) gives the watch back; then, when unsettled, it settles and looks once more, or, when it can
   * take no more, settles and wakes the other senders. True when its look found mail.
   */
  private async beforeSleep(): Promise<boolean> {
    const busy = this.started && this.inFlight.size > 0 && performance.now() - this.lastClaimAt < WATCH_MS;
    if (!busy && (await this.watch.unwatch())) this.unsettled = true;
    if (!this.unsettled) return false;
    if (!this.wantsMore()) {
      // It cannot take more now (its queue is full, or delivery is stopped): the others look instead.
      this.unsettled = !(await q.wakeSenders(this.pool, SETTLE_WAIT_MS));
      return false;
    }
    // Transactions still open after the wait: settle again after SETTLE_RETRY_MS (calls notify meanwhile).
    if (!(await q.settle(this.pool, SETTLE_WAIT_MS))) return false;
    this.unsettled = false;
    // Without taking the watch: what commits from now on notifies, as this sender is about to sleep.
    return (await this.claim(false)) > 0;
  }

  /**
   * On shutdown: a watcher hands the watch over (settles, then wakes the other senders), so the mail
   * queued counting on it is not left to their poll.
   */
  async handOver(): Promise<void> {
    if (await this.watch.unwatch()) await q.wakeSenders(this.pool, SETTLE_WAIT_MS);
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
    await this.handOver().catch((error: Error) =>
      this.log.warn({ err: error.message }, "handing the watch over failed; other senders poll"),
    );
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

  /** Claims a batch into the queue (taking the watch with it, unless told not to); returns how many items the database gave. */
  private async claim(watch = true): Promise<number> {
    const { senderId, batchSize, leaseSeconds } = this.settings;
    const asked = performance.now();
    this.lastClaimAt = asked;
    // Watching from before the claim returns: what commits after its snapshot either notifies or counts on
    // this watch (and so on the settle before it is given back).
    const [items] = await Promise.all([
      q.claim(this.pool, senderId, batchSize, leaseSeconds),
      watch && this.started && asked - this.lastWatchRefused > WATCH_MS ? this.takeWatch(asked) : false,
    ]);
    if (items.length === batchSize && this.watch.watched && asked - this.lastWokeOthers > WAKE_OTHERS_MS) {
      // A backlog: while this sender watches, the others hear of nothing. Wake them to help.
      this.lastWokeOthers = asked;
      void q.wakeSenders(this.pool).catch(() => {});
    }
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

  /** Takes the watch if no sender holds it; a refusal is remembered for WATCH_MS (a query saved per claim). */
  private async takeWatch(asked: number): Promise<boolean> {
    const held = await this.watch.watch();
    if (!held) this.lastWatchRefused = asked;
    return held;
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
