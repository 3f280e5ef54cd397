import type { Outcome } from "../rows.js";

/** One outcome as the database recorded it: what the sender's counters are made of. */
export interface RecordedOutcome {
  /** What the SMTP servers said. */
  outcome: Outcome;
  /** The item's status afterwards, as the database decided it: sent, retrying, failed (or lease_lost). */
  status: string;
  /** The name of the account that sent it (a sent outcome). */
  accountName?: string;
  /** How long the accepted message took over SMTP, in seconds (a sent outcome). */
  smtpSeconds?: number;
}

/**
 * Told of every outcome once it is recorded (the one place its final status is known): the metrics
 * listen here, so the delivery path carries a single call and nothing of Prometheus.
 */
export interface DeliveryEvents {
  recorded(event: RecordedOutcome): void;
}

/** Why an item failed: every account refused it permanently, its rounds ran out, or anything else. */
export type FailureReason = "permanent" | "retries_exhausted" | "other";

/** The reason a recorded outcome failed its item, or undefined when the item did not fail. */
export function failureReason({ outcome, status }: RecordedOutcome): FailureReason | undefined {
  if (status !== "failed") return undefined;
  if (outcome.status === "failed") return "permanent";
  if (outcome.status === "retrying") return "retries_exhausted";
  return "other";
}
