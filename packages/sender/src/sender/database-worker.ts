import { hostname } from "node:os";
import pg from "pg";
import type { DatabaseTarget, SenderOptions } from "../config/options.js";
import type { Logger } from "../log.js";
import { safeText } from "../safe-text.js";
import { composeForSending, type MessageAttachment } from "../smtp/compose.js";
import { deliver, LeaseLostError, type SentInfo } from "../smtp/deliver.js";
import { type FinalCheck, withFinalCheck } from "../smtp/final-check.js";
import { Transports } from "../smtp/transports.js";
import { packageVersion } from "../version.js";
import { AccountsCache } from "./accounts-cache.js";
import { ATTACHMENT_CHUNK_BYTES, chunkedStream } from "./attachment-stream.js";
import { backoffMs } from "./backoff.js";
import { checkSchema } from "./check-schema.js";
import { DatabaseRefusedError } from "./errors.js";
import { OutcomeRecorder } from "./outcomes.js";
import * as q from "./queries.js";
import { isTransient } from "./transient-errors.js";
import { WakeListener } from "./wake-listener.js";
import { Wakeup } from "./wakeup.js";

/** Outcomes per record_outcomes call, at most. */
const OUTCOME_BATCH = 100;
/**
 * How long a record_outcomes call waits for more outcomes to join it: fewer, larger commits, at the cost
 * of widening the window in which a crash loses an outcome the SMTP server gave by as much.
 */
const OUTCOME_DELAY_MS = 20;

/**
 * The query connections for `concurrency` messages in flight: one each for claims, outcomes, lease
 * renewal and the heartbeat, and more for the attachment reads and lease checks of the messages.
 */
export function databasePoolSize(concurrency: number): number {
  return Math.min(20, 4 + Math.ceil(concurrency / 4));
}

/**
 * A sender whose heartbeat is this old is taken for dead, and its items are taken over at once, leases
 * or not (dbmail.claim_mailitems and dbmail.live_senders say 30 seconds too).
 */
const SENDER_DEAD_AFTER_MS = 30_000;

/** The channels a sender listens on: new mail, delivery started/stopped, configuration changed. */
const CHANNELS = ["dbmail_queue", "dbmail_control", "dbmail_config"] as const;

/** Where a worker is: waiting for its database to be usable, refused by it (and retrying), or serving. */
export type WorkerState =
  | { state: "connecting"; reason?: string }
  | { state: "refused"; reason: string }
  | { state: "serving" }
  | { state: "stopped" };

/**
 * Serves one database: wakes on NOTIFY dbmail_queue and also polls (a lost notification only delays
 * mail), claims due items under a lease, delivers them with at most `concurrency` in flight, and records
 * each outcome. Pauses while Database Mail is stopped. Survives the database going away: queries retry
 * with backoff and the LISTEN connection reconnects and catches up. Everything it holds (connections,
 * SMTP pools, caches, leases) is its own: databases served by one process never share state.
 */
export class DatabaseWorker {
  private readonly pool: pg.Pool;
  private readonly listener: WakeListener;
  private readonly transports: Transports;
  private readonly accounts: AccountsCache;
  private readonly wakeup = new Wakeup();
  /** Items being delivered (until the SMTP server has answered): at most `concurrency`. */
  private readonly inFlight = new Map<string, Promise<void>>();
  /**
   * Items claimed ahead, waiting for a slot (at most about a batch and a half): a slot that frees takes
   * the next one at once instead of waiting for a claim, and claims stay whole batches.
   */
  private readonly ready = new Map<string, q.ClaimedItem>();
  /**
   * The lease token of every item this sender holds (claimed ahead, in flight, or its outcome on its way),
   * from the claim that last leased it here: every call about the item carries it. Read when a call is
   * made, so an item this sender took back after its lease ran out (a new claim, a new token) goes on
   * under its new lease.
   */
  private readonly leases = new Map<string, string>();
  /** Outcomes the SMTP servers gave, on their way to the database (record_outcomes, in batches). */
  private readonly outcomes: OutcomeRecorder;
  /** Claims stop while this many outcomes wait to be recorded (the database is slow or away). */
  private readonly outcomeBacklog: number;
  /**
   * Until when (this process's monotonic clock, which keeps running while the process is stopped) each
   * item in flight is surely still this sender's: a few seconds inside the lease, counted from when the
   * claim or renewal was asked for. Past it, the lease is checked in the database before a message
   * starts and before it ends (after a long pause, say, another sender may have taken the item over).
   */
  private readonly surelyHeldUntil = new Map<string, number>();
  /**
   * Until when (monotonic clock) this sender is surely not yet taken for dead: a few seconds inside
   * SENDER_DEAD_AFTER_MS from its last heartbeat or lease renewal that succeeded, counted from when it
   * was asked for. Past it, another sender may take its items over however long their leases run.
   */
  private aliveUntil = 0;
  private readonly log: Logger;
  private started = true;
  private stopping = false;
  /** Resolves when the worker serves, or has given up because it was stopped. */
  private serving?: Promise<void>;
  private loop?: Promise<void>;
  private timers: NodeJS.Timeout[] = [];
  /** The heartbeat under way, if any. */
  private beating?: Promise<void>;
  /** Whether a heartbeat got through: the sender is in dbmail.senders, and must say when it stops. */
  private registered = false;
  /** Where the worker is, for the log and for health checks. */
  state: WorkerState = { state: "connecting" };
  /** When mail was last claimed (or the worker started): for --exit-when-idle. */
  lastActivity = Date.now();
  /** DatabaseMailExeMinimumLifeTime, in seconds, as last read from the database. */
  minimumLifetimeSeconds = 600;

  constructor(
    readonly target: DatabaseTarget,
    private readonly options: SenderOptions,
    log: Logger,
  ) {
    this.log = log.child({ database: target.name });
    const applicationName = `dbmail sender ${options.senderId}`;
    this.pool = new pg.Pool({
      connectionString: target.url,
      application_name: applicationName,
      max: databasePoolSize(options.concurrency),
    });
    // An idle client's connection can drop (database restart); the pool replaces it on the next query.
    this.pool.on("error", (error) => this.log.warn({ err: error.message }, "database connection lost"));
    this.listener = new WakeListener({
      connectionString: target.url,
      applicationName,
      channels: CHANNELS,
      checkIntervalMs: 10_000,
    });
    this.transports = new Transports({
      poolSize: options.smtpPoolSize,
      timeoutSeconds: options.smtpTimeoutSeconds,
      defaultCredentials: options.smtpUsername
        ? { user: options.smtpUsername, pass: options.smtpPassword ?? "" }
        : undefined,
    });
    this.accounts = new AccountsCache(this.pool);
    // The SMTP server has spoken: keep trying to record it through a database outage, so the item is not
    // sent a second time after its lease expires.
    this.outcomes = new OutcomeRecorder(
      (batch) => q.recordOutcomes(this.pool, options.senderId, batch, this.leases),
      {
        maxBatch: OUTCOME_BATCH,
        delayMs: OUTCOME_DELAY_MS,
        giveUpAfterMs: options.leaseSeconds * 1000,
        onRetry: (error, outcomes) =>
          this.log.warn({ err: error.message, outcomes }, "recording outcomes failed; retrying"),
        onRefused: (mailitemId, error) =>
          this.log.error(
            { mailitemId, err: safeText(error.message, 500) },
            "the database refused this outcome's text: recorded without it",
          ),
        onWritten: () => this.wakeup.wake(),
      },
    );
    this.outcomeBacklog = Math.max(OUTCOME_BATCH, 2 * options.concurrency);
  }

  /**
   * Starts serving once the database is usable, waiting out transient states (starting up, restarting,
   * unreachable) with backoff. A refusal (the login, its role, the schema) is thrown when `failFast`
   * (a sender serving only this database has nothing else to do); otherwise it is logged, shown in
   * `state`, and retried with backoff while the sender's other databases are served. Resolves when
   * serving, or, without failFast, at once.
   */
  start({ failFast }: { failFast: boolean }): Promise<void> {
    this.serving ??= this.untilDatabaseReady(failFast).then((ready) => (ready ? this.serve() : undefined));
    return failFast ? this.serving : Promise.resolve();
  }

  private async serve(): Promise<void> {
    this.listener.on("notification", (channel) => {
      if (channel === "dbmail_queue") this.wakeup.wake();
      // Anyone may NOTIFY: read whether delivery is started from the database, never from the payload.
      else if (channel === "dbmail_control") void this.beat();
      else if (channel === "dbmail_config") this.accounts.invalidate();
    });
    this.listener.on("lost", (error) =>
      this.log.warn({ err: error.message }, "LISTEN connection lost; reconnecting (polling meanwhile)"),
    );
    // After every (re)connect, look for what arrived while no notification could be heard, and re-read
    // whether delivery is started.
    this.listener.on("connected", () => {
      this.wakeup.wake();
      void this.beat();
    });
    this.listener.start();
    await this.beat();
    // Stopped while the first heartbeat was on its way: start nothing that stop() would miss.
    if (this.stopping) return;
    this.timers.push(setInterval(() => void this.beat(), this.options.heartbeatIntervalMs));
    this.timers.push(setInterval(() => void this.renewLeases(), (this.options.leaseSeconds * 1000) / 3));
    this.loop = this.run();
    this.state = { state: "serving" };
    this.log.info("serving");
  }

  /** Waits until the database is usable (see start()). Returns false when stopped meanwhile. */
  private async untilDatabaseReady(failFast: boolean): Promise<boolean> {
    for (let attempt = 0; !this.stopping; attempt++) {
      try {
        await checkSchema(this.pool);
        return true;
      } catch (error) {
        const refused = error instanceof DatabaseRefusedError;
        if (failFast && !isTransient(error)) {
          throw refused
            ? new DatabaseRefusedError(error.code, `database ${this.target.name}: ${error.message}`, {
                cause: error,
              })
            : error;
        }
        const delay = backoffMs(attempt);
        const reason = (error as Error).message;
        if (refused || !isTransient(error)) {
          this.state = { state: "refused", reason };
          this.log.error({ err: reason, retryInMs: delay }, "cannot serve this database; retrying");
        } else {
          this.state = { state: "connecting", reason };
          this.log.warn({ err: reason, retryInMs: delay }, "database unreachable; retrying");
        }
        await this.wakeup.sleep(delay);
      }
    }
    return false;
  }

  /** Stops waiting and claiming at once; stop() then finishes the shutdown. */
  halt(): void {
    this.stopping = true;
    this.wakeup.wake();
  }

  /** Stops claiming, lets messages in flight finish (up to the timeout), releases the rest. */
  async stop(timeoutMs: number): Promise<void> {
    this.halt();
    await this.serving?.catch(() => {});
    for (const timer of this.timers) clearInterval(timer);
    await this.loop;
    await this.giveBackReady();
    // Messages in flight finish, and every outcome known is recorded, before anything is given back.
    const finished = Promise.all(this.inFlight.values())
      .then(() => this.outcomes.drain())
      .then(() => true);
    const timedOut = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs).unref());
    if (!(await Promise.race([finished, timedOut]))) {
      // Only what the SMTP servers have not answered yet: an item whose outcome is known but could not
      // be recorded stays 'sending' and is claimed again after its lease (outcome unknown).
      const ids = [...this.inFlight.keys()];
      const released = await q.release(this.pool, this.options.senderId, ids, this.leases).catch(() => 0);
      this.log.warn(
        { released, ids, unrecorded: this.outcomes.ids() },
        "released messages still in flight at shutdown",
      );
    }
    // Whatever could not be recorded by now stays 'sending' and comes back after its lease.
    this.outcomes.close();
    // After the last heartbeat, which would count the sender as live again.
    await this.beating;
    if (this.registered) await q.senderStopped(this.pool, this.options.senderId).catch(() => {});
    await this.listener.close();
    this.transports.closeAll();
    await this.pool.end().catch(() => {});
    this.state = { state: "stopped" };
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      try {
        this.fill();
        // Claim a whole batch while half a batch still waits, so the next message is there when a slot
        // frees; not while outcomes pile up unrecorded (the database is slow or away).
        if (
          this.started &&
          this.ready.size < Math.ceil(this.options.batchSize / 2) &&
          this.outcomes.pending < this.outcomeBacklog
        ) {
          const asked = performance.now();
          const items = await q.claim(
            this.pool,
            this.options.senderId,
            this.options.batchSize,
            this.options.leaseSeconds,
          );
          failures = 0;
          if (items.length > 0) {
            this.lastActivity = Date.now();
            for (const item of items) {
              // One this sender still holds (its lease ran out in a long outage, and this claim took it
              // back) is being sent, or its outcome is on its way: never start it a second time.
              const id = item.mailitem_id;
              this.leases.set(id, item.lease_token);
              if (!this.inFlight.has(id) && !this.outcomes.has(id)) this.ready.set(id, item);
              this.markHeld(id, asked);
            }
            // Delivery was stopped while this claim was on its way (its transaction began before the
            // stop committed): give the batch back rather than holding it until delivery starts again.
            if (!this.started || this.stopping) {
              await this.giveBackReady();
              continue;
            }
            this.fill();
            // A full batch: there may be more due at once.
            if (items.length === this.options.batchSize) continue;
          }
        }
      } catch (error) {
        failures++;
        const delay = backoffMs(failures);
        this.log.warn({ err: (error as Error).message, retryInMs: delay }, "claim failed");
        await this.wakeup.sleep(delay);
        continue;
      }
      await this.wakeup.sleep(this.options.pollIntervalMs);
    }
  }

  /**
   * Notes that the database granted or renewed the lease of an item in flight in answer to a query sent
   * at `asked` (not when the answer arrived: the process may have been paused in between).
   */
  private markHeld(id: string, asked: number): void {
    if (!this.inFlight.has(id) && !this.ready.has(id)) return;
    const until = asked + this.options.leaseSeconds * 1000 - 5000;
    this.surelyHeldUntil.set(id, Math.max(until, this.surelyHeldUntil.get(id) ?? 0));
  }

  /** Notes that the database counted this sender alive in answer to a query sent at `asked`. */
  private markAlive(asked: number): void {
    this.aliveUntil = Math.max(this.aliveUntil, asked + SENDER_DEAD_AFTER_MS - 5000);
  }

  /** Whether the item is surely still this sender's by the local clock alone. */
  private surelyHeld(id: string): boolean {
    const now = performance.now();
    return now < this.aliveUntil && now < (this.surelyHeldUntil.get(id) ?? 0);
  }

  /** Whether this sender still holds the item: known locally, or confirmed (and renewed) in the database. */
  private async stillHeld(id: string): Promise<boolean> {
    if (this.surelyHeld(id)) return true;
    const held = await this.extendLeases([id]);
    return held.has(id);
  }

  /** Renews the leases of the items this sender still holds (which also counts as alive); returns them. */
  private async extendLeases(ids: string[]): Promise<Set<string>> {
    const asked = performance.now();
    const held = await q.extendLeases(
      this.pool,
      this.options.senderId,
      ids,
      this.leases,
      this.options.leaseSeconds,
    );
    this.markAlive(asked);
    for (const id of held) this.markHeld(id, asked);
    return held;
  }

  /**
   * Delivers an item. It counts against `concurrency` until its SMTP server has answered; its outcome is
   * then recorded in a batch (see OutcomeRecorder) while the next message takes its place, its lease
   * still renewed until the outcome is in the database.
   */
  /**
   * Gives back the items claimed ahead that have not started (shutdown, or delivery stopped): claimable
   * by others at once. Should that fail, they come back after their leases.
   */
  private async giveBackReady(): Promise<void> {
    if (this.ready.size === 0) return;
    const ids = [...this.ready.keys()];
    this.ready.clear();
    for (const id of ids) this.surelyHeldUntil.delete(id);
    await q.release(this.pool, this.options.senderId, ids, this.leases).catch((error: Error) => {
      this.log.warn(
        { err: error.message, ids },
        "giving back claimed items failed; they return after their lease",
      );
    });
    for (const id of ids) this.forget(id);
  }

  /** Starts waiting items while there is room (not while stopping or stopped: they are given back). */
  private fill(): void {
    for (const [id, item] of this.ready) {
      if (this.stopping || !this.started || this.inFlight.size >= this.options.concurrency) return;
      this.ready.delete(id);
      this.dispatch(item);
    }
  }

  private dispatch(item: q.ClaimedItem): void {
    const id = item.mailitem_id;
    const leave = () => {
      if (!this.inFlight.delete(id)) return;
      this.surelyHeldUntil.delete(id);
      this.fill();
      this.wakeup.wake();
    };
    const done = this.deliverOne(item)
      .then((delivered) => {
        leave();
        if (delivered) void this.record(item, delivered.outcome, delivered.attempt);
      })
      .catch((error: unknown) =>
        this.log.error({ mailitemId: id, err: (error as Error).message }, "delivery failed"),
      )
      .finally(() => {
        leave();
        // Not delivered (lease lost, or an error): nothing more to say about the item.
        if (!this.outcomes.has(id)) this.forget(id);
      });
    this.inFlight.set(id, done);
  }

  /** Drops the lease token of an item this sender is done with, unless a later claim gave it back. */
  private forget(id: string): void {
    if (!this.ready.has(id) && !this.inFlight.has(id)) this.leases.delete(id);
  }

  private async record(item: q.ClaimedItem, outcome: q.Outcome, attempt: Attempt): Promise<void> {
    // Made only when needed: a child logger per message costs more than it is worth on the hot path.
    const log = () => this.log.child({ mailitemId: item.mailitem_id });
    let status: string;
    try {
      status = await this.outcomes.record(item.mailitem_id, outcome);
    } catch (error) {
      log().error(
        { outcome: outcome.status, err: (error as Error).message },
        "the outcome could not be recorded: the item will be claimed again after its lease (outcome unknown)",
      );
      return;
    } finally {
      // Recorded, or given up: either way the item is done with here.
      this.forget(item.mailitem_id);
    }
    if (outcome.status === "sent" && outcome.accountId !== undefined) {
      this.accounts.markSuccess(item.profile_id, outcome.accountId);
    }
    if (status === "lease_lost") {
      log().warn(
        {
          outcome: outcome.status,
          // The last moment the lease was known to be held before the end of the message went out.
          leaseCheckedAt: attempt.finalCheckAt ? new Date(attempt.finalCheckAt).toISOString() : undefined,
        },
        "the item was reclaimed or deleted before its outcome was recorded",
      );
    } else {
      if (this.log.isLevelEnabled("info"))
        log().info({ status, accountId: outcome.accountId, error: outcome.error }, `mail ${status}`);
    }
  }

  /** One round over the item's accounts; undefined when it was not sent (its lease was lost). */
  private async deliverOne(
    item: q.ClaimedItem,
  ): Promise<{ outcome: q.Outcome; attempt: Attempt } | undefined> {
    let prepared: [q.ProfileAccount[], q.StoredAttachment[]];
    try {
      prepared = await Promise.all([
        this.accounts.forProfile(item.profile_id),
        item.attachment_count > 0
          ? q.attachments(
              this.pool,
              this.options.senderId,
              item.mailitem_id,
              this.leases.get(item.mailitem_id),
              ATTACHMENT_CHUNK_BYTES,
            )
          : [],
      ]);
    } catch (error) {
      // Nothing was sent: give the item back at once rather than letting its lease run out.
      await q.release(this.pool, this.options.senderId, [item.mailitem_id], this.leases).catch(() => {});
      throw error;
    }
    const [accounts, attachments] = prepared;
    const attempt: Attempt = {};
    let outcome: q.Outcome;
    try {
      outcome = await deliver(item, accounts, (account) =>
        // Only when a pooled connection is free, so the lease checks happen right before the message
        // goes out, not before it waits in nodemailer's queue.
        this.transports.withConnection(account, () => this.sendThrough(item, account, attachments, attempt)),
      );
    } catch (error) {
      if (!(error instanceof LeaseLostError)) throw error;
      this.log.warn(
        { mailitemId: item.mailitem_id, reason: error.message },
        "not sent: the item is no longer this sender's",
      );
      // Nothing went out. Should the lease merely have been unconfirmable (the database unreachable),
      // give the item back rather than let it expire into an "outcome unknown"; a no-op for an item
      // another sender holds.
      await q.release(this.pool, this.options.senderId, [item.mailitem_id], this.leases).catch(() => {});
      return undefined;
    }
    return { outcome, attempt };
  }

  /**
   * One attempt through one account. The lease is checked before the message starts and again right
   * before its end of DATA goes out (the final check), so a sender paused past its lease (SIGSTOP,
   * swap) aborts, rather than completes, a message another sender has taken over: the server discards
   * a message whose DATA never ended. The final check costs nothing while the local clock says the lease
   * is surely held; only past that does it ask the database. Throws LeaseLostError when the lease is lost.
   */
  private async sendThrough(
    item: q.ClaimedItem,
    account: q.ProfileAccount,
    stored: q.StoredAttachment[],
    attempt: Attempt,
  ): Promise<SentInfo> {
    const id = item.mailitem_id;
    if (!(await this.stillHeld(id))) {
      throw new LeaseLostError("another sender took it over before it was sent");
    }
    let lost: string | undefined;
    // A fresh stream per attempt: the next account, if this one fails, sends the whole attachment again.
    const attachments: MessageAttachment[] = stored.map((a) => ({
      filename: a.filename,
      contentType: a.content_type,
      content:
        a.content ??
        chunkedStream(a.size, async (offset, length) => {
          const piece = await q.attachmentChunk(
            this.pool,
            this.options.senderId,
            a.attachment_id,
            this.leases.get(id),
            offset,
            length,
          );
          if (piece === null) {
            lost = "another sender took it over while it was being sent";
            throw new LeaseLostError(lost);
          }
          return piece;
        }),
    }));
    const finalCheck: FinalCheck = () => {
      attempt.finalCheckAt = Date.now();
      if (this.surelyHeld(id)) return true;
      return this.stillHeld(id).then(
        (held) => {
          // Confirmed in the database, and no long pause since the question was asked.
          if (held && this.surelyHeld(id)) return true;
          lost = held
            ? "this sender was paused while confirming its lease before the end of its message"
            : "another sender took it over before the end of its message";
          return false;
        },
        (error: Error) => {
          lost = `its lease could not be confirmed before the end of its message: ${error.message}`;
          return false;
        },
      );
    };
    try {
      return await this.transports
        .get(account)
        .sendMail(withFinalCheck(composeForSending(item, account, attachments), finalCheck));
    } catch (error) {
      if (lost !== undefined) throw new LeaseLostError(lost);
      throw error;
    }
  }

  /** Heartbeats (see beatOnce), one at a time, never once stopping has begun. */
  private beat(): Promise<void> {
    if (this.stopping) return Promise.resolve();
    this.beating ??= this.beatOnce().finally(() => {
      this.beating = undefined;
    });
    return this.beating;
  }

  private async beatOnce(): Promise<void> {
    try {
      const asked = performance.now();
      const state = await q.heartbeat(this.pool, this.options.senderId, hostname(), packageVersion);
      this.registered = true;
      this.markAlive(asked);
      if (state.started !== this.started) {
        this.started = state.started;
        this.log.info(this.started ? "delivery started" : "delivery stopped");
        if (!this.started) void this.giveBackReady();
        this.wakeup.wake();
      }
      this.minimumLifetimeSeconds = Number(state.settings.DatabaseMailExeMinimumLifeTime ?? 600);
    } catch (error) {
      this.log.warn({ err: (error as Error).message }, "heartbeat failed");
    }
  }

  private async renewLeases(): Promise<void> {
    // Also the items whose outcomes wait to be recorded: they are still 'sending', and this sender's.
    const ids = [...this.ready.keys(), ...this.inFlight.keys(), ...this.outcomes.ids()];
    if (ids.length === 0) return;
    try {
      const held = await this.extendLeases(ids);
      const lost = ids.filter((id) => !held.has(id));
      if (lost.length > 0) this.log.warn({ lost }, "leases lost (items reclaimed or deleted)");
    } catch (error) {
      this.log.warn({ err: (error as Error).message }, "lease renewal failed");
    }
  }
}

/** What one delivery remembers across its attempts (the last one is the one that counts). */
interface Attempt {
  /** When (wall clock) the lease was last checked before the end of the message went out. */
  finalCheckAt?: number;
}
