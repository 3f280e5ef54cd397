// The setup of the encryption and authentication tests: a real sender in process whose log is kept,
// SMTP servers speaking STARTTLS or implicit TLS with the self-signed certificate in test/fixtures/tls and
// requiring a login, watched at the protocol level, and an account and profile of its own per case.
// AccountRetryAttempts is 0: one round over the accounts, so a failure is final at once.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Sender, SenderOptions } from "@pg-dbmail/sender";
import type { SMTPServer } from "smtp-server";
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import { TestDatabase, type TestRole } from "../../support/database.js";
import { configure, profileWith, send } from "../../support/mail.js";
import { addAccount, eventually, startSender as startSharedSender } from "../../support/sender.js";
import { TestSmtpServer, type TestSmtpServerOptions } from "../../support/smtp.js";

/** What the SMTP server saw at the protocol level, beyond the messages it accepted. */
export interface Observed {
  /** One per MAIL FROM: whether the connection was encrypted then, and who had logged in. */
  mailFrom: { secure: boolean; user?: string }[];
  /** One per AUTH attempt (test credentials only). */
  auths: { username?: string; password?: string; secure: boolean }[];
}

export interface ItemRow {
  sent_status: string;
  sent_account_id: number | null;
  last_error: string | null;
  smtp_response: string | null;
}

/** Registers the hooks of an encryption or authentication test file and returns its helpers. */
export function useTlsAuth() {
  let db: TestDatabase;
  let role: TestRole;
  let sender: Sender | undefined;
  /** Every JSON line the current test's sender logged (at debug level). */
  let logLines: string[] = [];
  const servers: TestSmtpServer[] = [];
  const envToDelete: string[] = [];
  const tempDirs: string[] = [];
  let counter = 0;

  beforeAll(async () => {
    db = await TestDatabase.create();
    role = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
    await configure(db, "AccountRetryAttempts", "0");
  });

  afterEach(async () => {
    await sender?.stop();
    sender = undefined;
    for (const server of servers.splice(0)) await server.stop();
    for (const name of envToDelete.splice(0)) delete process.env[name];
    for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  afterAll(async () => {
    await db?.drop();
  });

  /** Starts an in-process sender (test/support/sender.ts) whose log lines the test keeps. */
  async function startSender(overrides: Partial<SenderOptions> = {}): Promise<Sender> {
    logLines = [];
    sender = await startSharedSender(role, { logLevel: "debug", ...overrides }, logLines);
    return sender;
  }

  /**
   * Starts a TestSmtpServer and watches its MAIL FROM and AUTH commands, so a test can see whether the
   * connection was encrypted (smtp-server's session.secure) and which password was used.
   */
  async function startServer(options: TestSmtpServerOptions) {
    const server = await TestSmtpServer.start(options);
    servers.push(server);
    const observed: Observed = { mailFrom: [], auths: [] };
    const inner = (server as unknown as { server: SMTPServer }).server;
    const onMailFrom = inner.onMailFrom.bind(inner);
    inner.onMailFrom = (address, session, callback) => {
      observed.mailFrom.push({
        secure: session.secure,
        user: typeof session.user === "string" ? session.user : undefined,
      });
      onMailFrom(address, session, callback);
    };
    const onAuth = inner.onAuth.bind(inner);
    inner.onAuth = (auth, session, callback) => {
      observed.auths.push({
        username: auth.username,
        password: auth.password ?? undefined,
        secure: session.secure,
      });
      onAuth(auth, session, callback);
    };
    return { server, observed };
  }

  /**
   * An account on `server` (timeout 3 s, self-signed certificate accepted unless `extra` says otherwise)
   * and a profile whose only account it is.
   */
  async function accountAndProfile(server: TestSmtpServer, extra: Record<string, unknown>) {
    counter++;
    const accountName = `tls_auth_${counter}`;
    const profile = `tls_auth_profile_${counter}`;
    // A key given as undefined is left out, so the procedure's own default applies.
    const params = Object.entries({ timeout: 3, tls_reject_unauthorized: false, ...extra }).filter(
      ([, value]) => value !== undefined,
    );
    const accountId = await addAccount(db, accountName, server, Object.fromEntries(params));
    await profileWith(db, profile, [accountName]);
    return { accountId, accountName, profile };
  }

  /** A STARTTLS server that requires `auth`, and an account with security 'starttls' and `extra`. */
  async function loginServer(auth: { user: string; pass: string }, extra: Record<string, unknown>) {
    const { server, observed } = await startServer({ starttls: true, auth });
    return { server, observed, ...(await accountAndProfile(server, { security: "starttls", ...extra })) };
  }

  async function events(mailitemId: string): Promise<{ event_type: string; description: string }[]> {
    const { rows } = await db.query<{ event_type: string; description: string }>(
      "SELECT event_type, description FROM dbmail.sysmail_event_log WHERE mailitem_id = $1 ORDER BY log_id",
      [mailitemId],
    );
    return rows;
  }

  /** Waits until the item is sent or failed, and returns it. */
  function settled(mailitemId: string): Promise<ItemRow> {
    return eventually(async () => {
      const { rows } = await db.query<ItemRow>(
        `SELECT sent_status, sent_account_id, last_error, smtp_response FROM dbmail.sysmail_allitems
         WHERE mailitem_id = $1 AND sent_status IN ('sent', 'failed')`,
        [mailitemId],
      );
      return rows[0];
    }, 20_000);
  }

  return {
    query: (sql: string, params?: unknown[]) => db.query(sql, params),
    logLines: () => logLines,
    startSender,
    startServer,
    accountAndProfile,
    loginServer,
    /** Queues a mail through `profile`; returns its mailitem_id. */
    send: (profile: string, subject = `mail through ${profile}`) =>
      send(db, {
        profile_name: profile,
        recipients: "someone@example.org",
        subject,
        body: "hello over SMTP",
      }),

    /** Sets an environment variable of the sender (this process) until the end of the test. */
    setEnv(name: string, value: string): void {
      process.env[name] = value;
      envToDelete.push(name);
    },

    /** A directory of its own, removed after the test. */
    tempDir(): string {
      const dir = mkdtempSync(join(tmpdir(), "dbmail-tls-auth-"));
      tempDirs.push(dir);
      return dir;
    },

    /** Asserts the item was sent through `accountId`, and returns it. */
    async expectSent(mailitemId: string, accountId: number): Promise<ItemRow> {
      const item = await settled(mailitemId);
      expect(item, JSON.stringify(item)).toMatchObject({ sent_status: "sent", sent_account_id: accountId });
      return item;
    },

    /** Asserts the item failed (not sent) with an error matching `pattern` in last_error and the event log. */
    async expectFailed(mailitemId: string, pattern: RegExp): Promise<ItemRow> {
      const item = await settled(mailitemId);
      expect(item.sent_status, JSON.stringify(item)).toBe("failed");
      expect(item.sent_account_id).toBeNull();
      expect(item.last_error).toMatch(pattern);
      const errors = (await events(mailitemId)).filter((e) => e.event_type === "error");
      expect(errors.length, JSON.stringify(await events(mailitemId))).toBeGreaterThan(0);
      expect(errors.map((e) => e.description).join("\n")).toMatch(pattern);
      return item;
    },

    /** Everything a secret must never show up in: the item's columns, its events, and the sender's log. */
    async expectNowhere(mailitemId: string, secrets: string[]): Promise<void> {
      const { rows } = await db.query("SELECT * FROM dbmail.sysmail_allitems WHERE mailitem_id = $1", [
        mailitemId,
      ]);
      const item = JSON.stringify(rows);
      const logged = JSON.stringify(await events(mailitemId));
      const { rows: allEvents } = await db.query("SELECT description FROM dbmail.sysmail_event_log");
      const log = logLines.join("\n");
      for (const secret of secrets) {
        expect(item, "the item").not.toContain(secret);
        expect(logged, "the item's events").not.toContain(secret);
        expect(JSON.stringify(allEvents), "the event log").not.toContain(secret);
        expect(log, "the sender's log").not.toContain(secret);
      }
    },
  };
}
