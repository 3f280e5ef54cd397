// The sender protocol (sql/migrations/000014_sender_claims.sql and 000015_sender_outcomes.sql), called as
// dbmail_sender login roles: heartbeats, claims under a lease, outcomes, releases, accounts and attachments,
// the event log, and what a sender login cannot do to another sender's items and id.
import { randomUUID } from "node:crypto";
import type pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { errorOf, TestDatabase } from "../../../test/support/database.js";

interface Address {
  name: string | null;
  address: string;
}

interface ClaimedItem {
  mailitem_id: string;
  profile_id: number;
  envelope: { to: Address[]; cc: Address[]; bcc: Address[] };
  subject: string;
  body: string | null;
  body_format: string;
  importance: string;
  sensitivity: string;
  from_address: string | null;
  reply_to: string | null;
  headers: Record<string, string> | null;
  message_id: string;
  send_attempts: number;
  attachment_count: number;
  lease_expires_at: Date;
  lease_token: string;
}

interface ItemRow {
  mailitem_id: string;
  profile_id: number;
  sent_status: string;
  sent_date: Date | null;
  sent_account_id: number | null;
  smtp_response: string | null;
  sent_by: string | null;
  send_attempts: number;
  last_error: string | null;
  next_attempt_at: Date | null;
  message_id: string;
  lease_owner: string | null;
  lease_expires_at: Date | null;
  retry_delay: number | null;
  lease_seconds: number | null;
}

interface EventRow {
  event_type: string;
  description: string;
  mailitem_id: string | null;
  account_id: number | null;
  process_id: number | null;
  sender_id: string | null;
  last_mod_user: string;
}

interface QueueRow {
  queue_type: string;
  length: string;
  state: string;
  last_empty_rowset_time: Date | null;
  last_activated_time: Date | null;
  live_senders: number;
  senders: {
    sender_id: string;
    hostname: string | null;
    process_id: number | null;
    version: string | null;
  }[];
  oldest_unsent_date: Date | null;
  stalled: boolean;
}

interface AccountRow {
  profile_id: number;
  profile_name: string;
  account_id: number;
  sequence_number: number;
  is_last_success: boolean;
  account_name: string;
  email_address: string;
  display_name: string | null;
  replyto_address: string | null;
  mailserver_name: string;
  port: number;
  username: string | null;
  password: string | null;
  use_default_credentials: boolean;
  security: string;
  timeout: number | null;
  tls_reject_unauthorized: boolean;
}

const A = "sender-a";
const B = "sender-b";

let db: TestDatabase;
/**
 * Connections as one dbmail_sender login role (each may speak for any sender_id that login registered, or
 * that nobody registered).
 */
let s1: pg.Client;
let s2: pg.Client;
let s3: pg.Client;
let s4: pg.Client;
/** Connections as a second dbmail_sender login: another sender process, or an attacker. */
let o1: pg.Client;
let o2: pg.Client;
let senderRole: string;
let primaryId: number;
let backupId: number;
let plainId: number;
let profileId: number;

function one<T>(rows: T[]): T {
  const [row] = rows;
  if (row === undefined) throw new Error("expected a row, got none");
  return row;
}

/** Queues one message with profile p as the superuser; returns the mailitem_id. */
async function send(options: { subject?: string; sendAt?: string; profile?: string } = {}): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT dbmail.sp_send_dbmail(profile_name => $1, recipients => 'a@x.org', subject => $2, body => 'b',
       send_at => $3::timestamptz) AS id`,
    [options.profile ?? "p", options.subject ?? "s", options.sendAt ?? null],
  );
  return one(rows).id;
}

/**
 * The lease token each sender_id got for each item from its latest claim, as a sender would keep it: the
 * helpers below pass it along unless a test gives another.
 */
const tokens = new Map<string, string>();
const tokenKey = (senderId: string, mailitemId: string) => `${senderId}\u0000${mailitemId}`;
function tokenOf(senderId: string, mailitemId: string): string | null {
  return tokens.get(tokenKey(senderId, mailitemId)) ?? null;
}

async function claim(client: pg.Client, senderId: string | null, batchSize = 20, leaseSeconds = 300) {
  const { rows } = await client.query<ClaimedItem>("SELECT * FROM dbmail.claim_mailitems($1, $2, $3)", [
    senderId,
    batchSize,
    leaseSeconds,
  ]);
  for (const row of rows) tokens.set(tokenKey(senderId ?? "", row.mailitem_id), row.lease_token);
  return rows;
}

async function claimIds(client: pg.Client, senderId: string, batchSize = 20, leaseSeconds = 300) {
  return (await claim(client, senderId, batchSize, leaseSeconds)).map((r) => r.mailitem_id);
}

interface OutcomeOptions {
  accountId?: number | null;
  smtpResponse?: string | null;
  error?: string | null;
  accountErrors?: unknown;
  processId?: number | null;
  /** The lease token to present; by default the one this sender_id's latest claim of the item returned. */
  leaseToken?: string | null;
}

function recordOutcome(
  client: pg.Client,
  mailitemId: string,
  senderId: string,
  outcome: string | null,
  options: OutcomeOptions = {},
): Promise<string> {
  return client
    .query<{ result: string }>(
      `SELECT dbmail.record_outcome(mailitem_id => $1, sender_id => $2, lease_token => $9::uuid, outcome => $3,
         account_id => $4::integer, smtp_response => $5, error => $6, account_errors => $7::jsonb,
         process_id => $8::integer) AS result`,
      [
        mailitemId,
        senderId,
        outcome,
        options.accountId ?? null,
        options.smtpResponse ?? null,
        options.error ?? null,
        options.accountErrors === undefined ? null : JSON.stringify(options.accountErrors),
        options.processId ?? null,
        options.leaseToken === undefined ? tokenOf(senderId, mailitemId) : options.leaseToken,
      ],
    )
    .then((r) => one(r.rows).result);
}

/** release_mailitems, by default with the tokens this sender_id's claims returned. */
async function release(
  client: pg.Client,
  senderId: string,
  ids: string[],
  leaseTokens: (string | null)[] = ids.map((id) => tokenOf(senderId, id)),
): Promise<number> {
  const { rows } = await client.query<{ n: number }>(
    "SELECT dbmail.release_mailitems($1, $2::bigint[], $3::uuid[]) AS n",
    [senderId, ids, leaseTokens],
  );
  return one(rows).n;
}

/** extend_leases, by default with the tokens this sender_id's claims returned; the ids still held. */
async function extendLeases(
  client: pg.Client,
  senderId: string,
  ids: string[],
  leaseTokens: (string | null)[] = ids.map((id) => tokenOf(senderId, id)),
  leaseSeconds = 300,
): Promise<string[]> {
  const { rows } = await client.query<{ held: string[] }>(
    "SELECT dbmail.extend_leases($1, $2::bigint[], $3::uuid[], $4) AS held",
    [senderId, ids, leaseTokens, leaseSeconds],
  );
  return one(rows).held;
}

async function heartbeat(
  client: pg.Client,
  senderId: string,
  hostname = "host-1",
  pid = 4242,
  version = "1.2.3",
) {
  const { rows } = await client.query<{ started: boolean; settings: Record<string, string> }>(
    "SELECT * FROM dbmail.sender_heartbeat($1, $2, $3, $4)",
    [senderId, hostname, pid, version],
  );
  return one(rows);
}

/** The item as the superuser sees it: the sysmail_allitems view plus the lease columns of the table. */
async function item(id: string): Promise<ItemRow> {
  const { rows } = await db.query<ItemRow>(
    `SELECT v.mailitem_id, v.profile_id, v.sent_status, v.sent_date, v.sent_account_id, v.smtp_response, v.sent_by,
            v.send_attempts, v.last_error, v.next_attempt_at, v.message_id, m.lease_owner, m.lease_expires_at, m.last_mod_user,
            extract(epoch FROM m.next_attempt_at - m.last_mod_date)::float8 AS retry_delay,
            extract(epoch FROM m.lease_expires_at - m.last_mod_date)::float8 AS lease_seconds
     FROM dbmail.sysmail_allitems v JOIN dbmail.mailitems m USING (mailitem_id)
     WHERE v.mailitem_id = $1`,
    [id],
  );
  return one(rows);
}

async function events(id?: string): Promise<EventRow[]> {
  const { rows } = await db.query<EventRow>(
    `SELECT event_type, description, mailitem_id, account_id, process_id, sender_id, last_mod_user
     FROM dbmail.event_log WHERE $1::bigint IS NULL OR mailitem_id = $1::bigint ORDER BY log_id`,
    [id ?? null],
  );
  return rows;
}

async function queue(): Promise<QueueRow> {
  return one((await db.query<QueueRow>("SELECT * FROM dbmail.sysmail_help_queue_sp()")).rows);
}

async function configure(name: string, value: string): Promise<void> {
  await db.query("SELECT dbmail.sysmail_configure_sp($1, $2)", [name, value]);
}

/**
 * Waits until the server has been up for 30 seconds: a claim takes no sender for dead before that (no
 * sender could heartbeat while the server was down). Only a server the tests started themselves is
 * younger.
 */
async function untilServerUpFor30Seconds(): Promise<void> {
  const { rows } = await db.query<{ wait: number }>(
    "SELECT greatest(0, 31 - extract(epoch FROM now() - pg_postmaster_start_time()))::float8 AS wait",
  );
  await new Promise((resolve) => setTimeout(resolve, one(rows).wait * 1000));
}

/** Makes a leased item's lease run out, as if its sender had died. */
async function expireLease(id: string): Promise<void> {
  await db.query(
    "UPDATE dbmail.mailitems SET lease_expires_at = now() - interval '1 second' WHERE mailitem_id = $1",
    [id],
  );
}

/** Ends the wait of a retrying (or scheduled) item. */
async function makeDue(id: string): Promise<void> {
  await db.query(
    "UPDATE dbmail.mailitems SET next_attempt_at = now() - interval '1 second' WHERE mailitem_id = $1",
    [id],
  );
}

beforeAll(async () => {
  db = await TestDatabase.create();
  const role = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
  senderRole = role.name;
  s1 = await db.connect(role);
  s2 = await db.connect(role);
  s3 = await db.connect(role);
  s4 = await db.connect(role);
  const other = await db.createRole("other_sender", { memberOf: ["dbmail_sender"] });
  o1 = await db.connect(other);
  o2 = await db.connect(other);

  const add = async (sql: string) => one((await db.query<{ id: number }>(sql)).rows).id;
  primaryId = await add(
    `SELECT dbmail.sysmail_add_account_sp(account_name => 'primary', email_address => 'one@example.org',
       mailserver_name => 'localhost', port => 587, username => 'u1', password => 'secret-1',
       security => 'starttls', timeout => 30) AS id`,
  );
  backupId = await add(
    `SELECT dbmail.sysmail_add_account_sp(account_name => 'backup', email_address => 'two@example.org',
       mailserver_name => 'smtp2.example.org', port => 465, username => 'u2', password => 'env:SMTP_PASSWORD',
       security => 'tls') AS id`,
  );
  plainId = await add(
    `SELECT dbmail.sysmail_add_account_sp(account_name => 'plain', email_address => 'three@example.net',
       mailserver_name => 'localhost') AS id`,
  );
  profileId = await add("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'p') AS id");
  await add("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'q') AS id");
  // Added out of order: sender_accounts() must sort by sequence_number.
  await db.query(
    "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'p', account_name => 'backup', sequence_number => 2)",
  );
  await db.query(
    "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'p', account_name => 'primary', sequence_number => 1)",
  );
  await db.query(
    "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'q', account_name => 'plain', sequence_number => 1)",
  );
});

afterAll(async () => {
  await db?.drop();
});

beforeEach(async () => {
  tokens.clear();
  await db.query("DELETE FROM dbmail.mailitems");
  await db.query("DELETE FROM dbmail.senders");
  await db.query("UPDATE dbmail.profiles SET last_success_account_id = NULL");
  await configure("AccountRetryAttempts", "1");
  await configure("AccountRetryDelay", "60");
  await configure("LoggingLevel", "2");
  await db.query("SELECT dbmail.sysmail_start_sp()");
  // Last: starting logs an information event.
  await db.query("DELETE FROM dbmail.event_log");
});

describe("claim_mailitems", () => {
  it("returns due items with what the sender needs to build the message", async () => {
    const id = await send({ subject: "hello" });
    const [claimed, ...rest] = await claim(s1, A);
    expect(rest).toEqual([]);
    expect(claimed).toMatchObject({
      mailitem_id: id,
      profile_id: profileId,
      subject: "hello",
      body: "b",
      body_format: "TEXT",
      importance: "NORMAL",
      sensitivity: "NORMAL",
      send_attempts: 0,
      attachment_count: 0,
    });
    expect(claimed?.envelope.to).toEqual([{ name: null, address: "a@x.org" }]);
    expect(claimed?.envelope.cc).toEqual([]);
    expect(claimed?.message_id).toMatch(new RegExp(`^<dbmail\\.${id}\\.[0-9a-f]{32}@example\\.org>$`));
    expect(claimed?.lease_expires_at).toBeInstanceOf(Date);
  });

  it("marks claimed items sending, leased to the sender for lease_seconds", async () => {
    const id = await send();
    await claim(s1, A, 20, 120);
    const row = await item(id);
    expect(row.sent_status).toBe("sending");
    expect(row.lease_owner).toBe(A);
    expect(row.lease_seconds).toBe(120);
    const { rows } = await db.query<{ n: string }>(
      "SELECT count(*) AS n FROM dbmail.sysmail_unsentitems WHERE sent_status = 'sending'",
    );
    expect(one(rows).n).toBe("1");
  });

  it("claims at most batch_size items, oldest first", async () => {
    const ids = [await send(), await send(), await send()];
    expect(await claimIds(s1, A, 2)).toEqual(ids.slice(0, 2));
    expect(await claimIds(s1, A, 2)).toEqual(ids.slice(2));
    expect(await claimIds(s1, A, 2)).toEqual([]);
  });

  it("claims the item that has waited longest first", async () => {
    const first = await send();
    const second = await send();
    await db.query(
      "UPDATE dbmail.mailitems SET next_attempt_at = now() - interval '1 hour' WHERE mailitem_id = $1",
      [second],
    );
    expect(await claimIds(s1, A, 1)).toEqual([second]);
    expect(await claimIds(s1, A, 1)).toEqual([first]);
  });

  it("gives a second sender different items", async () => {
    const ids = [await send(), await send(), await send(), await send()];
    const a = await claimIds(s1, A, 2);
    const b = await claimIds(s2, B, 10);
    expect(a).toHaveLength(2);
    expect(b).toHaveLength(2);
    expect([...a, ...b].sort()).toEqual([...ids].sort());
    expect((await item(one(b))).lease_owner).toBe(B);
  });

  it("skips items locked by a concurrent, uncommitted claim (SKIP LOCKED) without waiting", async () => {
    const ids = [await send(), await send(), await send(), await send(), await send()];
    await s1.query("BEGIN");
    await s2.query("BEGIN");
    try {
      const a = await claimIds(s1, A, 3);
      await s2.query("SET LOCAL lock_timeout = '3s'");
      const b = await claimIds(s2, B, 10);
      expect(a).toHaveLength(3);
      expect(b).toHaveLength(2);
      expect(a.filter((x) => b.includes(x))).toEqual([]);
      expect([...a, ...b].sort()).toEqual([...ids].sort());
    } finally {
      await s2.query("COMMIT");
      await s1.query("COMMIT");
    }
  });

  it("never hands one item to two of four senders claiming at the same time", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 24; i++) ids.push(await send());
    const clients = [s1, s2, s3, s4];
    const claimed: string[] = [];
    for (let round = 0; round < 3; round++) {
      const batches = await Promise.all(clients.map((c, i) => claimIds(c, `sender-${i}`, 3)));
      claimed.push(...batches.flat());
    }
    expect(new Set(claimed).size).toBe(claimed.length);
    expect([...claimed].sort()).toEqual([...ids].sort());
  });

  it("leaves the items in the queue when the claiming transaction rolls back", async () => {
    const id = await send();
    await s1.query("BEGIN");
    expect(await claimIds(s1, A)).toEqual([id]);
    await s1.query("ROLLBACK");
    expect((await item(id)).sent_status).toBe("unsent");
    expect(await claimIds(s2, B)).toEqual([id]);
  });

  it("does not claim mail scheduled with send_at until it is due", async () => {
    const later = await send({ sendAt: new Date(Date.now() + 3_600_000).toISOString() });
    const now = await send();
    expect(await claimIds(s1, A)).toEqual([now]);
    expect(await claimIds(s1, A)).toEqual([]);
    await makeDue(later);
    expect(await claimIds(s1, A)).toEqual([later]);
  });

  it("claims nothing while Database Mail is stopped, and resumes after sysmail_start_sp", async () => {
    const id = await send();
    await db.query("SELECT dbmail.sysmail_stop_sp()");
    expect(await claimIds(s1, A)).toEqual([]);
    expect((await item(id)).sent_status).toBe("unsent");
    await db.query("SELECT dbmail.sysmail_start_sp()");
    expect(await claimIds(s1, A)).toEqual([id]);
  });

  it("does not reclaim an expired lease while stopped", async () => {
    const id = await send();
    await claim(s1, A);
    await expireLease(id);
    await db.query("SELECT dbmail.sysmail_stop_sp()");
    expect(await claimIds(s2, B)).toEqual([]);
    expect((await item(id)).lease_owner).toBe(A);
  });

  it("claims a retrying item only after its next_attempt_at", async () => {
    const id = await send();
    await claim(s1, A);
    expect(await recordOutcome(s1, id, A, "retrying", { error: "timeout" })).toBe("retrying");
    expect(await claimIds(s1, A)).toEqual([]);
    expect(await claimIds(s2, B)).toEqual([]);
    await makeDue(id);
    const [again] = await claim(s2, B);
    expect(again?.mailitem_id).toBe(id);
    expect(again?.send_attempts).toBe(1);
  });

  it("does not take another sender's item while its lease is live", async () => {
    const id = await send();
    await claim(s1, A);
    expect(await claimIds(s2, B)).toEqual([]);
    expect((await item(id)).lease_owner).toBe(A);
    expect(await events(id)).toEqual([]);
  });

  it("reclaims a sending item whose lease expired, with the same Message-ID and a warning event", async () => {
    const id = await send();
    const [first] = await claim(s1, A);
    await expireLease(id);
    const [second, ...rest] = await claim(s2, B, 20, 60);
    expect(rest).toEqual([]);
    expect(second?.mailitem_id).toBe(id);
    expect(second?.message_id).toBe(first?.message_id);
    const row = await item(id);
    expect(row.sent_status).toBe("sending");
    expect(row.lease_owner).toBe(B);
    expect(row.lease_seconds).toBe(60);
    const logged = await events(id);
    expect(logged).toHaveLength(1);
    expect(one(logged)).toMatchObject({ event_type: "warning", mailitem_id: id, sender_id: B });
    expect(one(logged).description).toMatch(/unknown/i);
    expect(one(logged).description).toMatch(/same Message-ID/);
  });

  it("takes a dead sender's items over at once, though their leases run on", {
    timeout: 60_000,
  }, async () => {
    await untilServerUpFor30Seconds();
    const id = await send();
    await heartbeat(s1, A);
    const [first] = await claim(s1, A, 20, 300);
    await heartbeat(s2, B);
    // A still heartbeats: its lease holds.
    expect(await claimIds(s2, B)).toEqual([]);
    // A was killed: its last heartbeat is 31 s old, its lease has 269 s to run.
    await db.query(
      "UPDATE dbmail.senders SET last_heartbeat = now() - interval '31 seconds' WHERE sender_id = $1",
      [A],
    );
    const [second, ...rest] = await claim(s2, B);
    expect(rest).toEqual([]);
    expect(second?.mailitem_id).toBe(id);
    expect(second?.message_id).toBe(first?.message_id);
    expect((await item(id)).lease_owner).toBe(B);
    const logged = await events(id);
    expect(logged.map((e) => [e.event_type, e.sender_id])).toEqual([["warning", B]]);
    expect(one(logged).description).toMatch(/outcome unknown.*same Message-ID/);
    // A counts as stopped from the moment it was known dead (30 s after its last heartbeat).
    const { rows } = await db.query<{ dead_at: boolean }>(
      "SELECT stopped_at = last_heartbeat + interval '30 seconds' AS dead_at FROM dbmail.senders WHERE sender_id = $1",
      [A],
    );
    expect(one(rows).dead_at).toBe(true);
    // Should A come back after all, the item is no longer its own.
    expect(await extendLeases(s1, A, [id])).toEqual([]);
  });

  it("never takes the claimer's own items back, however old its heartbeat (after an outage, say)", {
    timeout: 60_000,
  }, async () => {
    await untilServerUpFor30Seconds();
    const id = await send();
    await heartbeat(s1, A);
    await claim(s1, A, 20, 300);
    await db.query(
      "UPDATE dbmail.senders SET last_heartbeat = now() - interval '31 seconds' WHERE sender_id = $1",
      [A],
    );
    expect(await claimIds(s1, A)).toEqual([]);
    expect((await item(id)).lease_seconds).toBe(300);
    const { rows } = await db.query("SELECT stopped_at FROM dbmail.senders WHERE sender_id = $1", [A]);
    expect(one(rows).stopped_at).toBeNull();
    expect(await events(id)).toEqual([]);
  });

  it("counts a sender that renews its leases as alive, however old its last heartbeat", async () => {
    const id = await send();
    await heartbeat(s1, A);
    await claim(s1, A);
    await db.query(
      "UPDATE dbmail.senders SET last_heartbeat = now() - interval '31 seconds' WHERE sender_id = $1",
      [A],
    );
    expect(await extendLeases(s1, A, [id])).toEqual([id]);
    await heartbeat(s2, B);
    expect(await claimIds(s2, B)).toEqual([]);
    expect((await item(id)).lease_owner).toBe(A);
    expect((await queue()).live_senders).toBe(2);
  });

  it("with UnknownOutcomePolicy fail, fails an item whose sender stopped reporting instead of sending it again", async () => {
    const id = await send();
    await claim(s1, A);
    await expireLease(id);
    await configure("UnknownOutcomePolicy", "FAIL");
    try {
      expect(await claimIds(s2, B)).toEqual([]);
      const row = await item(id);
      expect(row.sent_status).toBe("failed");
      expect(row.lease_owner).toBeNull();
      expect(row.last_error).toMatch(/outcome unknown/);
      const logged = await events(id);
      expect(logged.map((e) => e.event_type)).toEqual(["error"]);
      expect(one(logged).description).toMatch(/UnknownOutcomePolicy is fail/);
      // The sender that held it finds out when it reports: the item is no longer its own.
      expect(await recordOutcome(s1, id, A, "sent", { accountId: primaryId })).toBe("lease_lost");
    } finally {
      await configure("UnknownOutcomePolicy", "retry");
    }
  });

  it("counts reclaimed expired items against batch_size", async () => {
    const expired = [await send(), await send()];
    await claim(s1, A);
    for (const id of expired) await expireLease(id);
    await send();
    await send();
    const claimed = await claimIds(s2, B, 2);
    expect(claimed).toHaveLength(2);
    const rest = await claimIds(s2, B, 2);
    expect(rest).toHaveLength(2);
    expect(new Set([...claimed, ...rest]).size).toBe(4);
  });

  it("returns only what this call claimed when one sender claims twice in one transaction", async () => {
    const ids = [await send(), await send(), await send()];
    await s1.query("BEGIN");
    try {
      const first = await claimIds(s1, A, 1);
      const second = await claimIds(s1, A, 1);
      expect(first).toEqual([ids[0]]);
      expect(second).toEqual([ids[1]]);
    } finally {
      await s1.query("COMMIT");
    }
  });

  it.each([
    ["sender_id", null, 20, 300, "22004"],
    ["sender_id", "  ", 20, 300, "22004"],
    ["batch_size", A, 0, 300, "22023"],
    ["batch_size", A, null, 300, "22023"],
    ["batch_size", A, 10001, 300, "22023"],
    ["lease_seconds", A, 20, 0, "22023"],
    ["lease_seconds", A, 20, null, "22023"],
  ] as const)(
    "refuses a bad %s (%s, %s, %s) with %s",
    async (parameter, senderId, batchSize, leaseSeconds, code) => {
      const id = await send();
      const error = await errorOf(
        s1.query("SELECT * FROM dbmail.claim_mailitems($1, $2, $3)", [senderId, batchSize, leaseSeconds]),
      );
      expect(error.code).toBe(code);
      expect(error.message).toMatch(new RegExp(`^${parameter}: `));
      expect((await item(id)).sent_status).toBe("unsent");
    },
  );

  it("records an empty claim in senders.last_empty_claim_at for a registered sender", async () => {
    await heartbeat(s1, A);
    await send();
    await claim(s1, A);
    const before = await db.query<{ t: Date | null }>(
      "SELECT last_empty_claim_at AS t FROM dbmail.senders WHERE sender_id = $1",
      [A],
    );
    expect(one(before.rows).t).toBeNull();
    expect(await claim(s1, A)).toEqual([]);
    const after = await db.query<{ t: Date | null }>(
      "SELECT last_empty_claim_at AS t FROM dbmail.senders WHERE sender_id = $1",
      [A],
    );
    expect(one(after.rows).t).toBeInstanceOf(Date);
    expect((await queue()).last_empty_rowset_time).toBeInstanceOf(Date);
  });

  it("accepts an empty claim from an unregistered sender without registering it", async () => {
    expect(await claim(s1, "never-heartbeated")).toEqual([]);
    const { rows } = await db.query("SELECT * FROM dbmail.senders");
    expect(rows).toEqual([]);
  });
});

describe("record_outcome: sent", () => {
  it("marks the item sent with its account, response and sender, and clears the lease", async () => {
    const id = await send();
    await claim(s1, A);
    expect(
      await recordOutcome(s1, id, A, "sent", {
        accountId: primaryId,
        smtpResponse: "250 2.0.0 OK queued",
        processId: 77,
      }),
    ).toBe("sent");
    const row = await item(id);
    expect(row).toMatchObject({
      sent_status: "sent",
      sent_account_id: primaryId,
      smtp_response: "250 2.0.0 OK queued",
      sent_by: A,
      send_attempts: 1,
      lease_owner: null,
      lease_expires_at: null,
      next_attempt_at: null,
      // The sender's own login, not the owner of the SECURITY DEFINER functions.
      last_mod_user: senderRole,
    });
    expect(row.sent_date).toBeInstanceOf(Date);
    const { rows } = await db.query("SELECT mailitem_id FROM dbmail.sysmail_sentitems");
    expect(rows.map((r) => r.mailitem_id)).toEqual([id]);
  });

  it("makes the account sticky for its profile (sender_accounts().is_last_success)", async () => {
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "sent", { accountId: backupId });
    const { rows } = await s1.query<AccountRow>(
      "SELECT * FROM dbmail.sender_accounts() WHERE profile_name = 'p'",
    );
    expect(rows.map((r) => [r.account_id, r.is_last_success])).toEqual([
      [primaryId, false],
      [backupId, true],
    ]);
    const profile = await db.query<{ a: number }>(
      "SELECT last_success_account_id AS a FROM dbmail.profiles WHERE profile_id = $1",
      [profileId],
    );
    expect(one(profile.rows).a).toBe(backupId);
  });

  it("moves the sticky account when a later message is sent through another one", async () => {
    const first = await send();
    const second = await send();
    await claim(s1, A);
    await recordOutcome(s1, first, A, "sent", { accountId: backupId });
    await recordOutcome(s1, second, A, "sent", { accountId: primaryId });
    const { rows } = await s1.query<AccountRow>(
      "SELECT * FROM dbmail.sender_accounts() WHERE profile_name = 'p' AND is_last_success",
    );
    expect(rows.map((r) => r.account_id)).toEqual([primaryId]);
  });

  it("logs account_errors given with a sent outcome as warnings carrying their account", async () => {
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "sent", {
      accountId: backupId,
      accountErrors: [{ account_id: primaryId, error: "connect ECONNREFUSED 127.0.0.1:587" }],
      processId: 4242,
    });
    const logged = await events(id);
    expect(logged).toHaveLength(1);
    expect(one(logged)).toMatchObject({
      event_type: "warning",
      mailitem_id: id,
      account_id: primaryId,
      process_id: 4242,
      sender_id: A,
      last_mod_user: senderRole,
    });
    expect(one(logged).description).toContain("ECONNREFUSED");
  });

  it("writes no success event at LoggingLevel 2", async () => {
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "sent", { accountId: primaryId });
    expect(await events(id)).toEqual([]);
  });

  it("writes a success event at LoggingLevel 3", async () => {
    await configure("LoggingLevel", "3");
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "sent", { accountId: primaryId, smtpResponse: "250 OK", processId: 9 });
    const logged = await events(id);
    expect(logged).toHaveLength(1);
    expect(one(logged)).toMatchObject({
      event_type: "success",
      account_id: primaryId,
      process_id: 9,
      sender_id: A,
    });
    expect(one(logged).description).toContain("250 OK");
  });

  it("returns lease_lost for a second outcome of an item already sent, changing nothing", async () => {
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "sent", { accountId: primaryId, smtpResponse: "250 first" });
    expect(await recordOutcome(s1, id, A, "failed", { error: "late" })).toBe("lease_lost");
    const row = await item(id);
    expect(row).toMatchObject({
      sent_status: "sent",
      smtp_response: "250 first",
      send_attempts: 1,
      last_error: null,
    });
  });
});

describe("record_outcome: retrying and failed", () => {
  it("puts the item in retrying for AccountRetryDelay (60 s by default) after the first failed round", async () => {
    const id = await send();
    await claim(s1, A);
    expect(await recordOutcome(s1, id, A, "retrying", { error: "421 try later", processId: 5 })).toBe(
      "retrying",
    );
    const row = await item(id);
    expect(row).toMatchObject({
      sent_status: "retrying",
      send_attempts: 1,
      last_error: "421 try later",
      lease_owner: null,
      lease_expires_at: null,
      sent_date: null,
      retry_delay: 60,
    });
    const wait = (row.next_attempt_at?.getTime() ?? 0) - Date.now();
    expect(wait).toBeGreaterThan(50_000);
    expect(wait).toBeLessThanOrEqual(61_000);
    const logged = await events(id);
    expect(logged).toHaveLength(1);
    expect(one(logged)).toMatchObject({ event_type: "warning", sender_id: A, process_id: 5 });
    expect(one(logged).description).toContain("421 try later");
    const unsent = await db.query(
      "SELECT mailitem_id FROM dbmail.sysmail_unsentitems WHERE sent_status = 'retrying'",
    );
    expect(unsent.rows.map((r) => r.mailitem_id)).toEqual([id]);
  });

  it("waits the configured AccountRetryDelay", async () => {
    await configure("AccountRetryDelay", "5");
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "retrying", { error: "timeout" });
    expect((await item(id)).retry_delay).toBe(5);
  });

  it("fails the item after 1 + AccountRetryAttempts rounds (default 1), with one error event", async () => {
    const id = await send();
    await claim(s1, A);
    expect(await recordOutcome(s1, id, A, "retrying", { error: "round one" })).toBe("retrying");
    await makeDue(id);
    expect(await claimIds(s2, B)).toEqual([id]);
    expect(await recordOutcome(s2, id, B, "retrying", { error: "round two" })).toBe("failed");
    const row = await item(id);
    expect(row).toMatchObject({
      sent_status: "failed",
      send_attempts: 2,
      last_error: "round two",
      lease_owner: null,
      next_attempt_at: null,
    });
    expect(row.sent_date).toBeInstanceOf(Date);
    const logged = await events(id);
    expect(logged.map((e) => e.event_type)).toEqual(["warning", "error"]);
    expect(logged.filter((e) => e.event_type === "error")).toHaveLength(1);
    expect(logged[1]?.description).toContain("round two");
    expect(logged[1]?.sender_id).toBe(B);
    const failed = await db.query("SELECT mailitem_id FROM dbmail.sysmail_faileditems");
    expect(failed.rows.map((r) => r.mailitem_id)).toEqual([id]);
    expect(await claimIds(s1, A)).toEqual([]);
  });

  it("fails at the first retrying outcome when AccountRetryAttempts is 0", async () => {
    await configure("AccountRetryAttempts", "0");
    const id = await send();
    await claim(s1, A);
    expect(await recordOutcome(s1, id, A, "retrying", { error: "down" })).toBe("failed");
    expect(await item(id)).toMatchObject({ sent_status: "failed", send_attempts: 1, last_error: "down" });
    expect((await events(id)).map((e) => e.event_type)).toEqual(["error"]);
  });

  it("allows 1 + AccountRetryAttempts rounds when AccountRetryAttempts is 2", async () => {
    await configure("AccountRetryAttempts", "2");
    const id = await send();
    const results: string[] = [];
    for (let round = 0; round < 3; round++) {
      await makeDue(id);
      expect(await claimIds(s1, A)).toEqual([id]);
      results.push(await recordOutcome(s1, id, A, "retrying", { error: `round ${round + 1}` }));
    }
    expect(results).toEqual(["retrying", "retrying", "failed"]);
    expect((await item(id)).send_attempts).toBe(3);
  });

  it("summarises account_errors into last_error when no error text is given", async () => {
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "retrying", {
      accountErrors: [
        { account_id: primaryId, error: "ETIMEDOUT" },
        { account_id: backupId, error: "421 busy" },
      ],
    });
    const { last_error } = await item(id);
    expect(last_error).toContain(`account ${primaryId}: ETIMEDOUT`);
    expect(last_error).toContain(`account ${backupId}: 421 busy`);
  });

  it("fails the item at once on a failed outcome, with an error event and last_error", async () => {
    const id = await send();
    await claim(s1, A);
    expect(await recordOutcome(s1, id, A, "failed", { error: "550 5.1.1 no such user", processId: 3 })).toBe(
      "failed",
    );
    const row = await item(id);
    expect(row).toMatchObject({
      sent_status: "failed",
      send_attempts: 1,
      last_error: "550 5.1.1 no such user",
      lease_owner: null,
      lease_expires_at: null,
    });
    const logged = await events(id);
    expect(logged).toHaveLength(1);
    expect(one(logged)).toMatchObject({ event_type: "error", mailitem_id: id, sender_id: A, process_id: 3 });
    expect(one(logged).description).toContain("550 5.1.1 no such user");
  });
});

describe("record_outcome: lease_lost and bad arguments", () => {
  it("returns lease_lost to a sender that does not hold the item, changing nothing", async () => {
    const id = await send();
    await claim(s1, A);
    expect(await recordOutcome(s2, id, B, "sent", { accountId: primaryId })).toBe("lease_lost");
    expect(await recordOutcome(s2, id, B, "failed", { error: "x" })).toBe("lease_lost");
    const row = await item(id);
    expect(row).toMatchObject({ sent_status: "sending", lease_owner: A, send_attempts: 0, sent_by: null });
    expect(await events(id)).toEqual([]);
    expect(await recordOutcome(s1, id, A, "sent", { accountId: primaryId })).toBe("sent");
  });

  it("returns lease_lost for an item that was never claimed", async () => {
    const id = await send();
    expect(await recordOutcome(s1, id, A, "sent", { accountId: primaryId })).toBe("lease_lost");
    expect((await item(id)).sent_status).toBe("unsent");
  });

  it("returns lease_lost to the first sender after another sender reclaimed the expired lease", async () => {
    const id = await send();
    await claim(s1, A);
    await expireLease(id);
    await claim(s2, B);
    expect(await recordOutcome(s1, id, A, "sent", { accountId: primaryId, smtpResponse: "250 late" })).toBe(
      "lease_lost",
    );
    const row = await item(id);
    expect(row).toMatchObject({
      sent_status: "sending",
      lease_owner: B,
      send_attempts: 0,
      smtp_response: null,
    });
    expect(await recordOutcome(s2, id, B, "sent", { accountId: backupId })).toBe("sent");
    expect((await item(id)).sent_by).toBe(B);
  });

  it("still accepts the outcome of a sender whose lease ran out but was not reclaimed", async () => {
    const id = await send();
    await claim(s1, A);
    await expireLease(id);
    expect(await recordOutcome(s1, id, A, "sent", { accountId: primaryId })).toBe("sent");
    expect(await claimIds(s2, B)).toEqual([]);
  });

  it("returns lease_lost for an item deleted while it was being sent", async () => {
    const id = await send();
    await claim(s1, A);
    await db.query("SELECT dbmail.sysmail_delete_mailitems_sp(sent_status => 'sending')");
    expect(await recordOutcome(s1, id, A, "sent", { accountId: primaryId })).toBe("lease_lost");
    expect(await recordOutcome(s1, id, A, "retrying", { error: "x" })).toBe("lease_lost");
    const { rows } = await db.query("SELECT FROM dbmail.mailitems WHERE mailitem_id = $1", [id]);
    expect(rows).toHaveLength(0);
  });

  it.each(["bogus", "SENT ", null])("refuses outcome %s with 22023", async (outcome) => {
    const id = await send();
    await claim(s1, A);
    const error = await errorOf(recordOutcome(s1, id, A, outcome, { accountId: primaryId }));
    expect(error.code).toBe("22023");
    expect(error.message).toMatch(/^outcome: /);
    expect((await item(id)).sent_status).toBe("sending");
  });

  it("refuses a sent outcome without account_id with 22004", async () => {
    const id = await send();
    await claim(s1, A);
    const error = await errorOf(recordOutcome(s1, id, A, "sent"));
    expect(error.code).toBe("22004");
    expect(error.message).toMatch(/^account_id: /);
    expect((await item(id)).sent_status).toBe("sending");
  });

  it.each([{ account_id: 1, error: "x" }, "oops", 42])(
    "refuses account_errors %j (not an array) with 22023",
    async (accountErrors) => {
      const id = await send();
      await claim(s1, A);
      const error = await errorOf(recordOutcome(s1, id, A, "retrying", { error: "e", accountErrors }));
      expect(error.code).toBe("22023");
      expect(error.message).toMatch(/^account_errors: /);
      expect(await item(id)).toMatchObject({ sent_status: "sending", send_attempts: 0 });
    },
  );
});

interface BatchOutcome {
  mailitem_id: string;
  outcome: string | null;
  lease_token?: string | null;
  account_id?: number | null;
  smtp_response?: string | null;
  error?: string | null;
  account_errors?: unknown;
}

/** record_outcomes: each item's status afterwards, as [mailitem_id, status] in the order returned. */
async function recordOutcomes(
  client: pg.Client,
  senderId: string,
  outcomes: BatchOutcome[] | unknown,
  processId: number | null = null,
): Promise<[string, string][]> {
  // Each entry gets the token this sender_id's claim returned, unless it names one (or is not an object).
  const withTokens = Array.isArray(outcomes)
    ? outcomes.map((o) =>
        typeof o === "object" && o !== null && !("lease_token" in o) && "mailitem_id" in o
          ? { ...o, lease_token: tokenOf(senderId, String(o.mailitem_id)) }
          : o,
      )
    : outcomes;
  const { rows } = await client.query<{ mailitem_id: string; status: string }>(
    "SELECT * FROM dbmail.record_outcomes($1, $2::jsonb, $3::integer)",
    [senderId, JSON.stringify(withTokens), processId],
  );
  return rows.map((r) => [r.mailitem_id, r.status]);
}

describe("record_outcomes", () => {
  it("applies mixed outcomes in one call and returns each item's status, lease_lost per item", async () => {
    const sent = await send();
    const retrying = await send();
    const failed = await send();
    const others = await send();
    await claim(s1, A, 3);
    expect(await claimIds(s2, B)).toEqual([others]);
    const never = "999999999";
    const result = await recordOutcomes(
      s1,
      A,
      [
        { mailitem_id: failed, outcome: "failed", error: "550 no such user" },
        { mailitem_id: sent, outcome: "sent", account_id: primaryId, smtp_response: "250 OK" },
        { mailitem_id: others, outcome: "sent", account_id: primaryId },
        { mailitem_id: retrying, outcome: "retrying", error: "421 later" },
        { mailitem_id: never, outcome: "sent", account_id: primaryId },
      ],
      7,
    );
    // In mailitem_id order.
    expect(result).toEqual([
      [sent, "sent"],
      [retrying, "retrying"],
      [failed, "failed"],
      [others, "lease_lost"],
      [never, "lease_lost"],
    ]);
    expect(await item(sent)).toMatchObject({ sent_status: "sent", sent_account_id: primaryId, sent_by: A });
    expect(await item(retrying)).toMatchObject({
      sent_status: "retrying",
      send_attempts: 1,
      lease_owner: null,
    });
    expect(await item(failed)).toMatchObject({ sent_status: "failed", last_error: "550 no such user" });
    // Another sender's item is left alone.
    expect(await item(others)).toMatchObject({ sent_status: "sending", lease_owner: B, send_attempts: 0 });
    expect((await events(others)).length).toBe(0);
    expect((await events(retrying)).map((e) => [e.event_type, e.process_id, e.sender_id])).toEqual([
      ["warning", 7, A],
    ]);
  });

  it("has exactly record_outcome's effect on items and the event log", async () => {
    await configure("LoggingLevel", "3");
    const outcomes = (ids: string[]): BatchOutcome[] => [
      {
        mailitem_id: ids[0] as string,
        outcome: "sent",
        account_id: backupId,
        smtp_response: "250 queued",
        account_errors: [{ account_id: primaryId, error: "421 busy" }],
      },
      {
        mailitem_id: ids[1] as string,
        outcome: "retrying",
        account_errors: [{ account_id: primaryId, error: "timeout" }],
      },
      { mailitem_id: ids[2] as string, outcome: "failed", error: "550 refused" },
    ];
    const snapshot = async (ids: string[]) => {
      const rows = [];
      for (const [i, id] of ids.entries()) {
        const { mailitem_id, sent_date, next_attempt_at, message_id, retry_delay, ...row } = await item(id);
        const evs = (await events(id)).map((e) => ({
          ...e,
          mailitem_id: null,
          description: e.description.replace(`Mail Id ${id}`, `Mail Id #${i}`),
        }));
        const wait = row.sent_status === "retrying" ? Math.round(retry_delay ?? 0) : null;
        rows.push({ row: { ...row, sent: sent_date !== null, wait }, evs });
      }
      return rows;
    };
    const single = [await send(), await send(), await send()];
    await claim(s1, A);
    for (const o of outcomes(single)) {
      await recordOutcome(s1, o.mailitem_id, A, o.outcome, {
        accountId: o.account_id ?? null,
        smtpResponse: o.smtp_response ?? null,
        error: o.error ?? null,
        accountErrors: o.account_errors,
        processId: 5,
      });
    }
    const viaOne = await snapshot(single);
    await db.query("UPDATE dbmail.profiles SET last_success_account_id = NULL");
    const batch = [await send(), await send(), await send()];
    await claim(s1, A);
    await recordOutcomes(s1, A, outcomes(batch), 5);
    expect(await snapshot(batch)).toEqual(viaOne);
    expect(viaOne[0]?.evs.map((e) => e.event_type)).toEqual(["warning", "success"]);
  });

  it("counts retry rounds like record_outcome: the item fails after 1 + AccountRetryAttempts rounds", async () => {
    const id = await send();
    await claim(s1, A);
    expect(await recordOutcomes(s1, A, [{ mailitem_id: id, outcome: "retrying", error: "one" }])).toEqual([
      [id, "retrying"],
    ]);
    expect((await item(id)).retry_delay).toBeCloseTo(60, 0);
    await makeDue(id);
    await claim(s1, A);
    expect(await recordOutcomes(s1, A, [{ mailitem_id: id, outcome: "retrying", error: "two" }])).toEqual([
      [id, "failed"],
    ]);
    expect(await item(id)).toMatchObject({ sent_status: "failed", send_attempts: 2, last_error: "two" });
  });

  it("makes the account sticky and tells the other senders (NOTIFY dbmail_config)", async () => {
    const id = await send();
    await claim(s1, A);
    await s3.query("LISTEN dbmail_config");
    const heard = new Promise<string>((resolve) => s3.once("notification", (n) => resolve(n.channel)));
    await recordOutcomes(s1, A, [{ mailitem_id: id, outcome: "sent", account_id: backupId }]);
    expect(await heard).toBe("dbmail_config");
    await s3.query("UNLISTEN dbmail_config");
    const { rows } = await s1.query<AccountRow>(
      "SELECT * FROM dbmail.sender_accounts() WHERE profile_name = 'p' AND is_last_success",
    );
    expect(rows.map((r) => r.account_id)).toEqual([backupId]);
  });

  it("returns nothing for an empty array", async () => {
    expect(await recordOutcomes(s1, A, [])).toEqual([]);
  });

  it("changes nothing when one entry is bad (the whole call fails)", async () => {
    const good = await send();
    const bad = await send();
    await claim(s1, A);
    const error = await errorOf(
      recordOutcomes(s1, A, [
        { mailitem_id: good, outcome: "sent", account_id: primaryId },
        { mailitem_id: bad, outcome: "sent" },
      ]),
    );
    expect(error.code).toBe("22004");
    expect(error.message).toMatch(/^account_id: /);
    expect(await item(good)).toMatchObject({ sent_status: "sending", lease_owner: A });
    expect((await events()).length).toBe(0);
  });

  it.each([
    [{ mailitem_id: 1, outcome: "sent" }, "22023", /^outcomes: /],
    [[{ outcome: "sent", account_id: 1 }], "22004", /^mailitem_id: /],
    [[{ mailitem_id: 1, outcome: "bogus" }], "22023", /^outcome: /],
  ])("refuses %j with %s", async (outcomes, code, message) => {
    const error = await errorOf(recordOutcomes(s1, A, outcomes));
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
  });
});

describe("release_mailitems", () => {
  it("gives claimed items back as unsent, claimable at once, and returns the count", async () => {
    const ids = [await send(), await send(), await send()];
    await claim(s1, A);
    expect(await release(s1, A, ids.slice(0, 2))).toBe(2);
    for (const id of ids.slice(0, 2)) {
      expect(await item(id)).toMatchObject({
        sent_status: "unsent",
        lease_owner: null,
        lease_expires_at: null,
      });
    }
    expect((await item(one(ids.slice(2)))).sent_status).toBe("sending");
    expect((await claimIds(s2, B)).sort()).toEqual(ids.slice(0, 2).sort());
  });

  it("gives an item that has had attempts back as retrying, claimable at once", async () => {
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "retrying", { error: "timeout" });
    await makeDue(id);
    await claim(s1, A);
    expect(await release(s1, A, [id])).toBe(1);
    expect(await item(id)).toMatchObject({
      sent_status: "retrying",
      send_attempts: 1,
      last_error: "timeout",
    });
    const [again] = await claim(s2, B);
    expect(again?.mailitem_id).toBe(id);
    expect(again?.send_attempts).toBe(1);
  });

  it("notifies dbmail_queue so waiting senders pick the items up", async () => {
    const id = await send();
    await claim(s1, A);
    const listener = await db.connect();
    await listener.query("LISTEN dbmail_queue");
    const notified = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no notification on dbmail_queue")), 5_000);
      listener.on("notification", (n) => {
        clearTimeout(timer);
        resolve(n.channel);
      });
    });
    expect(await release(s1, A, [id])).toBe(1);
    expect(await notified).toBe("dbmail_queue");
    await listener.end();
  });

  it("does not release another sender's items", async () => {
    const ids = [await send(), await send()];
    await claim(s1, A);
    expect(await release(s2, B, ids)).toBe(0);
    for (const id of ids) expect(await item(id)).toMatchObject({ sent_status: "sending", lease_owner: A });
  });

  it("does not touch items that are not sending", async () => {
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "sent", { accountId: primaryId });
    const unsent = await send();
    expect(await release(s1, A, [id, unsent])).toBe(0);
    expect((await item(id)).sent_status).toBe("sent");
    expect(await release(s1, A, [])).toBe(0);
  });
});

describe("sender_heartbeat and sender_stopped", () => {
  it("removes caller stamps left committed by ended transactions", async () => {
    await db.query("INSERT INTO dbmail.caller_stamps DEFAULT VALUES");
    expect(Number((await db.query("SELECT count(*) AS n FROM dbmail.caller_stamps")).rows[0]?.n)).toBe(1);
    await heartbeat(s1, A);
    expect(Number((await db.query("SELECT count(*) AS n FROM dbmail.caller_stamps")).rows[0]?.n)).toBe(0);
  });

  it("restarts started_at when a stopped sender's id is used again", async () => {
    await heartbeat(s1, A);
    await db.query("UPDATE dbmail.senders SET started_at = now() - interval '1 day' WHERE sender_id = $1", [
      A,
    ]);
    await heartbeat(s1, A);
    const kept = (
      await db.query(
        "SELECT started_at > now() - interval '1 hour' AS fresh FROM dbmail.senders WHERE sender_id = $1",
        [A],
      )
    ).rows[0];
    expect(kept?.fresh).toBe(false);
    await s1.query("SELECT dbmail.sender_stopped($1)", [A]);
    await heartbeat(s1, A);
    const restarted = (
      await db.query(
        "SELECT started_at > now() - interval '1 hour' AS fresh FROM dbmail.senders WHERE sender_id = $1",
        [A],
      )
    ).rows[0];
    expect(restarted?.fresh).toBe(true);
  });

  it("registers the sender and returns started and the fourteen settings", async () => {
    const beat = await heartbeat(s1, A, "mail-host", 1234, "0.9.0");
    expect(beat.started).toBe(true);
    expect(Object.keys(beat.settings).sort()).toEqual(
      [
        "AccountRetryAttempts",
        "AccountRetryDelay",
        "AdminRoles",
        "AttachmentDirectories",
        "DatabaseMailExeMinimumLifeTime",
        "DefaultAttachmentEncoding",
        "LoggingLevel",
        "MaxFileSize",
        "MaxMailSize",
        "MaxMailsPerUserPerDay",
        "MaxRecipientsPerMail",
        "ProhibitedExtensions",
        "SenderRoles",
        "UnknownOutcomePolicy",
      ].sort(),
    );
    expect(beat.settings).toMatchObject({
      AccountRetryAttempts: "1",
      AccountRetryDelay: "60",
      LoggingLevel: "2",
      DefaultAttachmentEncoding: "MIME",
    });
    const { rows } = await db.query(
      "SELECT hostname, process_id, version, stopped_at FROM dbmail.senders WHERE sender_id = $1",
      [A],
    );
    expect(rows).toEqual([{ hostname: "mail-host", process_id: 1234, version: "0.9.0", stopped_at: null }]);
  });

  it("returns started false while stopped and the settings as changed", async () => {
    await db.query("SELECT dbmail.sysmail_stop_sp()");
    await configure("LoggingLevel", "3");
    const beat = await heartbeat(s1, A);
    expect(beat.started).toBe(false);
    expect(beat.settings.LoggingLevel).toBe("3");
    await db.query("SELECT dbmail.sysmail_start_sp()");
    expect((await heartbeat(s1, A)).started).toBe(true);
  });

  it("refreshes the heartbeat and details of a known sender", async () => {
    await heartbeat(s1, A, "h1", 1, "1.0.0");
    await db.query("UPDATE dbmail.senders SET last_heartbeat = now() - interval '20 seconds'");
    await heartbeat(s1, A, "h2", 2, "1.0.1");
    const { rows } = await db.query<{ hostname: string; process_id: number; age: number }>(
      `SELECT hostname, process_id, extract(epoch FROM now() - last_heartbeat)::float8 AS age
       FROM dbmail.senders WHERE sender_id = $1`,
      [A],
    );
    expect(one(rows)).toMatchObject({ hostname: "h2", process_id: 2 });
    expect(one(rows).age).toBeLessThan(5);
  });

  it.each([null, "", "   "])("refuses sender_id %j with 22004", async (senderId) => {
    const error = await errorOf(s1.query("SELECT * FROM dbmail.sender_heartbeat($1)", [senderId]));
    expect(error.code).toBe("22004");
    expect(error.message).toMatch(/^sender_id: /);
  });

  it("shows a live sender in sysmail_help_queue_sp, and not after sender_stopped", async () => {
    await heartbeat(s1, A, "mail-host", 1234, "0.9.0");
    let q = await queue();
    expect(q.live_senders).toBe(1);
    expect(q.state).toBe("RECEIVES_OCCURRING");
    expect(q.senders).toHaveLength(1);
    expect(q.senders[0]).toMatchObject({
      sender_id: A,
      hostname: "mail-host",
      process_id: 1234,
      version: "0.9.0",
    });
    await s1.query("SELECT dbmail.sender_stopped($1)", [A]);
    q = await queue();
    expect(q.live_senders).toBe(0);
    expect(q.senders).toEqual([]);
    expect(q.state).toBe("INACTIVE");
    await heartbeat(s1, A);
    expect((await queue()).live_senders).toBe(1);
  });

  it("does not count a sender whose last heartbeat is older than 30 seconds", async () => {
    await heartbeat(s1, A);
    await heartbeat(s2, B);
    expect((await queue()).live_senders).toBe(2);
    await db.query(
      "UPDATE dbmail.senders SET last_heartbeat = now() - interval '31 seconds' WHERE sender_id = $1",
      [A],
    );
    const q = await queue();
    expect(q.live_senders).toBe(1);
    expect(q.senders.map((s) => s.sender_id)).toEqual([B]);
  });

  it("reports stalled when due mail waits and no sender is live", async () => {
    await send();
    let q = await queue();
    expect(q).toMatchObject({ length: "1", live_senders: 0, state: "INACTIVE", stalled: true });
    expect(q.oldest_unsent_date).toBeInstanceOf(Date);
    await heartbeat(s1, A);
    q = await queue();
    expect(q).toMatchObject({ live_senders: 1, stalled: false });
    await db.query("UPDATE dbmail.senders SET last_heartbeat = now() - interval '31 seconds'");
    expect((await queue()).stalled).toBe(true);
  });

  it("reports stalled when the only sender holding mail died, before its lease runs out", async () => {
    await send();
    await heartbeat(s1, A);
    await claim(s1, A, 20, 300);
    expect(await queue()).toMatchObject({ live_senders: 1, stalled: false });
    await db.query("UPDATE dbmail.senders SET last_heartbeat = now() - interval '31 seconds'");
    expect(await queue()).toMatchObject({ live_senders: 0, stalled: true });
  });

  it("does not report stalled while Database Mail is stopped", async () => {
    await send();
    await db.query("SELECT dbmail.sysmail_stop_sp()");
    expect(await queue()).toMatchObject({ state: "STOPPED", live_senders: 0, stalled: false });
  });

  it("does not report stalled when nothing is due yet", async () => {
    await send({ sendAt: new Date(Date.now() + 3_600_000).toISOString() });
    expect(await queue()).toMatchObject({ length: "1", live_senders: 0, stalled: false });
  });

  it("reports stalled when a dead sender's expired lease waits and no sender is live", async () => {
    const id = await send();
    await heartbeat(s1, A);
    await claim(s1, A);
    await db.query("UPDATE dbmail.senders SET last_heartbeat = now() - interval '5 minutes'");
    await expireLease(id);
    expect(await queue()).toMatchObject({ live_senders: 0, stalled: true });
  });
});

describe("sender_accounts and sender_attachments", () => {
  it("lists each profile's accounts in sequence order, with passwords and connection settings", async () => {
    const { rows } = await s1.query<AccountRow>("SELECT * FROM dbmail.sender_accounts()");
    const p = rows.filter((r) => r.profile_name === "p");
    expect(p.map((r) => [r.account_name, r.sequence_number])).toEqual([
      ["primary", 1],
      ["backup", 2],
    ]);
    expect(p[0]).toMatchObject({
      profile_id: profileId,
      account_id: primaryId,
      email_address: "one@example.org",
      mailserver_name: "localhost",
      port: 587,
      username: "u1",
      password: "secret-1",
      security: "starttls",
      timeout: 30,
      use_default_credentials: false,
      tls_reject_unauthorized: true,
      is_last_success: false,
    });
    expect(p[1]).toMatchObject({
      account_id: backupId,
      mailserver_name: "smtp2.example.org",
      port: 465,
      username: "u2",
      password: "env:SMTP_PASSWORD",
      security: "tls",
      timeout: null,
    });
    const q = rows.filter((r) => r.profile_name === "q");
    expect(q).toHaveLength(1);
    expect(q[0]).toMatchObject({
      account_id: plainId,
      username: null,
      password: null,
      security: "none",
      port: 25,
    });
  });

  it("returns an item's attachments only to the sender holding it", async () => {
    const id = await send();
    const other = await send();
    await db.query(
      `INSERT INTO dbmail.attachments (mailitem_id, filename, content_type, filesize, attachment, last_mod_user)
       VALUES ($1, 'report.csv', 'text/csv', 6, convert_to('a,b\n1,', 'UTF8'), 'postgres'),
              ($1, 'logo.png', 'image/png', 3, '\\x010203'::bytea, 'postgres'),
              ($2, 'other.txt', NULL, 1, 'x'::bytea, 'postgres')`,
      [id, other],
    );
    const attachments = (sender: string, mailitem: string) =>
      s1
        .query<{
          attachment_id: string;
          filename: string;
          content_type: string | null;
          filesize: string;
          attachment: Buffer;
        }>("SELECT * FROM dbmail.sender_attachments($1, $2, $3)", [
          sender,
          mailitem,
          tokenOf(sender, mailitem),
        ])
        .then((r) => r.rows);

    expect(await attachments(A, id)).toEqual([]);
    const claimed = await claim(s1, A, 1);
    expect(claimed.map((c) => [c.mailitem_id, c.attachment_count])).toEqual([[id, 2]]);
    const mine = await attachments(A, id);
    expect(mine.map((a) => [a.filename, a.content_type, a.filesize])).toEqual([
      ["report.csv", "text/csv", "6"],
      ["logo.png", "image/png", "3"],
    ]);
    expect(mine[0]?.attachment.toString("utf8")).toBe("a,b\n1,");
    expect([...(mine[1]?.attachment ?? [])]).toEqual([1, 2, 3]);
    expect(await attachments(B, id)).toEqual([]);
    expect(await attachments(A, other)).toEqual([]);
    await recordOutcome(s1, id, A, "sent", { accountId: primaryId });
    expect(await attachments(A, id)).toEqual([]);
  });
});

describe("log_event", () => {
  const logEvent = (client: pg.Client, type: string | null, description: string | null) =>
    client
      .query<{ id: string | null }>("SELECT dbmail.log_event($1, $2, NULL, NULL, 11, $3) AS id", [
        type,
        description,
        A,
      ])
      .then((r) => one(r.rows).id);

  it("keeps warnings and information but not success at LoggingLevel 2", async () => {
    expect(await logEvent(s1, "information", "info")).not.toBeNull();
    expect(await logEvent(s1, "warning", "warn")).not.toBeNull();
    expect(await logEvent(s1, "error", "err")).not.toBeNull();
    expect(await logEvent(s1, "success", "ok")).toBeNull();
    const logged = await events();
    expect(logged.map((e) => e.event_type)).toEqual(["information", "warning", "error"]);
    expect(logged[0]).toMatchObject({ process_id: 11, sender_id: A, last_mod_user: senderRole });
  });

  it("keeps only errors at LoggingLevel 1", async () => {
    await configure("LoggingLevel", "1");
    expect(await logEvent(s1, "warning", "warn")).toBeNull();
    expect(await logEvent(s1, "information", "info")).toBeNull();
    expect(await logEvent(s1, "success", "ok")).toBeNull();
    expect(await logEvent(s1, "error", "err")).not.toBeNull();
    expect((await events()).map((e) => [e.event_type, e.description])).toEqual([["error", "err"]]);
  });

  it("keeps every type at LoggingLevel 3", async () => {
    await configure("LoggingLevel", "3");
    for (const type of ["success", "information", "warning", "error"]) {
      expect(await logEvent(s1, type, type)).not.toBeNull();
    }
    expect(await events()).toHaveLength(4);
  });

  it("drops the retrying warning at LoggingLevel 1 but keeps the final error", async () => {
    await configure("LoggingLevel", "1");
    await configure("AccountRetryAttempts", "1");
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "retrying", { error: "one" });
    await makeDue(id);
    await claim(s1, A);
    await recordOutcome(s1, id, A, "retrying", { error: "two" });
    expect((await events(id)).map((e) => e.event_type)).toEqual(["error"]);
  });

  it.each(["fatal", "Error", null])("refuses event_type %j with 22023", async (type) => {
    const error = await errorOf(logEvent(s1, type, "x"));
    expect(error.code).toBe("22023");
    expect(error.message).toMatch(/^event_type: /);
    expect(await events()).toEqual([]);
  });

  it("refuses an empty description with 22004", async () => {
    const error = await errorOf(logEvent(s1, "error", ""));
    expect(error.code).toBe("22004");
    expect(error.message).toMatch(/^description: /);
  });
});

describe("lease tokens", () => {
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  const storedToken = async (id: string) =>
    one(
      (
        await db.query<{ t: string | null }>(
          "SELECT lease_token AS t FROM dbmail.mailitems WHERE mailitem_id = $1",
          [id],
        )
      ).rows,
    ).t;

  it("gives the items of one claim one random token, and every claim a new one", async () => {
    const ids = [await send(), await send(), await send()];
    const first = await claim(s1, A, 2);
    const second = await claim(s1, A, 2);
    expect(first.map((r) => r.mailitem_id)).toEqual(ids.slice(0, 2));
    expect(first[0]?.lease_token).toMatch(UUID);
    expect(first[1]?.lease_token).toBe(first[0]?.lease_token);
    expect(second.map((r) => r.mailitem_id)).toEqual(ids.slice(2));
    expect(second[0]?.lease_token).toMatch(UUID);
    expect(second[0]?.lease_token).not.toBe(first[0]?.lease_token);
    expect(await storedToken(one(second).mailitem_id)).toBe(one(second).lease_token);
  });

  it("drops the token when the lease ends: outcome recorded, released, failed as outcome unknown", async () => {
    const [sent, released, unknown] = [await send(), await send(), await send()];
    await claim(s1, A);
    expect(await recordOutcome(s1, sent, A, "sent", { accountId: primaryId })).toBe("sent");
    expect(await release(s1, A, [released])).toBe(1);
    await expireLease(unknown);
    await configure("UnknownOutcomePolicy", "fail");
    try {
      expect(await claimIds(s2, B)).toEqual([released]);
      expect((await item(unknown)).sent_status).toBe("failed");
    } finally {
      await configure("UnknownOutcomePolicy", "retry");
    }
    expect(await storedToken(sent)).toBeNull();
    expect(await storedToken(unknown)).toBeNull();
    expect(await storedToken(released)).toBe(tokenOf(B, released));
  });

  it("gives an item taken over a new token, even when its own sender takes it back: the old one is worthless", async () => {
    const id = await send();
    const [first] = await claim(s1, A);
    await expireLease(id);
    const [again] = await claim(s1, A);
    expect(again?.mailitem_id).toBe(id);
    expect(again?.lease_token).not.toBe(first?.lease_token);
    expect(await extendLeases(s1, A, [id], [first?.lease_token ?? null])).toEqual([]);
    expect(
      await recordOutcome(s1, id, A, "sent", { accountId: primaryId, leaseToken: first?.lease_token }),
    ).toBe("lease_lost");
    expect(await recordOutcome(s1, id, A, "sent", { accountId: primaryId })).toBe("sent");
  });

  it("shows the token in no view, and returns it from no function but claim_mailitems", async () => {
    const { rows: columns } = await db.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.columns
       WHERE table_schema = 'dbmail' AND column_name LIKE '%token%' ORDER BY 1`,
    );
    expect(columns.map((c) => c.table_name)).toEqual(["mailitems"]);
    const { rows: views } = await db.query(
      "SELECT viewname FROM pg_views WHERE schemaname = 'dbmail' AND definition LIKE '%lease_token%'",
    );
    expect(views).toEqual([]);
    const { rows: returning } = await db.query<{ proname: string }>(
      `SELECT DISTINCT p.proname FROM pg_proc p, unnest(p.proargnames, p.proargmodes) AS a(name, mode)
       WHERE p.pronamespace = 'dbmail'::regnamespace AND a.name LIKE '%token%' AND a.mode IN ('o', 'b', 't')`,
    );
    expect(returning.map((r) => r.proname)).toEqual(["claim_mailitems"]);
  });
});

/**
 * Issue 13: a sender login used another sender's id (shown in sent_by) to act on items it did not hold.
 * Sender A (login s1) holds an item with two attachments; each attacker tries every call on it, and the
 * item is left exactly as it was; then A does all of it.
 */
describe("a sender cannot act on an item another sender holds", () => {
  const C = "sender-c";

  interface Held {
    id: string;
    token: string;
    /** The token of another claim of A's (another item). */
    otherToken: string;
    attachmentId: string;
  }

  async function held(): Promise<Held> {
    const id = await send();
    await db.query(
      `INSERT INTO dbmail.attachments (mailitem_id, filename, content_type, filesize, attachment, last_mod_user)
       VALUES ($1, 'secret.txt', 'text/plain', 6, convert_to('secret', 'UTF8'), 'postgres'),
              ($1, 'more.txt', 'text/plain', 4, convert_to('more', 'UTF8'), 'postgres')`,
      [id],
    );
    await send();
    await heartbeat(s1, A);
    await heartbeat(o1, C);
    const [mine] = await claim(s1, A, 1);
    const [other] = await claim(s1, A, 1);
    const attachment = await db.query<{ id: string }>(
      "SELECT min(attachment_id) AS id FROM dbmail.attachments WHERE mailitem_id = $1",
      [id],
    );
    return {
      id,
      token: mine?.lease_token as string,
      otherToken: other?.lease_token as string,
      attachmentId: one(attachment.rows).id,
    };
  }

  /** Everything about the item a call could change, and its events. */
  async function state(id: string) {
    const { rows } = await db.query(
      `SELECT sent_status, sent_date, sent_account_id, smtp_response, sent_by, send_attempts, last_error,
              next_attempt_at, lease_owner, lease_token, lease_expires_at, last_mod_date, last_mod_user
       FROM dbmail.mailitems WHERE mailitem_id = $1`,
      [id],
    );
    return { item: one(rows), events: await events(id) };
  }

  type Attacker = [string, () => pg.Client, string, (h: Held) => string | null];
  const attackers: Attacker[] = [
    ["another login, under A's sender_id, with a made-up token", () => o1, A, () => randomUUID()],
    ["another login, under A's sender_id, without a token", () => o1, A, () => null],
    ["another login, under its own sender_id, with A's token", () => o1, C, (h) => h.token],
    ["A's login, under another sender_id, with A's token", () => s2, B, (h) => h.token],
    ["A's sender_id without the token", () => s2, A, () => null],
    ["A's sender_id with a made-up token", () => s2, A, () => randomUUID()],
    ["A's sender_id with the token of another of A's claims", () => s2, A, (h) => h.otherToken],
  ];

  it.each(attackers)(
    "%s: every call is lease_lost, empty or NULL, and changes nothing",
    async (_who, client, senderId, tokenFor) => {
      const h = await held();
      const c = client();
      const token = tokenFor(h);
      // Let the lease have run a while, so a renewal would show.
      await db.query(
        "UPDATE dbmail.mailitems SET lease_expires_at = lease_expires_at - interval '1 minute' WHERE mailitem_id = $1",
        [h.id],
      );
      const before = await state(h.id);

      for (const outcome of ["sent", "retrying", "failed"]) {
        expect(
          await recordOutcome(c, h.id, senderId, outcome, {
            accountId: primaryId,
            smtpResponse: "250 forged",
            error: "forged",
            leaseToken: token,
          }),
        ).toBe("lease_lost");
      }
      expect(
        await recordOutcomes(c, senderId, [
          { mailitem_id: h.id, lease_token: token, outcome: "sent", account_id: primaryId },
        ]),
      ).toEqual([[h.id, "lease_lost"]]);
      // An entry without lease_token (not through the helper, which would add this sender_id's).
      const { rows: untokened } = await c.query("SELECT * FROM dbmail.record_outcomes($1, $2::jsonb)", [
        senderId,
        JSON.stringify([{ mailitem_id: h.id, outcome: "failed", error: "forged" }]),
      ]);
      expect(untokened).toEqual([{ mailitem_id: h.id, status: "lease_lost" }]);
      expect(await extendLeases(c, senderId, [h.id], [token], 86400)).toEqual([]);
      expect(await release(c, senderId, [h.id], [token])).toBe(0);
      const { rows: attachments } = await c.query("SELECT * FROM dbmail.sender_attachments($1, $2, $3)", [
        senderId,
        h.id,
        token,
      ]);
      expect(attachments).toEqual([]);
      const { rows: chunk } = await c.query<{ chunk: Buffer | null }>(
        "SELECT dbmail.sender_attachment_chunk($1, $2, $3, 0, 100) AS chunk",
        [senderId, h.attachmentId, token],
      );
      expect(one(chunk).chunk).toBeNull();

      expect(await state(h.id)).toEqual(before);

      // The holder still does all of it.
      const { rows: mine } = await s1.query<{ filename: string }>(
        "SELECT filename FROM dbmail.sender_attachments($1, $2, $3)",
        [A, h.id, h.token],
      );
      expect(mine.map((a) => a.filename)).toEqual(["secret.txt", "more.txt"]);
      const { rows: piece } = await s1.query<{ chunk: Buffer | null }>(
        "SELECT dbmail.sender_attachment_chunk($1, $2, $3, 0, 100) AS chunk",
        [A, h.attachmentId, h.token],
      );
      expect(one(piece).chunk?.toString("utf8")).toBe("secret");
      expect(await extendLeases(s1, A, [h.id], [h.token])).toEqual([h.id]);
      expect(await recordOutcome(s1, h.id, A, "sent", { accountId: primaryId, leaseToken: h.token })).toBe(
        "sent",
      );
      expect(await item(h.id)).toMatchObject({ sent_status: "sent", sent_by: A, lease_owner: null });
    },
  );

  it("cannot release another sender's item, which A then releases", async () => {
    const h = await held();
    expect(await release(o1, A, [h.id], [randomUUID()])).toBe(0);
    expect(await release(s2, A, [h.id], [null])).toBe(0);
    expect((await item(h.id)).lease_owner).toBe(A);
    expect(await release(s1, A, [h.id], [h.token])).toBe(1);
    expect(await item(h.id)).toMatchObject({ sent_status: "unsent", lease_owner: null });
  });
});

describe("a sender_id belongs to the login that registered it", () => {
  const senderRow = async (id: string) =>
    one(
      (
        await db.query<{ hostname: string; stopped_at: Date | null; age: number }>(
          `SELECT hostname, stopped_at, extract(epoch FROM now() - last_heartbeat)::float8 AS age
           FROM dbmail.senders WHERE sender_id = $1`,
          [id],
        )
      ).rows,
    );
  const refusal = { code: "42501", message: `sender_id: "${A}": registered by another login` };

  it("refuses another login's heartbeat under the id (42501), changing nothing", async () => {
    await heartbeat(s1, A, "mine");
    expect(await errorOf(heartbeat(o1, A, "evil"))).toMatchObject(refusal);
    expect((await senderRow(A)).hostname).toBe("mine");
  });

  it("refuses another login's sender_stopped under the id, which stays live", async () => {
    await heartbeat(s1, A);
    expect(await errorOf(o1.query("SELECT dbmail.sender_stopped($1)", [A]))).toMatchObject(refusal);
    expect((await senderRow(A)).stopped_at).toBeNull();
    expect((await queue()).live_senders).toBe(1);
  });

  it("refuses another login's claim under the id, claiming nothing", async () => {
    const id = await send();
    await heartbeat(s1, A);
    expect(await errorOf(claim(o1, A))).toMatchObject(refusal);
    expect(await item(id)).toMatchObject({ sent_status: "unsent", lease_owner: null });
    expect(await claimIds(s1, A)).toEqual([id]);
  });

  it("does not count another login's extend_leases under the id as its heartbeat", async () => {
    await heartbeat(s1, A);
    await db.query("UPDATE dbmail.senders SET last_heartbeat = now() - interval '20 seconds'");
    expect(await extendLeases(o1, A, [], [])).toEqual([]);
    expect((await senderRow(A)).age).toBeGreaterThan(19);
    expect(await extendLeases(s2, A, [], [])).toEqual([]);
    expect((await senderRow(A)).age).toBeLessThan(5);
  });

  it("lets the registering login use the id on every connection, and any login an id nobody registered", async () => {
    await heartbeat(s1, A);
    await heartbeat(s2, A);
    await s3.query("SELECT dbmail.sender_stopped($1)", [A]);
    await heartbeat(s4, A);
    expect(await claim(o1, "nobody-registered-this")).toEqual([]);
    await heartbeat(o2, "nobody-registered-this");
    expect(await errorOf(heartbeat(s1, "nobody-registered-this"))).toMatchObject({ code: "42501" });
  });

  it("lets a superuser heartbeat and stop any id without taking it from its login", async () => {
    await heartbeat(s1, A);
    await heartbeat(await db.connect(), A);
    await db.query("SELECT dbmail.sender_stopped($1)", [A]);
    expect(await errorOf(heartbeat(o1, A))).toMatchObject(refusal);
    await heartbeat(s1, A);
    expect((await senderRow(A)).stopped_at).toBeNull();
  });

  it("frees the ids of a login that was dropped: the next login to heartbeat takes them", async () => {
    const gone = await db.createRole("gone_sender", { memberOf: ["dbmail_sender"] });
    const client = await db.connect(gone);
    await heartbeat(client, "sender-gone");
    expect(await errorOf(heartbeat(o1, "sender-gone"))).toMatchObject({ code: "42501" });
    await client.end();
    await db.query(`DROP ROLE ${gone.name}`);
    await heartbeat(o1, "sender-gone");
    expect(await errorOf(heartbeat(s1, "sender-gone"))).toMatchObject({ code: "42501" });
    await heartbeat(o2, "sender-gone");
  });
});

describe("what dbmail_sender may not do", () => {
  it.each([
    ["read the queue table", "SELECT * FROM dbmail.mailitems"],
    ["read account secrets", "SELECT * FROM dbmail.account_secrets"],
    ["change settings", "SELECT dbmail.sysmail_configure_sp('LoggingLevel', '3')"],
    [
      "queue mail",
      "SELECT dbmail.sp_send_dbmail(profile_name => 'p', recipients => 'a@x.org', subject => 's')",
    ],
    ["delete items", "SELECT dbmail.sysmail_delete_mailitems_sp(sent_status => 'sent')"],
  ])("cannot %s", async (_what, sql) => {
    const error = await errorOf(s1.query(sql));
    expect(error.code).toBe("42501");
  });
});
