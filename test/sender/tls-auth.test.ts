import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { senderDefaults as defaults, Sender, type SenderOptions } from "@pg-dbmail/sender";
import pino from "pino";
import type { SMTPServer } from "smtp-server";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole } from "../support/database.js";
import { addAccount, eventually } from "../support/sender.js";
import { TestSmtpServer, type TestSmtpServerOptions } from "../support/smtp.js";

// Encryption, certificate checks and SMTP authentication, end to end: a real sender (in process) delivers
// queued mail to real SMTP servers that speak STARTTLS or implicit TLS with the self-signed certificate in
// test/fixtures/tls, and that require a login.

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
  // One round over the accounts: a failure is final at once instead of waiting AccountRetryDelay.
  await db.query("SELECT dbmail.sysmail_configure_sp('AccountRetryAttempts', '0')");
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

/** Starts an in-process sender like test/support/sender.ts does, but keeps what it logs. */
async function startSender(overrides: Partial<SenderOptions> = {}): Promise<Sender> {
  const options: SenderOptions = {
    ...defaults,
    databases: [{ name: "test", url: role.url }],
    senderId: `tls-auth-${Math.random().toString(36).slice(2, 8)}`,
    pollIntervalMs: 200,
    heartbeatIntervalMs: 500,
    shutdownTimeoutMs: 5000,
    smtpTimeoutSeconds: 5,
    logLevel: "debug",
    ...overrides,
  };
  logLines = [];
  const log = pino({ level: "debug" }, { write: (line: string) => void logLines.push(line) });
  sender = new Sender(options, log);
  await sender.start();
  return sender;
}

/** What the SMTP server saw at the protocol level, beyond the messages it accepted. */
interface Observed {
  /** One per MAIL FROM: whether the connection was encrypted then, and who had logged in. */
  mailFrom: { secure: boolean; user?: string }[];
  /** One per AUTH attempt (test credentials only). */
  auths: { username?: string; password?: string; secure: boolean }[];
}

/**
 * Starts a TestSmtpServer and watches its MAIL FROM and AUTH commands, so a test can see whether the
 * connection was encrypted (smtp-server's session.secure) and which password was used.
 */
async function startServer(options: TestSmtpServerOptions): Promise<{
  server: TestSmtpServer;
  observed: Observed;
}> {
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

/** An account on `server` (timeout 3 s, self-signed certificate accepted unless `extra` says otherwise)
 * and a profile whose only account it is. */
async function accountAndProfile(
  server: TestSmtpServer,
  extra: Record<string, unknown>,
): Promise<{ accountId: number; accountName: string; profile: string }> {
  counter++;
  const accountName = `tls_auth_${counter}`;
  const profile = `tls_auth_profile_${counter}`;
  // A key given as undefined is left out, so the procedure's own default applies.
  const params = Object.entries({ timeout: 3, tls_reject_unauthorized: false, ...extra }).filter(
    ([, value]) => value !== undefined,
  );
  const accountId = await addAccount(db, accountName, server, Object.fromEntries(params));
  await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => $1)", [profile]);
  await db.query(
    "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => $1, account_name => $2, sequence_number => 1)",
    [profile, accountName],
  );
  return { accountId, accountName, profile };
}

async function send(profile: string, subject = `mail through ${profile}`): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT dbmail.sp_send_dbmail(profile_name => $1, recipients => 'someone@example.org', subject => $2,
       body => 'hello over SMTP') AS id`,
    [profile, subject],
  );
  return rows[0]?.id as string;
}

interface ItemRow {
  sent_status: string;
  sent_account_id: number | null;
  last_error: string | null;
  smtp_response: string | null;
}

/** Waits until the item is sent or failed, and returns it. */
async function settled(mailitemId: string): Promise<ItemRow> {
  return eventually(async () => {
    const { rows } = await db.query<ItemRow>(
      `SELECT sent_status, sent_account_id, last_error, smtp_response FROM dbmail.sysmail_allitems
       WHERE mailitem_id = $1 AND sent_status IN ('sent', 'failed')`,
      [mailitemId],
    );
    return rows[0];
  }, 20_000);
}

async function events(mailitemId: string): Promise<{ event_type: string; description: string }[]> {
  const { rows } = await db.query<{ event_type: string; description: string }>(
    "SELECT event_type, description FROM dbmail.sysmail_event_log WHERE mailitem_id = $1 ORDER BY log_id",
    [mailitemId],
  );
  return rows;
}

/** Asserts the item was sent through `accountId`, and returns it. */
async function expectSent(mailitemId: string, accountId: number): Promise<ItemRow> {
  const item = await settled(mailitemId);
  expect(item, JSON.stringify(item)).toMatchObject({ sent_status: "sent", sent_account_id: accountId });
  return item;
}

/** Asserts the item failed (not sent) with an error matching `pattern` in last_error and the event log. */
async function expectFailed(mailitemId: string, pattern: RegExp): Promise<ItemRow> {
  const item = await settled(mailitemId);
  expect(item.sent_status, JSON.stringify(item)).toBe("failed");
  expect(item.sent_account_id).toBeNull();
  expect(item.last_error).toMatch(pattern);
  const errors = (await events(mailitemId)).filter((e) => e.event_type === "error");
  expect(errors.length, JSON.stringify(await events(mailitemId))).toBeGreaterThan(0);
  expect(errors.map((e) => e.description).join("\n")).toMatch(pattern);
  return item;
}

/** Everything a secret must never show up in: the item's columns, its events, and the sender's log. */
async function expectNowhere(mailitemId: string, secrets: string[]): Promise<void> {
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
}

describe("encryption", () => {
  it("security 'starttls' upgrades the connection to a STARTTLS server (self-signed, not verified)", async () => {
    const { server, observed } = await startServer({ starttls: true });
    const { accountId, profile } = await accountAndProfile(server, { security: "starttls" });
    await startSender();
    const id = await send(profile, "over starttls");
    await expectSent(id, accountId);
    const [mail] = await server.waitFor(1);
    expect(mail?.parsed.subject).toBe("over starttls");
    expect(mail?.envelope.to).toEqual(["someone@example.org"]);
    expect(observed.mailFrom).toEqual([{ secure: true, user: undefined }]);
  });

  it("enable_ssl => true (SQL Server's switch) means STARTTLS", async () => {
    const { server, observed } = await startServer({ starttls: true });
    const { accountId, accountName, profile } = await accountAndProfile(server, { enable_ssl: true });
    const { rows } = await db.query(
      "SELECT security, enable_ssl FROM dbmail.sysmail_help_account_sp(account_name => $1)",
      [accountName],
    );
    expect(rows[0]).toEqual({ security: "starttls", enable_ssl: true });
    await startSender();
    const id = await send(profile, "enable_ssl");
    await expectSent(id, accountId);
    const [mail] = await server.waitFor(1);
    expect(mail?.parsed.subject).toBe("enable_ssl");
    expect(observed.mailFrom.map((m) => m.secure)).toEqual([true]);
  });

  it("security 'tls' speaks TLS from the first byte to an implicit-TLS server", async () => {
    const { server, observed } = await startServer({ implicitTls: true });
    const { accountId, profile } = await accountAndProfile(server, { security: "tls" });
    await startSender();
    const id = await send(profile, "over implicit tls");
    const item = await expectSent(id, accountId);
    expect(item.smtp_response).toMatch(/^250/);
    const [mail] = await server.waitFor(1);
    expect(mail?.parsed.subject).toBe("over implicit tls");
    expect(observed.mailFrom.map((m) => m.secure)).toEqual([true]);
  });

  it("security 'none' cannot talk to an implicit-TLS server: the item fails, nothing is delivered", async () => {
    const { server, observed } = await startServer({ implicitTls: true });
    const { profile } = await accountAndProfile(server, { security: "none" });
    await startSender();
    const id = await send(profile);
    const item = await expectFailed(id, /\S/);
    expect(item.smtp_response).toBeNull();
    expect(server.received).toHaveLength(0);
    expect(observed.mailFrom).toHaveLength(0);
  });

  it("security 'tls' against a plain-text server fails instead of falling back to plain text", async () => {
    const { server, observed } = await startServer({});
    const { profile } = await accountAndProfile(server, { security: "tls" });
    await startSender();
    const id = await send(profile);
    await expectFailed(id, /\S/);
    expect(server.received).toHaveLength(0);
    expect(observed.mailFrom).toHaveLength(0);
  });

  it.each(["starttls", "tls"] as const)(
    "tls_reject_unauthorized true (the default) refuses the self-signed certificate (security %s)",
    async (security) => {
      const { server, observed } = await startServer(
        security === "tls" ? { implicitTls: true } : { starttls: true },
      );
      const { accountName, profile } = await accountAndProfile(server, {
        security,
        tls_reject_unauthorized: undefined,
      });
      const { rows } = await db.query(
        "SELECT tls_reject_unauthorized FROM dbmail.sysmail_help_account_sp(account_name => $1)",
        [accountName],
      );
      expect(rows[0]).toEqual({ tls_reject_unauthorized: true });
      await startSender();
      const id = await send(profile);
      await expectFailed(id, /certificate/i);
      expect(server.received).toHaveLength(0);
      expect(observed.mailFrom).toHaveLength(0);
    },
  );

  it("security 'starttls' against a server without STARTTLS is refused: nothing goes out in plain text", async () => {
    const { server, observed } = await startServer({ auth: { user: "plain", pass: "never-in-clear" } });
    const { profile } = await accountAndProfile(server, {
      security: "starttls",
      username: "plain",
      password: "never-in-clear",
    });
    await startSender();
    const id = await send(profile);
    await expectFailed(id, /STARTTLS|TLS/);
    expect(server.received).toHaveLength(0);
    // Neither the credentials nor the envelope were sent over the unencrypted connection.
    expect(observed.auths).toHaveLength(0);
    expect(observed.mailFrom).toHaveLength(0);
  });

  it("security 'none' against a STARTTLS-capable server sends in plain text without trying to upgrade", async () => {
    const { server, observed } = await startServer({ starttls: true });
    // tls_reject_unauthorized true: had the sender attempted STARTTLS, the self-signed certificate would fail it.
    const { accountId, profile } = await accountAndProfile(server, {
      security: "none",
      tls_reject_unauthorized: true,
    });
    await startSender();
    const id = await send(profile, "plain text");
    await expectSent(id, accountId);
    const [mail] = await server.waitFor(1);
    expect(mail?.parsed.subject).toBe("plain text");
    expect(observed.mailFrom.map((m) => m.secure)).toEqual([false]);
  });
});

describe("authentication", () => {
  it("logs in with the account's username and password", async () => {
    const { server, observed } = await startServer({
      starttls: true,
      auth: { user: "alice", pass: "s3cret" },
    });
    const { accountId, profile } = await accountAndProfile(server, {
      security: "starttls",
      username: "alice",
      password: "s3cret",
    });
    await startSender();
    const id = await send(profile, "authenticated");
    await expectSent(id, accountId);
    const [mail] = await server.waitFor(1);
    expect(mail?.user).toBe("alice");
    expect(mail?.parsed.subject).toBe("authenticated");
    expect(observed.auths).toEqual([{ username: "alice", password: "s3cret", secure: true }]);
    expect(observed.mailFrom).toEqual([{ secure: true, user: "alice" }]);
    await expectNowhere(id, ["s3cret"]);
  });

  it("a wrong password fails the item with the server's 535, and the password is never recorded or logged", async () => {
    const wrong = "Wr0ng-Pa55word-7f3a";
    const { server, observed } = await startServer({ starttls: true, auth: { user: "bob", pass: "right" } });
    const { profile } = await accountAndProfile(server, {
      security: "starttls",
      username: "bob",
      password: wrong,
    });
    await startSender();
    const id = await send(profile);
    const item = await expectFailed(id, /535/);
    expect(item.last_error).toMatch(/auth|login|username or password/i);
    expect(server.received).toHaveLength(0);
    expect(observed.auths.map((a) => a.password)).toContain(wrong);
    // The log did record the failure (so looking for the password in it means something).
    await eventually(async () => logLines.some((line) => line.includes(id) && /535/.test(line)));
    await expectNowhere(id, [
      wrong,
      Buffer.from(`\0bob\0${wrong}`).toString("base64"),
      Buffer.from(wrong).toString("base64"),
    ]);
  });

  it("resolves password 'env:NAME' from the sender's environment", async () => {
    const variable = `DBMAIL_TEST_SMTP_PASSWORD_${process.pid}`;
    process.env[variable] = "from-the-environment";
    envToDelete.push(variable);
    const { server } = await startServer({
      starttls: true,
      auth: { user: "carol", pass: "from-the-environment" },
    });
    const { accountId, accountName, profile } = await accountAndProfile(server, {
      security: "starttls",
      username: "carol",
      password: `env:${variable}`,
    });
    const { rows } = await db.query(
      "SELECT password_source FROM dbmail.sysmail_help_account_sp(account_name => $1)",
      [accountName],
    );
    expect(JSON.stringify(rows)).not.toContain("from-the-environment");
    await startSender();
    const id = await send(profile, "env password");
    await expectSent(id, accountId);
    const [mail] = await server.waitFor(1);
    expect(mail?.user).toBe("carol");
    expect(mail?.parsed.subject).toBe("env password");
    await expectNowhere(id, ["from-the-environment"]);
  });

  it("'env:NAME' naming a variable the sender lacks fails the item with an error naming it", async () => {
    const variable = "DBMAIL_TEST_NO_SUCH_SMTP_PASSWORD";
    delete process.env[variable];
    const { server, observed } = await startServer({ starttls: true, auth: { user: "dave", pass: "x" } });
    const { profile } = await accountAndProfile(server, {
      security: "starttls",
      username: "dave",
      password: `env:${variable}`,
    });
    await startSender();
    const id = await send(profile);
    await expectFailed(id, new RegExp(variable));
    expect(server.received).toHaveLength(0);
    expect(observed.auths).toHaveLength(0);
  });

  it("resolves password 'file:/path' to the file's contents without the trailing newline", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dbmail-tls-auth-"));
    tempDirs.push(dir);
    const file = join(dir, "smtp-password");
    writeFileSync(file, "from-a-file\n");
    const { server, observed } = await startServer({
      starttls: true,
      auth: { user: "erin", pass: "from-a-file" },
    });
    const { accountId, profile } = await accountAndProfile(server, {
      security: "starttls",
      username: "erin",
      password: `file:${file}`,
    });
    await startSender();
    const id = await send(profile, "file password");
    await expectSent(id, accountId);
    const [mail] = await server.waitFor(1);
    expect(mail?.user).toBe("erin");
    expect(observed.auths.map((a) => a.password)).toEqual(["from-a-file"]);
    await expectNowhere(id, ["from-a-file"]);
  });

  it("'file:/path' the sender cannot read fails the item with an error naming the path", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dbmail-tls-auth-"));
    tempDirs.push(dir);
    const file = join(dir, "missing-password");
    const { server } = await startServer({ starttls: true, auth: { user: "frank", pass: "x" } });
    const { profile } = await accountAndProfile(server, {
      security: "starttls",
      username: "frank",
      password: `file:${file}`,
    });
    await startSender();
    const id = await send(profile);
    await expectFailed(id, new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    expect(server.received).toHaveLength(0);
  });

  it("'file:' refuses a FIFO, a directory and an oversized file, without blocking the sender", async () => {
    const dir = mkdtempSync(join(tmpdir(), "dbmail-tls-auth-"));
    tempDirs.push(dir);
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    const big = join(dir, "big");
    writeFileSync(big, Buffer.alloc(65 * 1024, "x"));
    const { server } = await startServer({ starttls: true, auth: { user: "gina", pass: "ok" } });
    await startSender();
    // A FIFO nobody writes to would block a plain read (and the whole sender with it) forever.
    for (const [path, why] of [
      [fifo, /is not a regular file/],
      [dir, /is not a regular file/],
      [big, /is 66560 bytes; a secret file may have at most 65536/],
    ] as const) {
      const { profile } = await accountAndProfile(server, {
        security: "starttls",
        username: "gina",
        password: `file:${path}`,
      });
      await expectFailed(await send(profile), why);
    }
    // Still delivering.
    const { accountId, profile } = await accountAndProfile(server, {
      security: "starttls",
      username: "gina",
      password: "ok",
    });
    await expectSent(await send(profile, "after the refused secrets"), accountId);
  });

  it("use_default_credentials logs in with the sender's --smtp-username / --smtp-password", async () => {
    const { server, observed } = await startServer({
      starttls: true,
      auth: { user: "svc", pass: "svc-pass" },
    });
    const { accountId, profile } = await accountAndProfile(server, {
      security: "starttls",
      use_default_credentials: true,
    });
    await startSender({ smtpUsername: "svc", smtpPassword: "svc-pass" });
    const id = await send(profile, "default credentials");
    await expectSent(id, accountId);
    const [mail] = await server.waitFor(1);
    expect(mail?.user).toBe("svc");
    expect(mail?.parsed.subject).toBe("default credentials");
    expect(observed.auths).toEqual([{ username: "svc", password: "svc-pass", secure: true }]);
    await expectNowhere(id, ["svc-pass"]);
  });

  it("use_default_credentials on a sender without --smtp-username fails the item, saying so", async () => {
    const { server, observed } = await startServer({
      starttls: true,
      auth: { user: "svc", pass: "svc-pass" },
    });
    const { profile } = await accountAndProfile(server, {
      security: "starttls",
      use_default_credentials: true,
    });
    await startSender();
    const id = await send(profile);
    await expectFailed(id, /--smtp-username/);
    expect(server.received).toHaveLength(0);
    expect(observed.auths).toHaveLength(0);
  });

  it("a password changed with sysmail_update_account_sp is used for the next mail, without a restart", async () => {
    // The server checks against this object at every AUTH, so the test can rotate the password on both sides.
    const auth = { user: "grace", pass: "old-password-1" };
    const { server, observed } = await startServer({ starttls: true, auth });
    const { accountId, accountName, profile } = await accountAndProfile(server, {
      security: "starttls",
      username: "grace",
      password: "old-password-1",
    });
    await startSender();
    await expectSent(await send(profile, "before the change"), accountId);
    await server.waitFor(1);

    auth.pass = "new-password-2";
    await db.query("SELECT dbmail.sysmail_update_account_sp(account_name => $1, password => $2)", [
      accountName,
      "new-password-2",
    ]);
    const id = await send(profile, "after the change");
    await expectSent(id, accountId);
    const received = await server.waitFor(2);
    expect(received.map((m) => [m.parsed.subject, m.user])).toEqual([
      ["before the change", "grace"],
      ["after the change", "grace"],
    ]);
    // The second mail went over a new connection that logged in with the new password (the pooled
    // connection that had logged in with the old one was not reused).
    expect(observed.auths.map((a) => a.password)).toEqual(["old-password-1", "new-password-2"]);
    await expectNowhere(id, ["old-password-1", "new-password-2"]);
  });
});
