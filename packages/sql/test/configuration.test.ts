import type pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { errorOf, TestDatabase, type TestRole } from "../../../test/support/database.js";

// The configuration procedures of SPEC section 4, called as a dbmail_admin member (not as the superuser),
// checked through what a DBA sees (help_* results) and, as the superuser, through the private tables.

type Args = Record<string, unknown>;
type Row = Record<string, unknown>;

interface Queryable {
  query(sql: string, params?: unknown[]): Promise<pg.QueryResult>;
}

let db: TestDatabase;
let adminRole: TestRole;
let admin: pg.Client;
let userRole: TestRole;
let user: pg.Client;
let counter = 0;

/** A name no other test uses. */
const unique = (base: string) => `${base}_${++counter}`;

beforeAll(async () => {
  db = await TestDatabase.create();
  adminRole = await db.createRole("cfg_admin", { memberOf: ["dbmail_admin"] });
  admin = await db.connect(adminRole);
  userRole = await db.createRole("cfg_user", { memberOf: ["dbmail_user"] });
  user = await db.connect(userRole);
});

afterAll(async () => {
  await db?.drop();
});

function namedArguments(args: Args): string {
  return Object.keys(args)
    .map((name, i) => `${name} => $${i + 1}`)
    .join(", ");
}

/** The rows of `SELECT * FROM dbmail.<fn>(name => value, ...)`, as the admin role by default. */
async function call(fn: string, args: Args = {}, client: Queryable = admin): Promise<Row[]> {
  const { rows } = await client.query(
    `SELECT * FROM dbmail.${fn}(${namedArguments(args)})`,
    Object.values(args),
  );
  return rows as Row[];
}

/** The single value a function returns. */
async function scalar(fn: string, args: Args = {}, client: Queryable = admin): Promise<unknown> {
  const { rows } = await client.query(
    `SELECT dbmail.${fn}(${namedArguments(args)}) AS value`,
    Object.values(args),
  );
  return (rows[0] as Row).value;
}

/** Superuser rows from the private tables. */
async function su(sql: string, params?: unknown[]): Promise<Row[]> {
  return (await db.query(sql, params)).rows as Row[];
}

async function addAccount(args: Args = {}): Promise<{ id: number; name: string }> {
  const name = (args.account_name as string | undefined) ?? unique("acct");
  const id = await scalar("sysmail_add_account_sp", {
    account_name: name,
    email_address: "ops@example.com",
    mailserver_name: "smtp.example.com",
    ...args,
  });
  return { id: id as number, name };
}

async function addProfile(args: Args = {}): Promise<{ id: number; name: string }> {
  const name = (args.profile_name as string | undefined) ?? unique("prof");
  const id = await scalar("sysmail_add_profile_sp", { profile_name: name, ...args });
  return { id: id as number, name };
}

/** Adds an account to a profile (by ids). */
async function link(profileId: number, accountId: number, sequenceNumber: number): Promise<void> {
  await call("sysmail_add_profileaccount_sp", {
    profile_id: profileId,
    account_id: accountId,
    sequence_number: sequenceNumber,
  });
}

/** Lets a role (or "public") use a profile (by id). */
async function grant(principalName: string, profileId: number, isDefault: boolean): Promise<void> {
  await call("sysmail_add_principalprofile_sp", {
    principal_name: principalName,
    profile_id: profileId,
    is_default: isDefault,
  });
}

async function helpAccount(args: Args): Promise<Row> {
  const rows = await call("sysmail_help_account_sp", args);
  expect(rows).toHaveLength(1);
  return rows[0] as Row;
}

/** Queues one message with the given profile (NULL: the sender's default); returns its mailitem_id. */
async function send(profileName: string | null, client: Queryable = admin): Promise<number> {
  const id = await scalar(
    "sp_send_dbmail",
    { profile_name: profileName, recipients: "someone@example.com", subject: "test", body: "hello" },
    client,
  );
  return Number(id);
}

async function setStatus(mailitemId: number, status: string): Promise<void> {
  await su("UPDATE dbmail.mailitems SET sent_status = $2 WHERE mailitem_id = $1", [mailitemId, status]);
}

async function lastLogId(): Promise<number> {
  return Number((await su("SELECT COALESCE(max(log_id), 0) AS id FROM dbmail.event_log"))[0]?.id);
}

async function eventsAfter(logId: number): Promise<Row[]> {
  return su(
    "SELECT event_type, description, last_mod_user FROM dbmail.event_log WHERE log_id > $1 ORDER BY log_id",
    [logId],
  );
}

/** Everything a configuration procedure could change, read as the superuser. */
async function snapshot(): Promise<Row> {
  const rows = await su(`SELECT
    (SELECT json_agg(t ORDER BY t.account_id) FROM dbmail.accounts t) AS accounts,
    (SELECT json_agg(t ORDER BY t.account_id) FROM dbmail.account_secrets t) AS secrets,
    (SELECT json_agg(t ORDER BY t.profile_id) FROM dbmail.profiles t) AS profiles,
    (SELECT json_agg(t ORDER BY t.profile_id, t.account_id) FROM dbmail.profile_accounts t) AS profile_accounts,
    (SELECT json_agg(t ORDER BY t.profile_id, t.principal_id) FROM dbmail.principal_profiles t) AS grants,
    (SELECT json_agg(t ORDER BY t.paramname) FROM dbmail.settings t) AS settings,
    (SELECT json_agg(t) FROM dbmail.system_state t) AS system_state,
    (SELECT json_agg(json_build_object('id', t.mailitem_id, 'status', t.sent_status, 'date', t.send_request_date)
       ORDER BY t.mailitem_id) FROM dbmail.mailitems t) AS mailitems,
    (SELECT json_agg(t.log_id ORDER BY t.log_id) FROM dbmail.event_log t) AS events`);
  return rows[0] as Row;
}

/** A value as dbmail.show_value writes it in a message. */
function show(value: string | null): string {
  if (value === null) return "NULL";
  return `"${value.replace(/\r/g, "\\r").replace(/\n/g, "\\n").replace(/\t/g, "\\t")}"`;
}

interface Refusal {
  code: string;
  parameter: string;
  value: string | null;
  problem?: string;
}

/** The call fails with the SQLSTATE and a `<parameter>: <value>: <problem>` message, and changes nothing. */
async function expectRefused(run: () => Promise<unknown>, { code, parameter, value, problem }: Refusal) {
  const before = await snapshot();
  const error = await errorOf(run());
  const prefix = `${parameter}: ${show(value)}: `;
  expect(error.code, error.message).toBe(code);
  expect(
    error.message.startsWith(prefix),
    `${JSON.stringify(error.message)} should start with ${prefix}`,
  ).toBe(true);
  if (problem) expect(error.message).toContain(problem);
  expect(await snapshot()).toEqual(before);
}

/** One row of a bad-input table: arguments and the expected refusal (value may need a fixture). */
interface BadCall {
  label: string;
  args: () => Args;
  code: string;
  parameter: string;
  value: string | null | (() => string);
  problem?: string;
}

async function expectBadCall(
  fn: string,
  { args, code, parameter, value, problem }: BadCall,
  extra: Args = {},
) {
  const shown = typeof value === "function" ? value() : value;
  await expectRefused(() => call(fn, { ...extra, ...args() }), { code, parameter, value: shown, problem });
}

// ---------------------------------------------------------------------------------------------------------

describe("accounts", () => {
  it("add returns the new id; help_account_sp shows the settings but never the password", async () => {
    const name = unique("Relay");
    const id = await scalar("sysmail_add_account_sp", {
      account_name: name,
      email_address: "ops@example.com",
      display_name: "Ops Team",
      replyto_address: "replies@example.com",
      description: "main relay",
      mailserver_name: "smtp.example.com",
      port: 587,
      username: "mailer",
      password: "Sup3r-Secret!",
      enable_ssl: true,
      timeout: 30,
    });
    expect(typeof id).toBe("number");
    const rows = await call("sysmail_help_account_sp", { account_name: name });
    expect(rows).toEqual([
      {
        account_id: id,
        name,
        description: "main relay",
        email_address: "ops@example.com",
        display_name: "Ops Team",
        replyto_address: "replies@example.com",
        servertype: "SMTP",
        servername: "smtp.example.com",
        port: 587,
        username: "mailer",
        use_default_credentials: false,
        enable_ssl: true,
        security: "starttls",
        timeout: 30,
        tls_reject_unauthorized: true,
        password_source: "literal",
      },
    ]);
    expect(JSON.stringify(rows)).not.toContain("Sup3r-Secret!");
  });

  it("keeps the password apart: the superuser reads it, a dbmail_admin cannot", async () => {
    const { id } = await addAccount({ username: "mailer", password: "hunter2" });
    expect(await su("SELECT password FROM dbmail.account_secrets WHERE account_id = $1", [id])).toEqual([
      { password: "hunter2" },
    ]);
    expect((await errorOf(admin.query("SELECT * FROM dbmail.account_secrets"))).code).toBe("42501");
    expect((await errorOf(admin.query("SELECT * FROM dbmail.accounts"))).code).toBe("42501");
  });

  it("records the calling role as last_mod_user", async () => {
    const { id } = await addAccount();
    expect(await su("SELECT last_mod_user FROM dbmail.accounts WHERE account_id = $1", [id])).toEqual([
      { last_mod_user: adminRole.name },
    ]);
  });

  it("applies SQL Server's defaults", async () => {
    const { id, name } = await addAccount();
    expect(await helpAccount({ account_id: id })).toEqual({
      account_id: id,
      name,
      description: null,
      email_address: "ops@example.com",
      display_name: null,
      replyto_address: null,
      servertype: "SMTP",
      servername: "smtp.example.com",
      port: 25,
      username: null,
      use_default_credentials: false,
      enable_ssl: false,
      security: "none",
      timeout: null,
      tls_reject_unauthorized: true,
      password_source: "none",
    });
  });

  it.each([
    { args: { enable_ssl: true }, security: "starttls", enable_ssl: true },
    { args: { security: "tls", port: 465 }, security: "tls", enable_ssl: true },
    { args: { security: " STARTTLS " }, security: "starttls", enable_ssl: true },
    { args: { enable_ssl: true, security: "tls" }, security: "tls", enable_ssl: true },
  ])("maps $args to security $security", async ({ args, security, enable_ssl }) => {
    const { id } = await addAccount(args);
    expect(await helpAccount({ account_id: id })).toMatchObject({ security, enable_ssl });
  });

  it("accepts env: and file: password references, shown as password_source env and file", async () => {
    const env = await addAccount({ username: "u", password: "env:SMTP_PASSWORD" });
    const file = await addAccount({ username: "u", password: "file:/run/secrets/smtp" });
    expect(await helpAccount({ account_id: env.id })).toMatchObject({ password_source: "env" });
    expect(await helpAccount({ account_id: file.id })).toMatchObject({ password_source: "file" });
    const secrets = await su(
      "SELECT password FROM dbmail.account_secrets WHERE account_id IN ($1, $2) ORDER BY account_id",
      [env.id, file.id],
    );
    expect(secrets).toEqual([{ password: "env:SMTP_PASSWORD" }, { password: "file:/run/secrets/smtp" }]);
  });

  it("help_account_sp lists every account by id, or finds one by id or by name in any case", async () => {
    const a = await addAccount();
    const b = await addAccount();
    const all = await call("sysmail_help_account_sp");
    const ids = all.map((r) => r.account_id as number);
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
    expect(ids).toEqual(expect.arrayContaining([a.id, b.id]));
    expect(all.length).toBe(Number((await su("SELECT count(*) AS n FROM dbmail.accounts"))[0]?.n));
    expect((await helpAccount({ account_name: a.name.toUpperCase() })).account_id).toBe(a.id);
    expect((await helpAccount({ account_id: b.id })).name).toBe(b.name);
  });

  it("an account's email_address is a bare address (a display name goes in display_name)", async () => {
    const name = unique("acct");
    const result = await scalar("sysmail_add_account_sp", {
      account_name: name,
      email_address: "Ops <ops@example.com>",
      mailserver_name: "smtp.example.com",
    }).catch((error: { code: string; message: string }) => error);
    if (typeof result === "number") {
      // Accepting it is fine only if what is stored is the address itself.
      expect((await helpAccount({ account_id: result })).email_address).toBe("ops@example.com");
    } else {
      expect(result).toMatchObject({ code: "22023" });
      expect((result as { message: string }).message).toMatch(/^email_address: "Ops <ops@example.com>": /);
    }
  });

  describe("update", () => {
    it("NULL arguments keep every stored value", async () => {
      const { id } = await addAccount({
        display_name: "Ops",
        replyto_address: "r@example.com",
        description: "d",
        port: 2525,
        username: "u",
        password: "p",
        security: "tls",
        timeout: 20,
        tls_reject_unauthorized: false,
      });
      const before = await helpAccount({ account_id: id });
      await call("sysmail_update_account_sp", { account_id: id });
      expect(await helpAccount({ account_id: id })).toEqual(before);
      await call("sysmail_update_account_sp", { account_id: id, port: 587 });
      expect(await helpAccount({ account_id: id })).toEqual({ ...before, port: 587 });
    });

    it("'' clears display_name, replyto_address and description", async () => {
      const { id } = await addAccount({
        display_name: "Ops",
        replyto_address: "r@example.com",
        description: "d",
      });
      await call("sysmail_update_account_sp", {
        account_id: id,
        display_name: "",
        replyto_address: "",
        description: "",
      });
      expect(await helpAccount({ account_id: id })).toMatchObject({
        display_name: null,
        replyto_address: null,
        description: null,
      });
    });

    it("without a password keeps the stored one (SQL Server would drop it)", async () => {
      const { id } = await addAccount({ username: "mailer", password: "keep-me" });
      await call("sysmail_update_account_sp", { account_id: id, display_name: "New name", port: 2525 });
      expect(await helpAccount({ account_id: id })).toMatchObject({
        username: "mailer",
        password_source: "literal",
        display_name: "New name",
      });
      expect(await su("SELECT password FROM dbmail.account_secrets WHERE account_id = $1", [id])).toEqual([
        { password: "keep-me" },
      ]);
    });

    it("a new password replaces the stored one; username '' drops username and password", async () => {
      const { id } = await addAccount({ username: "mailer", password: "old" });
      await call("sysmail_update_account_sp", { account_id: id, password: "env:NEW_SECRET" });
      expect(await su("SELECT password FROM dbmail.account_secrets WHERE account_id = $1", [id])).toEqual([
        { password: "env:NEW_SECRET" },
      ]);
      expect((await helpAccount({ account_id: id })).password_source).toBe("env");
      await call("sysmail_update_account_sp", { account_id: id, username: "" });
      expect(await helpAccount({ account_id: id })).toMatchObject({
        username: null,
        password_source: "none",
      });
      expect(await su("SELECT * FROM dbmail.account_secrets WHERE account_id = $1", [id])).toEqual([]);
    });

    it("use_default_credentials => true drops the stored username and password", async () => {
      const { id } = await addAccount({ username: "mailer", password: "pw" });
      await call("sysmail_update_account_sp", { account_id: id, use_default_credentials: true });
      expect(await helpAccount({ account_id: id })).toMatchObject({
        use_default_credentials: true,
        username: null,
        password_source: "none",
      });
    });

    it("account_id with account_name renames; the old name is then unknown", async () => {
      const { id, name } = await addAccount();
      const newName = unique("renamed");
      await call("sysmail_update_account_sp", { account_id: id, account_name: newName });
      expect((await helpAccount({ account_name: newName })).account_id).toBe(id);
      expect((await errorOf(call("sysmail_help_account_sp", { account_name: name }))).code).toBe("42704");
      // Changing only the case of its own name is not a duplicate.
      await call("sysmail_update_account_sp", { account_id: id, account_name: newName.toUpperCase() });
      expect((await helpAccount({ account_id: id })).name).toBe(newName.toUpperCase());
    });

    it("by name: enable_ssl and security switch the transport security", async () => {
      const { id, name } = await addAccount();
      await call("sysmail_update_account_sp", { account_name: name, enable_ssl: true });
      expect(await helpAccount({ account_id: id })).toMatchObject({ security: "starttls", enable_ssl: true });
      await call("sysmail_update_account_sp", { account_name: name, security: "TLS", port: 465 });
      expect(await helpAccount({ account_id: id })).toMatchObject({
        security: "tls",
        enable_ssl: true,
        port: 465,
      });
      await call("sysmail_update_account_sp", { account_name: name, enable_ssl: false });
      expect(await helpAccount({ account_id: id })).toMatchObject({ security: "none", enable_ssl: false });
    });

    it("changes address, server, timeout and records who changed it", async () => {
      const { id } = await addAccount();
      await call("sysmail_update_account_sp", {
        account_id: id,
        email_address: " noreply@example.org ",
        mailserver_name: "mail.example.org",
        timeout: 45,
        tls_reject_unauthorized: false,
      });
      expect(await helpAccount({ account_id: id })).toMatchObject({
        email_address: "noreply@example.org",
        servername: "mail.example.org",
        timeout: 45,
        tls_reject_unauthorized: false,
      });
      expect(await su("SELECT last_mod_user FROM dbmail.accounts WHERE account_id = $1", [id])).toEqual([
        { last_mod_user: adminRole.name },
      ]);
    });
  });

  it("delete by name or id removes the account with its secret and profile memberships", async () => {
    const a = await addAccount({ username: "u", password: "p" });
    const b = await addAccount();
    const profile = await addProfile();
    await link(profile.id, a.id, 1);
    await call("sysmail_delete_account_sp", { account_name: a.name });
    await call("sysmail_delete_account_sp", { account_id: b.id });
    expect((await errorOf(call("sysmail_help_account_sp", { account_id: a.id }))).code).toBe("42704");
    expect((await errorOf(call("sysmail_help_account_sp", { account_id: b.id }))).code).toBe("42704");
    expect(await su("SELECT * FROM dbmail.account_secrets WHERE account_id = $1", [a.id])).toEqual([]);
    expect(await call("sysmail_help_profileaccount_sp", { profile_id: profile.id })).toEqual([]);
    expect(await call("sysmail_help_profile_sp", { profile_id: profile.id })).toHaveLength(1);
  });
});

describe("accounts: bad input", () => {
  let fixture: { id: number; name: string };
  let other: { id: number; name: string };
  let locked: { id: number; name: string };
  const valid = () => ({
    account_name: unique("bad"),
    email_address: "ops@example.com",
    mailserver_name: "smtp.example.com",
  });

  beforeAll(async () => {
    fixture = await addAccount({ account_name: unique("Fixture_Acct") });
    other = await addAccount({ account_name: unique("Other_Acct") });
    locked = await addAccount({ use_default_credentials: true });
  });

  // biome-ignore format: a table reads best one case per line
  const addCases: BadCall[] = [
    { label: "mailserver_type POP3", args: () => ({ mailserver_type: "POP3" }), code: "22023", parameter: "mailserver_type", value: "POP3", problem: "only SMTP" },
    { label: "mailserver_type NULL", args: () => ({ mailserver_type: null }), code: "22004", parameter: "mailserver_type", value: null },
    { label: "security ssl", args: () => ({ security: "ssl" }), code: "22023", parameter: "security", value: "ssl", problem: "must be none, starttls or tls" },
    { label: "security SSL (shown as given)", args: () => ({ security: "SSL" }), code: "22023", parameter: "security", value: "SSL" },
    { label: "security none with enable_ssl", args: () => ({ security: "none", enable_ssl: true }), code: "22023", parameter: "security", value: "none", problem: "enable_ssl" },
    { label: "email_address without @", args: () => ({ email_address: "not-an-address" }), code: "22023", parameter: "email_address", value: "not-an-address", problem: "no @" },
    { label: "email_address NULL", args: () => ({ email_address: null }), code: "22004", parameter: "email_address", value: null },
    { label: "two email addresses", args: () => ({ email_address: "a@example.com;b@example.com" }), code: "22023", parameter: "email_address", value: "a@example.com;b@example.com", problem: "only one address" },
    { label: "a comma in replyto_address", args: () => ({ replyto_address: "a@example.com, b@example.com" }), code: "22023", parameter: "replyto_address", value: "a@example.com, b@example.com", problem: "use ';'" },
    { label: "username with use_default_credentials", args: () => ({ username: "bob", use_default_credentials: true }), code: "22023", parameter: "username", value: "bob", problem: "use_default_credentials" },
    { label: "password without username (masked)", args: () => ({ password: "s3cret" }), code: "22023", parameter: "password", value: "********", problem: "needs a username" },
    { label: "env: without a variable name", args: () => ({ username: "u", password: "env:1BAD" }), code: "22023", parameter: "password", value: "env:1BAD" },
    { label: "file: with a relative path", args: () => ({ username: "u", password: "file:secrets/pw" }), code: "22023", parameter: "password", value: "file:secrets/pw", problem: "absolute path" },
    { label: "port 0", args: () => ({ port: 0 }), code: "22023", parameter: "port", value: "0", problem: "from 1 to 65535" },
    { label: "port 70000", args: () => ({ port: 70000 }), code: "22023", parameter: "port", value: "70000", problem: "from 1 to 65535" },
    { label: "port NULL", args: () => ({ port: null }), code: "22004", parameter: "port", value: null },
    { label: "timeout 0", args: () => ({ timeout: 0 }), code: "22023", parameter: "timeout", value: "0", problem: "from 1 to 3600" },
    { label: "account_name NULL", args: () => ({ account_name: null }), code: "22004", parameter: "account_name", value: null },
    { label: "a blank account_name", args: () => ({ account_name: "  " }), code: "22004", parameter: "account_name", value: "  " },
    { label: "mailserver_name NULL", args: () => ({ mailserver_name: null }), code: "22004", parameter: "mailserver_name", value: null },
    { label: "mailserver_name with a space", args: () => ({ mailserver_name: "smtp example.com" }), code: "22023", parameter: "mailserver_name", value: "smtp example.com" },
    { label: "display_name with a line break", args: () => ({ display_name: "Ops\r\nBcc: x@evil.example" }), code: "22023", parameter: "display_name", value: "Ops\r\nBcc: x@evil.example", problem: "line breaks" },
    { label: "use_default_credentials NULL", args: () => ({ use_default_credentials: null }), code: "22004", parameter: "use_default_credentials", value: null },
    { label: "a duplicate name", args: () => ({ account_name: fixture.name }), code: "42710", parameter: "account_name", value: () => fixture.name, problem: "exists" },
    { label: "a duplicate name in another case", args: () => ({ account_name: fixture.name.toUpperCase() }), code: "42710", parameter: "account_name", value: () => fixture.name.toUpperCase() },
  ];

  it.each(addCases)("add refuses $label", async (bad) => {
    await expectBadCall("sysmail_add_account_sp", bad, valid());
  });

  it("add never shows the password in a message", async () => {
    const error = await errorOf(call("sysmail_add_account_sp", { ...valid(), password: "Very$ecret" }));
    expect(error.message).not.toContain("Very$ecret");
  });

  // biome-ignore format: a table reads best one case per line
  const updateCases: BadCall[] = [
    { label: "an unknown account_id", args: () => ({ account_id: 999999, port: 26 }), code: "42704", parameter: "account_id", value: "999999", problem: "no such account" },
    { label: "an unknown account_name", args: () => ({ account_name: "no_such_account", port: 26 }), code: "42704", parameter: "account_name", value: "no_such_account" },
    { label: "neither id nor name", args: () => ({ port: 26 }), code: "22004", parameter: "account_id, account_name", value: null },
    { label: "a rename onto another account (any case)", args: () => ({ account_id: fixture.id, account_name: other.name.toUpperCase() }), code: "42710", parameter: "account_name", value: () => other.name.toUpperCase(), problem: "exists" },
    { label: "port 70000", args: () => ({ account_id: fixture.id, port: 70000 }), code: "22023", parameter: "port", value: "70000" },
    { label: "timeout 0", args: () => ({ account_id: fixture.id, timeout: 0 }), code: "22023", parameter: "timeout", value: "0" },
    { label: "mailserver_type POP3", args: () => ({ account_id: fixture.id, mailserver_type: "POP3" }), code: "22023", parameter: "mailserver_type", value: "POP3" },
    { label: "an invalid email_address", args: () => ({ account_id: fixture.id, email_address: "bad" }), code: "22023", parameter: "email_address", value: "bad" },
    { label: "a comma in replyto_address", args: () => ({ account_id: fixture.id, replyto_address: "a@example.com, b@example.com" }), code: "22023", parameter: "replyto_address", value: "a@example.com, b@example.com" },
    { label: "a password for an account without username", args: () => ({ account_id: fixture.id, password: "pw" }), code: "22023", parameter: "password", value: "********" },
    { label: "a username with use_default_credentials", args: () => ({ account_id: locked.id, username: "bob" }), code: "22023", parameter: "username", value: "bob" },
  ];

  it.each(updateCases)("update refuses $label", async (bad) => {
    await expectBadCall("sysmail_update_account_sp", bad);
  });

  // biome-ignore format: a table reads best one case per line
  const deleteAndHelpCases: (BadCall & { fn: string })[] = [
    { fn: "sysmail_delete_account_sp", label: "neither id nor name", args: () => ({}), code: "22004", parameter: "account_id, account_name", value: null },
    { fn: "sysmail_delete_account_sp", label: "an unknown id", args: () => ({ account_id: 999999 }), code: "42704", parameter: "account_id", value: "999999" },
    { fn: "sysmail_delete_account_sp", label: "an unknown name", args: () => ({ account_name: "ghost" }), code: "42704", parameter: "account_name", value: "ghost" },
    { fn: "sysmail_delete_account_sp", label: "id and name of different accounts", args: () => ({ account_id: fixture.id, account_name: other.name }), code: "22023", parameter: "account_name", value: () => other.name, problem: "not account_id" },
    { fn: "sysmail_help_account_sp", label: "an unknown name", args: () => ({ account_name: "ghost" }), code: "42704", parameter: "account_name", value: "ghost" },
    { fn: "sysmail_help_account_sp", label: "an unknown id", args: () => ({ account_id: 999999 }), code: "42704", parameter: "account_id", value: "999999" },
    { fn: "sysmail_help_account_sp", label: "id and name of different accounts", args: () => ({ account_id: fixture.id, account_name: other.name }), code: "22023", parameter: "account_name", value: () => other.name },
  ];

  it.each(deleteAndHelpCases)("$fn refuses $label", async ({ fn, ...bad }) => {
    await expectBadCall(fn, bad);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("profiles", () => {
  it("add returns the new id; help_profile_sp shows id, name and description", async () => {
    const name = unique("Ops");
    const id = await scalar("sysmail_add_profile_sp", { profile_name: name, description: "operations" });
    expect(typeof id).toBe("number");
    expect(await call("sysmail_help_profile_sp", { profile_name: name })).toEqual([
      { profile_id: id, name, description: "operations" },
    ]);
    expect(await su("SELECT last_mod_user FROM dbmail.profiles WHERE profile_id = $1", [id])).toEqual([
      { last_mod_user: adminRole.name },
    ]);
  });

  it("help_profile_sp lists every profile by id, and finds one by name in any case", async () => {
    const a = await addProfile();
    const b = await addProfile();
    const all = await call("sysmail_help_profile_sp");
    const ids = all.map((r) => r.profile_id as number);
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
    expect(ids).toEqual(expect.arrayContaining([a.id, b.id]));
    expect(await call("sysmail_help_profile_sp", { profile_name: b.name.toUpperCase() })).toEqual([
      { profile_id: b.id, name: b.name, description: null },
    ]);
  });

  it("update by name sets the description; NULL keeps it; '' clears it", async () => {
    const { id, name } = await addProfile({ description: "first" });
    await call("sysmail_update_profile_sp", { profile_name: name, description: "second" });
    expect((await call("sysmail_help_profile_sp", { profile_id: id }))[0]?.description).toBe("second");
    await call("sysmail_update_profile_sp", { profile_id: id, profile_name: name });
    expect((await call("sysmail_help_profile_sp", { profile_id: id }))[0]?.description).toBe("second");
    await call("sysmail_update_profile_sp", { profile_id: id, description: "" });
    expect((await call("sysmail_help_profile_sp", { profile_id: id }))[0]?.description).toBeNull();
  });

  it("profile_id with profile_name renames the profile", async () => {
    const { id, name } = await addProfile({ description: "kept" });
    const newName = unique("renamed_profile");
    await call("sysmail_update_profile_sp", { profile_id: id, profile_name: newName });
    expect(await call("sysmail_help_profile_sp", { profile_name: newName })).toEqual([
      { profile_id: id, name: newName, description: "kept" },
    ]);
    expect((await errorOf(call("sysmail_help_profile_sp", { profile_name: name }))).code).toBe("42704");
  });

  it("delete removes the profile with its account links and grants, not the accounts", async () => {
    const profile = await addProfile();
    const account = await addAccount();
    await link(profile.id, account.id, 1);
    await grant("public", profile.id, false);
    await call("sysmail_delete_profile_sp", { profile_name: profile.name });
    expect((await errorOf(call("sysmail_help_profile_sp", { profile_id: profile.id }))).code).toBe("42704");
    expect(await su("SELECT * FROM dbmail.profile_accounts WHERE profile_id = $1", [profile.id])).toEqual([]);
    expect(await su("SELECT * FROM dbmail.principal_profiles WHERE profile_id = $1", [profile.id])).toEqual(
      [],
    );
    expect(await call("sysmail_help_account_sp", { account_id: account.id })).toHaveLength(1);
  });

  it("force_delete => false refuses while mail is waiting, naming the profile", async () => {
    const profile = await addProfile();
    await send(profile.name);
    await expectRefused(
      () => call("sysmail_delete_profile_sp", { profile_name: profile.name, force_delete: false }),
      { code: "55000", parameter: "profile_name", value: profile.name, problem: "1 mail items" },
    );
  });

  it("force_delete => false deletes a profile whose mail has all been sent", async () => {
    const profile = await addProfile();
    await setStatus(await send(profile.name), "sent");
    await call("sysmail_delete_profile_sp", { profile_id: profile.id, force_delete: false });
    expect(await su("SELECT * FROM dbmail.profiles WHERE profile_id = $1", [profile.id])).toEqual([]);
  });

  it("force_delete (the default) fails the waiting items and logs a warning naming profile and role", async () => {
    const profile = await addProfile();
    const unsent = await send(profile.name);
    const retrying = await send(profile.name);
    const sent = await send(profile.name);
    await setStatus(retrying, "retrying");
    await setStatus(sent, "sent");
    const logId = await lastLogId();
    await call("sysmail_delete_profile_sp", { profile_name: profile.name });
    const items = await su(
      `SELECT mailitem_id, sent_status, last_error, sent_date IS NOT NULL AS dated, last_mod_user
       FROM dbmail.mailitems WHERE mailitem_id = ANY($1) ORDER BY mailitem_id`,
      [[unsent, retrying, sent]],
    );
    const failed = { sent_status: "failed", last_error: `profile ${profile.name} was deleted`, dated: true };
    expect(items).toEqual([
      { mailitem_id: String(unsent), ...failed, last_mod_user: adminRole.name },
      { mailitem_id: String(retrying), ...failed, last_mod_user: adminRole.name },
      expect.objectContaining({ mailitem_id: String(sent), sent_status: "sent" }),
    ]);
    expect(await eventsAfter(logId)).toEqual([
      {
        event_type: "warning",
        description: expect.stringMatching(
          new RegExp(`${profile.name}.*deleted by ${adminRole.name}.*\\b2\\b.*failed`),
        ),
        last_mod_user: adminRole.name,
      },
    ]);
  });
});

describe("profiles: bad input", () => {
  let fixture: { id: number; name: string };
  let other: { id: number; name: string };

  beforeAll(async () => {
    fixture = await addProfile({ profile_name: unique("Fixture_Prof") });
    other = await addProfile({ profile_name: unique("Other_Prof") });
  });

  // biome-ignore format: a table reads best one case per line
  const cases: (BadCall & { fn: string })[] = [
    { fn: "sysmail_add_profile_sp", label: "a NULL name", args: () => ({ profile_name: null }), code: "22004", parameter: "profile_name", value: null, problem: "needs a name" },
    { fn: "sysmail_add_profile_sp", label: "an empty name", args: () => ({ profile_name: "" }), code: "22004", parameter: "profile_name", value: "" },
    { fn: "sysmail_add_profile_sp", label: "a duplicate name", args: () => ({ profile_name: fixture.name }), code: "42710", parameter: "profile_name", value: () => fixture.name, problem: "exists" },
    { fn: "sysmail_add_profile_sp", label: "a duplicate name in another case", args: () => ({ profile_name: fixture.name.toLowerCase() }), code: "42710", parameter: "profile_name", value: () => fixture.name.toLowerCase() },
    { fn: "sysmail_add_profile_sp", label: "a name with a line break", args: () => ({ profile_name: "a\nb" }), code: "22023", parameter: "profile_name", value: "a\nb" },
    { fn: "sysmail_add_profile_sp", label: "a name over 128 characters", args: () => ({ profile_name: "p".repeat(129) }), code: "22023", parameter: "profile_name", value: "p".repeat(129), problem: "128" },
    { fn: "sysmail_update_profile_sp", label: "an unknown id", args: () => ({ profile_id: 999999, description: "x" }), code: "42704", parameter: "profile_id", value: "999999", problem: "no such profile" },
    { fn: "sysmail_update_profile_sp", label: "an unknown name", args: () => ({ profile_name: "ghost", description: "x" }), code: "42704", parameter: "profile_name", value: "ghost" },
    { fn: "sysmail_update_profile_sp", label: "neither id nor name", args: () => ({ description: "x" }), code: "22004", parameter: "profile_id, profile_name", value: null },
    { fn: "sysmail_update_profile_sp", label: "nothing to change", args: () => ({ profile_id: fixture.id }), code: "22004", parameter: "profile_name, description", value: null },
    { fn: "sysmail_update_profile_sp", label: "a rename onto another profile (any case)", args: () => ({ profile_id: fixture.id, profile_name: other.name.toUpperCase() }), code: "42710", parameter: "profile_name", value: () => other.name.toUpperCase() },
    { fn: "sysmail_update_profile_sp", label: "a rename to ''", args: () => ({ profile_id: fixture.id, profile_name: "" }), code: "22004", parameter: "profile_name", value: "" },
    { fn: "sysmail_delete_profile_sp", label: "an unknown name", args: () => ({ profile_name: "ghost" }), code: "42704", parameter: "profile_name", value: "ghost" },
    { fn: "sysmail_delete_profile_sp", label: "neither id nor name", args: () => ({}), code: "22004", parameter: "profile_id, profile_name", value: null },
    { fn: "sysmail_delete_profile_sp", label: "force_delete NULL", args: () => ({ profile_id: fixture.id, force_delete: null }), code: "22004", parameter: "force_delete", value: null },
    { fn: "sysmail_delete_profile_sp", label: "id and name of different profiles", args: () => ({ profile_id: fixture.id, profile_name: other.name }), code: "22023", parameter: "profile_name", value: () => other.name, problem: "not profile_id" },
    { fn: "sysmail_help_profile_sp", label: "an unknown id", args: () => ({ profile_id: 999999 }), code: "42704", parameter: "profile_id", value: "999999" },
  ];

  it.each(cases)("$fn refuses $label", async ({ fn, ...bad }) => {
    await expectBadCall(fn, bad);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("profile accounts", () => {
  type Named = { id: number; name: string };
  /** A row of sysmail_help_profileaccount_sp. */
  const linkRow = (profile: Named, account: Named, sequence_number: number) => ({
    profile_id: profile.id,
    profile_name: profile.name,
    account_id: account.id,
    account_name: account.name,
    sequence_number,
  });

  it("help lists a profile's accounts by sequence number, lowest first", async () => {
    const profile = await addProfile();
    const [a, b, c] = [await addAccount(), await addAccount(), await addAccount()] as const;
    // By names, by ids, and mixed: every way of addressing them works.
    await call("sysmail_add_profileaccount_sp", {
      profile_name: profile.name,
      account_name: a.name,
      sequence_number: 3,
    });
    await link(profile.id, b.id, 1);
    await call("sysmail_add_profileaccount_sp", {
      profile_id: profile.id,
      account_name: c.name,
      sequence_number: 2,
    });
    expect(await call("sysmail_help_profileaccount_sp", { profile_name: profile.name })).toEqual([
      linkRow(profile, b, 1),
      linkRow(profile, c, 2),
      linkRow(profile, a, 3),
    ]);
    const modifiedBy = await su(
      "SELECT DISTINCT last_mod_user FROM dbmail.profile_accounts WHERE profile_id = $1",
      [profile.id],
    );
    expect(modifiedBy).toEqual([{ last_mod_user: adminRole.name }]);
  });

  it("help by account lists the profiles it belongs to; by both, that one link", async () => {
    const [p1, p2] = [await addProfile(), await addProfile()] as const;
    const account = await addAccount();
    await link(p2.id, account.id, 5);
    await link(p1.id, account.id, 7);
    const byAccount = await call("sysmail_help_profileaccount_sp", { account_name: account.name });
    expect(byAccount.map((r) => [r.profile_id, r.sequence_number])).toEqual([
      [p1.id, 7],
      [p2.id, 5],
    ]);
    expect(
      await call("sysmail_help_profileaccount_sp", { profile_id: p2.id, account_id: account.id }),
    ).toEqual([linkRow(p2, account, 5)]);
    const all = await call("sysmail_help_profileaccount_sp");
    expect(all.filter((r) => r.account_id === account.id)).toHaveLength(2);
  });

  it("update changes the sequence number and so the order", async () => {
    const profile = await addProfile();
    const [a, b] = [await addAccount(), await addAccount()] as const;
    await link(profile.id, a.id, 1);
    await link(profile.id, b.id, 2);
    await call("sysmail_update_profileaccount_sp", {
      profile_name: profile.name,
      account_name: a.name,
      sequence_number: 9,
    });
    const rows = await call("sysmail_help_profileaccount_sp", { profile_id: profile.id });
    expect(rows.map((r) => [r.account_id, r.sequence_number])).toEqual([
      [b.id, 2],
      [a.id, 9],
    ]);
  });

  it("delete removes one link, every account of a profile, or an account from every profile", async () => {
    const [p1, p2] = [await addProfile(), await addProfile()] as const;
    const [a, b, c] = [await addAccount(), await addAccount(), await addAccount()] as const;
    for (const [p, acc, seq] of [
      [p1, a, 1],
      [p1, b, 2],
      [p2, a, 1],
      [p2, c, 2],
    ] as const) {
      await link(p.id, acc.id, seq);
    }
    const links = async () =>
      (
        await su(
          "SELECT profile_id, account_id FROM dbmail.profile_accounts WHERE profile_id IN ($1, $2) ORDER BY 1, 2",
          [p1.id, p2.id],
        )
      ).map((r) => [r.profile_id, r.account_id]);
    await call("sysmail_delete_profileaccount_sp", { profile_name: p1.name, account_name: b.name });
    expect(await links()).toEqual([
      [p1.id, a.id],
      [p2.id, a.id],
      [p2.id, c.id],
    ]);
    await call("sysmail_delete_profileaccount_sp", { account_id: a.id });
    expect(await links()).toEqual([[p2.id, c.id]]);
    await call("sysmail_delete_profileaccount_sp", { profile_id: p2.id });
    expect(await links()).toEqual([]);
  });

  describe("bad input", () => {
    let profile: { id: number; name: string };
    let linked: { id: number; name: string };
    let unlinked: { id: number; name: string };

    beforeAll(async () => {
      profile = await addProfile();
      linked = await addAccount();
      unlinked = await addAccount();
      await link(profile.id, linked.id, 1);
    });

    // biome-ignore format: a table reads best one case per line
    const cases: (BadCall & { fn: string })[] = [
      { fn: "sysmail_add_profileaccount_sp", label: "sequence_number NULL", args: () => ({ profile_id: profile.id, account_id: unlinked.id }), code: "22004", parameter: "sequence_number", value: null },
      { fn: "sysmail_add_profileaccount_sp", label: "an unknown profile", args: () => ({ profile_name: "ghost", account_id: unlinked.id, sequence_number: 1 }), code: "42704", parameter: "profile_name", value: "ghost" },
      { fn: "sysmail_add_profileaccount_sp", label: "an unknown account", args: () => ({ profile_id: profile.id, account_name: "ghost", sequence_number: 1 }), code: "42704", parameter: "account_name", value: "ghost" },
      { fn: "sysmail_add_profileaccount_sp", label: "no profile", args: () => ({ account_id: unlinked.id, sequence_number: 1 }), code: "22004", parameter: "profile_id, profile_name", value: null },
      { fn: "sysmail_add_profileaccount_sp", label: "no account", args: () => ({ profile_id: profile.id, sequence_number: 1 }), code: "22004", parameter: "account_id, account_name", value: null },
      { fn: "sysmail_add_profileaccount_sp", label: "an account already in the profile", args: () => ({ profile_id: profile.id, account_id: linked.id, sequence_number: 2 }), code: "42710", parameter: "account_id", value: () => String(linked.id), problem: "already in profile" },
      { fn: "sysmail_update_profileaccount_sp", label: "sequence_number NULL", args: () => ({ profile_id: profile.id, account_id: linked.id }), code: "22004", parameter: "sequence_number", value: null },
      { fn: "sysmail_update_profileaccount_sp", label: "an account not in the profile", args: () => ({ profile_id: profile.id, account_id: unlinked.id, sequence_number: 3 }), code: "42704", parameter: "account_id", value: () => String(unlinked.id), problem: "not in profile" },
      { fn: "sysmail_delete_profileaccount_sp", label: "neither profile nor account", args: () => ({}), code: "22004", parameter: "profile_id, profile_name, account_id, account_name", value: null },
      { fn: "sysmail_delete_profileaccount_sp", label: "an account not in the profile", args: () => ({ profile_id: profile.id, account_id: unlinked.id }), code: "42704", parameter: "account_id", value: () => String(unlinked.id) },
      { fn: "sysmail_delete_profileaccount_sp", label: "an unknown profile", args: () => ({ profile_name: "ghost" }), code: "42704", parameter: "profile_name", value: "ghost" },
      { fn: "sysmail_help_profileaccount_sp", label: "an unknown account", args: () => ({ account_id: 999999 }), code: "42704", parameter: "account_id", value: "999999" },
    ];

    it.each(cases)("$fn refuses $label", async ({ fn, ...bad }) => {
      await expectBadCall(fn, bad);
    });

    it("a duplicate given by names is reported with the name the caller gave", async () => {
      await expectRefused(
        () =>
          call("sysmail_add_profileaccount_sp", {
            profile_name: profile.name,
            account_name: linked.name,
            sequence_number: 2,
          }),
        { code: "42710", parameter: "account_name", value: linked.name, problem: "already in profile" },
      );
    });
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("principal profiles", () => {
  let group: TestRole;
  let groupOid: number;

  beforeAll(async () => {
    group = await db.createRole("cfg_group", { login: false });
    groupOid = (await su("SELECT oid::integer AS oid FROM pg_roles WHERE rolname = $1", [group.name]))[0]
      ?.oid as number;
  });

  const grantsOf = (profileId: number) => call("sysmail_help_principalprofile_sp", { profile_id: profileId });

  it("grants public by principal_name 'public' (any case) or by principal_id 0", async () => {
    const [p1, p2] = [await addProfile(), await addProfile()] as const;
    await call("sysmail_add_principalprofile_sp", {
      principal_name: "PUBLIC",
      profile_name: p1.name,
      is_default: false,
    });
    await call("sysmail_add_principalprofile_sp", { principal_id: 0, profile_id: p2.id, is_default: false });
    expect(await grantsOf(p1.id)).toEqual([
      {
        principal_id: 0,
        principal_name: "public",
        profile_id: p1.id,
        profile_name: p1.name,
        is_default: false,
      },
    ]);
    expect(await grantsOf(p2.id)).toEqual([
      {
        principal_id: 0,
        principal_name: "public",
        profile_id: p2.id,
        profile_name: p2.name,
        is_default: false,
      },
    ]);
    const publicGrants = await call("sysmail_help_principalprofile_sp", { principal_name: "public" });
    expect(publicGrants.map((r) => r.profile_id)).toEqual(expect.arrayContaining([p1.id, p2.id]));
    expect(publicGrants.every((r) => r.principal_id === 0)).toBe(true);
  });

  it("grants a role by name; help shows its OID and name", async () => {
    const profile = await addProfile();
    await grant(group.name, profile.id, true);
    expect(await grantsOf(profile.id)).toEqual([
      {
        principal_id: groupOid,
        principal_name: group.name,
        profile_id: profile.id,
        profile_name: profile.name,
        is_default: true,
      },
    ]);
    expect(
      await call("sysmail_help_principalprofile_sp", { principal_id: groupOid, profile_name: profile.name }),
    ).toHaveLength(1);
    expect(
      await su("SELECT last_mod_user FROM dbmail.principal_profiles WHERE profile_id = $1", [profile.id]),
    ).toEqual([{ last_mod_user: adminRole.name }]);
  });

  it("a principal has one default: adding a second default clears the first", async () => {
    const [p1, p2] = [await addProfile(), await addProfile()] as const;
    const role = await db.createRole(unique("cfg_principal"), { login: false });
    await grant(role.name, p1.id, true);
    await grant(role.name, p2.id, true);
    const rows = await call("sysmail_help_principalprofile_sp", { principal_name: role.name });
    expect(rows.map((r) => [r.profile_id, r.is_default])).toEqual([
      [p1.id, false],
      [p2.id, true],
    ]);
  });

  it("update with is_default => true moves the default; false clears it", async () => {
    const [p1, p2] = [await addProfile(), await addProfile()] as const;
    const role = await db.createRole(unique("cfg_principal"), { login: false });
    await grant(role.name, p1.id, true);
    await grant(role.name, p2.id, false);
    await call("sysmail_update_principalprofile_sp", {
      principal_name: role.name,
      profile_name: p2.name,
      is_default: true,
    });
    const defaults = async () =>
      (await call("sysmail_help_principalprofile_sp", { principal_name: role.name })).map((r) => [
        r.profile_id,
        r.is_default,
      ]);
    expect(await defaults()).toEqual([
      [p1.id, false],
      [p2.id, true],
    ]);
    await call("sysmail_update_principalprofile_sp", {
      principal_name: role.name,
      profile_id: p2.id,
      is_default: false,
    });
    expect(await defaults()).toEqual([
      [p1.id, false],
      [p2.id, false],
    ]);
  });

  it("delete removes one grant, or every grant of a profile", async () => {
    const profile = await addProfile();
    const role = await db.createRole(unique("cfg_principal"), { login: false });
    await grant(role.name, profile.id, false);
    await grant("public", profile.id, false);
    await grant(group.name, profile.id, false);
    await call("sysmail_delete_principalprofile_sp", {
      principal_name: role.name,
      profile_name: profile.name,
    });
    expect((await grantsOf(profile.id)).map((r) => r.principal_name).sort()).toEqual(
      [group.name, "public"].sort(),
    );
    await call("sysmail_delete_principalprofile_sp", { profile_id: profile.id });
    expect(await grantsOf(profile.id)).toEqual([]);
  });

  it("sending without profile_name uses the public default, and the sender's own default over it", async () => {
    const [shared, own] = [await addProfile(), await addProfile()] as const;
    await call("sysmail_add_principalprofile_sp", {
      principal_id: 0,
      profile_id: shared.id,
      is_default: true,
    });
    const profileOf = async (id: number) =>
      (await su("SELECT profile_id FROM dbmail.mailitems WHERE mailitem_id = $1", [id]))[0]?.profile_id;
    expect(await profileOf(await send(null, user))).toBe(shared.id);
    await grant(userRole.name, own.id, true);
    expect(await profileOf(await send(null, user))).toBe(own.id);
  });

  describe("bad input", () => {
    let profile: { id: number; name: string };

    beforeAll(async () => {
      profile = await addProfile();
      await grant("public", profile.id, false);
    });

    // biome-ignore format: a table reads best one case per line
    const cases: (BadCall & { fn: string })[] = [
      { fn: "sysmail_add_principalprofile_sp", label: "an unknown role name", args: () => ({ principal_name: "no_such_role_x", profile_id: profile.id, is_default: false }), code: "42704", parameter: "principal_name", value: "no_such_role_x", problem: "no such role" },
      { fn: "sysmail_add_principalprofile_sp", label: "an unknown role OID", args: () => ({ principal_id: 4294967000, profile_id: profile.id, is_default: false }), code: "42704", parameter: "principal_id", value: "4294967000" },
      { fn: "sysmail_add_principalprofile_sp", label: "is_default NULL", args: () => ({ principal_name: group.name, profile_id: profile.id }), code: "22004", parameter: "is_default", value: null },
      { fn: "sysmail_add_principalprofile_sp", label: "no principal", args: () => ({ profile_id: profile.id, is_default: false }), code: "22004", parameter: "principal_id, principal_name", value: null },
      { fn: "sysmail_add_principalprofile_sp", label: "no profile", args: () => ({ principal_name: "public", is_default: false }), code: "22004", parameter: "profile_id, profile_name", value: null },
      { fn: "sysmail_add_principalprofile_sp", label: "an unknown profile", args: () => ({ principal_name: "public", profile_name: "ghost", is_default: false }), code: "42704", parameter: "profile_name", value: "ghost" },
      { fn: "sysmail_add_principalprofile_sp", label: "a grant that exists", args: () => ({ principal_id: 0, profile_id: profile.id, is_default: true }), code: "42710", parameter: "principal_name", value: "public", problem: "already has profile" },
      { fn: "sysmail_add_principalprofile_sp", label: "principal_name and principal_id that disagree", args: () => ({ principal_name: "public", principal_id: 10, profile_id: profile.id, is_default: false }), code: "22023", parameter: "principal_name", value: "public", problem: "not principal_id 10" },
      { fn: "sysmail_update_principalprofile_sp", label: "a grant that does not exist", args: () => ({ principal_name: group.name, profile_id: profile.id, is_default: true }), code: "42704", parameter: "principal_name", value: () => group.name, problem: "has no grant" },
      { fn: "sysmail_update_principalprofile_sp", label: "is_default NULL", args: () => ({ principal_name: "public", profile_id: profile.id }), code: "22004", parameter: "is_default", value: null },
      { fn: "sysmail_delete_principalprofile_sp", label: "neither principal nor profile", args: () => ({}), code: "22004", parameter: "principal_id, principal_name, profile_id, profile_name", value: null },
      { fn: "sysmail_delete_principalprofile_sp", label: "a grant that does not exist", args: () => ({ principal_name: group.name, profile_id: profile.id }), code: "42704", parameter: "principal_name", value: () => group.name },
      { fn: "sysmail_help_principalprofile_sp", label: "an unknown role", args: () => ({ principal_name: "no_such_role_x" }), code: "42704", parameter: "principal_name", value: "no_such_role_x" },
    ];

    it.each(cases)("$fn refuses $label", async ({ fn, ...bad }) => {
      await expectBadCall(fn, bad);
    });

    it("delete by an OID with no grant names principal_id and that OID", async () => {
      await expectRefused(
        () =>
          call("sysmail_delete_principalprofile_sp", { principal_id: 4294967000, profile_id: profile.id }),
        { code: "42704", parameter: "principal_id", value: "4294967000", problem: "has no grant" },
      );
    });
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("settings", () => {
  let defaults: Row[];

  beforeAll(async () => {
    defaults = await su("SELECT paramname, paramvalue, description FROM dbmail.settings");
  });

  afterEach(async () => {
    for (const row of defaults) {
      await su("UPDATE dbmail.settings SET paramvalue = $2, description = $3 WHERE paramname = $1", [
        row.paramname,
        row.paramvalue,
        row.description,
      ]);
    }
  });

  const settingValue = async (name: string) =>
    (await call("sysmail_help_configure_sp", { parameter_name: name }))[0]?.paramvalue;

  it("help_configure_sp lists the defaults of SPEC's table, by name", async () => {
    const rows = await call("sysmail_help_configure_sp");
    expect(rows.map((r) => [r.paramname, r.paramvalue])).toEqual([
      ["AccountRetryAttempts", "1"],
      ["AccountRetryDelay", "60"],
      ["AdminRoles", ""],
      ["AttachmentDirectories", ""],
      ["DatabaseMailExeMinimumLifeTime", "600"],
      ["DefaultAttachmentEncoding", "MIME"],
      ["LoggingLevel", "2"],
      ["MaxFileSize", "1000000"],
      ["MaxMailSize", "10485760"],
      ["MaxMailsPerUserPerDay", "0"],
      ["MaxRecipientsPerMail", "100"],
      ["ProhibitedExtensions", "exe,dll,vbs,js"],
      ["SenderRoles", ""],
      ["UnknownOutcomePolicy", "retry"],
    ]);
    expect(rows.every((r) => typeof r.description === "string" && r.description !== "")).toBe(true);
  });

  it("help_configure_sp finds one setting by name in any case", async () => {
    expect(await call("sysmail_help_configure_sp", { parameter_name: "maxfilesize" })).toEqual([
      { paramname: "MaxFileSize", paramvalue: "1000000", description: expect.any(String) },
    ]);
  });

  it("configure stores the value under the canonical name and records who changed it", async () => {
    await call("sysmail_configure_sp", { parameter_name: "accountretryattempts", parameter_value: " 3 " });
    expect(
      await su(
        "SELECT paramvalue, last_mod_user FROM dbmail.settings WHERE paramname = 'AccountRetryAttempts'",
      ),
    ).toEqual([{ paramvalue: "3", last_mod_user: adminRole.name }]);
    expect(await su("SELECT count(*)::int AS n FROM dbmail.settings")).toEqual([{ n: 14 }]);
  });

  it("a NULL description keeps the old one; a new one replaces it", async () => {
    const before = (await call("sysmail_help_configure_sp", { parameter_name: "MaxFileSize" }))[0]
      ?.description;
    await call("sysmail_configure_sp", { parameter_name: "MaxFileSize", parameter_value: "2000000" });
    expect(await call("sysmail_help_configure_sp", { parameter_name: "MaxFileSize" })).toEqual([
      { paramname: "MaxFileSize", paramvalue: "2000000", description: before },
    ]);
    await call("sysmail_configure_sp", {
      parameter_name: "MaxFileSize",
      parameter_value: "5",
      description: "tiny",
    });
    expect(await call("sysmail_help_configure_sp", { parameter_name: "MaxFileSize" })).toEqual([
      { paramname: "MaxFileSize", paramvalue: "5", description: "tiny" },
    ]);
  });

  it.each([
    { name: "ProhibitedExtensions", given: " .EXE, Dll ", stored: "exe,dll" },
    { name: "ProhibitedExtensions", given: "", stored: "" },
    { name: "DefaultAttachmentEncoding", given: "mime", stored: "MIME" },
    { name: "AttachmentDirectories", given: " /srv/mail/ ; /var/reports ", stored: "/srv/mail;/var/reports" },
    { name: "MaxFileSize", given: "007", stored: "7" },
    { name: "MaxFileSize", given: "1073741823", stored: "1073741823" },
    { name: "LoggingLevel", given: "3", stored: "3" },
    { name: "AccountRetryAttempts", given: "0", stored: "0" },
  ])("$name $given is stored as $stored", async ({ name, given, stored }) => {
    await call("sysmail_configure_sp", { parameter_name: name, parameter_value: given });
    expect(await settingValue(name)).toBe(stored);
  });

  it("AttachmentDirectories '/' is kept as the root or refused, never silently emptied", async () => {
    const error = await call("sysmail_configure_sp", {
      parameter_name: "AttachmentDirectories",
      parameter_value: "/",
    }).then(
      () => null,
      (e: { code: string }) => e,
    );
    if (error) expect(error.code).toBe("22023");
    else expect(await settingValue("AttachmentDirectories")).toBe("/");
  });

  // biome-ignore format: a table reads best one case per line
  const cases: BadCall[] = [
    { label: "an unknown name", args: () => ({ parameter_name: "MaxFileSizes", parameter_value: "1" }), code: "42704", parameter: "parameter_name", value: "MaxFileSizes", problem: "no such setting" },
    { label: "a NULL name", args: () => ({ parameter_value: "1" }), code: "22004", parameter: "parameter_name", value: null },
    { label: "a NULL value", args: () => ({ parameter_name: "LoggingLevel" }), code: "22004", parameter: "parameter_value", value: null, problem: "LoggingLevel" },
    { label: "LoggingLevel 0", args: () => ({ parameter_name: "LoggingLevel", parameter_value: "0" }), code: "22023", parameter: "parameter_value", value: "0", problem: "LoggingLevel must be a whole number from 1 to 3" },
    { label: "LoggingLevel 4", args: () => ({ parameter_name: "LoggingLevel", parameter_value: "4" }), code: "22023", parameter: "parameter_value", value: "4", problem: "from 1 to 3" },
    { label: "MaxFileSize abc", args: () => ({ parameter_name: "MaxFileSize", parameter_value: "abc" }), code: "22023", parameter: "parameter_value", value: "abc", problem: "MaxFileSize" },
    { label: "MaxFileSize -1", args: () => ({ parameter_name: "MaxFileSize", parameter_value: "-1" }), code: "22023", parameter: "parameter_value", value: "-1" },
    { label: "MaxFileSize 1.5", args: () => ({ parameter_name: "MaxFileSize", parameter_value: "1.5" }), code: "22023", parameter: "parameter_value", value: "1.5" },
    { label: "MaxFileSize ''", args: () => ({ parameter_name: "MaxFileSize", parameter_value: "" }), code: "22023", parameter: "parameter_value", value: "" },
    { label: "MaxFileSize above 1073741823", args: () => ({ parameter_name: "MaxFileSize", parameter_value: "1073741824" }), code: "22023", parameter: "parameter_value", value: "1073741824" },
    { label: "AccountRetryAttempts 101", args: () => ({ parameter_name: "AccountRetryAttempts", parameter_value: "101" }), code: "22023", parameter: "parameter_value", value: "101" },
    { label: "DatabaseMailExeMinimumLifeTime 0", args: () => ({ parameter_name: "DatabaseMailExeMinimumLifeTime", parameter_value: "0" }), code: "22023", parameter: "parameter_value", value: "0" },
    { label: "DefaultAttachmentEncoding UUENCODE", args: () => ({ parameter_name: "DefaultAttachmentEncoding", parameter_value: "UUENCODE" }), code: "22023", parameter: "parameter_value", value: "UUENCODE", problem: "only MIME" },
    { label: "an extension with a space", args: () => ({ parameter_name: "ProhibitedExtensions", parameter_value: "exe, bad ext" }), code: "22023", parameter: "parameter_value", value: "exe, bad ext", problem: "not a file extension" },
    { label: "a relative attachment directory", args: () => ({ parameter_name: "AttachmentDirectories", parameter_value: "relative/dir" }), code: "22023", parameter: "parameter_value", value: "relative/dir", problem: "absolute" },
    { label: "an attachment directory with ..", args: () => ({ parameter_name: "AttachmentDirectories", parameter_value: "/srv/../etc" }), code: "22023", parameter: "parameter_value", value: "/srv/../etc" },
    { label: "a second attachment directory ..", args: () => ({ parameter_name: "AttachmentDirectories", parameter_value: "/srv/mail;.." }), code: "22023", parameter: "parameter_value", value: "/srv/mail;.." },
  ];

  it.each(cases)("configure refuses $label", async (bad) => {
    await expectBadCall("sysmail_configure_sp", bad);
  });

  it("help_configure_sp refuses an unknown name", async () => {
    await expectRefused(() => call("sysmail_help_configure_sp", { parameter_name: "Nope" }), {
      code: "42704",
      parameter: "parameter_name",
      value: "Nope",
    });
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("start, stop and status", () => {
  afterEach(async () => {
    await su("UPDATE dbmail.system_state SET started = true");
    await su("UPDATE dbmail.settings SET paramvalue = '2' WHERE paramname = 'LoggingLevel'");
  });

  it("status is STARTED on a fresh install", async () => {
    expect(await scalar("sysmail_help_status_sp")).toBe("STARTED");
  });

  it("stop makes the status STOPPED and logs an information event naming the role", async () => {
    const logId = await lastLogId();
    await call("sysmail_stop_sp");
    expect(await scalar("sysmail_help_status_sp")).toBe("STOPPED");
    expect(await eventsAfter(logId)).toEqual([
      {
        event_type: "information",
        description: expect.stringMatching(new RegExp(`stopped by ${adminRole.name}`)),
        last_mod_user: adminRole.name,
      },
    ]);
    expect(await su("SELECT started, last_mod_user FROM dbmail.system_state")).toEqual([
      { started: false, last_mod_user: adminRole.name },
    ]);
  });

  it("start makes the status STARTED again and logs it", async () => {
    await call("sysmail_stop_sp");
    const logId = await lastLogId();
    await call("sysmail_start_sp");
    expect(await scalar("sysmail_help_status_sp")).toBe("STARTED");
    expect(await eventsAfter(logId)).toEqual([
      {
        event_type: "information",
        description: expect.stringMatching(new RegExp(`started by ${adminRole.name}`)),
        last_mod_user: adminRole.name,
      },
    ]);
  });

  it("mail is still accepted and queued while stopped", async () => {
    const profile = await addProfile();
    await call("sysmail_stop_sp");
    const id = await send(profile.name);
    expect(await su("SELECT sent_status FROM dbmail.mailitems WHERE mailitem_id = $1", [id])).toEqual([
      { sent_status: "unsent" },
    ]);
    expect(await scalar("sysmail_help_status_sp")).toBe("STOPPED");
  });

  it("with LoggingLevel 1 a stop is not logged", async () => {
    await call("sysmail_configure_sp", { parameter_name: "LoggingLevel", parameter_value: "1" });
    const logId = await lastLogId();
    await call("sysmail_stop_sp");
    expect(await scalar("sysmail_help_status_sp")).toBe("STOPPED");
    expect(await eventsAfter(logId)).toEqual([]);
  });
});

describe("help_queue", () => {
  afterEach(async () => {
    await su("UPDATE dbmail.system_state SET started = true");
    await su("DELETE FROM dbmail.senders");
  });

  const queue = async (args: Args = {}) => {
    const rows = await call("sysmail_help_queue_sp", args);
    expect(rows).toHaveLength(1);
    return rows[0] as Row;
  };

  it("returns one mail row with SQL Server's columns and the live-sender ones", async () => {
    const { rows, fields } = await admin.query("SELECT * FROM dbmail.sysmail_help_queue_sp()");
    expect(fields.map((f) => f.name)).toEqual([
      "queue_type",
      "length",
      "state",
      "last_empty_rowset_time",
      "last_activated_time",
      "live_senders",
      "senders",
      "oldest_unsent_date",
      "stalled",
    ]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ queue_type: "mail", live_senders: 0, senders: [] });
  });

  it("length counts mail waiting to be sent, not sent or failed mail", async () => {
    const profile = await addProfile();
    const waiting = async () =>
      (
        await su(`SELECT count(*)::int AS length, min(send_request_date) AS oldest_unsent_date
                  FROM dbmail.mailitems WHERE sent_status IN ('unsent', 'sending', 'retrying')`)
      )[0] as Row;
    const before = await waiting();
    expect({ ...(await queue()), length: Number((await queue()).length) }).toMatchObject(before);
    const [a, b, c] = [await send(profile.name), await send(profile.name), await send(profile.name)] as const;
    expect(Number((await queue()).length)).toBe(Number(before.length) + 3);
    await setStatus(a, "sent");
    await setStatus(b, "failed");
    await setStatus(c, "retrying");
    expect(Number((await queue()).length)).toBe(Number(before.length) + 1);
  });

  it("with due mail and no live sender: INACTIVE and stalled; a live sender makes it RECEIVES_OCCURRING", async () => {
    const profile = await addProfile();
    await send(profile.name);
    expect(await queue()).toMatchObject({ state: "INACTIVE", live_senders: 0, stalled: true });
    await su(
      `INSERT INTO dbmail.senders (sender_id, hostname, process_id, version, last_empty_claim_at, last_heartbeat)
       VALUES ('live-1', 'host-a', 4242, '0.1.0', now(), now()),
              ('stale-1', 'host-b', 4343, '0.1.0', now(), now() - interval '5 minutes')`,
    );
    const row = await queue();
    expect(row).toMatchObject({ state: "RECEIVES_OCCURRING", live_senders: 1, stalled: false });
    expect(row.senders).toEqual([
      expect.objectContaining({ sender_id: "live-1", hostname: "host-a", process_id: 4242 }),
    ]);
    expect(row.last_empty_rowset_time).toBeInstanceOf(Date);
    expect(row.last_activated_time).toBeInstanceOf(Date);
  });

  it("state is STOPPED after stop, and stopped mail is not stalled", async () => {
    const profile = await addProfile();
    await call("sysmail_stop_sp");
    await send(profile.name);
    expect(await queue()).toMatchObject({ state: "STOPPED", stalled: false });
    expect(Number((await queue()).length)).toBeGreaterThan(0);
  });

  it("accepts queue_type 'mail' in any case and refuses others", async () => {
    expect((await queue({ queue_type: "MAIL" })).queue_type).toBe("mail");
    await expectRefused(() => call("sysmail_help_queue_sp", { queue_type: "status" }), {
      code: "22023",
      parameter: "queue_type",
      value: "status",
    });
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("delete_mailitems_sp", () => {
  let profile: { id: number; name: string };

  beforeAll(async () => {
    profile = await addProfile();
    await grant(userRole.name, profile.id, false);
  });

  const exists = async (ids: number[]) =>
    (await su("SELECT mailitem_id FROM dbmail.mailitems WHERE mailitem_id = ANY($1) ORDER BY 1", [ids])).map(
      (r) => Number(r.mailitem_id),
    );
  const count = async (where: string) =>
    Number((await su(`SELECT count(*) AS n FROM dbmail.mailitems WHERE ${where}`))[0]?.n);

  it("by status deletes every item in that status and returns the count", async () => {
    const [a, b, c] = [await send(profile.name), await send(profile.name), await send(profile.name)] as const;
    await setStatus(a, "failed");
    await setStatus(b, "failed");
    const failed = await count("sent_status = 'failed'");
    expect(failed).toBeGreaterThanOrEqual(2);
    expect(Number(await scalar("sysmail_delete_mailitems_sp", { sent_status: "FAILED" }))).toBe(failed);
    expect(await count("sent_status = 'failed'")).toBe(0);
    expect(await exists([a, b, c])).toEqual([c]);
  });

  it("by date deletes items requested before it", async () => {
    const [a, b, c] = [await send(profile.name), await send(profile.name), await send(profile.name)] as const;
    await su("UPDATE dbmail.mailitems SET send_request_date = '1990-06-01' WHERE mailitem_id = ANY($1)", [
      [a, b],
    ]);
    const deleted = await scalar("sysmail_delete_mailitems_sp", {
      sent_before: new Date("1991-01-01T00:00:00Z"),
    });
    expect(Number(deleted)).toBe(2);
    expect(await exists([a, b, c])).toEqual([c]);
  });

  it("by status and date deletes only items matching both", async () => {
    const [a, b, c] = [await send(profile.name), await send(profile.name), await send(profile.name)] as const;
    await su("UPDATE dbmail.mailitems SET send_request_date = '2005-06-01' WHERE mailitem_id = ANY($1)", [
      [a, b],
    ]);
    await setStatus(a, "sent");
    await setStatus(c, "sent");
    const deleted = await scalar("sysmail_delete_mailitems_sp", {
      sent_before: new Date("2006-01-01T00:00:00Z"),
      sent_status: "sent",
    });
    expect(Number(deleted)).toBe(1);
    expect(await exists([a, b, c])).toEqual([b, c]);
  });

  it("returns 0 when nothing matches, and logs who deleted how many", async () => {
    const logId = await lastLogId();
    expect(
      Number(await scalar("sysmail_delete_mailitems_sp", { sent_before: new Date("1970-01-02T00:00:00Z") })),
    ).toBe(0);
    expect(await eventsAfter(logId)).toEqual([
      {
        event_type: "information",
        description: expect.stringMatching(new RegExp(`${adminRole.name}.*\\b0 items deleted`)),
        last_mod_user: adminRole.name,
      },
    ]);
  });

  it("deletes the items' attachments with them", async () => {
    const id = await send(profile.name);
    await su(
      `INSERT INTO dbmail.attachments (mailitem_id, filename, filesize, attachment, last_mod_user)
       VALUES ($1, 'a.txt', 1, 'x', 'postgres')`,
      [id],
    );
    await setStatus(id, "sent");
    await scalar("sysmail_delete_mailitems_sp", { sent_status: "sent" });
    expect(await su("SELECT * FROM dbmail.attachments WHERE mailitem_id = $1", [id])).toEqual([]);
  });

  it("a dbmail_user deletes only its own items", async () => {
    const mine = [await send(profile.name, user), await send(profile.name, user)];
    const theirs = await send(profile.name);
    const own = Number(
      (
        await su(
          "SELECT count(*) AS n FROM dbmail.mailitems WHERE sent_status = 'unsent' AND send_request_user = $1",
          [userRole.name],
        )
      )[0]?.n,
    );
    expect(own).toBeGreaterThanOrEqual(2);
    const deleted = await scalar("sysmail_delete_mailitems_sp", { sent_status: "unsent" }, user);
    expect(Number(deleted)).toBe(own);
    expect(await exists([...mine, theirs])).toEqual([theirs]);
  });

  // biome-ignore format: a table reads best one case per line
  const cases: BadCall[] = [
    { label: "neither argument", args: () => ({}), code: "22004", parameter: "sent_before, sent_status", value: null },
    { label: "an unknown sent_status", args: () => ({ sent_status: "done" }), code: "22023", parameter: "sent_status", value: "done", problem: "must be unsent, sending, retrying, sent or failed" },
    { label: "an empty sent_status", args: () => ({ sent_status: "" }), code: "22023", parameter: "sent_status", value: "" },
  ];

  it.each(cases)("refuses $label", async (bad) => {
    await send(profile.name);
    await expectBadCall("sysmail_delete_mailitems_sp", bad);
  });
});

describe("delete_log_sp", () => {
  const addEvents = async (events: [type: string, date: string | null][]) => {
    const ids: number[] = [];
    for (const [type, date] of events) {
      const rows = await su(
        `INSERT INTO dbmail.event_log (event_type, description, log_date, last_mod_user)
         VALUES ($1, 'test event', COALESCE($2::timestamptz, clock_timestamp()), 'postgres') RETURNING log_id`,
        [type, date],
      );
      ids.push(Number(rows[0]?.log_id));
    }
    return ids;
  };
  const existing = async (ids: number[]) =>
    (await su("SELECT log_id FROM dbmail.event_log WHERE log_id = ANY($1) ORDER BY 1", [ids])).map((r) =>
      Number(r.log_id),
    );
  const countOf = async (type: string) =>
    Number((await su("SELECT count(*) AS n FROM dbmail.event_log WHERE event_type = $1", [type]))[0]?.n);

  it("by event_type deletes every event of that type and returns the count", async () => {
    const ids = await addEvents([
      ["error", null],
      ["error", null],
      ["warning", null],
    ]);
    const errors = await countOf("error");
    const warnings = await countOf("warning");
    expect(Number(await scalar("sysmail_delete_log_sp", { event_type: " Error " }))).toBe(errors);
    expect(await countOf("error")).toBe(0);
    expect(await countOf("warning")).toBe(warnings);
    expect(await existing(ids)).toEqual([ids[2]]);
  });

  it("by date, and by date and type together", async () => {
    const ids = await addEvents([
      ["information", "1990-01-01"],
      ["success", "1990-01-01"],
      ["error", "1995-01-01"],
      ["information", "1995-01-01"],
      ["error", null],
    ]);
    expect(
      Number(await scalar("sysmail_delete_log_sp", { logged_before: new Date("1991-01-01T00:00:00Z") })),
    ).toBe(2);
    const deleted = await scalar("sysmail_delete_log_sp", {
      logged_before: new Date("1996-01-01T00:00:00Z"),
      event_type: "error",
    });
    expect(Number(deleted)).toBe(1);
    expect(await existing(ids)).toEqual([ids[3], ids[4]]);
  });

  // biome-ignore format: a table reads best one case per line
  const cases: BadCall[] = [
    { label: "no arguments (it would wipe the log)", args: () => ({}), code: "22004", parameter: "logged_before, event_type", value: null },
    { label: "an unknown event_type", args: () => ({ event_type: "debug" }), code: "22023", parameter: "event_type", value: "debug", problem: "must be success, information, warning or error" },
  ];

  it.each(cases)("refuses $label", async (bad) => {
    await addEvents([["information", null]]);
    await expectBadCall("sysmail_delete_log_sp", bad);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe("privileges", () => {
  it.each([
    ["sysmail_add_profile_sp", { profile_name: "user_profile" }],
    ["sysmail_help_account_sp", {}],
    ["sysmail_configure_sp", { parameter_name: "LoggingLevel", parameter_value: "3" }],
    ["sysmail_stop_sp", {}],
    ["sysmail_delete_log_sp", { event_type: "error" }],
    ["sysmail_help_queue_sp", {}],
  ] as [string, Args][])("a dbmail_user may not call %s", async (fn, args) => {
    const before = await snapshot();
    expect((await errorOf(call(fn, args, user))).code).toBe("42501");
    expect(await snapshot()).toEqual(before);
  });

  it("a superuser may configure too", async () => {
    const name = unique("su_profile");
    const id = await scalar("sysmail_add_profile_sp", { profile_name: name }, db);
    expect(await call("sysmail_help_profile_sp", { profile_id: id })).toEqual([
      { profile_id: id, name, description: null },
    ]);
  });
});
