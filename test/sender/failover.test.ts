// Failover between a profile's accounts, retry rounds and permanent rejections (SPEC sections 4, 5, 7),
// end to end: a real PostgreSQL, the in-process sender and real SMTP servers scripted to refuse, stall,
// drop or be down.
import { randomBytes } from "node:crypto";
import { freePort } from "@pg-dbmail/dev/local-postgres";
import type { Sender } from "@pg-dbmail/sender";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole } from "../support/database.js";
import { addAccount, startSender } from "../support/sender.js";
import { type Behaviour, TestSmtpServer } from "../support/smtp.js";

interface ItemRow {
  mailitem_id: string;
  sent_status: string;
  sent_account_id: number | null;
  send_attempts: number;
  last_error: string | null;
  smtp_response: string | null;
  next_attempt_at: Date | null;
  /** next_attempt_at is later than the database's now() */
  due_later: boolean | null;
}

interface EventRow {
  event_type: string;
  description: string;
  account_id: number | null;
}

let db: TestDatabase;
let senderRole: TestRole;
let sender: Sender | undefined;
const servers: TestSmtpServer[] = [];
/** Numbers each test, so its profile and account names are its own. */
let testNo = 0;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const refuse = (code: number, message: string) => () => ({ code, message });

beforeAll(async () => {
  db = await TestDatabase.create();
  senderRole = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
});

afterAll(async () => {
  await db?.drop();
});

beforeEach(async () => {
  testNo++;
  await configure("AccountRetryAttempts", "1");
  await configure("AccountRetryDelay", "1");
});

afterEach(async () => {
  await sender?.stop(2000);
  sender = undefined;
  for (const server of servers.splice(0)) await server.stop();
  // Whatever a test left waiting must not be picked up by the next test's sender.
  await db.query(
    `UPDATE dbmail.mailitems SET sent_status = 'failed', lease_owner = NULL, lease_expires_at = NULL
     WHERE sent_status IN ('unsent', 'sending', 'retrying')`,
  );
});

async function configure(name: string, value: string): Promise<void> {
  await db.query("SELECT dbmail.sysmail_configure_sp($1, $2)", [name, value]);
}

/** A scripted SMTP server, stopped after the test. */
async function smtp(behaviour: Behaviour = {}): Promise<TestSmtpServer> {
  const server = await TestSmtpServer.start({ behaviour });
  servers.push(server);
  return server;
}

/** A server that is down (nothing listens on its port) until restart(). */
async function downServer(): Promise<TestSmtpServer> {
  const server = await smtp();
  await server.stop();
  return server;
}

/** An account of this test; `label` keeps names unique within the test. */
function account(
  label: string,
  server: TestSmtpServer | { port: number },
  extra: Record<string, unknown> = {},
): Promise<number> {
  return addAccount(db, accountName(label), server, extra);
}

function accountName(label: string): string {
  return `t${testNo}_${label}`;
}

/** This test's profile with the given accounts and sequence numbers; returns its name. */
async function profile(accounts: [accountId: number, sequence: number][]): Promise<string> {
  const name = `p${testNo}`;
  await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => $1)", [name]);
  for (const [accountId, sequence] of accounts) {
    await db.query(
      `SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => $1, account_id => $2,
                                                   sequence_number => $3)`,
      [name, accountId, sequence],
    );
  }
  return name;
}

async function send(
  profileName: string,
  recipients = "to@example.org",
  subject = "failover",
): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT dbmail.sp_send_dbmail(profile_name => $1, recipients => $2, subject => $3, body => 'body') AS id`,
    [profileName, recipients, subject],
  );
  return rows[0]?.id as string;
}

async function item(id: string): Promise<ItemRow> {
  const { rows } = await db.query<ItemRow>(
    `SELECT mailitem_id, sent_status, sent_account_id, send_attempts, last_error, smtp_response,
            next_attempt_at, next_attempt_at > now() AS due_later
     FROM dbmail.sysmail_allitems WHERE mailitem_id = $1`,
    [id],
  );
  const row = rows[0];
  if (!row) throw new Error(`no mail item ${id}`);
  return row;
}

/** Waits for the item to reach `status`; fails at once if it ends in another final status. */
async function waitForStatus(id: string, status: string, timeoutMs = 15_000): Promise<ItemRow> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const row = await item(id);
    if (row.sent_status === status) return row;
    if (row.sent_status === "sent" || row.sent_status === "failed" || Date.now() > deadline) {
      throw new Error(`mail ${id}: expected status ${status}, now ${JSON.stringify(row)}`);
    }
    await sleep(50);
  }
}

async function events(id: string): Promise<EventRow[]> {
  const { rows } = await db.query<EventRow>(
    `SELECT event_type, description, account_id FROM dbmail.sysmail_event_log
     WHERE mailitem_id = $1 ORDER BY log_id`,
    [id],
  );
  return rows;
}

async function start(): Promise<Sender> {
  sender = await startSender(senderRole, { pollIntervalMs: 100 });
  return sender;
}

/** The X-DBMail-Mailitem-Id of each message a server received. */
function mailitemIds(server: TestSmtpServer): string[] {
  return server.received.map((m) => String(m.parsed.headers.get("x-dbmail-mailitem-id")));
}

describe("failover to the next account", () => {
  it("moves on when the first account answers 451 to RCPT TO", async () => {
    const first = await smtp({ onRcptTo: refuse(451, "4.3.0 mailbox busy, try later") });
    const second = await smtp();
    const a1 = await account("a1", first);
    const a2 = await account("a2", second);
    const name = await profile([
      [a1, 1],
      [a2, 2],
    ]);
    await start();
    const id = await send(name);

    const row = await waitForStatus(id, "sent");
    expect(row.sent_account_id).toBe(a2);
    expect(row.send_attempts).toBe(1);
    expect(mailitemIds(second)).toEqual([id]);
    expect(first.received).toHaveLength(0);
    const log = await events(id);
    const warnings = log.filter((e) => e.event_type === "warning");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.account_id).toBe(a1);
    expect(warnings[0]?.description).toContain("451");
    expect(warnings[0]?.description).toContain("mailbox busy");
    expect(log.filter((e) => e.event_type === "error")).toHaveLength(0);
  });

  it("moves on when the first account answers 451 to MAIL FROM", async () => {
    const first = await smtp({ onMailFrom: refuse(451, "4.7.1 greylisted, come back later") });
    const second = await smtp();
    const a1 = await account("a1", first);
    const a2 = await account("a2", second);
    const name = await profile([
      [a1, 1],
      [a2, 2],
    ]);
    await start();
    const id = await send(name);

    const row = await waitForStatus(id, "sent");
    expect(row.sent_account_id).toBe(a2);
    expect(mailitemIds(second)).toEqual([id]);
    expect(first.received).toHaveLength(0);
    const warnings = (await events(id)).filter((e) => e.event_type === "warning");
    expect(warnings.map((w) => w.account_id)).toEqual([a1]);
    expect(warnings[0]?.description).toContain("451");
    expect(warnings[0]?.description).toContain("greylisted");
  });

  it("moves on when nothing listens on the first account's port (connection refused)", async () => {
    const second = await smtp();
    const a1 = await account("a1", { port: await freePort() });
    const a2 = await account("a2", second);
    const name = await profile([
      [a1, 1],
      [a2, 2],
    ]);
    await start();
    const id = await send(name);

    const row = await waitForStatus(id, "sent");
    expect(row.sent_account_id).toBe(a2);
    expect(mailitemIds(second)).toEqual([id]);
    const warnings = (await events(id)).filter((e) => e.event_type === "warning");
    expect(warnings.map((w) => w.account_id)).toEqual([a1]);
    expect(warnings[0]?.description).toMatch(/ECONNREFUSED|ECONNECTION|ESOCKET/);
  });

  it("moves on from a 550 on one account when the next account accepts", async () => {
    const first = await smtp({ onRcptTo: refuse(550, "5.1.1 no such user here") });
    const second = await smtp();
    const a1 = await account("a1", first);
    const a2 = await account("a2", second);
    const name = await profile([
      [a1, 1],
      [a2, 2],
    ]);
    await start();
    const id = await send(name);

    const row = await waitForStatus(id, "sent");
    expect(row.sent_account_id).toBe(a2);
    expect(mailitemIds(second)).toEqual([id]);
    const log = await events(id);
    expect(log.filter((e) => e.event_type === "error")).toHaveLength(0);
    const warnings = log.filter((e) => e.event_type === "warning");
    expect(warnings.map((w) => w.account_id)).toEqual([a1]);
    expect(warnings[0]?.description).toContain("550");
  });
});

describe("the sticky account", () => {
  it("sends a new mail straight through the account that last succeeded", async () => {
    const first = await smtp({ onRcptTo: refuse(451, "try later") });
    const second = await smtp();
    const a1 = await account("a1", first);
    const a2 = await account("a2", second);
    const name = await profile([
      [a1, 1],
      [a2, 2],
    ]);
    await start();
    const id1 = await send(name);
    expect((await waitForStatus(id1, "sent")).sent_account_id).toBe(a2);

    // Account 1 is healthy again, but the profile sticks to account 2 (SPEC 5: "uses the account that
    // last sent successfully for that profile").
    first.behaviour = {};
    const id2 = await send(name);
    const row = await waitForStatus(id2, "sent");
    expect(row.sent_account_id).toBe(a2);
    expect(mailitemIds(second)).toEqual([id1, id2]);
    expect(first.received).toHaveLength(0);
    expect((await events(id2)).filter((e) => e.event_type === "warning")).toHaveLength(0);
  });

  it("starts a retry round from the lowest sequence number, not from the sticky account", async () => {
    const first = await smtp({ onRcptTo: refuse(451, "try later") });
    const second = await smtp();
    const a1 = await account("a1", first);
    const a2 = await account("a2", second);
    const name = await profile([
      [a1, 1],
      [a2, 2],
    ]);
    await start();
    const id1 = await send(name);
    expect((await waitForStatus(id1, "sent")).sent_account_id).toBe(a2);

    // Now account 2 (sticky) refuses and account 1 is healthy.
    first.behaviour = {};
    second.behaviour = { onRcptTo: refuse(451, "account 2 busy") };
    // A 2 s delay leaves time to look at the retrying item. The configuration change also makes the
    // sender reload the accounts, so this test does not depend on how fast it learns the sticky account.
    await configure("AccountRetryDelay", "2");
    await sleep(300);
    const id2 = await send(name);

    // Round 1 starts at the sticky account 2 and, it being the highest, ends there.
    const retrying = await waitForStatus(id2, "retrying");
    expect(retrying.send_attempts).toBe(1);
    expect(retrying.last_error).toContain(`account ${a2}`);
    expect(retrying.last_error).not.toContain(`account ${a1}:`);
    expect(first.received).toHaveLength(0);

    // Round 2 starts again from sequence 1.
    const row = await waitForStatus(id2, "sent");
    expect(row.sent_account_id).toBe(a1);
    expect(row.send_attempts).toBe(2);
    expect(mailitemIds(first)).toEqual([id2]);
    expect(mailitemIds(second)).toEqual([id1]);
  });
});

describe("accounts sharing a sequence number", () => {
  it("spreads a burst of 20 mails over both, and sends none twice", async () => {
    const left = await smtp();
    const right = await smtp();
    const a1 = await account("left", left);
    const a2 = await account("right", right);
    const name = await profile([
      [a1, 1],
      [a2, 1],
    ]);
    await start();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await send(name, "to@example.org", `mail ${i}`));
    for (const id of ids) await waitForStatus(id, "sent");
    await sleep(300); // a duplicate would arrive by now

    const delivered = [...mailitemIds(left), ...mailitemIds(right)];
    expect(delivered).toHaveLength(20);
    expect(new Set(delivered)).toEqual(new Set(ids));
    expect(left.received.length).toBeGreaterThan(0);
    expect(right.received.length).toBeGreaterThan(0);
    const { rows } = await db.query<{ account: number; count: string }>(
      `SELECT sent_account_id AS account, count(*) FROM dbmail.sysmail_allitems
       WHERE mailitem_id = ANY ($1::bigint[]) GROUP BY 1 ORDER BY 1`,
      [ids],
    );
    expect(rows.map((r) => [r.account, Number(r.count)])).toEqual([
      [a1, left.received.length],
      [a2, right.received.length],
    ]);
  });

  it("keeps spreading mails sent one at a time, once the sender knows which account last succeeded", async () => {
    const left = await smtp();
    const right = await smtp();
    const a1 = await account("left", left);
    const a2 = await account("right", right);
    const name = await profile([
      [a1, 1],
      [a2, 1],
    ]);
    await start();
    for (let i = 0; i < 12; i++) {
      await waitForStatus(await send(name, "to@example.org", `mail ${i}`), "sent");
      // A configuration change makes the sender reload its accounts (and so the sticky account).
      await configure("LoggingLevel", "2");
      await sleep(150);
    }
    expect(left.received.length + right.received.length).toBe(12);
    expect(left.received.length).toBeGreaterThan(0);
    expect(right.received.length).toBeGreaterThan(0);
  });
});

describe("all accounts failing with transient errors", () => {
  it("retries after AccountRetryDelay and delivers once a server is back", async () => {
    const first = await downServer();
    const a1 = await account("a1", first);
    const a2 = await account("a2", { port: await freePort() });
    const name = await profile([
      [a1, 1],
      [a2, 2],
    ]);
    await configure("AccountRetryDelay", "2");
    await start();
    const id = await send(name);

    const retrying = await waitForStatus(id, "retrying");
    expect(retrying.send_attempts).toBe(1);
    expect(retrying.due_later).toBe(true);
    expect(retrying.last_error).toContain(`account ${a1}`);
    expect(retrying.last_error).toContain(`account ${a2}`);
    const warnings = (await events(id)).filter((e) => e.event_type === "warning");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.description).toMatch(/round 1 of 2/);

    await first.restart();
    const row = await waitForStatus(id, "sent");
    expect(row.sent_account_id).toBe(a1);
    expect(row.send_attempts).toBe(2);
    expect(mailitemIds(first)).toEqual([id]);
    expect((await events(id)).filter((e) => e.event_type === "error")).toHaveLength(0);
  });

  it("fails after 2 rounds with AccountRetryAttempts 1, with one error event", async () => {
    const a1 = await account("a1", { port: await freePort() });
    const a2 = await account("a2", { port: await freePort() });
    const name = await profile([
      [a1, 1],
      [a2, 2],
    ]);
    await start();
    const id = await send(name);

    const row = await waitForStatus(id, "failed");
    expect(row.send_attempts).toBe(2);
    expect(row.last_error).toContain(`account ${a1}`);
    expect(row.last_error).toContain(`account ${a2}`);
    const log = await events(id);
    expect(log.map((e) => e.event_type)).toEqual(["warning", "error"]);
    expect(log[1]?.description).toContain("after 2 rounds");
  });

  it("fails after 1 round with AccountRetryAttempts 0", async () => {
    const a1 = await account("a1", { port: await freePort() });
    const a2 = await account("a2", { port: await freePort() });
    const name = await profile([
      [a1, 1],
      [a2, 2],
    ]);
    await configure("AccountRetryAttempts", "0");
    await start();
    const id = await send(name);

    const row = await waitForStatus(id, "failed");
    expect(row.send_attempts).toBe(1);
    expect(row.next_attempt_at).toBeNull();
    const log = await events(id);
    expect(log.map((e) => e.event_type)).toEqual(["error"]);
    expect(log[0]?.description).toContain(`account ${a1}`);
    expect(log[0]?.description).toContain(`account ${a2}`);
  });
});

describe("permanent rejections", () => {
  it("fails at once when every account answers 550 to the recipient", async () => {
    const first = await smtp({ onRcptTo: refuse(550, "5.1.1 user unknown") });
    const second = await smtp({ onRcptTo: refuse(550, "5.1.1 user unknown") });
    const a1 = await account("a1", first);
    const a2 = await account("a2", second);
    const name = await profile([
      [a1, 1],
      [a2, 2],
    ]);
    await configure("AccountRetryAttempts", "3");
    await start();
    const id = await send(name);

    const row = await waitForStatus(id, "failed");
    expect(row.send_attempts).toBe(1);
    expect(row.last_error).toContain("550");
    const log = await events(id);
    expect(log.map((e) => e.event_type)).toEqual(["error"]);
    expect(log[0]?.description).toContain("550");
    expect(log[0]?.description).toContain("user unknown");
    expect(first.received).toHaveLength(0);
    expect(second.received).toHaveLength(0);
  });

  it("fails at once when every account refuses the message with 554 after DATA", async () => {
    const first = await smtp({ onData: refuse(554, "5.6.0 message content rejected") });
    const second = await smtp({ onData: refuse(554, "5.6.0 message content rejected") });
    const a1 = await account("a1", first);
    const a2 = await account("a2", second);
    const name = await profile([
      [a1, 1],
      [a2, 2],
    ]);
    await configure("AccountRetryAttempts", "3");
    await start();
    const id = await send(name);

    const row = await waitForStatus(id, "failed");
    expect(row.send_attempts).toBe(1);
    expect(row.last_error).toContain("554");
    expect((await events(id)).map((e) => e.event_type)).toEqual(["error"]);
  });

  it("retries when one account answers 550 but another is merely down", async () => {
    const first = await smtp({ onRcptTo: refuse(550, "5.1.1 user unknown") });
    const a1 = await account("a1", first);
    const a2 = await account("a2", { port: await freePort() });
    const name = await profile([
      [a1, 1],
      [a2, 2],
    ]);
    await configure("AccountRetryDelay", "60");
    await start();
    const id = await send(name);

    const row = await waitForStatus(id, "retrying");
    expect(row.send_attempts).toBe(1);
    expect(row.due_later).toBe(true);
    expect(row.last_error).toContain("550");
  });

  it("retries when every account refuses the sender (5xx to MAIL FROM): an account problem, not the recipient's", async () => {
    // classify.ts: "a 5xx to MAIL FROM is a problem of this account or this moment, worth another
    // account or another round"; SPEC 5 makes only rejections of a recipient (RCPT/DATA) permanent.
    const first = await smtp({ onMailFrom: refuse(553, "5.7.1 sender address not permitted") });
    const second = await smtp({ onMailFrom: refuse(550, "5.7.1 relaying denied for this sender") });
    const a1 = await account("a1", first);
    const a2 = await account("a2", second);
    const name = await profile([
      [a1, 1],
      [a2, 2],
    ]);
    await configure("AccountRetryDelay", "60");
    await start();
    const id = await send(name);

    const row = await waitForStatus(id, "retrying");
    expect(row.send_attempts).toBe(1);
    expect(row.last_error).toContain("553");
  });

  it("delivers to the accepted recipient when one of two is refused with 550, and says so", async () => {
    const server = await smtp({
      onRcptTo: (address) =>
        address.startsWith("bad@") ? { code: 550, message: "5.1.1 bad: no such mailbox" } : undefined,
    });
    const second = await smtp();
    const a1 = await account("a1", server);
    const a2 = await account("a2", second);
    const name = await profile([
      [a1, 1],
      [a2, 2],
    ]);
    await start();
    const id = await send(name, "good@example.org;bad@example.org");

    const row = await waitForStatus(id, "sent");
    expect(row.sent_account_id).toBe(a1);
    expect(row.send_attempts).toBe(1);
    expect(row.smtp_response).toContain("bad@example.org");
    expect(row.smtp_response).toContain("550");
    expect(server.received).toHaveLength(1);
    expect(server.received[0]?.envelope.to).toEqual(["good@example.org"]);
    expect(second.received).toHaveLength(0);
  });
});

describe("slow and rude servers", () => {
  it.each([
    ["never greets", { stallGreeting: true }],
    ["takes DATA and never answers", { stallData: true }],
  ])(
    "gives up on a server that %s after the account's timeout, and is not stuck",
    async (_what, behaviour) => {
      const hung = await smtp(behaviour);
      const second = await smtp();
      const a1 = await account("a1", hung, { timeout: 2 });
      const a2 = await account("a2", second);
      const name = await profile([
        [a1, 1],
        [a2, 2],
      ]);
      await start();
      const started = Date.now();
      const id1 = await send(name);

      const row = await waitForStatus(id1, "sent", 10_000);
      expect(Date.now() - started).toBeLessThan(8000);
      expect(row.sent_account_id).toBe(a2);
      const warnings = (await events(id1)).filter((e) => e.event_type === "warning");
      expect(warnings.map((w) => w.account_id)).toEqual([a1]);

      const id2 = await send(name);
      expect((await waitForStatus(id2, "sent", 10_000)).sent_account_id).toBe(a2);
      expect(mailitemIds(second)).toEqual([id1, id2]);
    },
  );

  it("fails over from a server that drops the connection mid-DATA", async () => {
    const rude = await smtp({ dropData: true });
    const second = await smtp();
    const a1 = await account("a1", rude, { timeout: 2 });
    const a2 = await account("a2", second);
    const name = await profile([
      [a1, 1],
      [a2, 2],
    ]);
    await start();
    const id = await send(name);

    const row = await waitForStatus(id, "sent", 10_000);
    expect(row.sent_account_id).toBe(a2);
    expect(mailitemIds(second)).toEqual([id]);
    // (The test server may still record the dropped message: it read it all before cutting the line. The
    // sender never got a reply, so for it the message was not accepted.)
    const warnings = (await events(id)).filter((e) => e.event_type === "warning");
    expect(warnings.map((w) => w.account_id)).toEqual([a1]);
  });

  it("fails over mid-DATA with a streamed attachment: the next account gets all of it, byte-exact", async () => {
    // Larger than a streamed piece and not a multiple of one, so it is read from the database in pieces.
    const content = randomBytes(3 * 2 ** 20 + 12_345);
    const rude = await smtp({ dropData: true });
    const second = await smtp();
    const a1 = await account("a1", rude, { timeout: 2 });
    const a2 = await account("a2", second);
    const name = await profile([
      [a1, 1],
      [a2, 2],
    ]);
    await configure("MaxFileSize", String(8 * 2 ** 20));
    try {
      await start();
      const { rows } = await db.query<{ id: string }>(
        `SELECT dbmail.sp_send_dbmail(profile_name => $1, recipients => 'to@example.org', subject => 'big',
                body => 'body', attachments => ARRAY[dbmail.attachment('big.bin', $2::bytea)]) AS id`,
        [name, content],
      );
      const id = rows[0]?.id as string;

      const row = await waitForStatus(id, "sent", 15_000);
      expect(row.sent_account_id).toBe(a2);
      expect(mailitemIds(second)).toEqual([id]);
      const [attachment] = second.received[0]?.parsed.attachments ?? [];
      expect(attachment?.filename).toBe("big.bin");
      expect(attachment?.content.equals(content)).toBe(true);
    } finally {
      await configure("MaxFileSize", "1000000");
    }
  });

  it("retries a mail whose only server drops mid-DATA, and delivers it once the server behaves", async () => {
    const rude = await smtp({ dropData: true });
    const a1 = await account("a1", rude, { timeout: 2 });
    const name = await profile([[a1, 1]]);
    await configure("AccountRetryAttempts", "3");
    await configure("AccountRetryDelay", "2");
    await start();
    const id = await send(name);

    const retrying = await waitForStatus(id, "retrying", 10_000);
    expect(retrying.send_attempts).toBe(1);
    expect(retrying.last_error).toContain(`account ${a1}`);

    const dropped = rude.received.length; // read in full before the line was cut, never acknowledged
    rude.behaviour = {};
    const row = await waitForStatus(id, "sent", 10_000);
    expect(row.sent_account_id).toBe(a1);
    expect(row.send_attempts).toBe(2);
    expect(mailitemIds(rude).slice(dropped)).toEqual([id]);
  });
});

describe("configuration", () => {
  it("keeps a mail of a profile without accounts retrying, saying why", async () => {
    const name = await profile([]);
    await configure("AccountRetryDelay", "60");
    await start();
    const id = await send(name);

    const row = await waitForStatus(id, "retrying");
    expect(row.send_attempts).toBe(1);
    expect(row.due_later).toBe(true);
    expect(row.last_error).toMatch(/no accounts/);
  });

  it("applies a changed account port to the next mail without restarting the sender", async () => {
    const before = await smtp();
    const after = await smtp();
    const a1 = await account("a1", before);
    const name = await profile([[a1, 1]]);
    await start();
    const id1 = await send(name);
    await waitForStatus(id1, "sent");

    await db.query("SELECT dbmail.sysmail_update_account_sp(account_name => $1, port => $2)", [
      accountName("a1"),
      after.port,
    ]);
    await sleep(500);
    const id2 = await send(name);
    const row = await waitForStatus(id2, "sent");
    expect(row.sent_account_id).toBe(a1);
    expect(mailitemIds(before)).toEqual([id1]);
    expect(mailitemIds(after)).toEqual([id2]);
  });

  it("applies a changed account port to a mail that is waiting to retry", async () => {
    const working = await smtp();
    const a1 = await account("a1", { port: await freePort() });
    const name = await profile([[a1, 1]]);
    await configure("AccountRetryAttempts", "3");
    await start();
    const id = await send(name);
    await waitForStatus(id, "retrying");

    await db.query("SELECT dbmail.sysmail_update_account_sp(account_name => $1, port => $2)", [
      accountName("a1"),
      working.port,
    ]);
    const row = await waitForStatus(id, "sent");
    expect(row.sent_account_id).toBe(a1);
    expect(row.send_attempts).toBeGreaterThanOrEqual(2);
    expect(mailitemIds(working)).toEqual([id]);
  });
});
