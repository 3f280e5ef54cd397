// dbmail.sp_send_dbmail: validation, queuing, profiles, idempotency, scheduling, transactions and NOTIFY
// (SPEC.md sections 3, 5 and 9). Mail is sent as login roles that are members of dbmail_user; the queue is
// inspected as the superuser.
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, TestDatabase, type TestRole } from "../../../test/support/database.js";

/** A literal SQL expression for an argument, instead of a bound parameter. */
class Raw {
  constructor(readonly sql: string) {}
}

/** Arguments of sp_send_dbmail: undefined leaves the parameter out (its default), null passes NULL. */
type Args = Record<string, unknown>;

interface Address {
  name: string | null;
  address: string;
}

interface MailItem {
  mailitem_id: string;
  profile_id: number;
  recipients: string | null;
  copy_recipients: string | null;
  blind_copy_recipients: string | null;
  envelope: { to: Address[]; cc: Address[]; bcc: Address[] };
  subject: string;
  body: string | null;
  body_format: string;
  importance: string;
  sensitivity: string;
  execute_query_database: string | null;
  query_result_width: number;
  query_result_separator: string;
  query_result_no_padding: boolean;
  query_no_truncate: boolean;
  query_result_format: string;
  from_address: string | null;
  reply_to: string | null;
  headers: Record<string, string> | null;
  send_at: Date | null;
  idempotency_key: string | null;
  message_id: string;
  send_request_date: Date;
  send_request_user: string;
  last_mod_user: string;
  sent_status: string;
  send_attempts: number;
  next_attempt_at: Date;
}

const casts: Record<string, string> = { headers: "::jsonb", send_at: "::timestamptz" };

/** `SELECT dbmail.sp_send_dbmail(name => $1, ...)` in named notation. */
function sendCall(args: Args, fn = "dbmail.sp_send_dbmail"): { text: string; values: unknown[] } {
  const parts: string[] = [];
  const values: unknown[] = [];
  for (const [name, value] of Object.entries(args)) {
    if (value === undefined) continue;
    if (value instanceof Raw) {
      parts.push(`${name} => ${value.sql}`);
      continue;
    }
    // jsonb arguments travel as JSON text (pg would turn a JS array into a PostgreSQL array).
    values.push(
      name === "headers" && value !== null && typeof value !== "string" ? JSON.stringify(value) : value,
    );
    parts.push(`${name} => $${values.length}${casts[name] ?? ""}`);
  }
  return { text: `SELECT ${fn}(${parts.join(", ")}) AS id`, values };
}

/** How dbmail.show_value shows a value in an error message. */
function shown(value: string | null): string {
  if (value === null) return "NULL";
  const short = value.length > 200 ? `${value.slice(0, 200)}…` : value;
  return `"${short.replace(/\r/g, "\\r").replace(/\n/g, "\\n").replace(/\t/g, "\\t")}"`;
}

function first<T>(rows: T[]): T {
  const row = rows[0];
  if (row === undefined) throw new Error("expected a row");
  return row;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let db: TestDatabase;
let aliceRole: TestRole;
let bobRole: TestRole;
let carolRole: TestRole;
let bossRole: TestRole;
let outsiderRole: TestRole;
let sendersGroup: TestRole;
let alice: pg.Client;
let bob: pg.Client;
let carol: pg.Client;
let boss: pg.Client;
let mainProfileId: number;
let installationHex: string;

/** A message that passes every check: tests override what they are about. */
const base: Args = { profile_name: "Main", recipients: "to@example.org", subject: "Test", body: "Body" };
const message = (overrides: Args = {}): Args => ({ ...base, ...overrides });

async function send(args: Args, client: pg.Client = alice): Promise<string> {
  const { text, values } = sendCall(args);
  const { rows } = await client.query<{ id: string }>(text, values);
  return first(rows).id;
}

async function queued(): Promise<number> {
  const { rows } = await db.query<{ n: number }>("SELECT count(*)::integer AS n FROM dbmail.mailitems");
  return first(rows).n;
}

async function item(id: string): Promise<MailItem> {
  const { rows } = await db.query<MailItem>("SELECT * FROM dbmail.mailitems WHERE mailitem_id = $1", [id]);
  return first(rows);
}

async function sendAndRead(args: Args, client: pg.Client = alice): Promise<MailItem> {
  return item(await send(args, client));
}

/** Sends expecting an error; asserts that nothing was queued, and returns the error. */
async function refused(args: Args, client: pg.Client = alice): Promise<{ code: string; message: string }> {
  const before = await queued();
  const error = await errorOf(send(args, client));
  expect(await queued()).toBe(before);
  return error;
}

/** The error reads `<parameter>: <value>: <problem>` with the given SQLSTATE. */
function expectError(
  error: { code: string; message: string },
  code: string,
  parameter: string,
  value: string | null,
  problem: string,
): void {
  expect(error.code).toBe(code);
  expect(error.message).toBe(`${parameter}: ${shown(value)}: ${problem}`);
}

beforeAll(async () => {
  db = await TestDatabase.create();
  aliceRole = await db.createRole("alice", { memberOf: ["dbmail_user"] });
  bobRole = await db.createRole("bob", { memberOf: ["dbmail_user"] });
  sendersGroup = await db.createRole("senders", { login: false });
  carolRole = await db.createRole("carol", { memberOf: ["dbmail_user", sendersGroup.name] });
  bossRole = await db.createRole("boss", { memberOf: ["dbmail_admin"] });
  outsiderRole = await db.createRole("outsider");

  await db.query(
    "SELECT dbmail.sysmail_add_account_sp(account_name => 'main_acct', email_address => 'mailer@example.com', mailserver_name => 'localhost')",
  );
  const { rows } = await db.query<{ id: number }>(
    "SELECT dbmail.sysmail_add_profile_sp(profile_name => 'Main') AS id",
  );
  mainProfileId = first(rows).id;
  await db.query(
    "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'Main', account_name => 'main_acct', sequence_number => 1)",
  );
  await db.query(
    "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'Main', is_default => false)",
  );
  // Private: no grants at all (admins only).
  await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'Secret')");
  await db.query(
    "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'Secret', account_name => 'main_acct', sequence_number => 1)",
  );
  // Granted to a group role only.
  await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'GroupOnly')");
  await db.query(
    "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'GroupOnly', account_name => 'main_acct', sequence_number => 1)",
  );
  await db.query(
    "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => $1, profile_name => 'GroupOnly', is_default => false)",
    [sendersGroup.name],
  );
  // Granted to bob himself.
  await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'BobOnly')");
  await db.query(
    "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'BobOnly', account_name => 'main_acct', sequence_number => 1)",
  );
  await db.query(
    "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => $1, profile_name => 'BobOnly', is_default => false)",
    [bobRole.name],
  );

  const state = await db.query<{ hex: string }>(
    "SELECT replace(installation_id::text, '-', '') AS hex FROM dbmail.system_state",
  );
  installationHex = first(state.rows).hex;

  alice = await db.connect(aliceRole);
  bob = await db.connect(bobRole);
  carol = await db.connect(carolRole);
  boss = await db.connect(bossRole);
});

afterAll(async () => {
  await db?.drop();
});

describe("a valid message", () => {
  it("returns the new mailitem_id and queues one unsent item owned by the caller", async () => {
    const before = await queued();
    const id = await send({
      profile_name: "Main",
      recipients: "to@example.org",
      copy_recipients: "cc@example.org",
      blind_copy_recipients: "bcc@example.org",
      subject: "Backup done",
      body: "All good.",
    });
    expect(id).toMatch(/^[1-9][0-9]*$/);
    expect(await queued()).toBe(before + 1);

    const { rows } = await alice.query("SELECT * FROM dbmail.sysmail_allitems WHERE mailitem_id = $1", [id]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      mailitem_id: id,
      profile_id: mainProfileId,
      recipients: "to@example.org",
      copy_recipients: "cc@example.org",
      blind_copy_recipients: "bcc@example.org",
      subject: "Backup done",
      body: "All good.",
      body_format: "TEXT",
      importance: "NORMAL",
      sensitivity: "NORMAL",
      sent_status: "unsent",
      send_request_user: aliceRole.name,
      last_mod_user: aliceRole.name,
      send_attempts: 0,
      query_result_format: "TEXT",
      from_address: null,
      reply_to: null,
      headers: null,
      send_at: null,
      idempotency_key: null,
    });
  });

  it("stores body_format, importance and sensitivity upper-case, whatever case they were given in", async () => {
    const stored = await sendAndRead(
      message({ body_format: "html", importance: "high", sensitivity: "Confidential" }),
    );
    expect(stored.body_format).toBe("HTML");
    expect(stored.importance).toBe("HIGH");
    expect(stored.sensitivity).toBe("CONFIDENTIAL");
  });

  it.each([
    ["body_format", "Text", "TEXT"],
    ["body_format", " HTML ", "HTML"],
    ["importance", "low", "LOW"],
    ["importance", "Normal", "NORMAL"],
    ["sensitivity", "personal", "PERSONAL"],
    ["sensitivity", "PRIVATE", "PRIVATE"],
    ["query_result_format", "csv", "CSV"],
    ["query_result_format", "Html", "HTML"],
    ["query_result_format", "json", "JSON"],
  ])("accepts %s %j and stores %j", async (parameter, given, stored) => {
    const row = await sendAndRead(message({ [parameter]: given }));
    expect(row[parameter as keyof MailItem]).toBe(stored);
  });

  it("treats body_format NULL as TEXT", async () => {
    expect((await sendAndRead(message({ body_format: null }))).body_format).toBe("TEXT");
  });

  it.each([
    ["NULL", null],
    ["empty", ""],
  ])("replaces a %s subject with 'PostgreSQL Message'", async (_label, subject) => {
    const stored = await sendAndRead(message({ subject }));
    expect(stored.subject).toBe("PostgreSQL Message");
    expect(stored.body).toBe("Body");
  });

  it("gives the item a Message-ID with the item id, the installation id and the account's domain", async () => {
    const id = await send(message());
    expect((await item(id)).message_id).toBe(`<dbmail.${id}.${installationHex}@example.com>`);
    expect(installationHex).toMatch(/^[0-9a-f]{32}$/);
  });

  it("takes the Message-ID's domain from from_address when one is given", async () => {
    const id = await send(message({ from_address: "Ops <ops@ops.example.net>" }));
    expect((await item(id)).message_id).toBe(`<dbmail.${id}.${installationHex}@ops.example.net>`);
  });

  it("stores the parsed envelope with display names", async () => {
    const stored = await sendAndRead(
      message({
        recipients: '"Doe, Jane" <jane@x.org>; John Smith <john@x.org>',
        copy_recipients: "<bare@x.org>",
        blind_copy_recipients: '"Jane \\"JJ\\" Doe" <jj@x.org>;plain@y.org',
      }),
    );
    expect(stored.envelope).toEqual({
      to: [
        { name: "Doe, Jane", address: "jane@x.org" },
        { name: "John Smith", address: "john@x.org" },
      ],
      cc: [{ name: null, address: "bare@x.org" }],
      bcc: [
        { name: 'Jane "JJ" Doe', address: "jj@x.org" },
        { name: null, address: "plain@y.org" },
      ],
    });
    expect(stored.recipients).toBe('"Doe, Jane" <jane@x.org>; John Smith <john@x.org>');
  });

  it("accepts a message with a subject only", async () => {
    const stored = await sendAndRead(message({ subject: "Only a subject", body: undefined }));
    expect(stored.subject).toBe("Only a subject");
    expect(stored.body).toBeNull();
  });

  it("accepts a message with a body only", async () => {
    const stored = await sendAndRead(message({ subject: undefined, body: "Only a body" }));
    expect(stored.subject).toBe("PostgreSQL Message");
    expect(stored.body).toBe("Only a body");
  });

  it("accepts Bcc-only mail", async () => {
    const stored = await sendAndRead(
      message({ recipients: undefined, blind_copy_recipients: "hidden@x.org" }),
    );
    expect(stored.recipients).toBeNull();
    expect(stored.copy_recipients).toBeNull();
    expect(stored.blind_copy_recipients).toBe("hidden@x.org");
    expect(stored.envelope).toEqual({ to: [], cc: [], bcc: [{ name: null, address: "hidden@x.org" }] });
  });

  it("shows the item to its sender but not to another user", async () => {
    const id = await send(message());
    const mine = await alice.query("SELECT mailitem_id FROM dbmail.sysmail_allitems WHERE mailitem_id = $1", [
      id,
    ]);
    const theirs = await bob.query("SELECT mailitem_id FROM dbmail.sysmail_allitems WHERE mailitem_id = $1", [
      id,
    ]);
    expect(mine.rows).toEqual([{ mailitem_id: id }]);
    expect(theirs.rows).toEqual([]);
  });

  it("records the sending role of each user", async () => {
    const stored = await sendAndRead(message(), bob);
    expect(stored.send_request_user).toBe(bobRole.name);
    expect(stored.last_mod_user).toBe(bobRole.name);
  });

  it("refuses a role that is not a member of dbmail_user", async () => {
    const outsider = await db.connect(outsiderRole);
    const before = await queued();
    const error = await errorOf(send(message(), outsider));
    expect(error.code).toBe("42501");
    expect(await queued()).toBe(before);
  });
});

describe("recipients", () => {
  it("splits on ';', ignoring spaces and a trailing ';'", async () => {
    const stored = await sendAndRead(message({ recipients: " a@x.org ;b@y.org;  ;c@z.org ; " }));
    expect(stored.envelope.to).toEqual([
      { name: null, address: "a@x.org" },
      { name: null, address: "b@y.org" },
      { name: null, address: "c@z.org" },
    ]);
  });

  it("refuses a comma outside quotes with SQL Server's advice", async () => {
    const error = await refused(message({ recipients: "a@x.org, b@y.org" }));
    expect(error.code).toBe("22023");
    expect(error.message).toBe(`recipients: "a@x.org, b@y.org": use ';' to separate addresses`);
  });

  it("refuses an unquoted display name with a comma", async () => {
    const error = await refused(message({ recipients: '"Ann" <ann@x.org>; Doe, Jane <jane@x.org>' }));
    expectError(
      error,
      "22023",
      "recipients",
      '"Ann" <ann@x.org>; Doe, Jane <jane@x.org>',
      "use ';' to separate addresses",
    );
  });

  it("accepts a comma and a ';' inside a quoted display name", async () => {
    const stored = await sendAndRead(
      message({ recipients: '"Doe, Jane" <jane@x.org>;"Smith; John" <john@x.org>' }),
    );
    expect(stored.envelope.to).toEqual([
      { name: "Doe, Jane", address: "jane@x.org" },
      { name: "Smith; John", address: "john@x.org" },
    ]);
  });

  it("refuses a double quote that is not closed", async () => {
    const error = await refused(message({ recipients: 'ok@x.org; "Doe, Jane <jane@x.org>' }));
    expectError(
      error,
      "22023",
      "recipients",
      'ok@x.org; "Doe, Jane <jane@x.org>',
      "a double quote is not closed",
    );
  });

  const domain243 = ["b", "c", "d", "e"].map((c) => c.repeat(60)).join(".");
  const tooLongLocal = `${"a".repeat(65)}@x.org`;
  const tooLongAddress = `${"f".repeat(11)}@${domain243}`;

  it.each([
    ["no @", "plainaddress", "not an e-mail address (no @)"],
    ["an empty local part", "@x.org", "not an e-mail address (nothing before the @)"],
    ["an empty domain", "jane@", "not an e-mail address (nothing after the @)"],
    ["two unquoted @", "a@b@x.org", "not a valid e-mail address (the part before the @)"],
    ["a space in the local part", "jane doe@x.org", "not a valid e-mail address (the part before the @)"],
    ["a space in the domain", "jane@x .org", "not a valid e-mail address (the domain)"],
    ["two dots in a row", "a..b@x.org", "not a valid e-mail address (the part before the @)"],
    ["a leading dot", ".a@x.org", "not a valid e-mail address (the part before the @)"],
    ["a trailing dot before the @", "a.@x.org", "not a valid e-mail address (the part before the @)"],
    ["a domain label starting with a hyphen", "a@-x.org", "not a valid e-mail address (the domain)"],
    ["a domain label ending with a hyphen", "a@x-.org", "not a valid e-mail address (the domain)"],
    ["an empty domain label", "a@x..org", "not a valid e-mail address (the domain)"],
    ["a domain starting with a dot", "a@.x.org", "not a valid e-mail address (the domain)"],
    ["an unclosed domain literal", "a@[192.168.0.1", "not a valid e-mail address (the domain)"],
    ["a local part over 64 characters", tooLongLocal, "the part before the @ is longer than 64 characters"],
    ["an address over 254 characters", tooLongAddress, "the address is longer than 254 characters"],
    [
      "a domain label over 63 characters",
      `a@${"d".repeat(64)}.org`,
      "a part of the domain is longer than 63 characters",
    ],
    ["a > without <", "jane@x.org>", "not a valid e-mail address (a > without <)"],
    ["a < without >", "Jane <jane@x.org", "not a valid e-mail address (the part before the @)"],
    ["empty angle brackets", "Jane <>", "an address is missing"],
    [
      "quotes inside an unquoted display name",
      'Jane "JJ" Doe <jj@x.org>',
      "a display name with special characters must be in double quotes",
    ],
  ])("refuses %s, naming the entry", async (_label, entry, problem) => {
    const error = await refused(message({ recipients: `ok@example.org; ${entry}` }));
    expectError(error, "22023", "recipients", entry, problem);
  });

  it.each([
    ["plus-addressing", "first.last+tag@example.org"],
    ["a quoted local part with a space", '"john doe"@example.org'],
    ["a quoted local part with , ; and @", '"a,b;c@d"@example.org'],
    ["a quoted local part with an escaped quote", '"say \\"hi\\""@example.org'],
    ["a domain literal", "user@[192.168.0.1]"],
    ["an IPv6 domain literal", "user@[IPv6:2001:db8::1]"],
    ["a single-label domain", "user@localhost"],
    ["unicode in both parts", "jöran@exämple.org"],
    ["an apostrophe", "o'brien@example.org"],
    ["every atext symbol", "!#$%&'*+/=?^_`{|}~-@example.org"],
    ["hyphens and digits in the domain", "x@a-b.3com.example"],
    ["a 64-character local part", `${"a".repeat(64)}@x.org`],
    ["a 254-character address", `${"f".repeat(10)}@${domain243}`],
  ])("accepts %s", async (_label, address) => {
    const stored = await sendAndRead(message({ recipients: address }));
    expect(stored.envelope.to).toEqual([{ name: null, address }]);
  });

  it("accepts tabs around entries, as in a list pasted from a spreadsheet", async () => {
    const stored = await sendAndRead(message({ recipients: "a@x.org;\tb@y.org\t" }));
    expect(stored.envelope.to).toEqual([
      { name: null, address: "a@x.org" },
      { name: null, address: "b@y.org" },
    ]);
  });

  it("accepts a valid address with a unicode display name", async () => {
    const stored = await sendAndRead(message({ recipients: "Jöran Ström <joran@example.se>" }));
    expect(stored.envelope.to).toEqual([{ name: "Jöran Ström", address: "joran@example.se" }]);
  });

  describe.each(["copy_recipients", "blind_copy_recipients"])("%s", (parameter) => {
    it("is parsed like recipients", async () => {
      const stored = await sendAndRead(
        message({ recipients: undefined, [parameter]: '"Doe, Jane" <jane@x.org>; b@y.org;' }),
      );
      const list = parameter === "copy_recipients" ? stored.envelope.cc : stored.envelope.bcc;
      expect(list).toEqual([
        { name: "Doe, Jane", address: "jane@x.org" },
        { name: null, address: "b@y.org" },
      ]);
    });

    it("refuses a comma outside quotes, naming the parameter", async () => {
      const error = await refused(message({ [parameter]: "a@x.org, b@y.org" }));
      expectError(error, "22023", parameter, "a@x.org, b@y.org", "use ';' to separate addresses");
    });

    it("refuses an invalid address, naming the parameter and the entry", async () => {
      const error = await refused(message({ [parameter]: "good@x.org;nobody" }));
      expectError(error, "22023", parameter, "nobody", "not an e-mail address (no @)");
    });

    it("refuses a double quote that is not closed", async () => {
      const error = await refused(message({ [parameter]: '"Jane <jane@x.org>' }));
      expectError(error, "22023", parameter, '"Jane <jane@x.org>', "a double quote is not closed");
    });

    it("refuses a line break (header injection)", async () => {
      const value = "a@x.org\r\nBcc: evil@attacker.example";
      const error = await refused(message({ [parameter]: value }));
      expectError(
        error,
        "22023",
        parameter,
        value,
        "line breaks and control characters are not allowed here",
      );
    });
  });

  it.each([
    ["all NULL", {}],
    ["empty and blank", { recipients: "", copy_recipients: "   ", blind_copy_recipients: "" }],
    ["only separators", { recipients: ";", copy_recipients: " ; ; " }],
  ])("refuses a message without recipients (%s)", async (_label, lists) => {
    const error = await refused({ profile_name: "Main", subject: "s", body: "b", ...lists });
    expectError(
      error,
      "22004",
      "recipients, copy_recipients, blind_copy_recipients",
      null,
      "a message needs at least one recipient",
    );
  });
});

describe("content", () => {
  it.each([
    ["all NULL", {}],
    ["empty subject and body", { subject: "", body: "" }],
  ])("refuses a message with no body, query, attachments or subject (%s)", async (_label, content) => {
    const error = await refused({ profile_name: "Main", recipients: "to@example.org", ...content });
    expectError(
      error,
      "22004",
      "body, query, file_attachments, attachments, subject",
      null,
      "a message needs at least one of these",
    );
  });

  it("accepts a 998-character subject and refuses a 999-character one", async () => {
    expect((await sendAndRead(message({ subject: "s".repeat(998) }))).subject).toHaveLength(998);
    const long = "s".repeat(999);
    const error = await refused(message({ subject: long }));
    expectError(error, "22023", "subject", long, "is longer than 998 characters");
  });
});

describe("header injection", () => {
  it.each([
    ["CRLF", "Hi\r\nBcc: evil@attacker.example"],
    ["LF", "Hi\nBcc: evil@attacker.example"],
    ["CR", "Hi\rBcc: evil@attacker.example"],
    ["another control character", "Hi\u000bthere"],
  ])("refuses %s in the subject, showing it escaped", async (_label, subject) => {
    const error = await refused(message({ subject }));
    expectError(
      error,
      "22023",
      "subject",
      subject,
      "line breaks and control characters are not allowed here",
    );
    expect(error.message).not.toMatch(/[\r\n]/);
  });

  it("shows the escaped line break literally in the message", async () => {
    const error = await refused(message({ subject: "Hi\r\nBcc: evil@attacker.example" }));
    expect(error.message).toContain('subject: "Hi\\r\\nBcc: evil@attacker.example"');
  });

  it("accepts a tab in the subject", async () => {
    expect((await sendAndRead(message({ subject: "a\tb" }))).subject).toBe("a\tb");
  });

  it.each([
    ["recipients", "Jane\r\nBcc: evil@attacker.example <jane@x.org>"],
    ["recipients", '"Jane\nDoe" <jane@x.org>'],
    ["from_address", "ops@x.org\r\nBcc: evil@attacker.example"],
    ["from_address", "Ops\r\nBcc: evil@attacker.example <ops@x.org>"],
    ["reply_to", "help@x.org\nBcc: evil@attacker.example"],
    ["reply_to", '"Help\r\nDesk" <help@x.org>'],
  ])("refuses a line break in %s %j", async (parameter, value) => {
    const error = await refused(message({ [parameter]: value }));
    expectError(error, "22023", parameter, value, "line breaks and control characters are not allowed here");
  });

  describe("headers", () => {
    it("stores valid extra headers, including threading headers", async () => {
      const headers = {
        "X-Tag": "v",
        "List-Unsubscribe": "<mailto:unsubscribe@x.org>",
        "In-Reply-To": "<dbmail.1.abc@x.org>",
        References: "<dbmail.1.abc@x.org>",
      };
      expect((await sendAndRead(message({ headers }))).headers).toEqual(headers);
    });

    it.each([
      ["an array", '["X-Tag", "v"]', '["X-Tag", "v"]'],
      ["a string", '"X-Tag: v"', '"X-Tag: v"'],
      ["a number", "42", "42"],
      ["JSON null", "null", "null"],
    ])("refuses %s", async (_label, json, text) => {
      const error = await refused(message({ headers: json }));
      expectError(error, "22023", "headers", text, 'must be a JSON object {"X-Name": "value"}');
    });

    it.each([
      ["a space", "X Tag"],
      ["a colon", "X:Tag"],
      ["an empty name", ""],
      ["a non-ASCII letter", "X-Tëst"],
      ["a line break", "X-A\r\nBcc"],
      ["77 characters", `X-${"n".repeat(75)}`],
    ])("refuses a header name with %s", async (_label, name) => {
      const error = await refused(message({ headers: { [name]: "v" } }));
      expectError(
        error,
        "22023",
        "headers",
        name,
        "not a valid header name (printable ASCII without spaces or colons, at most 76 characters)",
      );
    });

    it("accepts a 76-character header name", async () => {
      const name = `X-${"n".repeat(74)}`;
      expect((await sendAndRead(message({ headers: { [name]: "v" } }))).headers).toEqual({ [name]: "v" });
    });

    it.each([
      "From",
      "to",
      "Cc",
      "BCC",
      "Subject",
      "Date",
      "Message-ID",
      "message-id",
      "Reply-To",
      "Sender",
      "Return-Path",
      "MIME-Version",
      "Content-Type",
      "content-transfer-encoding",
      "X-DBMail-Mailitem-Id",
      "Importance",
      "X-Priority",
      "Sensitivity",
    ])("refuses to override %s", async (name) => {
      const error = await refused(message({ headers: { [name]: "x" } }));
      expectError(
        error,
        "22023",
        "headers",
        name,
        "this header is set by Database Mail and cannot be overridden",
      );
    });

    it.each([
      ["a number", 1, "1"],
      ["a boolean", true, "true"],
      ["null", null, "null"],
      ["an object", { a: 1 }, '{"a": 1}'],
      ["an array", ["a"], '["a"]'],
    ])("refuses %s as a value", async (_label, value, text) => {
      const error = await refused(message({ headers: { "X-Tag": value } }));
      expectError(error, "22023", "headers", `X-Tag: ${text}`, "header values must be JSON strings");
    });

    it.each([
      ["CRLF", "a\r\nBcc: evil@attacker.example"],
      ["LF", "a\nBcc: evil@attacker.example"],
      ["CR", "a\rBcc: evil@attacker.example"],
    ])("refuses %s in a value", async (_label, value) => {
      const error = await refused(message({ headers: { "X-Tag": value } }));
      expectError(
        error,
        "22023",
        "headers",
        `X-Tag: ${value}`,
        "line breaks and control characters are not allowed here",
      );
    });

    it("refuses a value over 998 characters", async () => {
      const error = await refused(message({ headers: { "X-Long": "v".repeat(999) } }));
      expectError(error, "22023", "headers", "X-Long", "the value is longer than 998 characters");
    });
  });
});

describe("enumerations and query options", () => {
  it.each([
    ["body_format", "markdown", "must be TEXT or HTML"],
    ["body_format", "", "must be TEXT or HTML"],
    ["importance", "urgent", "must be LOW, NORMAL or HIGH"],
    ["importance", "", "must be LOW, NORMAL or HIGH"],
    ["importance", null, "must be LOW, NORMAL or HIGH"],
    ["sensitivity", "secret", "must be NORMAL, PERSONAL, PRIVATE or CONFIDENTIAL"],
    ["sensitivity", null, "must be NORMAL, PERSONAL, PRIVATE or CONFIDENTIAL"],
    ["query_result_format", "xml", "must be TEXT, CSV, HTML or JSON"],
    ["query_result_format", null, "must be TEXT, CSV, HTML or JSON"],
  ])("refuses %s %j", async (parameter, value, problem) => {
    const error = await refused(message({ [parameter]: value }));
    // A required parameter that is NULL is 22004 (null_value_not_allowed); a wrong value is 22023.
    expectError(error, value === null ? "22004" : "22023", parameter, value, problem);
  });

  it.each([
    "attach_query_result_as_file",
    "query_result_header",
    "exclude_query_output",
    "append_query_error",
    "query_no_truncate",
    "query_result_no_padding",
  ])("refuses %s NULL", async (parameter) => {
    const error = await refused(message({ [parameter]: null }));
    expectError(error, "22004", parameter, null, "must be true or false");
  });

  it.each([
    [9, "9"],
    [32768, "32768"],
    [0, "0"],
    [-1, "-1"],
    [null, null],
  ])("refuses query_result_width %j", async (width, text) => {
    const error = await refused(message({ query_result_width: width }));
    expectError(
      error,
      width === null ? "22004" : "22023",
      "query_result_width",
      text,
      "must be from 10 to 32767",
    );
  });

  it.each([10, 32767])("accepts query_result_width %i", async (width) => {
    expect((await sendAndRead(message({ query_result_width: width }))).query_result_width).toBe(width);
  });

  it.each([
    ["empty", ""],
    ["two characters", ",,"],
    ["NULL", null],
  ])("refuses a query_result_separator that is %s", async (_label, separator) => {
    const error = await refused(message({ query_result_separator: separator }));
    expectError(
      error,
      separator === null ? "22004" : "22023",
      "query_result_separator",
      separator,
      "must be exactly one character",
    );
  });

  it.each([",", "│"])("accepts the query_result_separator %j", async (separator) => {
    expect((await sendAndRead(message({ query_result_separator: separator }))).query_result_separator).toBe(
      separator,
    );
  });

  it("refuses query_result_no_padding together with query_no_truncate", async () => {
    const error = await refused(message({ query_result_no_padding: true, query_no_truncate: true }));
    expectError(
      error,
      "22023",
      "query_result_no_padding",
      "true",
      "query_result_no_padding and query_no_truncate cannot both be true",
    );
  });

  it("accepts query_result_no_padding or query_no_truncate alone", async () => {
    const padding = await sendAndRead(message({ query_result_no_padding: true }));
    const truncate = await sendAndRead(message({ query_no_truncate: true }));
    expect([padding.query_result_no_padding, padding.query_no_truncate]).toEqual([true, false]);
    expect([truncate.query_result_no_padding, truncate.query_no_truncate]).toEqual([false, true]);
  });

  it("refuses attach_query_result_as_file without a query", async () => {
    const error = await refused(message({ attach_query_result_as_file: true }));
    expectError(error, "22023", "attach_query_result_as_file", "true", "needs a query");
  });

  it("refuses an execute_query_database other than the current database", async () => {
    const error = await refused(message({ execute_query_database: "some_other_db" }));
    expect(error.code).toBe("22023");
    expect(error.message).toBe(
      `execute_query_database: "some_other_db": queries run in the current database (${db.name}); connect to the other database to query it`,
    );
  });

  it("accepts the current database as execute_query_database", async () => {
    expect((await sendAndRead(message({ execute_query_database: db.name }))).execute_query_database).toBe(
      db.name,
    );
  });
});

describe("from_address and reply_to", () => {
  it("stores a single valid from_address and reply_to", async () => {
    const stored = await sendAndRead(
      message({ from_address: '"Ops, Night" <ops@ops.example>', reply_to: "help@desk.example" }),
    );
    expect(stored.from_address).toBe('"Ops, Night" <ops@ops.example>');
    expect(stored.reply_to).toBe("help@desk.example");
    expect(stored.message_id).toBe(`<dbmail.${stored.mailitem_id}.${installationHex}@ops.example>`);
  });

  it.each(["from_address", "reply_to"])("refuses two addresses in %s", async (parameter) => {
    const error = await refused(message({ [parameter]: "a@x.org;b@y.org" }));
    expectError(error, "22023", parameter, "a@x.org;b@y.org", "only one address is allowed here");
  });

  it.each(["from_address", "reply_to"])("refuses an invalid address in %s", async (parameter) => {
    const error = await refused(message({ [parameter]: "not-an-address" }));
    expectError(error, "22023", parameter, "not-an-address", "not an e-mail address (no @)");
  });

  it.each(["from_address", "reply_to"])("refuses a comma in %s", async (parameter) => {
    const error = await refused(message({ [parameter]: "a@x.org, b@y.org" }));
    expectError(error, "22023", parameter, "a@x.org, b@y.org", "use ';' to separate addresses");
  });

  // ';' parses to no address at all, yet would be stored and used as the From/Reply-To of the message.
  it.each(["from_address", "reply_to"])("refuses %s ';' that holds no address", async (parameter) => {
    const error = await refused(message({ [parameter]: ";" }));
    expect(error.code).toBe("22023");
    expect(error.message.startsWith(`${parameter}: ";": `)).toBe(true);
  });

  it("treats an empty from_address as none", async () => {
    const stored = await sendAndRead(message({ from_address: "" }));
    expect(stored.from_address).toBeNull();
    expect(stored.message_id).toBe(`<dbmail.${stored.mailitem_id}.${installationHex}@example.com>`);
  });

  it("takes the Message-ID's domain after the last @ of a quoted local part in from_address", async () => {
    const stored = await sendAndRead(message({ from_address: '"ops@desk"@from.example' }));
    expect(stored.message_id).toBe(`<dbmail.${stored.mailitem_id}.${installationHex}@from.example>`);
  });

  it("takes the Message-ID's domain after the last @ of a quoted local part in the account's address", async () => {
    await db.query(
      `SELECT dbmail.sysmail_add_account_sp(account_name => 'quoted_acct', email_address => '"ops@desk"@acct.example', mailserver_name => 'localhost')`,
    );
    await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'QuotedAccount')");
    await db.query(
      "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'QuotedAccount', account_name => 'quoted_acct', sequence_number => 1)",
    );
    await db.query(
      "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'QuotedAccount', is_default => false)",
    );
    const stored = await sendAndRead(message({ profile_name: "QuotedAccount" }));
    expect(stored.message_id).toBe(`<dbmail.${stored.mailitem_id}.${installationHex}@acct.example>`);
  });

  // sysmail_add_account_sp accepts `Name <address>` as email_address; if it ever refuses that form, there is no
  // such account to send with and nothing to check here.
  it("takes the Message-ID's domain from the address of an account given as `Name <address>`", async () => {
    const added = await db
      .query(
        "SELECT dbmail.sysmail_add_account_sp(account_name => 'display_acct', email_address => 'Mailer <mailer@disp.example>', mailserver_name => 'localhost')",
      )
      .then(
        () => true,
        (error: { code: string }) => {
          expect(error.code).toBe("22023");
          return false;
        },
      );
    if (!added) return;
    await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'DisplayAccount')");
    await db.query(
      "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'DisplayAccount', account_name => 'display_acct', sequence_number => 1)",
    );
    await db.query(
      "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'DisplayAccount', is_default => false)",
    );
    const stored = await sendAndRead(message({ profile_name: "DisplayAccount" }));
    expect(stored.message_id).toBe(`<dbmail.${stored.mailitem_id}.${installationHex}@disp.example>`);
  });
});

describe("profiles", () => {
  it("refuses an unknown profile with 42704", async () => {
    const error = await refused(message({ profile_name: "Nope" }));
    expectError(error, "42704", "profile_name", "Nope", "no such profile");
  });

  it("refuses a private profile the caller was not granted with 42501 and a different message", async () => {
    const error = await refused(message({ profile_name: "Secret" }));
    expect(error.code).toBe("42501");
    expect(error.message.startsWith('profile_name: "Secret": ')).toBe(true);
    expect(error.message).toContain(`role ${aliceRole.name} may not use this profile`);
    expect(error.message).not.toContain("no such profile");
    for (const other of ["Main", "GroupOnly", "BobOnly"]) expect(error.message).not.toContain(other);
  });

  it("allows a profile granted to a group role the caller is a member of", async () => {
    const stored = await sendAndRead(message({ profile_name: "GroupOnly" }), carol);
    expect(stored.send_request_user).toBe(carolRole.name);
    const { rows } = await db.query<{ profile_id: number }>(
      "SELECT profile_id FROM dbmail.profiles WHERE name = 'GroupOnly'",
    );
    expect(stored.profile_id).toBe(first(rows).profile_id);
  });

  it("refuses a group's profile to a non-member", async () => {
    const error = await refused(message({ profile_name: "GroupOnly" }));
    expect(error.code).toBe("42501");
    expect(error.message.startsWith('profile_name: "GroupOnly": ')).toBe(true);
  });

  it("allows a profile granted to the caller itself, and only to it", async () => {
    expect((await sendAndRead(message({ profile_name: "BobOnly" }), bob)).send_request_user).toBe(
      bobRole.name,
    );
    expect((await refused(message({ profile_name: "BobOnly" }), alice)).code).toBe("42501");
  });

  it("allows a profile granted to public", async () => {
    expect((await sendAndRead(message({ profile_name: "Main" }), carol)).profile_id).toBe(mainProfileId);
  });

  it("lets a dbmail_admin member use a private profile", async () => {
    const stored = await sendAndRead(message({ profile_name: "Secret" }), boss);
    expect(stored.send_request_user).toBe(bossRole.name);
    expect(stored.sent_status).toBe("unsent");
  });

  it("lets a dbmail_admin member get 42704 for an unknown profile too", async () => {
    const error = await refused(message({ profile_name: "Nope" }), boss);
    expectError(error, "42704", "profile_name", "Nope", "no such profile");
  });

  it.each(["main", "MAIN", " Main "])("finds the profile case-insensitively (%j)", async (name) => {
    expect((await sendAndRead(message({ profile_name: name }))).profile_id).toBe(mainProfileId);
  });
});

describe("default profile (profile_name NULL)", () => {
  let team: TestRole;
  let dave: pg.Client;
  let erin: pg.Client;
  let daveRole: TestRole;
  const profileIds: Record<string, number> = {};

  beforeAll(async () => {
    team = await db.createRole("team", { login: false });
    daveRole = await db.createRole("dave", { memberOf: ["dbmail_user", team.name] });
    const erinRole = await db.createRole("erin", { memberOf: ["dbmail_user"] });
    for (const name of ["PublicDefault", "TeamDefault", "DaveDefault"]) {
      const { rows } = await db.query<{ id: number }>(
        "SELECT dbmail.sysmail_add_profile_sp(profile_name => $1) AS id",
        [name],
      );
      profileIds[name] = first(rows).id;
      await db.query(
        "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => $1, account_name => 'main_acct', sequence_number => 1)",
        [name],
      );
    }
    dave = await db.connect(daveRole);
    erin = await db.connect(erinRole);
  });

  const sendDefault = (client: pg.Client) => sendAndRead(message({ profile_name: undefined }), client);

  it("refuses with 55000 when no default is configured (a non-default public grant is not a default)", async () => {
    const error = await refused(message({ profile_name: undefined }), dave);
    expect(error.code).toBe("55000");
    expect(
      error.message.startsWith(
        `profile_name: NULL: no default profile is configured for role ${daveRole.name}`,
      ),
    ).toBe(true);
    expect(error.message).not.toContain("Main");
  });

  it("uses the public default", async () => {
    await db.query(
      "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'PublicDefault', is_default => true)",
    );
    expect((await sendDefault(dave)).profile_id).toBe(profileIds.PublicDefault);
    expect((await sendDefault(erin)).profile_id).toBe(profileIds.PublicDefault);
  });

  it("prefers the default of a role the caller is a member of over the public default", async () => {
    await db.query(
      "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => $1, profile_name => 'TeamDefault', is_default => true)",
      [team.name],
    );
    expect((await sendDefault(dave)).profile_id).toBe(profileIds.TeamDefault);
    expect((await sendDefault(erin)).profile_id).toBe(profileIds.PublicDefault);
  });

  it("prefers the caller's own default over a group's", async () => {
    await db.query(
      "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => $1, profile_name => 'DaveDefault', is_default => true)",
      [daveRole.name],
    );
    expect((await sendDefault(dave)).profile_id).toBe(profileIds.DaveDefault);
    expect((await sendDefault(erin)).profile_id).toBe(profileIds.PublicDefault);
  });

  it("still lets the caller name another profile it may use", async () => {
    expect((await sendAndRead(message({ profile_name: "Main" }), dave)).profile_id).toBe(mainProfileId);
  });

  it("gives a superuser the public default, not some role's default (superusers are members of no role)", async () => {
    // The team and dave defaults exist now; a superuser belongs to neither.
    expect((await sendAndRead(message({ profile_name: undefined }), await db.connect())).profile_id).toBe(
      profileIds.PublicDefault,
    );
  });
});

describe("idempotency_key", () => {
  it("returns the same mailitem_id for the same key from the same user, queuing one item", async () => {
    const before = await queued();
    const original = await send(message({ idempotency_key: "order-42" }));
    const replay = await send(message({ idempotency_key: "order-42", subject: "Changed" }));
    expect(replay).toBe(original);
    expect(await queued()).toBe(before + 1);
    const stored = await item(original);
    expect(stored.idempotency_key).toBe("order-42");
    expect(stored.subject).toBe("Test");
  });

  it("queues a separate item for the same key from another user", async () => {
    const fromAlice = await send(message({ idempotency_key: "shared-key" }));
    const fromBob = await send(message({ idempotency_key: "shared-key" }), bob);
    expect(fromBob).not.toBe(fromAlice);
    expect((await item(fromAlice)).send_request_user).toBe(aliceRole.name);
    expect((await item(fromBob)).send_request_user).toBe(bobRole.name);
    const { rows } = await db.query<{ n: number }>(
      "SELECT count(*)::integer AS n FROM dbmail.mailitems WHERE idempotency_key = 'shared-key'",
    );
    expect(first(rows).n).toBe(2);
  });

  it("returns the committed item to a concurrent call with the same key", async () => {
    const one = await db.connect(aliceRole);
    const two = await db.connect(aliceRole);
    await one.query("BEGIN");
    const id = await send(message({ idempotency_key: "concurrent" }), one);
    const pending = send(message({ idempotency_key: "concurrent" }), two);
    await sleep(200);
    await one.query("COMMIT");
    expect(await pending).toBe(id);
    const { rows } = await db.query<{ n: number }>(
      "SELECT count(*)::integer AS n FROM dbmail.mailitems WHERE idempotency_key = 'concurrent'",
    );
    expect(first(rows).n).toBe(1);
  });

  it.each([
    ["empty", ""],
    ["blank", "   "],
    ["256 characters", "k".repeat(256)],
  ])("refuses a key that is %s", async (_label, key) => {
    const error = await refused(message({ idempotency_key: key }));
    expectError(error, "22023", "idempotency_key", key, "must be 1 to 255 characters, not blank");
  });
});

describe("send_at", () => {
  it("stores a future send_at and makes the item due then", async () => {
    const at = new Date(Date.now() + 24 * 3600 * 1000);
    const stored = await sendAndRead(message({ send_at: at }));
    expect(stored.send_at?.getTime()).toBe(at.getTime());
    expect(stored.next_attempt_at.getTime()).toBe(at.getTime());
    const { rows } = await alice.query<{ next_attempt_at: Date }>(
      "SELECT next_attempt_at FROM dbmail.sysmail_allitems WHERE mailitem_id = $1",
      [stored.mailitem_id],
    );
    expect(first(rows).next_attempt_at.getTime()).toBe(at.getTime());
  });

  it("makes an item with a past send_at due at once", async () => {
    const at = new Date(Date.now() - 24 * 3600 * 1000);
    const stored = await sendAndRead(message({ send_at: at }));
    expect(stored.send_at?.getTime()).toBe(at.getTime());
    expect(stored.next_attempt_at.getTime()).toBe(stored.send_request_date.getTime());
  });

  it("makes an item without send_at due at once", async () => {
    const stored = await sendAndRead(message());
    expect(stored.send_at).toBeNull();
    expect(stored.next_attempt_at.getTime()).toBe(stored.send_request_date.getTime());
  });
});

describe("transactions and NOTIFY", () => {
  /** A superuser connection listening on dbmail_queue, and what it has received. */
  async function listener(): Promise<pg.Notification[]> {
    const client = await db.connect();
    const received: pg.Notification[] = [];
    client.on("notification", (n) => received.push(n));
    await client.query("LISTEN dbmail_queue");
    return received;
  }

  async function waitFor(received: pg.Notification[], ms = 3000): Promise<void> {
    const deadline = Date.now() + ms;
    while (received.length === 0 && Date.now() < deadline) await sleep(20);
  }

  it("queues nothing when the caller's transaction rolls back", async () => {
    const client = await db.connect(aliceRole);
    const before = await queued();
    await client.query("BEGIN");
    const id = await send(message(), client);
    await client.query("ROLLBACK");
    expect(await queued()).toBe(before);
    const { rows } = await db.query("SELECT 1 FROM dbmail.mailitems WHERE mailitem_id = $1", [id]);
    expect(rows).toEqual([]);
  });

  it("queues the item when the caller's transaction commits", async () => {
    const client = await db.connect(aliceRole);
    await client.query("BEGIN");
    const id = await send(message(), client);
    const { rows: during } = await db.query("SELECT 1 FROM dbmail.mailitems WHERE mailitem_id = $1", [id]);
    expect(during).toEqual([]);
    await client.query("COMMIT");
    expect((await item(id)).sent_status).toBe("unsent");
  });

  it("notifies dbmail_queue when a send commits", async () => {
    const received = await listener();
    await send(message());
    await waitFor(received);
    expect(received).toHaveLength(1);
    expect(received[0]?.channel).toBe("dbmail_queue");
  });

  it("notifies only at commit", async () => {
    const received = await listener();
    const client = await db.connect(aliceRole);
    await client.query("BEGIN");
    await send(message(), client);
    await sleep(300);
    expect(received).toEqual([]);
    await client.query("COMMIT");
    await waitFor(received);
    expect(received.map((n) => n.channel)).toEqual(["dbmail_queue"]);
  });

  it("does not notify when the transaction rolls back", async () => {
    const received = await listener();
    const client = await db.connect(aliceRole);
    await client.query("BEGIN");
    await send(message(), client);
    await client.query("ROLLBACK");
    await sleep(300);
    expect(received).toEqual([]);
  });

  it("does not notify for a future send_at", async () => {
    const received = await listener();
    await send(message({ send_at: new Date(Date.now() + 3600 * 1000) }));
    await sleep(300);
    expect(received).toEqual([]);
  });

  it("notifies for a past send_at", async () => {
    const received = await listener();
    await send(message({ send_at: new Date(Date.now() - 3600 * 1000) }));
    await waitFor(received);
    expect(received.map((n) => n.channel)).toEqual(["dbmail_queue"]);
  });

  it("does not notify for a refused send", async () => {
    const received = await listener();
    await refused(message({ recipients: "nobody" }));
    await sleep(300);
    expect(received).toEqual([]);
  });

  it("does not notify when an idempotency key replays an existing item", async () => {
    await send(message({ idempotency_key: "notify-once" }));
    const received = await listener();
    await send(message({ idempotency_key: "notify-once" }));
    await sleep(300);
    expect(received).toEqual([]);
  });
});
