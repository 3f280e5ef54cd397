import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { QueueStats } from "../sender/database-probe.js";
import { type DeliveryEvents, failureReason, type RecordedOutcome } from "../sender/delivery-events.js";

/** One served database at scrape time: whether it is up, and its queue when it could be read. */
export interface DatabaseSnapshot {
  database: string;
  up: boolean;
  queue?: QueueStats;
}

const STATUSES = ["unsent", "sending", "retrying", "sent", "failed"] as const;
const REASONS = ["permanent", "retries_exhausted", "other"] as const;

/**
 * The sender's Prometheus metrics, in a registry of its own (several senders in one process never
 * share one). Counters and the histogram are fed by the outcomes this sender records (DeliveryEvents);
 * the gauges are read from the databases at each scrape. Labels are the database's config name, the
 * account's name and fixed words: never a recipient, a subject or an item id.
 */
export class SenderMetrics {
  readonly registry = new Registry();
  private readonly queueItems = this.gauge(
    "dbmail_queue_items",
    "Mail items in the database by status, read at scrape time",
    ["database", "status"],
  );
  private readonly oldestUnsent = this.gauge(
    "dbmail_queue_oldest_unsent_age_seconds",
    "Seconds the oldest unsent item has waited since it was due (0 when none waits)",
    ["database"],
  );
  private readonly databaseUp = this.gauge(
    "dbmail_database_up",
    "1 when the database answers as it should (reachable, schema at this sender's version), else 0",
    ["database"],
  );
  private readonly sent = new Counter({
    name: "dbmail_sent_total",
    help: "Messages this sender delivered, by the account that sent them",
    labelNames: ["database", "account"],
    registers: [this.registry],
  });
  private readonly failed = new Counter({
    name: "dbmail_failed_total",
    help: "Items this sender failed: permanent (every account refused), retries_exhausted, other",
    labelNames: ["database", "reason"],
    registers: [this.registry],
  });
  private readonly retries = new Counter({
    name: "dbmail_retries_total",
    help: "Items this sender put back for another round over their accounts",
    labelNames: ["database"],
    registers: [this.registry],
  });
  private readonly duration = new Histogram({
    name: "dbmail_delivery_duration_seconds",
    help: "SMTP time of one delivered message, through the account that accepted it",
    labelNames: ["database", "account"],
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  /** Scrapes one at a time: each sets the gauges, then reads the registry. */
  private rendering: Promise<unknown> = Promise.resolve();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The events of one database's deliveries; its counters start at 0, so rates work from the start. */
  forDatabase(database: string): DeliveryEvents {
    this.retries.inc({ database }, 0);
    for (const reason of REASONS) this.failed.inc({ database, reason }, 0);
    return { recorded: (event) => this.recorded(database, event) };
  }

  /** The text exposition, the gauges set from these snapshots (a database missing from them is dropped). */
  render(snapshots: DatabaseSnapshot[]): Promise<string> {
    const rendered = this.rendering.then(() => {
      this.queueItems.reset();
      this.oldestUnsent.reset();
      this.databaseUp.reset();
      for (const { database, up, queue } of snapshots) {
        this.databaseUp.set({ database }, up ? 1 : 0);
        if (!queue) continue;
        for (const status of STATUSES) this.queueItems.set({ database, status }, queue[status]);
        this.oldestUnsent.set({ database }, queue.oldestUnsentAgeSeconds);
      }
      return this.registry.metrics();
    });
    this.rendering = rendered.catch(() => {});
    return rendered;
  }

  private recorded(database: string, event: RecordedOutcome): void {
    if (event.status === "sent") {
      const account = event.accountName ?? `account ${event.outcome.accountId ?? "unknown"}`;
      this.sent.inc({ database, account });
      if (event.smtpSeconds !== undefined) this.duration.observe({ database, account }, event.smtpSeconds);
    } else if (event.status === "retrying") {
      this.retries.inc({ database });
    } else {
      const reason = failureReason(event);
      if (reason) this.failed.inc({ database, reason });
    }
  }

  private gauge<L extends string>(name: string, help: string, labelNames: L[]): Gauge<L> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }
}
