// Security boundaries of schema dbmail (SPEC sections 2, 3, 5, 6): who may call what, who sees which rows,
// that the sending user cannot be forged, that passwords stay with the sender, and that SECURITY DEFINER
// code cannot be hijacked through the caller's search_path. Each attack must fail AND leave nothing changed.
import { randomBytes } from "node:crypto";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, TestDatabase, type TestRole } from "../../../test/support/database.js";

const SECRET = `S3cret-${randomBytes(8).toString("hex")}`;

/** Every configuration procedure of SPEC section 4 except sysmail_delete_mailitems_sp (users may call it). */
const CONFIG_PROCEDURES = [
  "sysmail_add_account_sp",
  "sysmail_update_account_sp",
  "sysmail_delete_account_sp",
  "sysmail_help_account_sp",
  "sysmail_add_profile_sp",
  "sysmail_update_profile_sp",
  "sysmail_delete_profile_sp",
  "sysmail_help_profile_sp",
  "sysmail_add_profileaccount_sp",
  "sysmail_update_profileaccount_sp",
  "sysmail_delete_profileaccount_sp",
  "sysmail_help_profileaccount_sp",
  "sysmail_add_principalprofile_sp",
  "sysmail_update_principalprofile_sp",
  "sysmail_delete_principalprofile_sp",
  "sysmail_help_principalprofile_sp",
  "sysmail_configure_sp",
  "sysmail_help_configure_sp",
  "sysmail_start_sp",
  "sysmail_stop_sp",
  "sysmail_help_status_sp",
  "sysmail_help_queue_sp",
  "sysmail_delete_log_sp",
  // Operators: SQL Server Agent's procedures, and the pg_cron failure notices with their helpers.
  "sp_add_operator",
  "sp_update_operator",
  "sp_delete_operator",
  "sp_help_operator",
  "notify_job_failures",
  "job_failure_operator",
  "claim_job_failure",
];

const HELP_PROCEDURES = CONFIG_PROCEDURES.filter((name) => name.includes("_help_"));

/** The sender protocol: dbmail_sender only. */
const SENDER_FUNCTIONS = [
  "claim_mailitems",
  "extend_leases",
  "record_outcome",
  "record_outcomes",
  "release_mailitems",
  "schema_version",
  "sender_accounts",
  "sender_attachment_chunk",
  "sender_attachments",
  "sender_heartbeat",
  "sender_stopped",
  "log_event",
];

const VIEWS = [
  "sysmail_allitems",
  "sysmail_sentitems",
  "sysmail_unsentitems",
  "sysmail_faileditems",
  "sysmail_event_log",
  "sysmail_mailattachments",
];

/** What each role may execute in schema dbmail, and nothing more. */
const USER_FUNCTIONS = [
  "attachment",
  "check_send_arguments",
  "csv_line",
  "delete_mailitems",
  "format_query_result",
  "html_escape",
  "html_row",
  "is_admin",
  "operator_address",
  "query_result_limit",
  "queue_mail",
  "raise_error",
  "run_query",
  "send_with_query",
  "show_value",
  "sp_notify_operator",
  "sp_send_dbmail",
  "sysmail_delete_mailitems_sp",
  "wrap_line",
];

/** dbmail.queue_mail's parameters in order, with their types and a harmless value. */
const QUEUE_MAIL_PARAMETERS: [string, string, unknown][] = [
  ["profile_name", "text", null],
  ["recipients", "text", "to@example.com"],
  ["copy_recipients", "text", null],
  ["blind_copy_recipients", "text", null],
  ["subject", "text", "direct"],
  ["body", "text", "body"],
  ["body_format", "text", "TEXT"],
  ["importance", "text", "NORMAL"],
  ["sensitivity", "text", "NORMAL"],
  ["file_attachments", "text", null],
  ["query", "text", null],
  ["execute_query_database", "text", null],
  ["attach_query_result_as_file", "boolean", false],
  ["query_attachment_filename", "text", null],
  ["query_result_header", "boolean", true],
  ["query_result_width", "integer", 256],
  ["query_result_separator", "text", " "],
  ["exclude_query_output", "boolean", false],
  ["append_query_error", "boolean", false],
  ["query_no_truncate", "boolean", false],
  ["query_result_no_padding", "boolean", false],
  ["from_address", "text", null],
  ["reply_to", "text", null],
  ["attachments", "dbmail.attachment[]", null],
  ["headers", "jsonb", null],
  ["send_at", "timestamptz", null],
  ["idempotency_key", "text", null],
  ["query_result_format", "text", "TEXT"],
  ["query_result", "text", null],
];

interface Items {
  unsent: string;
  sent: string;
  failed: string;
  retrying: string;
}

let db: TestDatabase;
let nobody: TestRole;
let alice: TestRole;
let bob: TestRole;
let carol: TestRole;
let dave: TestRole;
let team: TestRole;
let vip: TestRole;
let admin: TestRole;
let sender: TestRole;
let nobodyClient: pg.Client;
let aliceClient: pg.Client;
let bobClient: pg.Client;
let adminClient: pg.Client;
let senderClient: pg.Client;
let accountId: number;
const items: Record<"alice" | "bob", Items> = {
  alice: { unsent: "", sent: "", failed: "", retrying: "" },
  bob: { unsent: "", sent: "", failed: "", retrying: "" },
};

function first<T>(rows: T[]): T {
  const row = rows[0];
  if (row === undefined) throw new Error("expected a row");
  return row;
}

function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Queues a message through the public entry point; returns the mailitem_id. */
async function send(client: pg.Client, args: Record<string, unknown> = {}): Promise<string> {
  const all: Record<string, unknown> = { recipients: "to@example.com", subject: "s", body: "b", ...args };
  const names = Object.keys(all);
  const sql = `SELECT dbmail.sp_send_dbmail(${names.map((n, i) => `${n} => $${i + 1}`).join(", ")}) AS id`;
  const { rows } = await client.query<{ id: string }>(sql, Object.values(all));
  return first(rows).id;
}

/** Calls dbmail.queue_mail directly (granted to dbmail_user), all 28 arguments named, without a stamp. */
async function queueMailUnstamped(
  client: pg.Client,
  overrides: Record<string, unknown> = {},
): Promise<string> {
  const args = QUEUE_MAIL_PARAMETERS.map(([name, type], i) => `${name} => $${i + 1}::${type}`).join(", ");
  const values = QUEUE_MAIL_PARAMETERS.map(([name, , value]) =>
    name in overrides ? overrides[name] : value,
  );
  const { rows } = await client.query<{ id: string }>(`SELECT dbmail.queue_mail(${args}) AS id`, values);
  return first(rows).id;
}

/**
 * Calls dbmail.queue_mail directly after stamping the caller by hand in the same transaction, which is all
 * sp_send_dbmail does before it: the most a user can do with queue_mail.
 */
async function queueMail(client: pg.Client, overrides: Record<string, unknown> = {}): Promise<string> {
  await client.query("BEGIN");
  try {
    await client.query("INSERT INTO dbmail.caller_stamps DEFAULT VALUES");
    const id = await queueMailUnstamped(client, overrides);
    await client.query("COMMIT");
    return id;
  } catch (error) {
    await client.query("ROLLBACK");
    throw error;
  }
}

async function item(id: string): Promise<Record<string, unknown>> {
  return first((await db.query("SELECT * FROM dbmail.mailitems WHERE mailitem_id = $1", [id])).rows);
}

async function idsOf(sql: string, params: unknown[] = []): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(sql, params);
  return rows.map((r) => String(r.id)).sort();
}

/** A fingerprint of every table in schema dbmail (row count and an md5 of all rows), as the superuser. */
async function snapshot(): Promise<Record<string, string>> {
  const { rows: tables } = await db.query<{ t: string }>(
    "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'dbmail' ORDER BY 1",
  );
  const result: Record<string, string> = {};
  for (const { t } of tables) {
    const { rows } = await db.query<{ n: string; h: string | null }>(
      `SELECT count(*) AS n, md5(string_agg(x::text, '|' ORDER BY x::text)) AS h FROM dbmail.${ident(t)} x`,
    );
    const row = first(rows);
    result[t] = `${row.n}:${row.h}`;
  }
  return result;
}

async function expectUnchanged(attack: () => Promise<void>): Promise<void> {
  const before = await snapshot();
  await attack();
  expect(await snapshot()).toEqual(before);
}

async function expectDenied(promise: Promise<unknown>, message?: string | RegExp): Promise<void> {
  const error = await errorOf(promise);
  expect(error.code, error.message).toBe("42501");
  if (message) expect(error.message).toMatch(message);
}

/** `SELECT dbmail.f(NULL::t1, ...)` for every function of that name, with its exact argument types. */
async function nullCalls(name: string): Promise<string[]> {
  const { rows } = await db.query<{ types: string[] }>(
    `SELECT array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, n) ORDER BY n)
            AS types
     FROM pg_proc p WHERE p.pronamespace = 'dbmail'::regnamespace AND p.proname = $1`,
    [name],
  );
  expect(rows.length, `function dbmail.${name} exists`).toBeGreaterThan(0);
  return rows.map((r) => `SELECT dbmail.${ident(name)}(${r.types.map((t) => `NULL::${t}`).join(", ")})`);
}

/** Runs each call as client; returns those that did not fail with 42501 (and the message). */
async function notDenied(client: pg.Client, names: string[], message?: RegExp): Promise<string[]> {
  const violations: string[] = [];
  for (const name of names) {
    for (const sql of await nullCalls(name)) {
      try {
        await client.query(sql);
        violations.push(`${name}: succeeded`);
      } catch (error) {
        const { code, message: text } = error as { code: string; message: string };
        if (code !== "42501" || (message && !message.test(text))) violations.push(`${name}: ${code} ${text}`);
      }
    }
  }
  return violations;
}

/** Tries SELECT/INSERT/UPDATE/DELETE/TRUNCATE on every table and nextval/setval/SELECT on every sequence
 * of schema dbmail, each in a transaction that is rolled back; returns what was not refused. */
async function tableViolations(client: pg.Client): Promise<string[]> {
  const { rows: tables } = await db.query<{ t: string; col: string }>(
    `SELECT t.tablename AS t,
            (SELECT a.attname FROM pg_attribute a
             WHERE a.attrelid = format('dbmail.%I', t.tablename)::regclass AND a.attnum > 0 AND NOT a.attisdropped
               AND a.attidentity = '' AND a.attgenerated = '' ORDER BY a.attnum LIMIT 1) AS col
     FROM pg_tables t WHERE t.schemaname = 'dbmail' ORDER BY 1`,
  );
  const { rows: sequences } = await db.query<{ s: string }>(
    "SELECT sequencename AS s FROM pg_sequences WHERE schemaname = 'dbmail' ORDER BY 1",
  );
  expect(tables.map((r) => r.t)).toEqual(
    expect.arrayContaining(["mailitems", "account_secrets", "event_log"]),
  );
  const statements: string[] = [];
  for (const { t, col } of tables) {
    const table = `dbmail.${ident(t)}`;
    statements.push(
      `SELECT * FROM ${table} LIMIT 1`,
      `INSERT INTO ${table} DEFAULT VALUES`,
      `UPDATE ${table} SET ${ident(col)} = ${ident(col)}`,
      `DELETE FROM ${table}`,
      `TRUNCATE ${table} CASCADE`,
    );
  }
  for (const { s } of sequences) {
    const seq = `dbmail.${ident(s)}`;
    statements.push(
      `SELECT nextval('${seq}')`,
      `SELECT setval('${seq}', 1000000)`,
      `SELECT last_value FROM ${seq}`,
    );
  }
  const violations: string[] = [];
  // The one write users have: a stamp of their own current_user (see dbmail.caller_stamps), tested below.
  const allowed = new Set(['INSERT INTO dbmail."caller_stamps" DEFAULT VALUES']);
  for (const sql of statements.filter((statement) => !allowed.has(statement))) {
    await client.query("BEGIN");
    try {
      await client.query(sql);
      violations.push(`${sql}: succeeded`);
    } catch (error) {
      const { code, message } = error as { code: string; message: string };
      if (code !== "42501") violations.push(`${sql}: ${code} ${message}`);
    } finally {
      await client.query("ROLLBACK");
    }
  }
  return violations;
}

/** Collects the NOTICE messages a client receives. */
function notices(client: pg.Client): string[] {
  const received: string[] = [];
  client.on("notice", (notice) => received.push(notice.message ?? ""));
  return received;
}

async function fixtureItems(client: pg.Client, who: string): Promise<Items> {
  const result: Items = { unsent: "", sent: "", failed: "", retrying: "" };
  for (const status of ["unsent", "sent", "failed", "retrying"] as const) {
    result[status] = await send(client, { subject: `${who} ${status}` });
  }
  await db.query(
    "UPDATE dbmail.mailitems SET sent_status = 'sent', sent_date = now() WHERE mailitem_id = $1",
    [result.sent],
  );
  await db.query(
    "UPDATE dbmail.mailitems SET sent_status = 'failed', sent_date = now(), last_error = 'x' WHERE mailitem_id = $1",
    [result.failed],
  );
  await db.query(
    `UPDATE dbmail.mailitems SET sent_status = 'retrying', send_attempts = 1,
       next_attempt_at = now() + interval '1 day' WHERE mailitem_id = $1`,
    [result.retrying],
  );
  await db.query(
    "INSERT INTO dbmail.event_log (event_type, description, mailitem_id, last_mod_user) VALUES ('error', $1, $2, 'x')",
    [`${who}'s failure`, result.failed],
  );
  await db.query(
    `INSERT INTO dbmail.attachments (mailitem_id, filename, filesize, attachment, last_mod_user)
     VALUES ($1, $2, 3, '\\x616263', 'x')`,
    [result.unsent, `${who}.txt`],
  );
  return result;
}

beforeAll(async () => {
  db = await TestDatabase.create();
  nobody = await db.createRole("nobody");
  alice = await db.createRole("alice", { memberOf: ["dbmail_user"] });
  bob = await db.createRole("bob", { memberOf: ["dbmail_user"] });
  dave = await db.createRole("dave", { memberOf: ["dbmail_user"] });
  team = await db.createRole("team", { login: false, memberOf: ["dbmail_user"] });
  // carol is a dbmail_user only through team.
  carol = await db.createRole("carol", { memberOf: [team.name] });
  vip = await db.createRole("vip", { login: false });
  admin = await db.createRole("admin", { memberOf: ["dbmail_admin"] });
  sender = await db.createRole("sender", { memberOf: ["dbmail_sender"] });

  accountId = first(
    (
      await db.query<{ id: number }>(
        `SELECT dbmail.sysmail_add_account_sp(account_name => 'main', email_address => 'dbmail@example.com',
           mailserver_name => 'localhost', username => 'mailer', password => $1) AS id`,
        [SECRET],
      )
    ).rows,
  ).id;
  for (const profile of ["general", "team_only", "vip_only", "admins_only"]) {
    await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => $1)", [profile]);
    await db.query(
      "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => $1, account_name => 'main', sequence_number => 1)",
      [profile],
    );
  }
  await db.query(
    "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'general', is_default => true)",
  );
  await db.query(
    "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => $1, profile_name => 'team_only', is_default => false)",
    [team.name],
  );
  await db.query(
    "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => $1, profile_name => 'vip_only', is_default => false)",
    [vip.name],
  );

  nobodyClient = await db.connect(nobody);
  aliceClient = await db.connect(alice);
  bobClient = await db.connect(bob);
  adminClient = await db.connect(admin);
  senderClient = await db.connect(sender);

  items.alice = await fixtureItems(aliceClient, "alice");
  items.bob = await fixtureItems(bobClient, "bob");
  await db.query(
    "INSERT INTO dbmail.event_log (event_type, description, last_mod_user) VALUES ('information', 'system event', 'x')",
  );
});

afterAll(async () => {
  await db?.drop();
});

describe("a login role without any dbmail role", () => {
  it("cannot call sp_send_dbmail (no USAGE on schema dbmail), and nothing is queued", async () => {
    await expectUnchanged(() =>
      expectDenied(send(nobodyClient, { profile_name: "general" }), /permission denied for schema dbmail/),
    );
  });

  it("cannot select any sysmail_* view", async () => {
    const violations: string[] = [];
    for (const view of VIEWS) {
      const error = await errorOf(nobodyClient.query(`SELECT * FROM dbmail.${view}`));
      if (error.code !== "42501" || !/permission denied for schema dbmail/.test(error.message)) {
        violations.push(`${view}: ${error.code} ${error.message}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it("cannot call any function of schema dbmail (configuration, sender protocol, helpers)", async () => {
    const { rows } = await db.query<{ name: string }>(
      "SELECT DISTINCT proname AS name FROM pg_proc WHERE pronamespace = 'dbmail'::regnamespace ORDER BY 1",
    );
    const names = rows.map((r) => r.name);
    expect(names).toEqual(expect.arrayContaining([...CONFIG_PROCEDURES, ...SENDER_FUNCTIONS, "queue_mail"]));
    await expectUnchanged(async () => {
      expect(await notDenied(nobodyClient, names, /permission denied for schema dbmail/)).toEqual([]);
    });
  });

  it("cannot read or write any table of schema dbmail", async () => {
    await expectUnchanged(async () => {
      expect(await tableViolations(nobodyClient)).toEqual([]);
    });
  });
});

describe("dbmail_user", () => {
  it("the list of configuration procedures covers every sysmail_*_sp in the schema", async () => {
    const { rows } = await db.query<{ name: string }>(
      `SELECT DISTINCT proname AS name FROM pg_proc
       WHERE pronamespace = 'dbmail'::regnamespace AND proname LIKE 'sysmail\\_%' ORDER BY 1`,
    );
    const sysmail = CONFIG_PROCEDURES.filter((name) => name.startsWith("sysmail_"));
    expect(rows.map((r) => r.name)).toEqual([...sysmail, "sysmail_delete_mailitems_sp"].sort());
  });

  it.each(CONFIG_PROCEDURES)("cannot call %s", async (name) => {
    await expectUnchanged(async () => {
      expect(await notDenied(aliceClient, [name], /permission denied for function/)).toEqual([]);
    });
  });

  it("cannot call any sender function (claim, record_outcome, release, accounts, attachments, heartbeat, log)", async () => {
    await expectUnchanged(async () => {
      expect(await notDenied(aliceClient, SENDER_FUNCTIONS, /permission denied for function/)).toEqual([]);
    });
  });

  it("cannot SELECT, INSERT, UPDATE, DELETE or TRUNCATE any table, nor use any sequence", async () => {
    await expectUnchanged(async () => {
      expect(await tableViolations(aliceClient)).toEqual([]);
    });
  });

  it("may execute exactly the user functions and nothing else", async () => {
    const { rows } = await db.query<{ name: string }>(
      `SELECT DISTINCT proname AS name FROM pg_proc
       WHERE pronamespace = 'dbmail'::regnamespace AND has_function_privilege('dbmail_user', oid, 'EXECUTE')
       ORDER BY 1`,
    );
    expect(rows.map((r) => r.name)).toEqual(USER_FUNCTIONS);
  });

  it("cannot call queue_mail directly without a stamp of its own transaction", async () => {
    await expectUnchanged(async () => {
      const error = await errorOf(queueMailUnstamped(aliceClient, { subject: "queued directly" }));
      expect(error.code).toBe("42501");
      expect(error.message).toContain("call dbmail.sp_send_dbmail");
    });
  });

  it("with a stamp made by hand, queue_mail records the stamper, and a stamp is only ever its maker's", async () => {
    const id = await queueMail(aliceClient, { subject: "queued directly" });
    const row = await item(id);
    expect(row.send_request_user).toBe(alice.name);
    expect(row.last_mod_user).toBe(alice.name);
    await expectUnchanged(async () => {
      await expectDenied(
        aliceClient.query("INSERT INTO dbmail.caller_stamps (role_name) VALUES ($1)", [bob.name]),
      );
      await expectDenied(aliceClient.query("SELECT * FROM dbmail.caller_stamps"));
      await expectDenied(aliceClient.query("UPDATE dbmail.caller_stamps SET role_name = role_name"));
    });
  });

  it("a stamp left committed by one user cannot be used by another session", async () => {
    await aliceClient.query("INSERT INTO dbmail.caller_stamps DEFAULT VALUES");
    await expectUnchanged(async () => {
      const error = await errorOf(queueMailUnstamped(bobClient, { subject: "with alice's stamp" }));
      expect(error.code).toBe("42501");
    });
    await db.query("DELETE FROM dbmail.caller_stamps");
  });

  it("cannot bypass sp_send_dbmail's refusals by calling queue_mail directly", async () => {
    // sp_send_dbmail refuses these (file attachments outside AttachmentDirectories, which is empty; a
    // prohibited extension, also as a query attachment name); queue_mail, granted to the same users, must
    // too. (A query's result is formatted by sp_send_dbmail in the caller's session; a direct caller can
    // only hand queue_mail a "result" it could as well have written in the body.)
    const exe = first(
      (
        await db.query<{ a: string }>(
          "SELECT ARRAY[dbmail.attachment('evil.exe', '\\x4d5a'::bytea)]::text AS a",
        )
      ).rows,
    ).a;
    const attempts: Record<string, Record<string, unknown>> = {
      file_attachments: { file_attachments: "/etc/passwd" },
      attachments: { attachments: exe },
      query_attachment_filename: {
        query: "SELECT 1",
        query_result: "1",
        attach_query_result_as_file: true,
        query_attachment_filename: "run.vbs",
      },
    };
    const accepted: string[] = [];
    for (const [name, overrides] of Object.entries(attempts)) {
      const before = await snapshot();
      try {
        const id = await queueMail(aliceClient, overrides);
        accepted.push(`${name}: queued mailitem ${id}`);
        await db.query("DELETE FROM dbmail.mailitems WHERE mailitem_id = $1", [id]);
      } catch {
        expect(await snapshot()).toEqual(before);
      }
    }
    expect(accepted).toEqual([]);
  });

  it("cannot use a private profile granted to a role it is not a member of", async () => {
    await expectUnchanged(async () => {
      const error = await errorOf(send(aliceClient, { profile_name: "vip_only" }));
      expect(error.code).toBe("42501");
      expect(error.message).toContain("profile_name");
      expect(error.message).toContain(alice.name);
    });
  });

  it("cannot use a profile with no grants (private to admins)", async () => {
    await expectUnchanged(() => expectDenied(send(aliceClient, { profile_name: "admins_only" })));
  });

  it("cannot use another group's profile, even named in another case or with spaces", async () => {
    await expectUnchanged(() => expectDenied(send(aliceClient, { profile_name: "  TEAM_ONLY " })));
  });

  it("can use a profile granted to a group role it is a member of", async () => {
    const client = await db.connect(carol);
    const id = await send(client, { profile_name: "team_only" });
    const row = await item(id);
    expect(row.send_request_user).toBe(carol.name);
    expect(row.profile_id).toBe(
      first((await db.query("SELECT profile_id FROM dbmail.profiles WHERE name = 'team_only'")).rows)
        .profile_id,
    );
  });

  it("cannot collide with another user's idempotency key", async () => {
    const key = `key-${randomBytes(4).toString("hex")}`;
    const bobs = await send(bobClient, { idempotency_key: key, subject: "bob's keyed" });
    const alices = await send(aliceClient, { idempotency_key: key, subject: "alice's keyed" });
    expect(alices).not.toBe(bobs);
    expect((await item(alices)).send_request_user).toBe(alice.name);
    expect((await item(bobs)).subject).toBe("bob's keyed");
  });

  it.each([
    ["sysmail_allitems", null],
    ["sysmail_sentitems", ["sent"]],
    ["sysmail_unsentitems", ["unsent", "sending", "retrying"]],
    ["sysmail_faileditems", ["failed"]],
  ] as const)("sees only its own items in %s", async (view, statuses) => {
    const filter = "($2::text[] IS NULL OR sent_status = ANY ($2::text[]))";
    const others = await idsOf(
      `SELECT mailitem_id AS id FROM dbmail.mailitems WHERE send_request_user <> $1 AND ${filter}`,
      [alice.name, statuses],
    );
    expect(others.length, "other users have items here").toBeGreaterThan(0);
    const own = await idsOf(
      `SELECT mailitem_id AS id FROM dbmail.mailitems WHERE send_request_user = $1 AND ${filter}`,
      [alice.name, statuses],
    );
    expect(own.length).toBeGreaterThan(0);
    const { rows } = await aliceClient.query<{ id: string; u: string }>(
      `SELECT mailitem_id AS id, send_request_user AS u FROM dbmail.${view}`,
    );
    expect(rows.map((r) => String(r.id)).sort()).toEqual(own);
    expect(new Set(rows.map((r) => r.u))).toEqual(new Set([alice.name]));
  });

  it("sees only the events of its own items in sysmail_event_log (events without an item are admin-only)", async () => {
    const expected = await idsOf(
      `SELECT e.log_id AS id FROM dbmail.event_log e JOIN dbmail.mailitems m USING (mailitem_id)
       WHERE m.send_request_user = $1`,
      [alice.name],
    );
    expect(expected.length).toBeGreaterThan(0);
    const hidden = await idsOf(
      `SELECT e.log_id AS id FROM dbmail.event_log e LEFT JOIN dbmail.mailitems m USING (mailitem_id)
       WHERE m.send_request_user IS DISTINCT FROM $1`,
      [alice.name],
    );
    expect(hidden.length, "events of others and without an item exist").toBeGreaterThan(1);
    const { rows } = await aliceClient.query<{ id: string }>(
      "SELECT log_id AS id FROM dbmail.sysmail_event_log",
    );
    expect(rows.map((r) => String(r.id)).sort()).toEqual(expected);
  });

  it("sees only its own attachments in sysmail_mailattachments", async () => {
    const { rows } = await aliceClient.query<{ id: string; filename: string }>(
      "SELECT mailitem_id AS id, filename FROM dbmail.sysmail_mailattachments",
    );
    expect(rows.map((r) => r.filename)).toEqual(["alice.txt"]);
    expect(rows.map((r) => String(r.id))).toEqual([items.alice.unsent]);
    const { rows: bobs } = await bobClient.query<{ filename: string }>(
      "SELECT filename FROM dbmail.sysmail_mailattachments",
    );
    expect(bobs.map((r) => r.filename)).toEqual(["bob.txt"]);
  });

  it("sysmail_delete_mailitems_sp deletes only the caller's own items", async () => {
    const client = await db.connect(dave);
    await send(client);
    await send(client);
    const othersBefore = await idsOf(
      "SELECT mailitem_id AS id FROM dbmail.mailitems WHERE send_request_user <> $1",
      [dave.name],
    );
    const { rows } = await client.query<{ n: string }>(
      "SELECT dbmail.sysmail_delete_mailitems_sp(sent_before => now() + interval '1 hour') AS n",
    );
    expect(Number(first(rows).n)).toBe(2);
    expect(
      await idsOf("SELECT mailitem_id AS id FROM dbmail.mailitems WHERE send_request_user = $1", [dave.name]),
    ).toEqual([]);
    expect(
      await idsOf("SELECT mailitem_id AS id FROM dbmail.mailitems WHERE send_request_user <> $1", [
        dave.name,
      ]),
    ).toEqual(othersBefore);
  });
});

describe("forging the sender", () => {
  it("send_request_user is the calling role", async () => {
    const id = await send(aliceClient, { subject: "who am i" });
    const row = await item(id);
    expect(row.send_request_user).toBe(alice.name);
    expect(row.last_mod_user).toBe(alice.name);
  });

  it("after SET ROLE to a group the user belongs to, the group is recorded (current_user)", async () => {
    const client = await db.connect(carol);
    await client.query(`SET ROLE ${ident(team.name)}`);
    expect(first((await client.query<{ u: string }>("SELECT current_user AS u")).rows).u).toBe(team.name);
    expect((await item(await send(client, { profile_name: "team_only" }))).send_request_user).toBe(team.name);
    expect((await item(await queueMail(client))).send_request_user).toBe(team.name);
    await client.query("RESET ROLE");
    expect((await item(await send(client))).send_request_user).toBe(carol.name);
  });

  it("set_config('role', ...) to a role the user is not a member of fails, and the true user is recorded", async () => {
    const client = await db.connect(alice);
    await expectUnchanged(async () => {
      await expectDenied(client.query("SELECT set_config('role', $1, false)", [bob.name]));
      await expectDenied(client.query(`SET ROLE ${ident(bob.name)}`));
      await expectDenied(client.query(`SET SESSION AUTHORIZATION ${ident(bob.name)}`));
      await expectDenied(client.query(`SET ROLE ${ident(vip.name)}`));
    });
    expect((await item(await send(client))).send_request_user).toBe(alice.name);
  });

  it("a per-role setting of role (ALTER ROLE ... SET role) does not forge the sender", async () => {
    await aliceClient.query(`ALTER ROLE ${ident(alice.name)} SET role = ${ident(bob.name)}`).catch(() => {});
    try {
      const client = await db.connect(alice).catch(() => undefined);
      if (client) {
        expect((await item(await send(client))).send_request_user).toBe(alice.name);
      }
    } finally {
      await db.query(`ALTER ROLE ${ident(alice.name)} RESET ALL`);
    }
  });

  it("inside a SECURITY DEFINER function, the recorded user is its owner (current_user), not the session's role", async () => {
    // alice wraps sp_send_dbmail in a SECURITY DEFINER function and lets a role with no dbmail role call it.
    // SPEC 5: the sending principal is the caller's current_user, here alice; the session role (nobody) is
    // not a dbmail_user at all and must not appear as a sender, nor have its grants decide the profile.
    await db.query(`CREATE SCHEMA app AUTHORIZATION ${ident(alice.name)}`);
    await db.query(`GRANT USAGE ON SCHEMA app TO ${ident(nobody.name)}`);
    const owner = await db.connect(alice);
    await owner.query(
      `CREATE FUNCTION app.notify() RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS
       $$SELECT dbmail.sp_send_dbmail(recipients => 'to@example.com', subject => 'wrapped', body => 'b')$$`,
    );
    await owner.query(`GRANT EXECUTE ON FUNCTION app.notify() TO ${ident(nobody.name)}`);
    const { rows } = await nobodyClient.query<{ id: string }>("SELECT app.notify() AS id");
    const row = await item(first(rows).id);
    expect(row.send_request_user).toBe(alice.name);
  });

  it("a direct call to queue_mail records the true user", async () => {
    const client = await db.connect(alice);
    expect((await item(await queueMail(client))).send_request_user).toBe(alice.name);
  });

  it("a leaky function in a WHERE clause over the views never sees other users' rows (security barrier)", async () => {
    const client = await db.connect(alice);
    const received = notices(client);
    await client.query(
      `CREATE FUNCTION pg_temp.peek(a bigint, b text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS
       $$BEGIN RAISE NOTICE 'peek %|%', a, b; RETURN true; END$$`,
    );
    const aliceItems = await idsOf(
      "SELECT mailitem_id AS id FROM dbmail.mailitems WHERE send_request_user = $1",
      [alice.name],
    );
    const seenItems = (): string[] =>
      received.filter((m) => m.startsWith("peek ")).map((m) => m.slice(5).split("|")[0] ?? "");

    for (const view of [
      "sysmail_allitems",
      "sysmail_sentitems",
      "sysmail_unsentitems",
      "sysmail_faileditems",
    ]) {
      received.length = 0;
      await client.query(
        `SELECT * FROM dbmail.${view} WHERE pg_temp.peek(mailitem_id, send_request_user::text)`,
      );
      const users = received.filter((m) => m.startsWith("peek ")).map((m) => m.split("|")[1]);
      expect(users.length, `${view}: the function ran`).toBeGreaterThan(0);
      expect(new Set(users), view).toEqual(new Set([alice.name]));
    }

    received.length = 0;
    await client.query(
      "SELECT * FROM dbmail.sysmail_event_log WHERE pg_temp.peek(log_id, COALESCE(mailitem_id::text, 'none'))",
    );
    const eventItems = received.filter((m) => m.startsWith("peek ")).map((m) => m.split("|")[1] ?? "");
    expect(eventItems.length).toBeGreaterThan(0);
    for (const id of eventItems) expect(aliceItems).toContain(id);

    received.length = 0;
    await client.query(
      "SELECT * FROM dbmail.sysmail_mailattachments WHERE pg_temp.peek(mailitem_id, filename)",
    );
    const attachmentItems = seenItems();
    expect(attachmentItems).toEqual([items.alice.unsent]);
  });

  it("a temporary pg_roles claiming the caller is a superuser changes nothing", async () => {
    const client = await db.connect(alice);
    await client.query(
      `CREATE TEMP VIEW pg_roles AS
       SELECT r.oid, r.rolname, true AS rolsuper FROM pg_catalog.pg_roles r`,
    );
    await client.query("SET search_path = pg_temp, pg_catalog, public");
    await expectUnchanged(() => expectDenied(send(client, { profile_name: "vip_only" })));
    const { rows } = await client.query<{ u: string }>(
      "SELECT DISTINCT send_request_user AS u FROM dbmail.sysmail_allitems",
    );
    expect(rows.map((r) => r.u)).toEqual([alice.name]);
  });
});

describe("passwords", () => {
  it("dbmail_user and dbmail_admin cannot SELECT dbmail.account_secrets", async () => {
    await expectDenied(
      aliceClient.query("SELECT * FROM dbmail.account_secrets"),
      /permission denied for table/,
    );
    await expectDenied(
      adminClient.query("SELECT * FROM dbmail.account_secrets"),
      /permission denied for table/,
    );
    await expectDenied(adminClient.query("SELECT password FROM dbmail.account_secrets"));
  });

  it("dbmail_admin cannot call sender_accounts or any other sender function", async () => {
    await expectUnchanged(async () => {
      expect(
        await notDenied(
          adminClient,
          SENDER_FUNCTIONS.filter((f) => f !== "schema_version"),
          /permission denied for function/,
        ),
      ).toEqual([]);
    });
  });

  it("sysmail_help_account_sp has no password column and no value equal to the password", async () => {
    const result = await adminClient.query("SELECT * FROM dbmail.sysmail_help_account_sp()");
    expect(result.rows.length).toBeGreaterThan(0);
    const columns = result.fields.map((f) => f.name);
    expect(columns.filter((c) => /pass|secret/i.test(c))).toEqual(["password_source"]);
    for (const row of result.rows) {
      for (const value of Object.values(row)) expect(value).not.toBe(SECRET);
      expect(row.password_source).toBe("literal");
    }
    expect(JSON.stringify(result.rows)).not.toContain(SECRET);
  });

  it("no help procedure and no sysmail_* view shows the password to an admin", async () => {
    const outputs: string[] = [];
    for (const name of HELP_PROCEDURES) {
      const { rows } = await adminClient.query(`SELECT * FROM dbmail.${name}()`);
      outputs.push(`${name}: ${JSON.stringify(rows)}`);
    }
    for (const view of VIEWS) {
      const { rows } = await adminClient.query(`SELECT * FROM dbmail.${view}`);
      outputs.push(`${view}: ${JSON.stringify(rows)}`);
    }
    expect(outputs.filter((o) => o.includes(SECRET))).toEqual([]);
  });

  it("pg_stats does not reveal the password to users or admins after ANALYZE", async () => {
    await db.query("ANALYZE dbmail.account_secrets");
    for (const client of [aliceClient, adminClient]) {
      const { rows } = await client.query("SELECT * FROM pg_stats WHERE schemaname = 'dbmail'");
      expect(JSON.stringify(rows)).not.toContain(SECRET);
    }
  });

  it("error messages about an account never echo a literal password", async () => {
    const add = await errorOf(
      adminClient.query(
        `SELECT dbmail.sysmail_add_account_sp(account_name => 'nouser', email_address => 'x@example.com',
           mailserver_name => 'localhost', password => $1)`,
        [SECRET],
      ),
    );
    expect(add.message).toContain("password");
    expect(add.message).not.toContain(SECRET);
    const update = await errorOf(
      adminClient.query(
        "SELECT dbmail.sysmail_update_account_sp(account_name => 'main', username => '', password => $1)",
        [SECRET],
      ),
    );
    expect(update.message).not.toContain(SECRET);
  });

  it("dbmail_sender reads the password through dbmail.sender_accounts()", async () => {
    const { rows } = await senderClient.query<{ account_id: number; password: string }>(
      "SELECT account_id, password FROM dbmail.sender_accounts()",
    );
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.filter((r) => r.account_id === accountId).map((r) => r.password)).toContain(SECRET);
  });
});

describe("dbmail_admin", () => {
  it("can configure: add an account and a profile", async () => {
    const { rows } = await adminClient.query<{ a: number; p: number }>(
      `SELECT dbmail.sysmail_add_account_sp(account_name => 'admin-added', email_address => 'a@example.com',
                mailserver_name => 'localhost') AS a,
              dbmail.sysmail_add_profile_sp(profile_name => 'admin-added') AS p`,
    );
    const row = first(rows);
    expect(row.a).toBeGreaterThan(0);
    expect(row.p).toBeGreaterThan(0);
    const stored = first(
      (await db.query("SELECT last_mod_user FROM dbmail.accounts WHERE account_id = $1", [row.a])).rows,
    );
    expect(stored.last_mod_user).toBe(admin.name);
  });

  it("can send with a profile that has no grants", async () => {
    expect((await item(await send(adminClient, { profile_name: "admins_only" }))).send_request_user).toBe(
      admin.name,
    );
  });

  it("sees every user's items", async () => {
    const all = await idsOf("SELECT mailitem_id AS id FROM dbmail.mailitems");
    const { rows } = await adminClient.query<{ id: string }>(
      "SELECT mailitem_id AS id FROM dbmail.sysmail_allitems",
    );
    expect(rows.map((r) => String(r.id)).sort()).toEqual(all);
    expect(all).toEqual(expect.arrayContaining(Object.values(items.bob)));
  });

  it("sees every event, including those without an item", async () => {
    const all = await idsOf("SELECT log_id AS id FROM dbmail.event_log");
    const { rows } = await adminClient.query<{ id: string }>(
      "SELECT log_id AS id FROM dbmail.sysmail_event_log",
    );
    expect(rows.map((r) => String(r.id)).sort()).toEqual(all);
    const { rows: attachments } = await adminClient.query<{ filename: string }>(
      "SELECT filename FROM dbmail.sysmail_mailattachments ORDER BY filename",
    );
    expect(attachments.map((r) => r.filename)).toEqual(["alice.txt", "bob.txt"]);
  });

  it("cannot read or write any table directly", async () => {
    await expectUnchanged(async () => {
      expect(await tableViolations(adminClient)).toEqual([]);
    });
  });

  it("may execute exactly the user functions and the configuration procedures", async () => {
    const { rows } = await db.query<{ name: string }>(
      `SELECT DISTINCT proname AS name FROM pg_proc
       WHERE pronamespace = 'dbmail'::regnamespace AND has_function_privilege('dbmail_admin', oid, 'EXECUTE')
       ORDER BY 1`,
    );
    expect(rows.map((r) => r.name)).toEqual(
      [...USER_FUNCTIONS, ...CONFIG_PROCEDURES, "schema_version"].sort(),
    );
  });
});

describe("dbmail_sender", () => {
  it("can heartbeat, claim, record an outcome, release, and read accounts", async () => {
    const senderId = `test-sender-${randomBytes(3).toString("hex")}`;
    const beat = first(
      (await senderClient.query(`SELECT * FROM dbmail.sender_heartbeat($1)`, [senderId])).rows,
    );
    expect(beat.started).toBe(true);
    const mine = await send(aliceClient, { subject: "for the sender" });
    const { rows: claimed } = await senderClient.query<{ mailitem_id: string; lease_token: string }>(
      "SELECT mailitem_id, lease_token FROM dbmail.claim_mailitems($1, 10000, 60)",
      [senderId],
    );
    const ids = claimed.map((r) => String(r.mailitem_id));
    const token = first(claimed).lease_token;
    expect(ids).toContain(mine);
    const outcome = first(
      (
        await senderClient.query<{ s: string }>(
          "SELECT dbmail.record_outcome($1, $2, $3, 'sent', $4, '250 OK') AS s",
          [mine, senderId, token, accountId],
        )
      ).rows,
    ).s;
    expect(outcome).toBe("sent");
    const rest = ids.filter((id) => id !== mine);
    const released = first(
      (
        await senderClient.query<{ n: number }>(
          "SELECT dbmail.release_mailitems($1, $2::bigint[], ARRAY[$3::uuid]) AS n",
          [senderId, rest, token],
        )
      ).rows,
    ).n;
    expect(released).toBe(rest.length);
    const row = await item(mine);
    expect(row.sent_status).toBe("sent");
    expect(row.sent_by).toBe(senderId);
    const { rows: accounts } = await senderClient.query("SELECT * FROM dbmail.sender_accounts()");
    expect(accounts.length).toBeGreaterThan(0);
    await senderClient.query("SELECT dbmail.sender_stopped($1)", [senderId]);
  });

  it("cannot call sp_send_dbmail or queue_mail (it is not a dbmail_user)", async () => {
    await expectUnchanged(async () => {
      await expectDenied(send(senderClient), /permission denied for function sp_send_dbmail/);
      await expectDenied(queueMailUnstamped(senderClient), /permission denied for function queue_mail/);
    });
  });

  it("cannot select any sysmail_* view", async () => {
    const violations: string[] = [];
    for (const view of VIEWS) {
      const error = await errorOf(senderClient.query(`SELECT * FROM dbmail.${view}`));
      if (error.code !== "42501") violations.push(`${view}: ${error.code} ${error.message}`);
    }
    expect(violations).toEqual([]);
  });

  it("cannot call configuration procedures (only sysmail_help_status_sp)", async () => {
    const procedures = CONFIG_PROCEDURES.filter((name) => name !== "sysmail_help_status_sp");
    await expectUnchanged(async () => {
      expect(
        await notDenied(
          senderClient,
          [...procedures, "sysmail_delete_mailitems_sp"],
          /permission denied for function/,
        ),
      ).toEqual([]);
    });
    const status = first(
      (await senderClient.query<{ s: string }>("SELECT dbmail.sysmail_help_status_sp() AS s")).rows,
    ).s;
    expect(status).toBe("STARTED");
  });

  it("cannot read or write any table directly", async () => {
    await expectUnchanged(async () => {
      expect(await tableViolations(senderClient)).toEqual([]);
    });
  });

  it("may execute exactly the sender protocol and sysmail_help_status_sp", async () => {
    const { rows } = await db.query<{ name: string }>(
      `SELECT DISTINCT proname AS name FROM pg_proc
       WHERE pronamespace = 'dbmail'::regnamespace AND has_function_privilege('dbmail_sender', oid, 'EXECUTE')
       ORDER BY 1`,
    );
    // require_sender: whether SenderRoles lets this sender serve this database.
    expect(rows.map((r) => r.name)).toEqual(
      [...SENDER_FUNCTIONS, "require_sender", "sysmail_help_status_sp"].sort(),
    );
  });
});

describe("transactions", () => {
  it("BEGIN; sp_send_dbmail; ROLLBACK queues nothing and notifies nobody", async () => {
    const listener = await db.connect();
    const notifications: string[] = [];
    listener.on("notification", (n) => notifications.push(n.channel));
    await listener.query("LISTEN dbmail_queue");
    const client = await db.connect(alice);
    await expectUnchanged(async () => {
      await client.query("BEGIN");
      const id = await send(client, { subject: "rolled back" });
      expect(Number(id)).toBeGreaterThan(0);
      await client.query("ROLLBACK");
      await new Promise((resolve) => setTimeout(resolve, 300));
    });
    expect(notifications).toEqual([]);
    // The control: a committed send does notify.
    await send(client, { subject: "committed" });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(notifications).toEqual(["dbmail_queue"]);
  });
});

describe("search_path and shadowing", () => {
  it("every SECURITY DEFINER function pins a search_path of trusted schemas with pg_temp last", async () => {
    const { rows } = await db.query<{ fn: string; config: string[] | null }>(
      `SELECT p.oid::regprocedure::text AS fn, p.proconfig AS config FROM pg_proc p
       WHERE p.pronamespace = 'dbmail'::regnamespace AND p.prosecdef ORDER BY 1`,
    );
    expect(rows.length).toBeGreaterThan(20);
    const violators: string[] = [];
    for (const { fn, config } of rows) {
      const entry = (config ?? []).find((c) => c.startsWith("search_path="));
      if (!entry) {
        violators.push(`${fn}: no search_path`);
        continue;
      }
      const schemas = entry
        .slice("search_path=".length)
        .split(",")
        .map((s) => s.trim().replace(/^"|"$/g, ""));
      if (
        schemas.some((s) => !["pg_catalog", "pg_temp", "dbmail"].includes(s)) ||
        schemas.at(-1) !== "pg_temp"
      ) {
        violators.push(`${fn}: ${entry}`);
      }
    }
    expect(violators).toEqual([]);
  });

  it("every other function a role may call pins search_path, except those that run the caller's own query in the caller's context", async () => {
    // Internal helpers that no role but their owner may execute run only inside SECURITY DEFINER
    // functions, whose pinned search_path they inherit; pinning them again would cost a GUC
    // save/restore on every call of the hot send path for nothing.
    const { rows } = await db.query<{ fn: string; callers: string[] }>(
      `SELECT p.oid::regprocedure::text AS fn,
              array(SELECT r.rolname::text FROM pg_roles r
                    WHERE r.oid <> p.proowner AND NOT r.rolsuper AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
                    UNION ALL SELECT 'PUBLIC' WHERE has_function_privilege('public', p.oid, 'EXECUTE')) AS callers
       FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
       WHERE p.pronamespace = 'dbmail'::regnamespace AND p.prosqlbody IS NULL
         AND l.lanname NOT IN ('internal', 'c') AND p.proname NOT IN ('sp_send_dbmail', 'run_query', 'run_query_as_json')
         AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
       ORDER BY 1`,
    );
    // Not vacuous: the hot helpers (address parsing, profile resolution) are unpinned and owner-only.
    expect(rows.map((r) => r.fn)).toContain("dbmail.resolve_profile(name,text)");
    expect(rows.filter((r) => r.callers.length > 0)).toEqual([]);
  });

  describe("a user's own schema that shadows pg_catalog", () => {
    let evilClient: pg.Client;
    let received: string[];

    beforeAll(async () => {
      await db.query(`CREATE SCHEMA evil AUTHORIZATION ${ident(alice.name)}`);
      evilClient = await db.connect(alice);
      received = notices(evilClient);
      const wrap = (signature: string, returns: string, call: string) =>
        `CREATE FUNCTION evil.${signature} RETURNS ${returns} LANGUAGE plpgsql AS $$BEGIN
           RAISE NOTICE 'hijacked: %', ${`'${signature.replace(/'/g, "''")}'`}; RETURN ${call}; END$$`;
      const shadows = [
        wrap('"lower"(text)', "text", "pg_catalog.lower($1)"),
        wrap('"upper"(text)', "text", "pg_catalog.upper($1)"),
        wrap('"btrim"(text)', "text", "pg_catalog.btrim($1)"),
        wrap('"btrim"(text, text)', "text", "pg_catalog.btrim($1, $2)"),
        wrap('"length"(text)', "integer", "pg_catalog.length($1)"),
        wrap('"left"(text, integer)', "text", "pg_catalog.left($1, $2)"),
        wrap('"strpos"(text, text)', "integer", "pg_catalog.strpos($1, $2)"),
        wrap('"replace"(text, text, text)', "text", "pg_catalog.replace($1, $2, $3)"),
        wrap('"format"(text)', "text", "pg_catalog.format($1)"),
        wrap('"format"(text, text)', "text", "pg_catalog.format($1, $2)"),
        wrap('"format"(text, text, text)', "text", "pg_catalog.format($1, $2, $3)"),
        wrap('"cardinality"(anyarray)', "integer", "pg_catalog.cardinality($1)"),
        wrap('"current_setting"(text)', "text", "pg_catalog.current_setting($1)"),
        wrap('"pg_has_role"(oid, oid, text)', "boolean", "pg_catalog.pg_has_role($1, $2, $3)"),
        wrap('"pg_has_role"(name, name, text)', "boolean", "pg_catalog.pg_has_role($1, $2, $3)"),
        wrap('"nextval"(regclass)', "bigint", "pg_catalog.nextval($1)"),
        wrap('"now"()', "timestamptz", "pg_catalog.now()"),
        wrap('"string_to_array"(text, text)', "text[]", "pg_catalog.string_to_array($1, $2)"),
        wrap('"texteq"(text, text)', "boolean", "pg_catalog.texteq($1, $2)"),
        wrap('"nameeq"(name, name)', "boolean", "pg_catalog.nameeq($1, $2)"),
        wrap('"textcat"(text, text)', "text", "pg_catalog.textcat($1, $2)"),
        wrap('"textregexeq"(text, text)', "boolean", "pg_catalog.textregexeq($1, $2)"),
        "CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq)",
        "CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = name, FUNCTION = evil.nameeq)",
        "CREATE OPERATOR evil.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.textcat)",
        "CREATE OPERATOR evil.~ (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.textregexeq)",
        `CREATE FUNCTION evil."pg_notify"(text, text) RETURNS void LANGUAGE plpgsql AS $$BEGIN
           RAISE NOTICE 'hijacked: pg_notify'; PERFORM pg_catalog.pg_notify($1, $2); END$$`,
      ];
      for (const sql of shadows) await evilClient.query(sql);
      await evilClient.query(`GRANT USAGE ON SCHEMA evil TO ${ident(admin.name)}`);
      await evilClient.query("SET search_path = evil, pg_catalog, public");
    });

    const hijacks = () => received.filter((m) => m.startsWith("hijacked"));

    it("does hijack unqualified names in the caller's own SQL (the control)", async () => {
      received.length = 0;
      await evilClient.query("SELECT lower('X') AS l, 'a'::text = 'a'::text AS e");
      expect(hijacks()).toEqual(
        expect.arrayContaining(['hijacked: "lower"(text)', 'hijacked: "texteq"(text, text)']),
      );
    });

    it("does not hijack sp_send_dbmail, queue_mail, the views or sysmail_delete_mailitems_sp", async () => {
      received.length = 0;
      const id = await send(evilClient, {
        profile_name: " General ",
        subject: "Shadowed",
        importance: "high",
      });
      const direct = await queueMail(evilClient, { profile_name: "GENERAL" });
      const bad = await errorOf(send(evilClient, { recipients: "a@x.org, b@y.org" }));
      expect(bad.message).toContain("use ';' to separate addresses");
      await expectDenied(send(evilClient, { profile_name: "vip_only" }));
      for (const view of VIEWS) await evilClient.query(`SELECT * FROM dbmail.${view}`);
      await evilClient.query("SELECT dbmail.sysmail_delete_mailitems_sp(sent_before => '2000-01-01')");
      expect(hijacks()).toEqual([]);
      const row = await item(id);
      expect(row.send_request_user).toBe(alice.name);
      expect(row.subject).toBe("Shadowed");
      expect(row.importance).toBe("HIGH");
      expect((await item(direct)).send_request_user).toBe(alice.name);
    });

    it("does not hijack sp_send_dbmail's attachments path either", async () => {
      received.length = 0;
      await evilClient
        .query(
          `SELECT dbmail.sp_send_dbmail(profile_name => 'general', recipients => 'to@example.com', body => 'b',
             attachments => ARRAY[dbmail.attachment('a.txt', '\\x616263'::bytea, 'text/plain')])`,
        )
        .catch(() => {});
      expect(hijacks()).toEqual([]);
    });

    it("does not hijack an admin's configuration calls made with the user's schema first", async () => {
      const client = await db.connect(admin);
      const adminNotices = notices(client);
      await client.query("SET search_path = evil, pg_catalog, public");
      await client.query(
        `SELECT dbmail.sysmail_add_profile_sp(profile_name => 'Shadow Profile'),
                dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'shadow profile',
                                                        is_default => false)`,
      );
      await client.query("SELECT * FROM dbmail.sysmail_help_account_sp(account_name => 'MAIN')");
      await client.query(
        "SELECT dbmail.sysmail_configure_sp(parameter_name => 'loggingLevel', parameter_value => ' 2 ')",
      );
      await client.query("SELECT * FROM dbmail.sysmail_help_queue_sp()");
      await send(client, { profile_name: "shadow profile" });
      for (const view of VIEWS) await client.query(`SELECT * FROM dbmail.${view}`);
      expect(adminNotices.filter((m) => m.startsWith("hijacked"))).toEqual([]);
    });
  });
});

describe("PUBLIC", () => {
  it("has no EXECUTE on any function of schema dbmail", async () => {
    const { rows } = await db.query<{ fn: string }>(
      `SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
       WHERE p.pronamespace = 'dbmail'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')
       ORDER BY 1`,
    );
    expect(rows.map((r) => r.fn)).toEqual([]);
  });

  it("has no USAGE on schema dbmail and no privilege on any table, view or sequence", async () => {
    const { rows } = await db.query<{ usage: boolean }>(
      "SELECT has_schema_privilege('public', 'dbmail', 'USAGE,CREATE') AS usage",
    );
    expect(first(rows).usage).toBe(false);
    const { rows: relations } = await db.query<{ r: string }>(
      `SELECT c.oid::regclass::text AS r FROM pg_class c
       WHERE c.relnamespace = 'dbmail'::regnamespace AND (
         (c.relkind IN ('r', 'p', 'v', 'm')
           AND has_table_privilege('public', c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER'))
         OR (c.relkind = 'S' AND has_sequence_privilege('public', c.oid, 'USAGE,SELECT,UPDATE')))
       ORDER BY 1`,
    );
    expect(relations.map((r) => r.r)).toEqual([]);
    const { rows: type } = await db.query<{ u: boolean }>(
      "SELECT has_type_privilege('public', 'dbmail.attachment', 'USAGE') AS u",
    );
    expect(first(type).u).toBe(false);
  });
});
