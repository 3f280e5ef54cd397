// sysmail_retry_mailitems_sp and sysmail_cancel_mailitems_sp with a real sender (SPEC section 12): a
// retried failed mail is delivered again exactly once; cancelled mail is never sent; a bulk retry of
// 10,000 failed items delivers each exactly once while the sender keeps to its SMTP pool.
import type { Sender } from "@pg-dbmail/sender";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase } from "../support/database.js";
import { call, configure, first, profileWith, send, sleep } from "../support/mail.js";
import { addAccount, eventually, startSender } from "../support/sender.js";
import { TestSmtpServer } from "../support/smtp.js";
import { mailitemIdOf, queue, statusCounts, tally } from "./support.js";

const POOL_SIZE = 3;
/** As many as issue 16 names: a bulk retry this large must drain at the normal pace, each item once. */
const BULK = 10_000;

let db: TestDatabase;
let alice: pg.Client;
let admin: pg.Client;
let sender: Sender;
let smtp: TestSmtpServer;

beforeAll(async () => {
  db = await TestDatabase.create();
  const senderRole = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
  alice = await db.connect(await db.createRole("alice", { memberOf: ["dbmail_user"] }));
  admin = await db.connect(await db.createRole("admin", { memberOf: ["dbmail_admin"] }));
  smtp = await TestSmtpServer.start();
  await addAccount(db, "acct", smtp);
  await profileWith(db, "p", ["acct"], false);
  await profileWith(db, "bulk", ["acct"], false);
  await configure(db, "AccountRetryAttempts", "0");
  sender = await startSender(senderRole, {
    pollIntervalMs: 100,
    smtpPoolSize: POOL_SIZE,
    concurrency: 50,
    batchSize: 100,
  });
});

afterAll(async () => {
  await sender?.stop(5000);
  await smtp?.stop();
  await db?.drop();
});

const copiesOf = (id: string) => smtp.received.filter((m) => mailitemIdOf(m) === id).length;

async function statusOf(id: string): Promise<string> {
  const { rows } = await db.query("SELECT sent_status FROM dbmail.mailitems WHERE mailitem_id = $1", [id]);
  return rows[0]?.sent_status;
}

describe("retry with a running sender", () => {
  it("delivers a failed mail again, exactly once", async () => {
    smtp.behaviour = { onRcptTo: () => ({ code: 550, message: "5.1.1 not yet" }) };
    const id = await send(alice, { profile_name: "p", recipients: "to@example.org", subject: "retry me" });
    await eventually(async () => (await statusOf(id)) === "failed");
    expect(copiesOf(id)).toBe(0);

    smtp.behaviour = {};
    const retried = first(await call(alice, "sysmail_retry_mailitems_sp", { mailitem_ids: [id] }));
    expect(retried.sysmail_retry_mailitems_sp).toBe(1);
    await eventually(async () => (await statusOf(id)) === "sent");
    await sleep(1000);
    expect(copiesOf(id)).toBe(1);
    const { rows } = await alice.query(
      "SELECT outcome, smtp_code FROM dbmail.sysmail_attempts WHERE mailitem_id = $1 ORDER BY started_at",
      [id],
    );
    expect(rows).toEqual([
      { outcome: "refused", smtp_code: 550 },
      { outcome: "sent", smtp_code: 250 },
    ]);
  });
});

describe("cancel with a running sender", () => {
  it("never sends the cancelled mail; the rest goes out", async () => {
    await admin.query("SELECT dbmail.sysmail_stop_sp()");
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      ids.push(
        await send(alice, { profile_name: "p", recipients: "to@example.org", subject: `cancel ${i}` }),
      );
    }
    const [keep1, drop1, keep2, drop2] = ids as [string, string, string, string];
    const cancelled = first(
      await call(alice, "sysmail_cancel_mailitems_sp", { mailitem_ids: [drop1, drop2] }),
    );
    expect(cancelled.sysmail_cancel_mailitems_sp).toBe(2);
    await admin.query("SELECT dbmail.sysmail_start_sp()");
    await eventually(async () => (await statusOf(keep1)) === "sent" && (await statusOf(keep2)) === "sent");
    await sleep(1500);
    expect(ids.map(copiesOf)).toEqual([1, 0, 1, 0]);
    expect([await statusOf(drop1), await statusOf(drop2)]).toEqual(["failed", "failed"]);
    const { rows } = await alice.query(
      "SELECT count(*)::int AS n FROM dbmail.sysmail_attempts WHERE mailitem_id = ANY($1::bigint[])",
      [[drop1, drop2]],
    );
    expect(rows[0]?.n).toBe(0);
  });
});

describe("a bulk retry", () => {
  it("delivers 10,000 failed items exactly once each, within the sender's SMTP pool", async () => {
    await admin.query("SELECT dbmail.sysmail_stop_sp()");
    const ids = await queue(db, BULK, "bulk", "bulk");
    await db.query(
      `UPDATE dbmail.mailitems SET sent_status = 'failed', send_attempts = 1, sent_date = now(),
         last_error = 'account 1: 451 try later' WHERE mailitem_id = ANY($1::bigint[])`,
      [ids],
    );
    await admin.query("SELECT dbmail.sysmail_start_sp()");
    const alreadyReceived = smtp.received.length;
    smtp.maxOpen = 0;
    const retried = first(await call(admin, "sysmail_retry_mailitems_sp", { profile_name: "bulk" }));
    expect(retried.sysmail_retry_mailitems_sp).toBe(BULK);
    await smtp.waitFor(alreadyReceived + BULK, 300_000);
    await eventually(async () => (await statusCounts(db, ids)).sent === BULK, 60_000);
    await sleep(1000);
    const counted = tally([smtp], ids);
    expect(counted.missing).toEqual([]);
    expect(counted.duplicates).toEqual([]);
    expect(counted.arrived).toBe(BULK);
    expect(smtp.maxOpen).toBeGreaterThan(0);
    expect(smtp.maxOpen).toBeLessThanOrEqual(POOL_SIZE);
  }, 420_000);
});
