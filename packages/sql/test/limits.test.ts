// The denial-of-service limits checked by dbmail.queue_mail (issue 5): MaxRecipientsPerMail,
// MaxMailSize and MaxMailsPerUserPerDay. Each is tried at, just under and just over its boundary; a
// refusal is 54000 with a `<parameter>: <value>: <problem>` message and leaves nothing queued.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, TestDatabase, type TestRole } from "../../../test/support/database.js";

/** A literal SQL expression for an argument, instead of a bound parameter. */
class Raw {
  constructor(readonly sql: string) {}
}

/** Arguments of sp_send_dbmail: undefined leaves the parameter out. */
type Args = Record<string, unknown>;

/** One in-memory attachment. */
interface Attachment {
  filename: string;
  content: Buffer;
}

function sendCall(args: Args): { text: string; values: unknown[] } {
  const parts: string[] = [];
  const values: unknown[] = [];
  for (const [name, value] of Object.entries(args)) {
    if (value === undefined) continue;
    if (value instanceof Raw) {
      parts.push(`${name} => ${value.sql}`);
    } else if (name === "attachments") {
      const items = (value as Attachment[]).map((a) => {
        values.push(a.filename, a.content);
        return `ROW($${values.length - 1}::text, $${values.length}::bytea, NULL::text)::dbmail.attachment`;
      });
      parts.push(`attachments => ARRAY[${items.join(", ")}]::dbmail.attachment[]`);
    } else {
      values.push(value);
      parts.push(`${name} => $${values.length}`);
    }
  }
  return { text: `SELECT dbmail.sp_send_dbmail(${parts.join(", ")}) AS id`, values };
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

/** `n` distinct addresses, `;`-separated. */
function addresses(n: number, prefix = "r"): string {
  return Array.from({ length: n }, (_, i) => `${prefix}${i}@example.org`).join(";");
}

let db: TestDatabase;
let aliceRole: TestRole;
let bobRole: TestRole;
let bossRole: TestRole;
let alice: pg.Client;
let bob: pg.Client;
let boss: pg.Client;
let directory: string;

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

/** Sends expecting an error; asserts that nothing was queued, and returns the error. */
async function refused(args: Args, client: pg.Client = alice): Promise<{ code: string; message: string }> {
  const before = await queued();
  const error = await errorOf(send(args, client));
  expect(await queued()).toBe(before);
  return error;
}

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

async function configure(name: string, value: string): Promise<void> {
  await db.query("SELECT dbmail.sysmail_configure_sp(parameter_name => $1, parameter_value => $2)", [
    name,
    value,
  ]);
}

async function setting(name: string): Promise<string> {
  const { rows } = await db.query<{ value: string }>(
    "SELECT paramvalue AS value FROM dbmail.sysmail_help_configure_sp($1)",
    [name],
  );
  return first(rows).value;
}

/** Runs fn with settings changed, restoring them afterwards. */
async function withSettings<T>(values: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const previous: Record<string, string> = {};
  for (const [name, value] of Object.entries(values)) {
    previous[name] = await setting(name);
    await configure(name, value);
  }
  try {
    return await fn();
  } finally {
    for (const [name, value] of Object.entries(previous)) await configure(name, value);
  }
}

/** Empties the queue and MaxMailsPerUserPerDay's ledger, so that each daily-limit test starts from no mail. */
async function clearQueue(): Promise<void> {
  await db.query("DELETE FROM dbmail.mailitems");
  await db.query("DELETE FROM dbmail.daily_mail_counts");
}

beforeAll(async () => {
  db = await TestDatabase.create();
  aliceRole = await db.createRole("alice", { memberOf: ["dbmail_user"] });
  bobRole = await db.createRole("bob", { memberOf: ["dbmail_user"] });
  bossRole = await db.createRole("boss", { memberOf: ["dbmail_admin"] });
  await db.query(
    "SELECT dbmail.sysmail_add_account_sp(account_name => 'main_acct', email_address => 'mailer@example.com', mailserver_name => 'localhost')",
  );
  await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'Main')");
  await db.query(
    "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'Main', account_name => 'main_acct', sequence_number => 1)",
  );
  await db.query(
    "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'Main', is_default => false)",
  );
  alice = await db.connect(aliceRole);
  bob = await db.connect(bobRole);
  boss = await db.connect(bossRole);
  directory = mkdtempSync(join(tmpdir(), "dbmail-limits-"));
  chmodSync(directory, 0o755);
  await configure("AttachmentDirectories", directory);
});

afterAll(async () => {
  await db?.drop();
  if (directory) rmSync(directory, { recursive: true, force: true });
});

describe("the settings", () => {
  it("have safe defaults: 100 recipients, 10 MiB per mail, no daily limit", async () => {
    expect(await setting("MaxRecipientsPerMail")).toBe("100");
    expect(await setting("MaxMailSize")).toBe("10485760");
    expect(await setting("MaxMailsPerUserPerDay")).toBe("0");
    const { rows } = await db.query<{ description: string }>(
      "SELECT description FROM dbmail.sysmail_help_configure_sp() WHERE paramname LIKE 'MaxMail%' OR paramname = 'MaxRecipientsPerMail'",
    );
    expect(rows).toHaveLength(3);
    for (const row of rows) expect(row.description).toMatch(/0 = unlimited/);
  });

  it.each([
    { name: "MaxRecipientsPerMail", high: "1000000" },
    { name: "MaxMailSize", high: "1073741823" },
    { name: "MaxMailsPerUserPerDay", high: "100000000" },
  ])("$name accepts 0 to $high, normalised", async ({ name, high }) => {
    await withSettings({ [name]: "0" }, async () => {
      expect(await setting(name)).toBe("0");
      await configure(name, ` 0${high} `);
      expect(await setting(name)).toBe(high);
      await configure(name, "1");
      expect(await setting(name)).toBe("1");
    });
  });

  it.each([
    { name: "MaxRecipientsPerMail", high: "1000000", value: "-1" },
    { name: "MaxRecipientsPerMail", high: "1000000", value: "abc" },
    { name: "MaxRecipientsPerMail", high: "1000000", value: "1000001" },
    { name: "MaxMailSize", high: "1073741823", value: "-1" },
    { name: "MaxMailSize", high: "1073741823", value: "10MB" },
    { name: "MaxMailSize", high: "1073741823", value: "1.5" },
    { name: "MaxMailSize", high: "1073741823", value: "1073741824" },
    { name: "MaxMailsPerUserPerDay", high: "100000000", value: "-5" },
    { name: "MaxMailsPerUserPerDay", high: "100000000", value: "" },
    { name: "MaxMailsPerUserPerDay", high: "100000000", value: "ten" },
    { name: "MaxMailsPerUserPerDay", high: "100000000", value: "100000001" },
  ])("$name refuses $value with 22023 and keeps its value", async ({ name, high, value }) => {
    const before = await setting(name);
    const error = await errorOf(configure(name, value));
    expectError(error, "22023", "parameter_value", value, `${name} must be a whole number from 0 to ${high}`);
    expect(await setting(name)).toBe(before);
  });

  it("are matched case-insensitively, like every setting", async () => {
    await withSettings({ maxrecipientspermail: "7" }, async () => {
      expect(await setting("MaxRecipientsPerMail")).toBe("7");
    });
    expect(await setting("MaxRecipientsPerMail")).toBe("100");
  });
});

describe("MaxRecipientsPerMail", () => {
  // Counted as the lists are parsed: the refusal comes at the first address over the limit.
  const problem = (_n: number, max: number) =>
    `more than MaxRecipientsPerMail (${max}) recipients, to, cc and bcc together`;

  it("accepts exactly the limit and one under, to, cc and bcc together", async () => {
    await withSettings({ MaxRecipientsPerMail: "5" }, async () => {
      await send(
        message({
          recipients: addresses(2),
          copy_recipients: addresses(2, "c"),
          blind_copy_recipients: "b@example.org",
        }),
      );
      await send(message({ recipients: addresses(4) }));
      await send(message({ recipients: addresses(5) }));
    });
  });

  it("refuses one over, naming the list that went over, and queues nothing", async () => {
    await withSettings({ MaxRecipientsPerMail: "5" }, async () => {
      const to = addresses(6);
      expectError(await refused(message({ recipients: to })), "54000", "recipients", to, problem(6, 5));
      const cc = addresses(3, "c");
      expectError(
        await refused(message({ recipients: addresses(3), copy_recipients: cc })),
        "54000",
        "copy_recipients",
        cc,
        problem(6, 5),
      );
      const bcc = "b1@example.org; b2@example.org";
      expectError(
        await refused(
          message({
            recipients: addresses(2),
            copy_recipients: addresses(2, "c"),
            blind_copy_recipients: bcc,
          }),
        ),
        "54000",
        "blind_copy_recipients",
        bcc,
        problem(6, 5),
      );
      // Only bcc: the count still covers it.
      const onlyBcc = addresses(6, "b");
      expectError(
        await refused(message({ recipients: undefined, blind_copy_recipients: onlyBcc })),
        "54000",
        "blind_copy_recipients",
        onlyBcc,
        problem(6, 5),
      );
    });
  });

  it("counts every address as given, duplicates included", async () => {
    await withSettings({ MaxRecipientsPerMail: "2" }, async () => {
      const to = "same@example.org;same@example.org;Same <same@example.org>";
      expectError(await refused(message({ recipients: to })), "54000", "recipients", to, problem(3, 2));
    });
  });

  it("by default allows 100 recipients and refuses 101", async () => {
    await send(message({ recipients: addresses(100) }));
    await send(message({ recipients: addresses(60), copy_recipients: addresses(40, "c") }));
    const error = await refused(message({ recipients: addresses(101) }));
    expect(error.code).toBe("54000");
    expect(error.message).toMatch(
      /^recipients: ".*": more than MaxRecipientsPerMail \(100\) recipients, to, cc and bcc together$/,
    );
  });

  it("0 means unlimited", async () => {
    await withSettings({ MaxRecipientsPerMail: "0" }, async () => {
      await send(message({ recipients: addresses(300) }));
    });
  });

  it("applies to admins too", async () => {
    await withSettings({ MaxRecipientsPerMail: "1" }, async () => {
      const to = addresses(2);
      expectError(await refused(message({ recipients: to }), boss), "54000", "recipients", to, problem(2, 1));
    });
  });
});

describe("MaxMailSize", () => {
  const problem = (size: number, max: number) =>
    `the mail would be ${size} bytes (subject, addresses, headers, body and attachments), more than MaxMailSize (${max} bytes)`;
  // subject "Test" (4 bytes) and recipients "to@example.org" (14 bytes): every mail below has them.
  const FIXED = 18;
  const LIMIT = 1000;
  // What an attachment counts besides its content: its name and its content type.
  const BIN = "application/octet-stream".length;

  it("accepts a mail of exactly MaxMailSize bytes and one byte under", async () => {
    await withSettings({ MaxMailSize: String(LIMIT) }, async () => {
      await send(message({ body: "x".repeat(LIMIT - FIXED) }));
      await send(message({ body: "x".repeat(LIMIT - FIXED - 1) }));
      await send(
        message({
          body: "x".repeat(500),
          attachments: [{ filename: "a.bin", content: Buffer.alloc(LIMIT - FIXED - 500 - 5 - BIN) }],
        }),
      );
    });
  });

  it("refuses one byte over, naming the body, and queues nothing", async () => {
    await withSettings({ MaxMailSize: String(LIMIT) }, async () => {
      const body = "x".repeat(LIMIT - FIXED + 1);
      expectError(await refused(message({ body })), "54000", "body", body, problem(LIMIT + 1, LIMIT));
    });
  });

  it("counts bytes, not characters", async () => {
    await withSettings({ MaxMailSize: String(LIMIT) }, async () => {
      // "é" is two bytes in UTF-8: 492 of them and the rest make 1002 bytes.
      const body = "é".repeat(492);
      expectError(await refused(message({ body })), "54000", "body", body, problem(1002, LIMIT));
      await send(message({ body: "é".repeat(491) }));
    });
  });

  it("names the subject when it alone is over", async () => {
    await withSettings({ MaxMailSize: "10" }, async () => {
      const subject = "a subject of 25 bytes....";
      expectError(
        await refused(message({ subject, body: "" })),
        "54000",
        "subject",
        subject,
        problem(25, 10),
      );
    });
  });

  it("names the in-memory attachment that went over, counting its name and content type", async () => {
    await withSettings({ MaxMailSize: String(LIMIT) }, async () => {
      // 18 + 96 + (9 + 24 + 500) = 647; then 10 + 24 + 320 more: 1001.
      const error = await refused(
        message({
          body: "x".repeat(96),
          attachments: [
            { filename: "first.bin", content: Buffer.alloc(500) },
            { filename: "second.bin", content: Buffer.alloc(320) },
          ],
        }),
      );
      expectError(error, "54000", "attachments", "second.bin", problem(LIMIT + 1, LIMIT));
    });
  });

  it("counts file attachments, with their names and content types", async () => {
    const path = join(directory, "report.csv");
    writeFileSync(path, Buffer.alloc(600, "a"));
    chmodSync(path, 0o644);
    // report.csv (10) as text/csv (8), 600 bytes.
    const file = 10 + 8 + 600;
    await withSettings({ MaxMailSize: String(LIMIT) }, async () => {
      await send(message({ body: "x".repeat(LIMIT - FIXED - file), file_attachments: path }));
      const error = await refused(
        message({ body: "x".repeat(LIMIT - FIXED - file + 1), file_attachments: path }),
      );
      expectError(error, "54000", "file_attachments", path, problem(LIMIT + 1, LIMIT));
    });
  });

  it("counts a query result, inline or attached, and names the query", async () => {
    await withSettings({ MaxMailSize: String(LIMIT) }, async () => {
      // 20 rows of 100 characters: over 2000 bytes however it is formatted.
      const query = "SELECT repeat('q', 100) AS big FROM generate_series(1, 20)";
      const inline = await refused(message({ query }));
      expect(inline.code).toBe("54000");
      expect(inline.message).toMatch(
        /^query: "SELECT repeat\('q', 100\) AS big FROM generate_series\(1, 20\)": the mail would be \d+ bytes/,
      );
      const attached = await refused(message({ query, attach_query_result_as_file: true }));
      expect(attached.code).toBe("54000");
      expect(attached.message).toMatch(
        /^query: ".*": the mail would be \d+ bytes .* more than MaxMailSize \(1000 bytes\)$/,
      );
      await send(message({ query: "SELECT 1 AS one" }));
    });
  });

  it("by default allows 10 MiB (10485760 bytes) and refuses a byte more", async () => {
    await send(message({ body: "x".repeat(10485760 - FIXED) }));
    const body = "x".repeat(10485760 - FIXED + 1);
    expectError(await refused(message({ body })), "54000", "body", body, problem(10485761, 10485760));
  });

  it("0 means unlimited", async () => {
    await withSettings({ MaxMailSize: "0" }, async () => {
      await send(message({ body: "x".repeat(10485760) }));
    });
  });

  // Issue 13: 20 MB of extra headers passed a 10 MB limit; display names did not count either.
  it("counts the headers, names and values (20 headers of 998 bytes do not pass a 10 kB limit)", async () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 20; i++) headers[`X-Filler-${String(i).padStart(2, "0")}`] = "h".repeat(998);
    const value = JSON.stringify(headers);
    await withSettings({ MaxMailSize: "10000" }, async () => {
      const error = await refused(message({ body: "", headers: value }));
      expect(error.code).toBe("54000");
      // 18 fixed, then 20 * (11 + 998).
      const stored = (await db.query<{ h: string }>("SELECT $1::jsonb::text AS h", [value])).rows[0]?.h ?? "";
      expectError(error, "54000", "headers", stored, problem(FIXED + 20 * (11 + 998), 10000));
      // Fewer fit: 9 headers are 9081 bytes.
      const few: Record<string, string> = {};
      for (let i = 0; i < 9; i++) few[`X-Filler-${String(i).padStart(2, "0")}`] = "h".repeat(998);
      await send(message({ body: "", headers: JSON.stringify(few) }));
    });
  });

  it("counts the address lists as given, display names included, and names the list that went over", async () => {
    const name = "N".repeat(250);
    const to = Array.from({ length: 4 }, (_, i) => `"${name}" <r${i}@example.org>`).join(";");
    await withSettings({ MaxMailSize: String(LIMIT) }, async () => {
      const error = await refused(message({ recipients: to, body: "" }));
      expectError(error, "54000", "recipients", to, problem(4 + Buffer.byteLength(to), LIMIT));
      const cc = `"${name}" <c@example.org>`;
      const error2 = await refused(message({ copy_recipients: `${cc};${cc};${cc};${cc}`, body: "" }));
      expect(error2.message).toMatch(/^copy_recipients: /);
    });
    // subject, recipients and from_address make 239 bytes; reply_to 221 more.
    const from = `"${"F".repeat(200)}" <from@example.org>`;
    await withSettings({ MaxMailSize: "400" }, async () => {
      const error = await refused(message({ from_address: from, reply_to: from, body: "" }));
      expectError(error, "54000", "reply_to", from, problem(FIXED + 2 * from.length, 400));
    });
  });
});

describe("MaxMailsPerUserPerDay", () => {
  const problem = (n: number, max: number) =>
    `has queued ${n} mails in the last 24 hours, the MaxMailsPerUserPerDay limit (${max}); try again later or ask an admin to raise it`;

  it("accepts up to the limit and refuses the next, naming the role, queuing nothing", async () => {
    await clearQueue();
    await withSettings({ MaxMailsPerUserPerDay: "3" }, async () => {
      await send(message());
      await send(message()); // one under
      await send(message()); // reaches the limit
      const error = await refused(message());
      expectError(error, "54000", "send_request_user", aliceRole.name, problem(3, 3));
      // Still refused: the refusal did not count, nor queue anything.
      expectError(await refused(message()), "54000", "send_request_user", aliceRole.name, problem(3, 3));
    });
  });

  it("counts only the caller's own mail", async () => {
    await clearQueue();
    await withSettings({ MaxMailsPerUserPerDay: "2" }, async () => {
      await send(message(), alice);
      await send(message(), alice);
      await send(message(), bob);
      await send(message(), bob);
      expectError(await refused(message(), bob), "54000", "send_request_user", bobRole.name, problem(2, 2));
      expectError(
        await refused(message(), alice),
        "54000",
        "send_request_user",
        aliceRole.name,
        problem(2, 2),
      );
    });
  });

  it("counts the hour it is (UTC) and the 24 before it, from its ledger", async () => {
    await clearQueue();
    await withSettings({ MaxMailsPerUserPerDay: "2" }, async () => {
      await send(message());
      await send(message());
      await refused(message());
      // The two mails of this hour, moved back: one 25 hours (no longer counted), one 24 hours.
      await db.query(
        `UPDATE dbmail.daily_mail_counts
         SET hour_start = date_trunc('hour', now(), 'UTC') - interval '25 hours', mails = 1`,
      );
      await db.query(
        `INSERT INTO dbmail.daily_mail_counts (role_id, hour_start, mails)
         SELECT role_id, date_trunc('hour', now(), 'UTC') - interval '24 hours', 1 FROM dbmail.daily_mail_counts`,
      );
      await send(message());
      expectError(await refused(message()), "54000", "send_request_user", aliceRole.name, problem(2, 2));
      // A new hour's first mail forgets what no count looks at any more.
      const { rows } = await db.query<{ oldest: string }>(
        `SELECT count(*) FILTER (WHERE hour_start < date_trunc('hour', now(), 'UTC') - interval '24 hours') AS oldest
         FROM dbmail.daily_mail_counts`,
      );
      expect(Number(first(rows).oldest)).toBe(0);
    });
  });

  // Issue 13: sysmail_delete_mailitems_sp(sent_status => ...) reset the count, so a role could send
  // again and again.
  it("keeps counting mail that was deleted since", async () => {
    await clearQueue();
    await withSettings({ MaxMailsPerUserPerDay: "2" }, async () => {
      await send(message());
      await send(message());
      await refused(message());
      const { rows } = await alice.query<{ n: string }>(
        "SELECT dbmail.sysmail_delete_mailitems_sp(sent_status => 'unsent') AS n",
      );
      expect(Number(first(rows).n)).toBe(2);
      expect(await queued()).toBe(0);
      expectError(await refused(message()), "54000", "send_request_user", aliceRole.name, problem(2, 2));
      // Nor does an admin's deletion of every item.
      await boss.query("SELECT dbmail.sysmail_delete_mailitems_sp(sent_before => now() + interval '1 day')");
      expectError(await refused(message()), "54000", "send_request_user", aliceRole.name, problem(2, 2));
    });
  });

  it("counts, when it is turned on, the mail queued in the last 24 hours while it was off", async () => {
    await clearQueue();
    await send(message());
    await send(message());
    await withSettings({ MaxMailsPerUserPerDay: "3" }, async () => {
      await send(message());
      expectError(await refused(message()), "54000", "send_request_user", aliceRole.name, problem(3, 3));
    });
  });

  it("counts mail whatever became of it (sent, failed)", async () => {
    await clearQueue();
    await withSettings({ MaxMailsPerUserPerDay: "2" }, async () => {
      await send(message());
      await send(message());
      await db.query("UPDATE dbmail.mailitems SET sent_status = 'failed'");
      expectError(await refused(message()), "54000", "send_request_user", aliceRole.name, problem(2, 2));
    });
  });

  it("exempts admins", async () => {
    await clearQueue();
    await withSettings({ MaxMailsPerUserPerDay: "1" }, async () => {
      for (let i = 0; i < 4; i++) await send(message(), boss);
      await send(message(), alice);
      await refused(message(), alice);
    });
  });

  it("does not refuse a replay of an idempotency_key, which returns the item already queued", async () => {
    await clearQueue();
    await withSettings({ MaxMailsPerUserPerDay: "2" }, async () => {
      const id = await send(message({ idempotency_key: "order-1" }));
      await send(message());
      expect(await queued()).toBe(2);
      expect(await send(message({ idempotency_key: "order-1" }))).toBe(id);
      expect(await queued()).toBe(2);
      // A new key is a new mail, and is refused.
      expectError(
        await refused(message({ idempotency_key: "order-2" })),
        "54000",
        "send_request_user",
        aliceRole.name,
        problem(2, 2),
      );
    });
  });

  it("makes concurrent sends of one role wait for each other, so they cannot both pass", async () => {
    await clearQueue();
    await withSettings({ MaxMailsPerUserPerDay: "1" }, async () => {
      const second = await db.connect(aliceRole);
      await alice.query("BEGIN");
      try {
        await send(message(), alice);
        const blocked = errorOf(send(message(), second));
        await new Promise((resolve) => setTimeout(resolve, 200));
        await alice.query("COMMIT");
        expectError(await blocked, "54000", "send_request_user", aliceRole.name, problem(1, 1));
      } finally {
        await alice.query("ROLLBACK").catch(() => {});
        await second.end();
      }
      expect(await queued()).toBe(1);
    });
  });

  it("0 means unlimited", async () => {
    await clearQueue();
    for (let i = 0; i < 5; i++) await send(message());
    expect(await queued()).toBe(5);
  });

  it("counts with an index scan on the ledger's key (role, hour)", async () => {
    const client = await db.connect();
    try {
      await client.query("BEGIN");
      // Many roles' hours, so that a sequential scan would not pay.
      await client.query(
        `INSERT INTO dbmail.daily_mail_counts (role_id, hour_start, mails)
         SELECT (100000 + g % 2000)::oid, date_trunc('hour', now(), 'UTC') - (g / 2000) * interval '1 hour', 1
         FROM generate_series(1, 50000) g`,
      );
      await client.query("ANALYZE dbmail.daily_mail_counts");
      const { rows } = await client.query<{ "QUERY PLAN": string }>(
        `EXPLAIN SELECT COALESCE(sum(c.mails), 0) FROM dbmail.daily_mail_counts c
         WHERE c.role_id = 100007 AND c.hour_start >= date_trunc('hour', now(), 'UTC') - interval '24 hours'`,
      );
      const plan = rows.map((r) => r["QUERY PLAN"]).join("\n");
      expect(plan).toContain("daily_mail_counts_pkey");
      expect(plan).not.toContain("Seq Scan");
    } finally {
      await client.query("ROLLBACK");
      await client.end();
    }
  });
});
