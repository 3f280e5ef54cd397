// OAuth2 (XOAUTH2) accounts end to end (SPEC.md section 13): a real sender gets tokens from a token
// endpoint of the test's own and logs in to an SMTP server that accepts XOAUTH2 only, and only with a
// token that endpoint issued and that has not expired. Secrets are given as env: references.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole } from "../support/database.js";
import { first, profileWith, send, uniqueSubject } from "../support/mail.js";
import { addAccount, eventually, startSender } from "../support/sender.js";
import { TestSmtpServer } from "../support/smtp.js";
import { TestTokenEndpoint } from "../support/token-endpoint.js";

let db: TestDatabase;
let role: TestRole;
let endpoint: TestTokenEndpoint;
let smtp: TestSmtpServer;
let sender: Awaited<ReturnType<typeof startSender>> | undefined;
/** Every line the current test's sender logged, at debug level. */
let logLines: string[] = [];
const MAILBOX = "reports@example.com";
const SECRET_VARIABLE = `DBMAIL_TEST_OAUTH2_SECRET_${process.pid}`;
let counter = 0;

beforeAll(async () => {
  db = await TestDatabase.create();
  role = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
  endpoint = await TestTokenEndpoint.start();
  smtp = await TestSmtpServer.start({
    xoauth2: (user, token) => user === MAILBOX && endpoint.valid(token),
  });
  process.env[SECRET_VARIABLE] = endpoint.client.secret;
  // One retry round, a second apart, so a transient failure shows as 'retrying' and then clears.
  await db.query("SELECT dbmail.sysmail_configure_sp('AccountRetryDelay', '1')");
});

afterEach(async () => {
  await sender?.stop();
  sender = undefined;
  endpoint.mode = "issue";
  endpoint.lifetimeSeconds = 3600;
});

afterAll(async () => {
  delete process.env[SECRET_VARIABLE];
  await smtp?.stop();
  await endpoint?.stop();
  await db?.drop();
});

/** Starts the test's sender, keeping what it logs (at debug level). */
async function start(): Promise<void> {
  logLines = [];
  sender = await startSender(role, {}, logLines);
}

/** An oauth2 account on the XOAUTH2 server, in a profile of its own (plus `more` accounts after it). */
async function oauth2Profile(extra: Record<string, unknown> = {}, more: number[] = []): Promise<string> {
  counter++;
  const profile = `oauth2_profile_${counter}`;
  await addAccount(db, `oauth2_${counter}`, smtp, {
    username: MAILBOX,
    auth_method: "oauth2",
    oauth2_token_url: endpoint.url,
    oauth2_client_id: endpoint.client.id,
    oauth2_client_secret: `env:${SECRET_VARIABLE}`,
    oauth2_scope: "https://outlook.office365.com/.default",
    timeout: 3,
    ...extra,
  });
  await profileWith(db, profile, [`oauth2_${counter}`, ...more]);
  return profile;
}

interface Item {
  sent_status: string;
  send_attempts: number;
  sent_account_id: number | null;
  last_error: string | null;
}

async function item(id: string): Promise<Item> {
  const { rows } = await db.query<Item>(
    "SELECT sent_status, send_attempts, sent_account_id, last_error FROM dbmail.mailitems WHERE mailitem_id = $1",
    [id],
  );
  return first(rows);
}

async function events(id: string): Promise<{ event_type: string; description: string }[]> {
  const { rows } = await db.query<{ event_type: string; description: string }>(
    "SELECT event_type, description FROM dbmail.event_log WHERE mailitem_id = $1 ORDER BY log_id",
    [id],
  );
  return rows;
}

/** Everything the database says about mail and events, and the sender's log: no secret may appear in it. */
async function everythingRecorded(): Promise<string> {
  const { rows } = await db.query<{ t: string }>(
    `SELECT concat_ws(' ', (SELECT string_agg(description, ' ') FROM dbmail.event_log),
       (SELECT string_agg(concat_ws(' ', last_error, smtp_response), ' ') FROM dbmail.mailitems)) AS t`,
  );
  return `${first(rows).t ?? ""}\n${logLines.join("")}`;
}

function sendVia(profile: string, subject = uniqueSubject("oauth2")): Promise<string> {
  return send(db, { profile_name: profile, recipients: "to@example.org", subject, body: "hello" });
}

async function sentStatus(id: string, status = "sent"): Promise<Item> {
  return eventually(async () => {
    const row = await item(id);
    return row.sent_status === status ? row : undefined;
  });
}

function expectNoSecretIn(text: string): void {
  expect(text).not.toContain(endpoint.client.secret);
  expect(text).not.toContain(endpoint.client.refreshToken);
  for (const token of endpoint.issued.keys()) expect(text).not.toContain(token);
}

describe("XOAUTH2 with a token from the account's endpoint", () => {
  it("logs in with a client-credentials token as the account's username and delivers", async () => {
    const profile = await oauth2Profile();
    await start();
    const subject = uniqueSubject("client credentials");
    const id = await sendVia(profile, subject);
    expect(await sentStatus(id)).toMatchObject({ send_attempts: 1 });
    const mail = smtp.received.find((m) => m.parsed.subject === subject);
    expect(mail?.user).toBe(MAILBOX);
    const asked = endpoint.requests.at(-1);
    expect(asked).toEqual({
      grant_type: "client_credentials",
      client_id: endpoint.client.id,
      client_secret: endpoint.client.secret,
      scope: "https://outlook.office365.com/.default",
    });
    expectNoSecretIn(await everythingRecorded());
  });

  it("uses the refresh-token grant when the account has a refresh token", async () => {
    const profile = await oauth2Profile({
      oauth2_client_secret: null,
      oauth2_refresh_token: endpoint.client.refreshToken,
    });
    await start();
    const id = await sendVia(profile);
    await sentStatus(id);
    expect(endpoint.requests.at(-1)).toMatchObject({
      grant_type: "refresh_token",
      refresh_token: endpoint.client.refreshToken,
      client_id: endpoint.client.id,
    });
  });

  it("fetches a new token when the cached one has expired, without a failed attempt", async () => {
    endpoint.lifetimeSeconds = 2;
    const profile = await oauth2Profile();
    await start();
    await sentStatus(await sendVia(profile));
    const fetched = endpoint.requests.length;
    await new Promise((resolve) => setTimeout(resolve, 2500));
    // New connections must log in again (a pooled one stays logged in after its token expires).
    await smtp.restart();
    const id = await sendVia(profile);
    expect(await sentStatus(id)).toMatchObject({ send_attempts: 1, last_error: null });
    expect(endpoint.requests.length).toBe(fetched + 1);
    expect((await events(id)).map((e) => e.event_type)).not.toContain("warning");
  });

  it("fetches a new token once when the server refuses a revoked one, and the message goes out", async () => {
    const profile = await oauth2Profile();
    await start();
    await sentStatus(await sendVia(profile));
    endpoint.revokeAll();
    await smtp.restart();
    const id = await sendVia(profile);
    expect(await sentStatus(id)).toMatchObject({ send_attempts: 1, last_error: null });
  });
});

describe("token endpoint failures", () => {
  it("an endpoint that is down is transient: the next account sends, and the item retries when it is alone", async () => {
    endpoint.mode = "unavailable";
    const plain = await TestSmtpServer.start();
    try {
      const backupId = await addAccount(db, `oauth2_backup_${++counter}`, plain, { timeout: 3 });
      const withBackup = await oauth2Profile({}, [backupId]);
      await start();
      const subject = uniqueSubject("failover");
      const viaBackup = await sendVia(withBackup, subject);
      expect(await sentStatus(viaBackup)).toMatchObject({ sent_account_id: backupId });
      expect(plain.received.map((m) => m.parsed.subject)).toContain(subject);
      const warnings = (await events(viaBackup)).filter((e) => e.event_type === "warning");
      expect(warnings.map((e) => e.description).join("\n")).toMatch(
        /account \d+ failed: ETOKENENDPOINT: the token endpoint http:\/\/127\.0\.0\.1:\d+\/oauth2\/token answered 503/,
      );

      const alone = await oauth2Profile();
      const id = await sendVia(alone);
      const retrying = await sentStatus(id, "retrying");
      expect(retrying.last_error).toContain("ETOKENENDPOINT");
      // The endpoint comes back: the next round sends.
      endpoint.mode = "issue";
      expect(await sentStatus(id)).toMatchObject({ send_attempts: 2 });
    } finally {
      await plain.stop();
    }
  });

  it("invalid_client is an account error naming the account, with no secret in any record", async () => {
    endpoint.mode = "invalid_client";
    const profile = await oauth2Profile();
    const { rows } = await db.query<{ account_id: number }>(
      "SELECT account_id FROM dbmail.accounts WHERE name = $1",
      [`oauth2_${counter}`],
    );
    const accountId = first(rows).account_id;
    await start();
    const id = await sendVia(profile);
    const retrying = await sentStatus(id, "retrying");
    expect(retrying.last_error).toBe(
      `account ${accountId}: EOAUTH2: the token endpoint ${endpoint.url} answered 401 (invalid_client: client authentication failed) (after AUTH XOAUTH2)`,
    );
    const logged = (await events(id)).map((e) => e.description).join("\n");
    expect(logged).toContain(`account ${accountId}: EOAUTH2`);
    expectNoSecretIn(await everythingRecorded());
  });
});
