// sender_queue_stats (SPEC.md section 12): the figures the sender's /metrics shows, read by its login,
// which may not read the sysmail_* views. They equal count(*) by status; the oldest unsent age counts
// from when an item was due; and with a long history the function reads its indexes, not the history.
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, TestDatabase, type TestRole } from "../../../../test/support/database.js";

let db: TestDatabase;
let sender: pg.Client;
let user: TestRole;

interface Stats {
  unsent: string;
  sending: string;
  retrying: string;
  sent: string;
  failed: string;
  oldest_unsent_age_seconds: number;
}

const stats = async (): Promise<Stats> =>
  (await sender.query<Stats>("SELECT * FROM dbmail.sender_queue_stats()")).rows[0] as Stats;

/** count(*) by status, as the superuser reads the table. */
async function counted(): Promise<Record<string, string>> {
  const { rows } = await db.query<{ sent_status: string; n: string }>(
    "SELECT sent_status, count(*) AS n FROM dbmail.mailitems GROUP BY sent_status",
  );
  const byStatus: Record<string, string> = {
    unsent: "0",
    sending: "0",
    retrying: "0",
    sent: "0",
    failed: "0",
  };
  for (const row of rows) byStatus[row.sent_status] = row.n;
  return byStatus;
}

/** Inserts `count` items with this status, and these columns set to these SQL expressions. */
async function items(count: number, status: string, columns: Record<string, string> = {}): Promise<void> {
  const names = Object.keys(columns).map((c) => `, ${c}`);
  const values = Object.values(columns).map((v) => `, ${v}`);
  await db.query(
    `INSERT INTO dbmail.mailitems (profile_id, envelope, subject, body, message_id, send_request_user,
       last_mod_user, sent_status ${names.join("")})
     SELECT (SELECT min(profile_id) FROM dbmail.profiles), '{"to": [], "cc": [], "bcc": []}', 'old',
       repeat('a long enough body to fill the heap ', 20), '<' || gen_random_uuid() || '>', current_user,
       current_user, $2 ${values.join("")}
     FROM generate_series(1, $1::int)`,
    [count, status],
  );
}

beforeAll(async () => {
  db = await TestDatabase.create();
  const login = await db.createRole("stats_sender", { memberOf: ["dbmail_sender"] });
  user = await db.createRole("stats_user", { memberOf: ["dbmail_user"] });
  sender = await db.connect(login);
  await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'p')");
});

afterAll(async () => {
  await db?.drop();
});

describe("sender_queue_stats", () => {
  it("counts an empty queue as zeros, with no unsent age", async () => {
    expect(await stats()).toEqual({
      unsent: "0",
      sending: "0",
      retrying: "0",
      sent: "0",
      failed: "0",
      oldest_unsent_age_seconds: 0,
    });
  });

  it("gives the same counts as count(*) by status, and the oldest due unsent item's age", async () => {
    await items(7, "sent");
    await items(3, "failed");
    await items(2, "retrying");
    await items(4, "sending", { lease_expires_at: "now() + interval '5 minutes'" });
    await items(1, "unsent", { send_request_date: "now() - interval '90 seconds'" });
    await items(5, "unsent");
    // Scheduled for later: waiting, but not late.
    await items(1, "unsent", { send_at: "now() + interval '1 hour'" });
    const figures = await stats();
    const { oldest_unsent_age_seconds: age, ...counts } = figures;
    expect(counts).toEqual(await counted());
    expect(counts).toEqual({ unsent: "7", sending: "4", retrying: "2", sent: "7", failed: "3" });
    expect(age).toBeGreaterThanOrEqual(90);
    expect(age).toBeLessThan(120);
    // Queued a day ago for a send_at ten minutes ago: late by ten minutes, not by a day.
    await db.query(
      `UPDATE dbmail.mailitems SET send_request_date = now() - interval '1 day',
         send_at = now() - interval '600 seconds'
       WHERE send_request_date < now() - interval '60 seconds'`,
    );
    const later = await stats();
    expect(later.oldest_unsent_age_seconds).toBeGreaterThanOrEqual(600);
    expect(later.oldest_unsent_age_seconds).toBeLessThan(630);
  });

  it("with a long history, reads a small share of the table: no scan of the sent mail", async () => {
    await items(40_000, "sent", { sent_date: "now()" });
    await items(200, "failed");
    await db.query("VACUUM ANALYZE dbmail.mailitems");
    const heapPages = Number(
      (await db.query<{ pages: string }>("SELECT pg_relation_size('dbmail.mailitems') / 8192 AS pages"))
        .rows[0]?.pages,
    );
    await stats(); // plans cached, as in a running sender
    const { rows } = await sender.query<{ "QUERY PLAN": [{ Plan: Record<string, number> }] }>(
      "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM dbmail.sender_queue_stats()",
    );
    const plan = rows[0]?.["QUERY PLAN"][0]?.Plan ?? {};
    const buffers = (plan["Shared Hit Blocks"] ?? 0) + (plan["Shared Read Blocks"] ?? 0);
    // A GROUP BY over the table reads every heap page; the index-only count reads about one index page
    // per 300 items. Measured: about 50 buffers against about 5,700 heap pages.
    expect(heapPages).toBeGreaterThan(1500);
    expect(buffers).toBeLessThan(heapPages / 5);
    const { oldest_unsent_age_seconds: _, ...counts } = await stats();
    expect(counts).toEqual(await counted());
  });

  it("is the sender's alone: a dbmail_user may not call it", async () => {
    const client = await db.connect(user);
    const error = await errorOf(client.query("SELECT * FROM dbmail.sender_queue_stats()"));
    expect(error.message).toMatch(/permission denied for function sender_queue_stats/);
  });
});
