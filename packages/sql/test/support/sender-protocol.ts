// The fixture of the sender protocol tests (packages/sql/test/sender-protocol/): a database of its own per
// test file, two dbmail_sender logins, profiles p (accounts primary then backup) and q (account plain), and
// the calls a sender makes, each passing along the lease token its latest claim of the item returned.
//
// A test file calls useSenderProtocol() once at its top; the bindings below (db, s1, primaryId, ...) are
// filled in by its beforeAll, and the queue, the senders and the event log are emptied before each test.
import type pg from "pg";
import { afterAll, beforeAll, beforeEach } from "vitest";
import { TestDatabase } from "../../../../test/support/database.js";
import {
  type Args,
  addProfile,
  call,
  configure,
  first,
  send as sendAs,
} from "../../../../test/support/mail.js";
import type { ClaimedItem as SenderClaimedItem } from "../../../sender/src/rows.js";

export type { ProfileAccount as AccountRow } from "../../../sender/src/rows.js";

/** A claimed item: what the sender's rows declare, plus the lease's end, which the sender does not read. */
export interface ClaimedItem extends SenderClaimedItem {
  lease_expires_at: Date;
}

export interface ItemRow {
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

export interface EventRow {
  event_type: string;
  description: string;
  mailitem_id: string | null;
  account_id: number | null;
  process_id: number | null;
  sender_id: string | null;
  last_mod_user: string;
}

export interface QueueRow {
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

export const A = "sender-a";
export const B = "sender-b";

export let db: TestDatabase;
/**
 * Connections as one dbmail_sender login role (each may speak for any sender_id that login registered, or
 * that nobody registered).
 */
export let s1: pg.Client;
export let s2: pg.Client;
export let s3: pg.Client;
export let s4: pg.Client;
/** Connections as a second dbmail_sender login: another sender process, or an attacker. */
export let o1: pg.Client;
export let o2: pg.Client;
/** The name of the login role of s1 to s4. */
export let senderRole: string;
export let primaryId: number;
export let backupId: number;
export let plainId: number;
/** The id of profile p. */
export let profileId: number;

/** Creates the database, logins and accounts for this test file, and empties the queue before each test. */
export function useSenderProtocol(): void {
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

    const add = async (sql: string) => first((await db.query<{ id: number }>(sql)).rows).id;
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
    profileId = (await addProfile(db, { profile_name: "p" })).id;
    await addProfile(db, { profile_name: "q" });
    // Added out of order: sender_accounts() must sort by sequence_number.
    for (const [profile_name, account_name, sequence_number] of [
      ["p", "backup", 2],
      ["p", "primary", 1],
      ["q", "plain", 1],
    ] as const) {
      await call(db, "sysmail_add_profileaccount_sp", { profile_name, account_name, sequence_number });
    }
  });

  afterAll(async () => {
    await db?.drop();
  });

  beforeEach(async () => {
    tokens.clear();
    await db.query("DELETE FROM dbmail.mailitems");
    await db.query("DELETE FROM dbmail.attempts");
    await db.query("DELETE FROM dbmail.senders");
    await db.query("UPDATE dbmail.profiles SET last_success_account_id = NULL");
    await configure(db, "AccountRetryAttempts", "1");
    await configure(db, "AccountRetryDelay", "60");
    await configure(db, "LoggingLevel", "2");
    await db.query("SELECT dbmail.sysmail_start_sp()");
    // Last: starting logs an information event.
    await db.query("DELETE FROM dbmail.event_log");
  });
}

/** Queues one message with profile p as the superuser; returns the mailitem_id. */
export const send = (args: Args = {}): Promise<string> =>
  sendAs(db, { profile_name: "p", recipients: "a@x.org", subject: "s", body: "b", ...args });

/**
 * The lease token each sender_id got for each item from its latest claim, as a sender would keep it: the
 * helpers below pass it along unless a test gives another.
 */
const tokens = new Map<string, string>();
const tokenKey = (senderId: string, mailitemId: string) => `${senderId}\u0000${mailitemId}`;
export function tokenOf(senderId: string, mailitemId: string): string | null {
  return tokens.get(tokenKey(senderId, mailitemId)) ?? null;
}

export async function claim(
  client: pg.Client,
  senderId: string | null,
  batchSize = 20,
  leaseSeconds = 300,
): Promise<ClaimedItem[]> {
  const { rows } = await client.query<ClaimedItem>("SELECT * FROM dbmail.claim_mailitems($1, $2, $3)", [
    senderId,
    batchSize,
    leaseSeconds,
  ]);
  for (const row of rows) tokens.set(tokenKey(senderId ?? "", row.mailitem_id), row.lease_token);
  return rows;
}

export async function claimIds(client: pg.Client, senderId: string, batchSize = 20, leaseSeconds = 300) {
  return (await claim(client, senderId, batchSize, leaseSeconds)).map((r) => r.mailitem_id);
}

export interface OutcomeOptions {
  accountId?: number | null;
  smtpResponse?: string | null;
  error?: string | null;
  accountErrors?: unknown;
  /** The round's SMTP attempts (record_outcome's `attempts`), rows of dbmail.attempts. */
  attempts?: unknown;
  processId?: number | null;
  /** The lease token to present; by default the one this sender_id's latest claim of the item returned. */
  leaseToken?: string | null;
}

export function recordOutcome(
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
         process_id => $8::integer, attempts => $10::jsonb) AS result`,
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
        options.attempts === undefined ? null : JSON.stringify(options.attempts),
      ],
    )
    .then((r) => first(r.rows).result);
}

/** One entry of record_outcomes' `outcomes` array. */
export interface BatchOutcome {
  mailitem_id: string;
  outcome: string | null;
  lease_token?: string | null;
  account_id?: number | null;
  smtp_response?: string | null;
  error?: string | null;
  account_errors?: unknown;
  attempts?: unknown;
}

/** record_outcomes: each item's status afterwards, as [mailitem_id, status] in the order returned. */
export async function recordOutcomes(
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

/** release_mailitems, by default with the tokens this sender_id's claims returned. */
export async function release(
  client: pg.Client,
  senderId: string,
  ids: string[],
  leaseTokens: (string | null)[] = ids.map((id) => tokenOf(senderId, id)),
): Promise<number> {
  const { rows } = await client.query<{ n: number }>(
    "SELECT dbmail.release_mailitems($1, $2::bigint[], $3::uuid[]) AS n",
    [senderId, ids, leaseTokens],
  );
  return first(rows).n;
}

/** extend_leases, by default with the tokens this sender_id's claims returned; the ids still held. */
export async function extendLeases(
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
  return first(rows).held;
}

export async function heartbeat(
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
  return first(rows);
}

/** The item as the superuser sees it: the sysmail_allitems view plus the lease columns of the table. */
export async function item(id: string): Promise<ItemRow> {
  const { rows } = await db.query<ItemRow>(
    `SELECT v.mailitem_id, v.profile_id, v.sent_status, v.sent_date, v.sent_account_id, v.smtp_response, v.sent_by,
            v.send_attempts, v.last_error, v.next_attempt_at, v.message_id, m.lease_owner, m.lease_expires_at, m.last_mod_user,
            extract(epoch FROM m.next_attempt_at - m.last_mod_date)::float8 AS retry_delay,
            extract(epoch FROM m.lease_expires_at - m.last_mod_date)::float8 AS lease_seconds
     FROM dbmail.sysmail_allitems v JOIN dbmail.mailitems m USING (mailitem_id)
     WHERE v.mailitem_id = $1`,
    [id],
  );
  return first(rows);
}

/** The event log in order, of one item or of all. */
export async function events(id?: string): Promise<EventRow[]> {
  const { rows } = await db.query<EventRow>(
    `SELECT event_type, description, mailitem_id, account_id, process_id, sender_id, last_mod_user
     FROM dbmail.event_log WHERE $1::bigint IS NULL OR mailitem_id = $1::bigint ORDER BY log_id`,
    [id ?? null],
  );
  return rows;
}

export async function queue(): Promise<QueueRow> {
  return first((await db.query<QueueRow>("SELECT * FROM dbmail.sysmail_help_queue_sp()")).rows);
}

/**
 * Waits until the server has been up for 30 seconds: a claim takes no sender for dead before that (no
 * sender could heartbeat while the server was down). Only a server the tests started themselves is
 * younger.
 */
export async function untilServerUpFor30Seconds(): Promise<void> {
  const { rows } = await db.query<{ wait: number }>(
    "SELECT greatest(0, 31 - extract(epoch FROM now() - pg_postmaster_start_time()))::float8 AS wait",
  );
  await new Promise((resolve) => setTimeout(resolve, first(rows).wait * 1000));
}

/** Makes a leased item's lease run out, as if its sender had died. */
export async function expireLease(id: string): Promise<void> {
  await db.query(
    "UPDATE dbmail.mailitems SET lease_expires_at = now() - interval '1 second' WHERE mailitem_id = $1",
    [id],
  );
}

/** Ends the wait of a retrying (or scheduled) item. */
export async function makeDue(id: string): Promise<void> {
  await db.query(
    "UPDATE dbmail.mailitems SET next_attempt_at = now() - interval '1 second' WHERE mailitem_id = $1",
    [id],
  );
}
