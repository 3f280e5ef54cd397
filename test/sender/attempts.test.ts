// Every SMTP attempt recorded (SPEC section 12), end to end: a real sender in front of real SMTP servers
// reports each account it tried, and sysmail_attempts shows them with their account, outcome, reply code
// and timing, to the mail's owner and to admins only.
import { freePort } from "@pg-dbmail/dev/local-postgres";
import type { Sender } from "@pg-dbmail/sender";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, TestDatabase } from "../support/database.js";
import { configure, profileWith, type Queryable, send } from "../support/mail.js";
import { addAccount, eventually, startSender } from "../support/sender.js";
import { TestSmtpServer } from "../support/smtp.js";

interface AttemptRow {
  mailitem_id: string;
  attempt: number;
  account_id: number;
  started_at: Date;
  duration_ms: number;
  outcome: string;
  smtp_code: number | null;
  smtp_response: string;
  sent_by: string;
}

let db: TestDatabase;
let alice: pg.Client;
let bob: pg.Client;
let admin: pg.Client;
let senderClient: pg.Client;
let sender: Sender;
const servers: TestSmtpServer[] = [];
const accounts: Record<string, number> = {};
const senderId = `attempts-${Math.random().toString(36).slice(2, 8)}`;

beforeAll(async () => {
  db = await TestDatabase.create();
  const senderRole = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
  alice = await db.connect(await db.createRole("alice", { memberOf: ["dbmail_user"] }));
  bob = await db.connect(await db.createRole("bob", { memberOf: ["dbmail_user"] }));
  admin = await db.connect(await db.createRole("admin", { memberOf: ["dbmail_admin"] }));
  senderClient = await db.connect(senderRole);
  const busy = await TestSmtpServer.start({
    behaviour: { onRcptTo: () => ({ code: 451, message: "4.3.0 mailbox busy, try later" }) },
  });
  const accepting = await TestSmtpServer.start();
  const refusing = await TestSmtpServer.start({
    behaviour: { onRcptTo: () => ({ code: 550, message: "5.1.1 no such user here" }) },
  });
  servers.push(busy, accepting, refusing);
  accounts.busy = await addAccount(db, "busy", busy);
  accounts.accepting = await addAccount(db, "accepting", accepting);
  accounts.refusing = await addAccount(db, "refusing", refusing);
  accounts.closed = await addAccount(db, "closed", { port: await freePort() });
  await profileWith(db, "failover", ["busy", "accepting"], false);
  // Another profile over the same accounts: the first sticks to "accepting" once it sent through it.
  await profileWith(db, "failover_again", ["busy", "accepting"], false);
  await profileWith(db, "permanent", ["refusing"], false);
  await profileWith(db, "down", ["closed", "accepting"], false);
  await configure(db, "AccountRetryAttempts", "0");
  sender = await startSender(senderRole, { senderId, pollIntervalMs: 100 });
});

afterAll(async () => {
  await sender?.stop(2000);
  for (const server of servers) await server.stop();
  await db?.drop();
});

async function mailThrough(profile: string): Promise<{ id: string; before: number; after: number }> {
  const before = Date.now();
  const id = await send(alice, { profile_name: profile, recipients: "to@example.org", subject: profile });
  await eventually(async () => {
    const { rows } = await db.query("SELECT sent_status FROM dbmail.mailitems WHERE mailitem_id = $1", [id]);
    return ["sent", "failed"].includes(rows[0]?.sent_status);
  });
  return { id, before, after: Date.now() };
}

async function attemptsOf(client: Queryable, id: string): Promise<AttemptRow[]> {
  const { rows } = await client.query<AttemptRow>(
    "SELECT * FROM dbmail.sysmail_attempts WHERE mailitem_id = $1 ORDER BY started_at",
    [id],
  );
  return rows;
}

/** Each attempt started while the mail was on its way, took a plausible time, and none overlapped. */
function expectPlausibleTimes(rows: AttemptRow[], before: number, after: number): void {
  let previousEnd = before - 5;
  for (const row of rows) {
    const start = row.started_at.getTime();
    expect(row.duration_ms).toBeGreaterThanOrEqual(0);
    expect(row.duration_ms).toBeLessThan(10_000);
    // One process, one clock: milliseconds of rounding apart at most.
    expect(start).toBeGreaterThanOrEqual(previousEnd - 2);
    expect(start + row.duration_ms).toBeLessThanOrEqual(after + 2);
    previousEnd = start + row.duration_ms;
  }
}

describe("sysmail_attempts", () => {
  it("shows a failover as two attempts: the 451 of the first account, then the second's 250", async () => {
    const { id, before, after } = await mailThrough("failover");
    const rows = await attemptsOf(alice, id);
    expect(rows).toEqual([
      {
        mailitem_id: id,
        attempt: 1,
        account_id: accounts.busy,
        started_at: expect.any(Date),
        duration_ms: expect.any(Number),
        outcome: "failed",
        smtp_code: 451,
        smtp_response: expect.stringContaining("mailbox busy, try later"),
        sent_by: senderId,
      },
      {
        mailitem_id: id,
        attempt: 1,
        account_id: accounts.accepting,
        started_at: expect.any(Date),
        duration_ms: expect.any(Number),
        outcome: "sent",
        smtp_code: 250,
        smtp_response: expect.stringMatching(/^250 /),
        sent_by: senderId,
      },
    ]);
    expectPlausibleTimes(rows, before, after);
  });

  it("shows a permanent 550 as refused", async () => {
    const { id, before, after } = await mailThrough("permanent");
    const rows = await attemptsOf(alice, id);
    expect(rows.map((r) => [r.account_id, r.outcome, r.smtp_code])).toEqual([
      [accounts.refusing, "refused", 550],
    ]);
    expect(rows[0]?.smtp_response).toContain("no such user here");
    expectPlausibleTimes(rows, before, after);
  });

  it("shows a connection that failed as failed, without a reply code", async () => {
    const { id } = await mailThrough("down");
    const rows = await attemptsOf(alice, id);
    expect(rows.map((r) => [r.account_id, r.outcome, r.smtp_code])).toEqual([
      [accounts.closed, "failed", null],
      [accounts.accepting, "sent", 250],
    ]);
    expect(rows[0]?.smtp_response).toMatch(/ECONNREFUSED|ECONNECTION|ESOCKET/);
  });

  it("shows a user the attempts of their own mail only, an admin all, and a sender nothing", async () => {
    const { id } = await mailThrough("failover_again");
    const all = await attemptsOf(db, id);
    expect(all).toHaveLength(2);
    expect(await attemptsOf(alice, id)).toEqual(all);
    expect(await attemptsOf(bob, id)).toEqual([]);
    const { rows } = await bob.query("SELECT count(*)::int AS n FROM dbmail.sysmail_attempts");
    expect(rows[0]?.n).toBe(0);
    expect(await attemptsOf(admin, id)).toEqual(all);
    const error = await errorOf(senderClient.query("SELECT * FROM dbmail.sysmail_attempts"));
    expect(error.message).toMatch(/permission denied for view sysmail_attempts/);
  });
});
