import { backoffMs } from "./backoff.js";
import type { Outcome, PendingOutcome } from "./queries.js";

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
 * database at most `delayMs` plus two writes after it arrived. A failed write is
 * retried, whole, with capped backoff; an outcome still unwritten `giveUpAfterMs` after it arrived is
 * given up (its promise rejects): its item stays 'sending' and is claimed again after its lease.
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
      } catch (error) {
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
