// MaxMailsPerUserPerDay (issue 5; SPEC.md sections 3 and 4), checked by dbmail.queue_mail from its hourly
// ledger: per role, over the last 24 hours, whatever became of the mail since, admins exempt, concurrent
// sends serialised; a refusal is 54000 naming the role, and queues nothing.
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import { expectError, first, type Refusal, withSettings } from "../../../../test/support/mail.js";
import { message, useSendDatabase } from "../support/send.js";

const t = useSendDatabase();
const { send, refused, queued } = t;

/** Empties the queue and MaxMailsPerUserPerDay's ledger, so that each daily-limit test starts from no mail. */
async function clearQueue(): Promise<void> {
  await t.db.query("DELETE FROM dbmail.mailitems");
  await t.db.query("DELETE FROM dbmail.daily_mail_counts");
}

/** Runs fn from no mail (clearQueue), with MaxMailsPerUserPerDay set to max. */
async function withDailyLimit(max: number, fn: () => Promise<void>): Promise<void> {
  await clearQueue();
  await withSettings(t.db, { MaxMailsPerUserPerDay: String(max) }, fn);
}

describe("MaxMailsPerUserPerDay", () => {
  const problem = (n: number, max: number) =>
    `has queued ${n} mails in the last 24 hours, the MaxMailsPerUserPerDay limit (${max}); try again later or ask an admin to raise it`;
  /** The refusal is MaxMailsPerUserPerDay's: `role` (alice) has queued n mails, the limit max. */
  const expectOverLimit = (error: Refusal, n: number, max: number, role = t.aliceRole) =>
    expectError(error, "54000", "send_request_user", role.name, problem(n, max));

  it("accepts up to the limit and refuses the next, naming the role, queuing nothing", async () => {
    await withDailyLimit(3, async () => {
      await send(message());
      await send(message()); // one under
      await send(message()); // reaches the limit
      const error = await refused(message());
      expectOverLimit(error, 3, 3);
      // Still refused: the refusal did not count, nor queue anything.
      expectOverLimit(await refused(message()), 3, 3);
    });
  });

  it("counts only the caller's own mail", async () => {
    await withDailyLimit(2, async () => {
      await send(message(), t.alice);
      await send(message(), t.alice);
      await send(message(), t.bob);
      await send(message(), t.bob);
      expectOverLimit(await refused(message(), t.bob), 2, 2, t.bobRole);
      expectOverLimit(await refused(message(), t.alice), 2, 2);
    });
  });

  it("counts the hour it is (UTC) and the 24 before it, from its ledger", async () => {
    await withDailyLimit(2, async () => {
      await send(message());
      await send(message());
      await refused(message());
      // The two mails of this hour, moved back: one 25 hours (no longer counted), one 24 hours.
      await t.db.query(
        `UPDATE dbmail.daily_mail_counts
         SET hour_start = date_trunc('hour', now(), 'UTC') - interval '25 hours', mails = 1`,
      );
      await t.db.query(
        `INSERT INTO dbmail.daily_mail_counts (role_id, hour_start, mails)
         SELECT role_id, date_trunc('hour', now(), 'UTC') - interval '24 hours', 1 FROM dbmail.daily_mail_counts`,
      );
      await send(message());
      expectOverLimit(await refused(message()), 2, 2);
      // A new hour's first mail forgets what no count looks at any more.
      const { rows } = await t.db.query<{ oldest: string }>(
        `SELECT count(*) FILTER (WHERE hour_start < date_trunc('hour', now(), 'UTC') - interval '24 hours') AS oldest
         FROM dbmail.daily_mail_counts`,
      );
      expect(Number(first(rows).oldest)).toBe(0);
    });
  });

  // Issue 13: sysmail_delete_mailitems_sp(sent_status => ...) reset the count, so a role could send
  // again and again.
  it("keeps counting mail that was deleted since", async () => {
    await withDailyLimit(2, async () => {
      await send(message());
      await send(message());
      await refused(message());
      const { rows } = await t.alice.query<{ n: string }>(
        "SELECT dbmail.sysmail_delete_mailitems_sp(sent_status => 'unsent') AS n",
      );
      expect(Number(first(rows).n)).toBe(2);
      expect(await queued()).toBe(0);
      expectOverLimit(await refused(message()), 2, 2);
      // Nor does an admin's deletion of every item.
      await t.boss.query(
        "SELECT dbmail.sysmail_delete_mailitems_sp(sent_before => now() + interval '1 day')",
      );
      expectOverLimit(await refused(message()), 2, 2);
    });
  });

  it("counts, when it is turned on, the mail queued in the last 24 hours while it was off", async () => {
    await clearQueue();
    await send(message());
    await send(message());
    await withSettings(t.db, { MaxMailsPerUserPerDay: "3" }, async () => {
      await send(message());
      expectOverLimit(await refused(message()), 3, 3);
    });
  });

  it("counts mail whatever became of it (sent, failed)", async () => {
    await withDailyLimit(2, async () => {
      await send(message());
      await send(message());
      await t.db.query("UPDATE dbmail.mailitems SET sent_status = 'failed'");
      expectOverLimit(await refused(message()), 2, 2);
    });
  });

  it("exempts admins", async () => {
    await withDailyLimit(1, async () => {
      for (let i = 0; i < 4; i++) await send(message(), t.boss);
      await send(message(), t.alice);
      await refused(message(), t.alice);
    });
  });

  it("does not refuse a replay of an idempotency_key, which returns the item already queued", async () => {
    await withDailyLimit(2, async () => {
      const id = await send(message({ idempotency_key: "order-1" }));
      await send(message());
      expect(await queued()).toBe(2);
      expect(await send(message({ idempotency_key: "order-1" }))).toBe(id);
      expect(await queued()).toBe(2);
      // A new key is a new mail, and is refused.
      expectOverLimit(await refused(message({ idempotency_key: "order-2" })), 2, 2);
    });
  });

  it("makes concurrent sends of one role wait for each other, so they cannot both pass", async () => {
    await withDailyLimit(1, async () => {
      const second = await t.db.connect(t.aliceRole);
      await t.alice.query("BEGIN");
      try {
        await send(message(), t.alice);
        const blocked = errorOf(send(message(), second));
        await new Promise((resolve) => setTimeout(resolve, 200));
        await t.alice.query("COMMIT");
        expectOverLimit(await blocked, 1, 1);
      } finally {
        await t.alice.query("ROLLBACK").catch(() => {});
        await second.end();
      }
      expect(await queued()).toBe(1);
    });
  });

  it("0 means unlimited", async () => {
    await clearQueue();
    for (let i = 0; i < 5; i++) await send(message());
    expect(await queued()).toBe(5);
  });

  it("counts with an index scan on the ledger's key (role, hour)", async () => {
    const client = await t.db.connect();
    try {
      await client.query("BEGIN");
      // Many roles' hours, so that a sequential scan would not pay.
      await client.query(
        `INSERT INTO dbmail.daily_mail_counts (role_id, hour_start, mails)
         SELECT (100000 + g % 2000)::oid, date_trunc('hour', now(), 'UTC') - (g / 2000) * interval '1 hour', 1
         FROM generate_series(1, 50000) g`,
      );
      await client.query("ANALYZE dbmail.daily_mail_counts");
      const { rows } = await client.query<{ "QUERY PLAN": string }>(
        `EXPLAIN SELECT COALESCE(sum(c.mails), 0) FROM dbmail.daily_mail_counts c
         WHERE c.role_id = 100007 AND c.hour_start >= date_trunc('hour', now(), 'UTC') - interval '24 hours'`,
      );
      const plan = rows.map((r) => r["QUERY PLAN"]).join("\n");
      expect(plan).toContain("daily_mail_counts_pkey");
      expect(plan).not.toContain("Seq Scan");
    } finally {
      await client.query("ROLLBACK");
      await client.end();
    }
  });
});
