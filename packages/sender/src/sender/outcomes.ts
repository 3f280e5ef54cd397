import type { Outcome } from "../rows.js";
import { safeText } from "../safe-text.js";
import { backoffMs } from "./backoff.js";
import type { PendingOutcome } from "./queries.js";
import { isTransient } from "./transient-errors.js";

/** Writes a batch of outcomes; answers each item's status afterwards (or 'lease_lost') by its id. */
export type WriteOutcomes = (batch: PendingOutcome[]) => Promise<Map<string, string>>;

export interface OutcomeRecorderOptions {
  /** At most this many outcomes per write. */
  maxBatch: number;
  /** A write waits this long for more outcomes to join it (unless it has maxBatch already). */
  delayMs: number;
  /** How long an outcome is retried through a database outage before it is given up. */
  giveUpAfterMs: number;
  onRetry?: (error: Error, outcomes: number) => void;
  /** An outcome the database refused was recorded without its texts (see writeApart). */
  onRefused?: (mailitemId: string, error: Error) => void;
  /** After every write, successful or not: room may have been made. */
  onWritten?: () => void;
}

interface Entry extends PendingOutcome {
  deadline: number;
  resolve: (status: string) => void;
  reject: (error: Error) => void;
}

/**
 * Records outcomes in batches, one write (one commit) at a time: a write waits `delayMs` for company,
 * and an outcome that arrives while a write is under way goes into the next one, so at high rates the
 * batches grow with the commit time instead of the commits queueing up. An outcome thus reaches the
 * database at most `delayMs` plus two writes after it arrived. A write that failed for a transient
 * reason (the database away) is retried, whole, with capped backoff; an outcome still unwritten
 * `giveUpAfterMs` after it arrived is given up (its promise rejects): its item stays 'sending' and is
 * claimed again after its lease. A write the database refused (something in one outcome it cannot
 * store) is written again one outcome at a time, so that one outcome never holds back the others.
 */
export class OutcomeRecorder {
  private queue: Entry[] = [];
  private writing: Entry[] = [];
  private flushing?: Promise<void>;
  private closed = false;
  private wakeRetry?: () => void;

  constructor(
    private readonly write: WriteOutcomes,
    private readonly options: OutcomeRecorderOptions,
  ) {}

  /** Outcomes waiting or being written. */
  get pending(): number {
    return this.queue.length + this.writing.length;
  }

  /** The items whose outcomes are waiting or being written: their leases must still be renewed. */
  ids(): string[] {
    return [...this.writing, ...this.queue].map((e) => e.mailitemId);
  }

  /** Whether an outcome of the item is waiting or being written. */
  has(mailitemId: string): boolean {
    return (
      this.writing.some((e) => e.mailitemId === mailitemId) ||
      this.queue.some((e) => e.mailitemId === mailitemId)
    );
  }

  /** Queues an outcome; resolves to the item's status once written, or 'lease_lost'. */
  record(mailitemId: string, outcome: Outcome): Promise<string> {
    return new Promise((resolve, reject) => {
      this.queue.push({
        mailitemId,
        outcome,
        deadline: Date.now() + this.options.giveUpAfterMs,
        resolve,
        reject,
      });
      this.flushing ??= this.flush().finally(() => {
        this.flushing = undefined;
      });
    });
  }

  /** Resolves when every outcome queued so far is written or given up. */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  /**
   * Stops retrying (the sender is shutting down and closing its connections): the outcomes still
   * unwritten are given up after the write under way, if any. Their items come back after their leases.
   */
  close(): void {
    this.closed = true;
    this.wakeRetry?.();
  }

  /**
   * Writes each outcome of a refused batch alone. One the database refuses on its own is written again
   * without its texts (the server's reply, the errors), which are what can be unstorable, with a note
   * of why: the item gets its status (sent, retrying, failed) instead of staying 'sending' and being
   * sent again after every lease. Returns those that hit a transient error, to be retried as usual.
   */
  private async writeApart(batch: Entry[]): Promise<{ entries: Entry[]; error?: unknown }> {
    const unwritten: Entry[] = [];
    let lastError: unknown;
    for (const entry of batch) {
      try {
        entry.resolve(await this.writeOne(entry.mailitemId, entry.outcome));
      } catch (error) {
        if (isTransient(error)) {
          unwritten.push(entry);
          lastError = error;
          continue;
        }
        try {
          const status = await this.writeOne(entry.mailitemId, withoutTexts(entry.outcome, error as Error));
          this.options.onRefused?.(entry.mailitemId, error as Error);
          entry.resolve(status);
        } catch (again) {
          if (isTransient(again)) {
            unwritten.push(entry);
            lastError = again;
          } else {
            entry.reject(again as Error);
          }
        }
      }
    }
    return { entries: unwritten, error: unwritten.length > 0 ? lastError : undefined };
  }

  private async writeOne(mailitemId: string, outcome: Outcome): Promise<string> {
    const statuses = await this.write([{ mailitemId, outcome }]);
    return statuses.get(mailitemId) ?? "lease_lost";
  }

  private async flush(): Promise<void> {
    for (let failures = 0; this.queue.length > 0; ) {
      if (
        !this.closed &&
        failures === 0 &&
        this.queue.length < this.options.maxBatch &&
        this.options.delayMs > 0
      ) {
        await new Promise((resolve) => setTimeout(resolve, this.options.delayMs));
      }
      this.writing = this.queue.splice(0, this.options.maxBatch);
      const batch = this.writing;
      try {
        const statuses = await this.write(batch);
        this.writing = [];
        failures = 0;
        for (const entry of batch) entry.resolve(statuses.get(entry.mailitemId) ?? "lease_lost");
      } catch (refused) {
        let error = refused;
        if (!isTransient(refused)) {
          // Not the connection: something in the batch. Settle each outcome on its own; only those the
          // database could not be reached for come back to be retried.
          const unwritten = await this.writeApart(batch);
          if (unwritten.error === undefined) {
            this.writing = [];
            failures = 0;
            this.options.onWritten?.();
            continue;
          }
          error = unwritten.error;
          batch.splice(0, batch.length, ...unwritten.entries);
        }
        const delay = backoffMs(failures++, { baseMs: 200, maxMs: 10_000 });
        const retryAt = Date.now() + delay;
        this.writing = [];
        const kept = batch.filter((entry) => entry.deadline >= retryAt);
        for (const entry of batch) if (entry.deadline < retryAt) entry.reject(error as Error);
        // Back in front, in their order: the next write retries them with whatever arrived meanwhile.
        this.queue.unshift(...kept);
        if (this.closed) {
          for (const entry of this.queue.splice(0)) entry.reject(error as Error);
        }
        if (this.queue.length > 0) {
          this.options.onRetry?.(error as Error, this.queue.length);
          this.options.onWritten?.();
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, delay);
            this.wakeRetry = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          this.wakeRetry = undefined;
          continue;
        }
      }
      this.options.onWritten?.();
    }
  }
}

/** The outcome without the texts the database refused, and a note of why in their place. */
function withoutTexts(outcome: Outcome, error: Error): Outcome {
  const note = `(not stored: the database refused this outcome's text: ${safeText(error.message, 200)})`;
  return {
    status: outcome.status,
    accountId: outcome.accountId,
    smtpResponse: outcome.smtpResponse === undefined ? undefined : note,
    error: outcome.error === undefined ? undefined : note,
    accountErrors: outcome.accountErrors.map((e) => ({ account_id: e.account_id, error: note })),
    attempts: outcome.attempts?.map((a) => ({ ...a, smtp_response: note })),
  };
}
