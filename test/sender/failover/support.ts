// The setup every failover test shares: a database of its own per file, scripted SMTP servers, accounts
// and a profile named after the test, an in-process sender, and the item's row and events to look at.
// AccountRetryAttempts 1 and AccountRetryDelay 1 s unless a test says otherwise.
import { freePort } from "@pg-dbmail/dev/local-postgres";
import type { Sender } from "@pg-dbmail/sender";
import type pg from "pg";
import { afterAll, afterEach, beforeAll, beforeEach } from "vitest";
import { TestDatabase, type TestRole } from "../../support/database.js";
import { type Args, configure, profileWith, send, sleep, withSettings } from "../../support/mail.js";
import { addAccount, startSender } from "../../support/sender.js";
import { type Behaviour, type Refusal, TestSmtpServer } from "../../support/smtp.js";

export interface ItemRow {
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

export interface EventRow {
  event_type: string;
  description: string;
  account_id: number | null;
}

/** Where an account sends: a test server, or just a port. */
export type Target = TestSmtpServer | { port: number };

/** A server hook that refuses with this reply. */
export const refuse = (code: number, message: string) => (): Refusal => ({ code, message });

/** A port nothing listens on (connection refused). */
export const closedPort = async (): Promise<Target> => ({ port: await freePort() });

export interface ProfileSetup {
  /** Settings to apply before the sender starts. */
  settings?: Record<string, string>;
  /** Sequence numbers of the accounts (1, 2, ... unless given). */
  sequences?: number[];
  /** More parameters for the first account (a timeout, say). */
  firstAccount?: Record<string, unknown>;
}

/** Registers the hooks of a failover test file and returns its helpers. */
export function useFailover() {
  let db: TestDatabase;
  let senderRole: TestRole;
  let sender: Sender | undefined;
  const servers: TestSmtpServer[] = [];
  /** Numbers each test, so its profile and account names are its own. */
  let testNo = 0;

  beforeAll(async () => {
    db = await TestDatabase.create();
    senderRole = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
  });

  afterAll(async () => {
    await db?.drop();
  });

  beforeEach(async () => {
    testNo++;
    await configure(db, "AccountRetryAttempts", "1");
    await configure(db, "AccountRetryDelay", "1");
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

  const query = <R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]) =>
    db.query<R>(sql, params);

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

  const accountName = (label: string) => `t${testNo}_${label}`;

  /** An account of this test; `label` keeps names unique within the test. */
  const account = (label: string, server: Target, extra: Record<string, unknown> = {}) =>
    addAccount(db, accountName(label), server, extra);

  /** This test's profile with the given accounts and sequence numbers; returns its name. */
  async function profile(accounts: [accountId: number, sequence: number][]): Promise<string> {
    const name = `p${testNo}`;
    await profileWith(db, name, accounts);
    return name;
  }

  async function start(): Promise<Sender> {
    sender = await startSender(senderRole, { pollIntervalMs: 100 });
    return sender;
  }

  /**
   * Accounts a1, a2, ... on `targets`, in this test's profile, the settings applied and a sender
   * started; returns the account ids and the profile's name.
   */
  async function startProfile(targets: Target[], setup: ProfileSetup = {}) {
    const ids: number[] = [];
    for (const [i, target] of targets.entries()) {
      ids.push(await account(`a${i + 1}`, target, i === 0 ? setup.firstAccount : {}));
    }
    const name = await profile(ids.map((id, i) => [id, setup.sequences?.[i] ?? i + 1]));
    for (const [setting, value] of Object.entries(setup.settings ?? {})) await configure(db, setting, value);
    await start();
    return { a1: ids[0] as number, a2: ids[1] as number, name };
  }

  /** Queues a mail through `profileName` (to to@example.org, subject "failover" unless given). */
  const sendThrough = (profileName: string, args: Args = {}) =>
    send(db, {
      profile_name: profileName,
      recipients: "to@example.org",
      subject: "failover",
      body: "body",
      ...args,
    });

  /** startProfile, then one mail through the profile: the usual start of a failover test. */
  async function failover(targets: Target[], setup: ProfileSetup = {}) {
    const started = await startProfile(targets, setup);
    return { ...started, id: await sendThrough(started.name) };
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

  /** The item's events in order; only those of `type` when given. */
  async function events(id: string, type?: string): Promise<EventRow[]> {
    const { rows } = await db.query<EventRow>(
      `SELECT event_type, description, account_id FROM dbmail.sysmail_event_log
       WHERE mailitem_id = $1 ORDER BY log_id`,
      [id],
    );
    return type === undefined ? rows : rows.filter((e) => e.event_type === type);
  }

  return {
    query,
    configure: (name: string, value: string) => configure(db, name, value),
    /** Runs `fn` with settings changed, restoring them afterwards. */
    withSettings: <T>(values: Record<string, string>, fn: () => Promise<T>) => withSettings(db, values, fn),
    smtp,
    downServer,
    accountName,
    account,
    profile,
    start,
    startProfile,
    send: sendThrough,
    failover,
    waitForStatus,
    events,
  };
}

/** The X-DBMail-Mailitem-Id of each message a server received. */
export function mailitemIds(server: TestSmtpServer): string[] {
  return server.received.map((m) => String(m.parsed.headers.get("x-dbmail-mailitem-id")));
}
