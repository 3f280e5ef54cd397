// /metrics (SPEC.md section 12) against a real drain: a sender started with --http delivers 200 mails
// through two accounts while a scraper reads /metrics, and 8 more fail (5 refused with 550, 3 whose
// server is down until their rounds run out). The figures must be the database's own: sent_total per
// account the rows sent through it, the queue gauges count(*) by status, failures by reason, the
// histogram's count the sent count; and no label may carry a recipient, a subject or an item id.
import { freePort } from "@pg-dbmail/dev/local-postgres";
import type { Sender } from "@pg-dbmail/sender";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole } from "../../support/database.js";
import { configure, profileWith } from "../../support/mail.js";
import { addAccount, eventually, startSender } from "../../support/sender.js";
import { TestSmtpServer } from "../../support/smtp.js";
import { queue } from "../support.js";
import { type Sample, sampleValue, scrape, sumOf } from "./support.js";

const DATABASE = "billing";
const TAG = "metrics-drain";
const BUCKETS = ["0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "+Inf"];

let db: TestDatabase;
let role: TestRole;
let servers: TestSmtpServer[];
let sender: Sender | undefined;
const accounts: Record<string, number> = {};
let ids: string[] = [];

beforeAll(async () => {
  db = await TestDatabase.create();
  role = await db.createRole("metrics_sender", { memberOf: ["dbmail_sender"] });
  const [alpha, beta, rejecting] = await Promise.all([
    TestSmtpServer.start(),
    TestSmtpServer.start(),
    TestSmtpServer.start({ behaviour: { onRcptTo: () => ({ code: 550, message: "5.1.1 user unknown" }) } }),
  ]);
  servers = [alpha, beta, rejecting] as TestSmtpServer[];
  accounts.alpha = await addAccount(db, "alpha", alpha as TestSmtpServer);
  accounts.beta = await addAccount(db, "beta", beta as TestSmtpServer);
  accounts.rejecting = await addAccount(db, "rejecting", rejecting as TestSmtpServer);
  accounts.down = await addAccount(db, "down", { port: await freePort() });
  await profileWith(db, "p", ["alpha"]);
  await profileWith(db, "q", ["beta"]);
  await profileWith(db, "bad", ["rejecting"]);
  await profileWith(db, "unreachable", ["down"]);
  // Two rounds, the second at once: the unreachable account's items retry once, then fail.
  await configure(db, "AccountRetryAttempts", "1");
  await configure(db, "AccountRetryDelay", "0");
  ids = [
    ...(await queue(db, 120, TAG, "p")),
    ...(await queue(db, 80, TAG, "q")),
    ...(await queue(db, 5, TAG, "bad")),
    ...(await queue(db, 3, TAG, "unreachable")),
  ];
});

afterAll(async () => {
  await sender?.stop();
  for (const server of servers ?? []) await server.stop();
  await db?.drop();
});

/** count(*) by status over the whole table, as the superuser reads it. */
type Status = "unsent" | "sending" | "retrying" | "sent" | "failed";

async function countsByStatus(): Promise<Record<Status, number>> {
  const { rows } = await db.query<{ sent_status: Status; n: string }>(
    "SELECT sent_status, count(*) AS n FROM dbmail.mailitems GROUP BY sent_status",
  );
  const counts = { unsent: 0, sending: 0, retrying: 0, sent: 0, failed: 0 };
  for (const row of rows) counts[row.sent_status] = Number(row.n);
  return counts;
}

const queueGauges = (samples: Sample[]) =>
  Object.fromEntries(
    ["unsent", "sending", "retrying", "sent", "failed"].map((status) => [
      status,
      sampleValue(samples, "dbmail_queue_items", { database: DATABASE, status }),
    ]),
  );

describe("/metrics over a real drain", () => {
  it("counts what the database counts, during and after the drain", { timeout: 90_000 }, async () => {
    sender = await startSender(role, {
      databases: [{ name: DATABASE, url: role.url }],
      http: "127.0.0.1:0",
      concurrency: 4,
      batchSize: 10,
    });
    const port = sender.httpAddress()?.port as number;
    expect(port).toBeGreaterThan(0);

    // Scrape while the drain runs: every scrape is whole and consistent.
    const during: Sample[][] = [];
    const finished = async () => {
      const counts = await countsByStatus();
      return counts.unsent + counts.sending + counts.retrying === 0;
    };
    while (!(await finished())) {
      const samples = await scrape(port);
      during.push(samples);
      // The gauges come from one snapshot of the table: they always add up to every item queued.
      expect(sumOf(samples, "dbmail_queue_items", { database: DATABASE })).toBe(ids.length);
      expect(sumOf(samples, "dbmail_sent_total")).toBeLessThanOrEqual(200);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // At least one scrape saw the drain half done (4 at a time, 200 mails: it takes a while).
    expect(during.some((s) => sumOf(s, "dbmail_sent_total") > 0 && sumOf(s, "dbmail_sent_total") < 200)).toBe(
      true,
    );

    // After: the queue gauges are count(*) by status (read again once the 2 s cache has passed).
    const counts = await countsByStatus();
    expect(counts).toEqual({ unsent: 0, sending: 0, retrying: 0, sent: 200, failed: 8 });
    const samples = await eventually(async () => {
      const s = await scrape(port);
      return JSON.stringify(queueGauges(s)) === JSON.stringify(counts) ? s : undefined;
    }, 10_000);
    expect(sampleValue(samples, "dbmail_queue_oldest_unsent_age_seconds", { database: DATABASE })).toBe(0);
    expect(sampleValue(samples, "dbmail_database_up", { database: DATABASE })).toBe(1);

    // sent_total per account: the rows sent through that account.
    const { rows } = await db.query<{ account: string; n: string }>(
      `SELECT a.name AS account, count(*) AS n FROM dbmail.mailitems m
         JOIN dbmail.accounts a ON a.account_id = m.sent_account_id
        WHERE m.sent_status = 'sent' GROUP BY a.name`,
    );
    const sentRows = Object.fromEntries(rows.map((r) => [r.account, Number(r.n)]));
    expect(sentRows).toEqual({ alpha: 120, beta: 80 });
    for (const [account, n] of Object.entries(sentRows)) {
      expect(sampleValue(samples, "dbmail_sent_total", { database: DATABASE, account }), account).toBe(n);
      // One SMTP duration per message sent through the account.
      const labels = { database: DATABASE, account };
      expect(sampleValue(samples, "dbmail_delivery_duration_seconds_count", labels), account).toBe(n);
      expect(sampleValue(samples, "dbmail_delivery_duration_seconds_bucket", { ...labels, le: "+Inf" })).toBe(
        n,
      );
      expect(sampleValue(samples, "dbmail_delivery_duration_seconds_sum", labels)).toBeGreaterThan(0);
    }
    expect(servers[0]?.received).toHaveLength(120);
    expect(servers[1]?.received).toHaveLength(80);
    expect(sumOf(samples, "dbmail_sent_total")).toBe(200);

    // Failures by reason: the 550s are permanent; the unreachable account's items used their 2 rounds.
    const failed = (reason: string) =>
      sampleValue(samples, "dbmail_failed_total", { database: DATABASE, reason });
    expect(failed("permanent")).toBe(5);
    expect(failed("retries_exhausted")).toBe(3);
    expect(failed("other")).toBe(0);
    expect(sampleValue(samples, "dbmail_retries_total", { database: DATABASE })).toBe(3);
    const { rows: failures } = await db.query<{ rounds: number; n: string }>(
      "SELECT send_attempts AS rounds, count(*) AS n FROM dbmail.mailitems WHERE sent_status = 'failed' GROUP BY 1 ORDER BY 1",
    );
    expect(failures.map((f) => [f.rounds, Number(f.n)])).toEqual([
      [1, 5],
      [2, 3],
    ]);

    // prom-client's process metrics are there too.
    expect(sampleValue(samples, "process_cpu_seconds_total")).toBeGreaterThan(0);
    expect(sampleValue(samples, "process_resident_memory_bytes")).toBeGreaterThan(0);
  });

  it("puts no recipient, subject or item id in any label", async () => {
    const port = sender?.httpAddress()?.port as number;
    const samples = await scrape(port);
    const { rows } = await db.query<{ recipients: string; subject: string; id: string }>(
      "SELECT recipients, subject, mailitem_id::text AS id FROM dbmail.mailitems",
    );
    const secrets = new Set(rows.flatMap((r) => [r.recipients, r.subject, r.id]));
    // Every id, and the recipients and subjects (each profile's batch numbers them from 1).
    expect(secrets.size).toBe(ids.length + 2 * 120);
    // The dbmail_ metrics' labels hold only the database, account names and fixed words.
    const allowed: Record<string, string[]> = {
      database: [DATABASE],
      account: ["alpha", "beta"],
      status: ["unsent", "sending", "retrying", "sent", "failed"],
      reason: ["permanent", "retries_exhausted", "other"],
      le: BUCKETS,
    };
    for (const sample of samples.filter((s) => s.name.startsWith("dbmail_"))) {
      for (const [label, value] of Object.entries(sample.labels)) {
        expect(allowed[label], `${sample.name} label ${label}`).toContain(value);
      }
    }
    // And no label of any metric (the process ones included: their numbers, like nodejs_version_info's
    // major="20", may equal an id by chance) holds a recipient or a subject.
    const texts = rows.flatMap((r) => [r.recipients, r.subject]);
    for (const sample of samples) {
      for (const value of Object.values(sample.labels)) {
        expect(texts.includes(value), `${sample.name}: ${value}`).toBe(false);
        expect(value).not.toContain("@example.org");
        expect(value).not.toContain(TAG);
      }
    }
  });
});
