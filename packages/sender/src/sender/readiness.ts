import type pg from "pg";
import type { Logger } from "../log.js";
import { NoSuitableHostError } from "../multi-host.js";
import { backoffMs } from "./backoff.js";
import { checkSchema } from "./check-schema.js";
import { DatabaseRefusedError } from "./errors.js";
import { isTransient } from "./transient-errors.js";

/** Where a database is for its worker: not yet usable, refused (and retried), served, or let go. */
export type WorkerState =
  | { state: "connecting"; reason?: string }
  | { state: "refused"; reason: string }
  | { state: "serving" }
  | { state: "stopped" };

export interface ReadinessWait {
  pool: pg.Pool;
  database: string;
  log: Logger;
  /**
   * Throw a refusal (the login, its role, the schema) instead of retrying it: a sender serving only this
   * database has nothing else to do.
   */
  failFast: boolean;
  /** Sleeps between attempts, cut short when stopping. */
  sleep: (ms: number) => Promise<void>;
  stopping: () => boolean;
  /** Told each time the wait's reason changes. */
  onState: (state: WorkerState) => void;
}

/**
 * Waits until the database is usable by this sender (reachable, the login a member of dbmail_sender, the
 * schema at this sender's version), retrying with backoff. Transient states (starting up, restarting,
 * unreachable) are always waited out. Returns false when stopped meanwhile.
 */
export async function untilDatabaseReady(wait: ReadinessWait): Promise<boolean> {
  let waitingFor: string | undefined;
  for (let attempt = 0; !wait.stopping(); attempt++) {
    try {
      await checkSchema(wait.pool);
      return true;
    } catch (error) {
      const refused = error instanceof DatabaseRefusedError;
      if (wait.failFast && !isTransient(error)) {
        throw refused
          ? new DatabaseRefusedError(error.code, `database ${wait.database}: ${error.message}`, {
              cause: error,
            })
          : error;
      }
      // Waiting for a standby's promotion: look again every few seconds at most, so that a failover is
      // followed within seconds rather than after a backoff grown to half a minute.
      const delay = backoffMs(attempt, error instanceof NoSuitableHostError ? { maxMs: 2_000 } : {});
      const reason = (error as Error).message;
      if (error instanceof NoSuitableHostError && error.onlyStandbys) {
        // Only standbys answer (before a failover's promotion, or a URL naming standbys alone): claim
        // nothing, and say so once per change rather than at every attempt.
        const why = `${reason}: waiting for a primary`;
        wait.onState({ state: "connecting", reason: why });
        if (why !== waitingFor) wait.log.warn({ reason: why }, "no primary to write to; claiming nothing");
        waitingFor = why;
      } else if (refused || !isTransient(error)) {
        wait.onState({ state: "refused", reason });
        wait.log.error({ err: reason, retryInMs: delay }, "cannot serve this database; retrying");
      } else {
        wait.onState({ state: "connecting", reason });
        wait.log.warn({ err: reason, retryInMs: delay }, "database unreachable; retrying");
      }
      await wait.sleep(delay);
    }
  }
  return false;
}
