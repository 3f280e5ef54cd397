// The database the security tests start from, one per test file (SPEC sections 2, 3, 5, 6): roles for each
// kind of caller, an account with a password, profiles granted in each way, and mail of alice's and bob's in
// every status; the lists of what each role may execute; and the probes that try every function and table.
import { randomBytes } from "node:crypto";
import type pg from "pg";
import { afterAll, beforeAll, expect } from "vitest";
import { errorOf, TestDatabase, type TestRole } from "../../../../test/support/database.js";
import { type Args, addAccount, first, ident, send, snapshot } from "../../../../test/support/mail.js";
import {
  CONFIG_PROCEDURES,
  HELP_PROCEDURES,
  SENDER_FUNCTIONS,
  USER_PROCEDURE_HALVES,
  USER_PROCEDURES,
  VIEWS,
} from "./security-lists.js";
import { addSendingProfile } from "./send.js";

export {
  CONFIG_PROCEDURES,
  HELP_PROCEDURES,
  SENDER_FUNCTIONS,
  USER_PROCEDURE_HALVES,
  USER_PROCEDURES,
  VIEWS,
};

export const SECRET = `S3cret-${randomBytes(8).toString("hex")}`;

/** dbmail.queue_mail's parameters in order, with their types and a harmless value. */
export const QUEUE_MAIL_PARAMETERS: [string, string, unknown][] = [
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

/** Mail items of one user, one in each status. */
export interface Items {
  unsent: string;
  sent: string;
  failed: string;
  retrying: string;
}

/** Calls dbmail.queue_mail directly (granted to dbmail_user), all 28 arguments named, without a stamp. */
export async function queueMailUnstamped(client: pg.Client, overrides: Args = {}): Promise<string> {
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
export async function queueMail(client: pg.Client, overrides: Args = {}): Promise<string> {
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

export async function expectDenied(promise: Promise<unknown>, message?: string | RegExp): Promise<void> {
  const error = await errorOf(promise);
  expect(error.code, error.message).toBe("42501");
  if (message) expect(error.message).toMatch(message);
}

/** Collects the NOTICE messages a client receives. */
export function notices(client: pg.Client): string[] {
  const received: string[] = [];
  client.on("notice", (notice) => received.push(notice.message ?? ""));
  return received;
}

/** Selects every sysmail_* view as client; returns those that did not fail with 42501 (and the message). */
export async function viewViolations(client: pg.Client, message?: RegExp): Promise<string[]> {
  const violations: string[] = [];
  for (const view of VIEWS) {
    const error = await errorOf(client.query(`SELECT * FROM dbmail.${view}`));
    if (error.code !== "42501" || (message && !message.test(error.message))) {
      violations.push(`${view}: ${error.code} ${error.message}`);
    }
  }
  return violations;
}

export interface SecurityDatabase {
  db: TestDatabase;
  /** A login role with no dbmail role. */
  nobody: TestRole;
  alice: TestRole;
  bob: TestRole;
  dave: TestRole;
  /** A group role that is a dbmail_user, and the only way carol is one; granted team_only. */
  team: TestRole;
  carol: TestRole;
  /** A group role no user is a member of; granted vip_only. */
  vip: TestRole;
  admin: TestRole;
  sender: TestRole;
  nobodyClient: pg.Client;
  aliceClient: pg.Client;
  bobClient: pg.Client;
  adminClient: pg.Client;
  senderClient: pg.Client;
  accountId: number;
  items: Record<"alice" | "bob", Items>;
  /** Queues a message through the public entry point (default profile); returns the mailitem_id. */
  send(client: pg.Client, args?: Args): Promise<string>;
  item(id: string): Promise<Record<string, unknown>>;
  /** The ids a query as the superuser returns (column id), sorted. */
  idsOf(sql: string, params?: unknown[]): Promise<string[]>;
  /** Runs the attack, and asserts that no table of schema dbmail changed. */
  expectUnchanged(attack: () => Promise<void>): Promise<void>;
  /** Calls each function with NULLs as client; returns the calls that did not fail with 42501 (and the message). */
  notDenied(client: pg.Client, names: string[], message?: RegExp): Promise<string[]>;
  /**
   * Tries SELECT/INSERT/UPDATE/DELETE/TRUNCATE on every table and nextval/setval/SELECT on every sequence
   * of schema dbmail, each in a transaction that is rolled back; returns what was not refused.
   */
  tableViolations(client: pg.Client): Promise<string[]>;
  /** The names of the functions of schema dbmail that `role` may execute, sorted. */
  executable(role: string): Promise<string[]>;
}

const sendAs = (client: pg.Client, args: Args = {}) =>
  send(client, { recipients: "to@example.com", subject: "s", body: "b", ...args });

/** Makes the file's database before its tests and drops it after them; see useSendDatabase. */
export function useSecurityDatabase(): SecurityDatabase {
  const t = {
    items: {
      alice: { unsent: "", sent: "", failed: "", retrying: "" },
      bob: { unsent: "", sent: "", failed: "", retrying: "" },
    },
    send: sendAs,
    item: async (id: string) =>
      first((await t.db.query("SELECT * FROM dbmail.mailitems WHERE mailitem_id = $1", [id])).rows),
    idsOf: async (sql: string, params: unknown[] = []) => {
      const { rows } = await t.db.query<{ id: string }>(sql, params);
      return rows.map((r) => String(r.id)).sort();
    },
    expectUnchanged: async (attack: () => Promise<void>) => {
      const before = await snapshot(t.db);
      await attack();
      expect(await snapshot(t.db)).toEqual(before);
    },
    notDenied: (client: pg.Client, names: string[], message?: RegExp) =>
      notDenied(t.db, client, names, message),
    tableViolations: (client: pg.Client) => tableViolations(t.db, client),
    executable: async (role: string) => {
      const { rows } = await t.db.query<{ name: string }>(
        `SELECT DISTINCT proname AS name FROM pg_proc
         WHERE pronamespace = 'dbmail'::regnamespace AND has_function_privilege($1::name, oid, 'EXECUTE')
         ORDER BY 1`,
        [role],
      );
      return rows.map((r) => r.name);
    },
  } as SecurityDatabase;
  beforeAll(async () => {
    const db = await TestDatabase.create();
    t.db = db;
    t.nobody = await db.createRole("nobody");
    t.alice = await db.createRole("alice", { memberOf: ["dbmail_user"] });
    t.bob = await db.createRole("bob", { memberOf: ["dbmail_user"] });
    t.dave = await db.createRole("dave", { memberOf: ["dbmail_user"] });
    t.team = await db.createRole("team", { login: false, memberOf: ["dbmail_user"] });
    t.carol = await db.createRole("carol", { memberOf: [t.team.name] });
    t.vip = await db.createRole("vip", { login: false });
    t.admin = await db.createRole("admin", { memberOf: ["dbmail_admin"] });
    t.sender = await db.createRole("sender", { memberOf: ["dbmail_sender"] });

    t.accountId = (
      await addAccount(db, {
        account_name: "main",
        email_address: "dbmail@example.com",
        mailserver_name: "localhost",
        username: "mailer",
        password: SECRET,
      })
    ).id;
    await addSendingProfile(db, "general", "main", "public", true);
    await addSendingProfile(db, "team_only", "main", t.team.name);
    await addSendingProfile(db, "vip_only", "main", t.vip.name);
    await addSendingProfile(db, "admins_only", "main");

    t.nobodyClient = await db.connect(t.nobody);
    t.aliceClient = await db.connect(t.alice);
    t.bobClient = await db.connect(t.bob);
    t.adminClient = await db.connect(t.admin);
    t.senderClient = await db.connect(t.sender);

    t.items.alice = await fixtureItems(db, t.aliceClient, "alice");
    t.items.bob = await fixtureItems(db, t.bobClient, "bob");
    await db.query(
      "INSERT INTO dbmail.event_log (event_type, description, last_mod_user) VALUES ('information', 'system event', 'x')",
    );
  });
  afterAll(async () => {
    await t.db?.drop();
  });
  return t;
}

/** `SELECT dbmail.f(NULL::t1, ...)` for every function of that name, with its exact argument types. */
async function nullCalls(db: TestDatabase, name: string): Promise<string[]> {
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
async function notDenied(
  db: TestDatabase,
  client: pg.Client,
  names: string[],
  message?: RegExp,
): Promise<string[]> {
  const violations: string[] = [];
  for (const name of names) {
    for (const sql of await nullCalls(db, name)) {
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

async function tableViolations(db: TestDatabase, client: pg.Client): Promise<string[]> {
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
  // The one write users have: a stamp of their own current_user (see dbmail.caller_stamps), tested apart.
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

async function fixtureItems(db: TestDatabase, client: pg.Client, who: string): Promise<Items> {
  const result: Items = { unsent: "", sent: "", failed: "", retrying: "" };
  for (const status of ["unsent", "sent", "failed", "retrying"] as const) {
    result[status] = await sendAs(client, { subject: `${who} ${status}` });
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
