import pg from "pg";
import type { DatabaseTarget, SenderOptions } from "../config/options.js";
import { connectionConfig } from "../connection.js";
import type { Logger } from "../log.js";
import { safeText } from "../safe-text.js";
import { Transports } from "../smtp/transports.js";
import { AccountsCache } from "./accounts-cache.js";
import { ClaimQueue } from "./claim-queue.js";
import { DatabaseProbe, type QueueStats } from "./database-probe.js";
import { ItemDelivery } from "./delivery.js";
import type { DeliveryEvents } from "./delivery-events.js";
import { type DatabaseHealth, notServing } from "./health.js";
import { Heartbeat } from "./heartbeat.js";
import { Leases } from "./leases.js";
import { OutcomeRecorder } from "./outcomes.js";
import * as q from "./queries.js";
import { untilDatabaseReady, type WorkerState } from "./readiness.js";
import { WakeListener } from "./wake-listener.js";
import { Wakeup } from "./wakeup.js";

export type { WorkerState } from "./readiness.js";

/** Outcomes per record_outcomes call, at most. */
const OUTCOME_BATCH = 100;
/**
 * How long a record_outcomes call waits for more outcomes to join it: fewer, larger commits, at the cost
 * of widening the window in which a crash loses an outcome the SMTP server gave by as much.
 */
const OUTCOME_DELAY_MS = 20;

/** The channels a sender listens on: new mail, delivery started/stopped, configuration changed. */
const CHANNELS = ["dbmail_queue", "dbmail_control", "dbmail_config"] as const;

/**
 * The query connections for `concurrency` messages in flight: one each for claims, outcomes, lease
 * renewal and the heartbeat, and more for the attachment reads and lease checks of the messages.
 */
export function databasePoolSize(concurrency: number): number {
  return Math.min(20, 4 + Math.ceil(concurrency / 4));
}

/**
 * Serves one database, by wiring its parts: the LISTEN connection (wake-listener.ts) and the poll wake
 * the claim queue (claim-queue.ts), which delivers each item (delivery.ts) and records its outcome
 * (outcomes.ts) under a lease (leases.ts), while the heartbeat (heartbeat.ts) says whether delivery is
 * started. Everything it holds (connections, SMTP pools, caches, leases) is its own: databases served by
 * one process never share state.
 */
export class DatabaseWorker {
  /** Where the worker is, for the log and for health checks. */
  state: WorkerState = { state: "connecting" };
  private readonly log: Logger;
  private readonly pool: pg.Pool;
  private readonly listener: WakeListener;
  private readonly transports: Transports;
  private readonly accounts: AccountsCache;
  private readonly wakeup = new Wakeup();
  private readonly leases: Leases;
  private readonly outcomes: OutcomeRecorder;
  private readonly heartbeat: Heartbeat;
  private readonly queue: ClaimQueue;
  private readonly probe: DatabaseProbe;
  /** Whether the LISTEN connection listens; why not, when it does not. */
  private listening = false;
  private listenError?: string;
  private stopping = false;
  /** Resolves when the worker serves, or has given up because it was stopped. */
  private serving?: Promise<void>;
  private loop?: Promise<void>;
  private timers: NodeJS.Timeout[] = [];

  constructor(
    readonly target: DatabaseTarget,
    private readonly options: SenderOptions,
    log: Logger,
    /** Told of each recorded outcome (the metrics, when --http is on). */
    events?: DeliveryEvents,
  ) {
    this.log = log.child({ database: target.name });
    const applicationName = `dbmail sender ${options.senderId}`;
    // One host, or several of which the one not in recovery is used (connection.ts, multi-host.ts): the
    // pool and the LISTEN connection share the host found, and look again after a failover.
    const connection = connectionConfig(target.url, { writes: true });
    this.pool = new pg.Pool({
      ...connection,
      application_name: applicationName,
      max: databasePoolSize(options.concurrency),
    });
    // An idle client's connection can drop (database restart); the pool replaces it on the next query.
    this.pool.on("error", (error) => this.log.warn({ err: error.message }, "database connection lost"));
    this.listener = new WakeListener({
      connectionString: connection.connectionString,
      Client: connection.Client,
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
    this.leases = new Leases(this.pool, options.senderId, options.leaseSeconds);
    // The SMTP server has spoken: keep trying to record it through a database outage, so the item is not
    // sent a second time after its lease expires.
    this.outcomes = new OutcomeRecorder(
      (batch) => q.recordOutcomes(this.pool, options.senderId, batch, this.leases.all()),
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
    const delivery = new ItemDelivery({
      pool: this.pool,
      senderId: options.senderId,
      leases: this.leases,
      accounts: this.accounts,
      transports: this.transports,
      outcomes: this.outcomes,
      log: this.log,
      events,
    });
    this.queue = new ClaimQueue(
      this.pool,
      { ...options, outcomeBacklog: Math.max(OUTCOME_BATCH, 2 * options.concurrency) },
      this.leases,
      delivery,
      this.outcomes,
      this.wakeup,
      this.listener,
      this.log,
    );
    this.probe = new DatabaseProbe(this.pool);
    this.heartbeat = new Heartbeat(this.pool, options.senderId, this.leases, this.log, (started) =>
      this.queue.setStarted(started),
    );
  }

  /** When mail was last claimed (or the worker started): for --exit-when-idle. */
  get lastActivity(): number {
    return this.queue.lastActivity;
  }

  /** DatabaseMailExeMinimumLifeTime, in seconds, as last read from the database. */
  get minimumLifetimeSeconds(): number {
    return this.heartbeat.minimumLifetimeSeconds;
  }

  /**
   * Starts serving once the database is usable (see readiness.ts). With `failFast` (a sender serving
   * only this database) a refusal is thrown; otherwise it is logged, shown in `state`, and retried while
   * the sender's other databases are served. Resolves when serving, or, without failFast, at once.
   */
  start({ failFast }: { failFast: boolean }): Promise<void> {
    this.serving ??= untilDatabaseReady({
      pool: this.pool,
      database: this.target.name,
      log: this.log,
      failFast,
      sleep: (ms) => this.wakeup.sleep(ms),
      stopping: () => this.stopping,
      onState: (state) => {
        this.state = state;
      },
    }).then((ready) => (ready ? this.serve() : undefined));
    return failFast ? this.serving : Promise.resolve();
  }

  /**
   * Whether the database is ready: served, answering as it should (probed, at most once a second),
   * heard from by LISTEN or, while that is down, by polling, and its claims working.
   */
  async health(): Promise<DatabaseHealth> {
    if (this.state.state !== "serving") return notServing(this.state);
    const wakeup = this.listening ? "listen" : "polling";
    const unreachable = await this.probe.problem();
    const problems = unreachable ? [unreachable] : [];
    // Claims that fail deliver nothing, however the sender hears of new mail.
    const claimError = this.queue.claimError;
    if (!unreachable && claimError) {
      problems.push(
        this.listening
          ? `claiming mail fails: ${claimError}`
          : `LISTEN is down (${this.listenError ?? "connecting"}) and polling fails: ${claimError}`,
      );
    }
    return { ready: problems.length === 0, state: "serving", connected: !unreachable, wakeup, problems };
  }

  /** The queue's figures (dbmail.sender_queue_stats, reused for 2 s). */
  queueStats(): Promise<QueueStats> {
    return this.probe.queueStats();
  }

  /** Stops waiting and claiming at once; stop() then finishes the shutdown. */
  halt(): void {
    this.stopping = true;
    this.queue.halt();
  }

  /** Stops claiming, lets messages in flight finish (up to the timeout), releases the rest. */
  async stop(timeoutMs: number): Promise<void> {
    this.halt();
    await this.serving?.catch(() => {});
    for (const timer of this.timers) clearInterval(timer);
    await this.loop;
    const unfinished = await this.queue.finish(timeoutMs);
    if (unfinished.length > 0) {
      // Only what the SMTP servers have not answered yet: an item whose outcome is known but could not
      // be recorded stays 'sending' and is claimed again after its lease (outcome unknown).
      const released = await this.leases.release(unfinished).catch(() => 0);
      this.log.warn(
        { released, ids: unfinished, unrecorded: this.outcomes.ids() },
        "released messages still in flight at shutdown",
      );
    }
    // Whatever could not be recorded by now stays 'sending' and comes back after its lease.
    this.outcomes.close();
    await this.heartbeat.stop();
    await this.listener.close();
    this.transports.closeAll();
    await this.pool.end().catch(() => {});
    this.state = { state: "stopped" };
  }

  private async serve(): Promise<void> {
    this.listener.on("notification", (channel) => {
      if (channel === "dbmail_queue") this.wakeup.wake();
      // Anyone may NOTIFY: read whether delivery is started from the database, never from the payload.
      else if (channel === "dbmail_control") void this.heartbeat.beat();
      else if (channel === "dbmail_config") this.accounts.invalidate();
    });
    this.listener.on("lost", (error) => {
      this.listening = false;
      // A watch it held went with it: whoever counted on it needs a look (over the pool, meanwhile).
      this.queue.settleSoon();
      this.listenError = error.message;
      this.log.warn({ err: error.message }, "LISTEN connection lost; reconnecting (polling meanwhile)");
    });
    // After every (re)connect, look for what arrived while no notification could be heard, and re-read
    // whether delivery is started.
    this.listener.on("connected", () => {
      this.listening = true;
      // Calls that saw nobody listening sent no NOTIFY: settle, then look.
      this.queue.settleSoon();
      void this.heartbeat.beat();
    });
    this.listener.start();
    await this.heartbeat.beat();
    // Stopped while the first heartbeat was on its way: start nothing that stop() would miss.
    if (this.stopping) return;
    this.timers.push(setInterval(() => void this.heartbeat.beat(), this.options.heartbeatIntervalMs));
    this.timers.push(setInterval(() => void this.renewLeases(), (this.options.leaseSeconds * 1000) / 3));
    this.loop = this.queue.run();
    this.state = { state: "serving" };
    this.log.info("serving");
  }

  private async renewLeases(): Promise<void> {
    // Also the items whose outcomes wait to be recorded: they are still 'sending', and this sender's.
    const ids = this.queue.held();
    if (ids.length === 0) return;
    try {
      const held = await this.leases.extend(ids);
      const lost = ids.filter((id) => !held.has(id));
      if (lost.length > 0) this.log.warn({ lost }, "leases lost (items reclaimed or deleted)");
    } catch (error) {
      this.log.warn({ err: (error as Error).message }, "lease renewal failed");
    }
  }
}
