import type pg from "pg";
import { checkSchema } from "./check-schema.js";
import { DatabaseRefusedError } from "./errors.js";

/** The queue of one database, as dbmail.sender_queue_stats() counts it. */
export interface QueueStats {
  unsent: number;
  sending: number;
  retrying: number;
  sent: number;
  failed: number;
  /** Seconds the oldest unsent item has waited since it was due; 0 when none waits. */
  oldestUnsentAgeSeconds: number;
}

/** A health check answers within this long, or counts as failed. */
const PROBE_TIMEOUT_MS = 2_000;
/** Answers are reused this long: probes and scrapes, however frequent, cost one query per period. */
const PROBE_TTL_MS = 1_000;
const STATS_TTL_MS = 2_000;
const STATS_TIMEOUT_MS = 5_000;

/**
 * What /readyz and /metrics ask a served database: whether it answers as it should (reachable, this
 * login still a dbmail_sender, the schema at this sender's version), and what is queued. Each question
 * runs at most once at a time and its answer is reused for a second or two, so an HTTP client asking
 * often never costs the database more, and a database that hangs holds one connection, not one per
 * request.
 */
export class DatabaseProbe {
  private readonly check: Cached<string | undefined>;
  private readonly stats: Cached<QueueStats>;

  constructor(pool: pg.Pool) {
    this.check = new Cached(
      () =>
        checkSchema(pool).then(
          () => undefined,
          (error: Error) =>
            error instanceof DatabaseRefusedError ? error.message : `database unreachable: ${error.message}`,
        ),
      PROBE_TTL_MS,
    );
    this.stats = new Cached(() => queueStats(pool), STATS_TTL_MS);
  }

  /** Undefined when the database answers as it should; else what is wrong. */
  problem(): Promise<string | undefined> {
    return withTimeout(
      this.check.get(),
      PROBE_TIMEOUT_MS,
      `database unreachable: no answer within ${PROBE_TIMEOUT_MS / 1000} s`,
    ).catch((error: Error) => error.message);
  }

  /** The queue's figures; rejects when the database does not give them in time. */
  queueStats(): Promise<QueueStats> {
    return withTimeout(this.stats.get(), STATS_TIMEOUT_MS, "the queue figures took too long");
  }
}

async function queueStats(pool: pg.Pool): Promise<QueueStats> {
  const { rows } = await pool.query<Record<string, string | number>>(
    "SELECT * FROM dbmail.sender_queue_stats()",
  );
  const row = rows[0] ?? {};
  return {
    unsent: Number(row.unsent ?? 0),
    sending: Number(row.sending ?? 0),
    retrying: Number(row.retrying ?? 0),
    sent: Number(row.sent ?? 0),
    failed: Number(row.failed ?? 0),
    oldestUnsentAgeSeconds: Number(row.oldest_unsent_age_seconds ?? 0),
  };
}

/** One load at a time; its answer (or error) reused for ttlMs after it settled. */
export class Cached<T> {
  private running?: Promise<T>;
  private last?: { at: number; value: Promise<T> };

  constructor(
    private readonly load: () => Promise<T>,
    private readonly ttlMs: number,
  ) {}

  get(): Promise<T> {
    if (this.running) return this.running;
    if (this.last && performance.now() - this.last.at < this.ttlMs) return this.last.value;
    const value = this.load();
    this.running = value;
    const settle = () => {
      this.running = undefined;
      this.last = { at: performance.now(), value };
    };
    value.then(settle, settle);
    return value;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
