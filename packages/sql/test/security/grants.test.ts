// Who may call what in schema dbmail (SPEC sections 2 and 6): a role without any dbmail role, dbmail_user,
// dbmail_admin, dbmail_sender and PUBLIC may execute exactly their functions and read or write no table
// directly. Each refused attempt must leave nothing changed.
import { randomBytes } from "node:crypto";
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { first } from "../../../../test/support/mail.js";
import {
  CONFIG_PROCEDURES,
  expectDenied,
  queueMailUnstamped,
  SENDER_FUNCTIONS,
  USER_PROCEDURE_HALVES,
  USER_PROCEDURES,
  useSecurityDatabase,
  viewViolations,
} from "../support/security.js";

const t = useSecurityDatabase();
const { send, item, expectUnchanged, notDenied, tableViolations, executable } = t;

/** What each role may execute in schema dbmail, and nothing more. */
const USER_FUNCTIONS = [
  "attachment",
  "check_send_arguments",
  "csv_line",
  "format_query_result",
  "html_escape",
  "html_row",
  "is_admin",
  "operator_address",
  "query_result_limit",
  "queue_mail",
  "raise_error",
  "run_query",
  "send_as_caller",
  "send_usual_as_caller",
  "send_usual_mail",
  "send_with_query",
  "show_value",
  "sp_notify_operator",
  "sp_send_dbmail",
  "wrap_line",
  ...USER_PROCEDURES,
  ...USER_PROCEDURE_HALVES,
].sort();

/** Every call of the functions fails for client with 42501 (and the message), and changed nothing. */
const expectNoCalls = (client: pg.Client, names: string[], message: RegExp) =>
  expectUnchanged(async () => {
    expect(await notDenied(client, names, message)).toEqual([]);
  });

/** Every table and sequence of schema dbmail refuses client, and trying changed nothing. */
const expectNoTableAccess = (client: pg.Client) =>
  expectUnchanged(async () => {
    expect(await tableViolations(client)).toEqual([]);
  });

describe("a login role without any dbmail role", () => {
  it("cannot call sp_send_dbmail (no USAGE on schema dbmail), and nothing is queued", async () => {
    await expectUnchanged(() =>
      expectDenied(send(t.nobodyClient, { profile_name: "general" }), /permission denied for schema dbmail/),
    );
  });

  it("cannot select any sysmail_* view", async () => {
    expect(await viewViolations(t.nobodyClient, /permission denied for schema dbmail/)).toEqual([]);
  });

  it("cannot call any function of schema dbmail (configuration, sender protocol, helpers)", async () => {
    const { rows } = await t.db.query<{ name: string }>(
      "SELECT DISTINCT proname AS name FROM pg_proc WHERE pronamespace = 'dbmail'::regnamespace ORDER BY 1",
    );
    const names = rows.map((r) => r.name);
    expect(names).toEqual(expect.arrayContaining([...CONFIG_PROCEDURES, ...SENDER_FUNCTIONS, "queue_mail"]));
    await expectNoCalls(t.nobodyClient, names, /permission denied for schema dbmail/);
  });

  it("cannot read or write any table of schema dbmail", async () => {
    await expectNoTableAccess(t.nobodyClient);
  });
});

describe("dbmail_user", () => {
  it("the list of configuration procedures covers every sysmail_*_sp in the schema", async () => {
    const { rows } = await t.db.query<{ name: string }>(
      `SELECT DISTINCT proname AS name FROM pg_proc
       WHERE pronamespace = 'dbmail'::regnamespace AND proname LIKE 'sysmail\\_%' ORDER BY 1`,
    );
    const sysmail = CONFIG_PROCEDURES.filter((name) => name.startsWith("sysmail_"));
    expect(rows.map((r) => r.name)).toEqual([...sysmail, ...USER_PROCEDURES].sort());
  });

  it.each(CONFIG_PROCEDURES)("cannot call %s", async (name) => {
    await expectNoCalls(t.aliceClient, [name], /permission denied for function/);
  });

  it("cannot call any sender function (claim, record_outcome, release, accounts, attachments, heartbeat, log)", async () => {
    await expectNoCalls(t.aliceClient, SENDER_FUNCTIONS, /permission denied for function/);
  });

  it("cannot SELECT, INSERT, UPDATE, DELETE or TRUNCATE any table, nor use any sequence", async () => {
    await expectNoTableAccess(t.aliceClient);
  });

  it("may execute exactly the user functions and nothing else", async () => {
    expect(await executable("dbmail_user")).toEqual(USER_FUNCTIONS);
  });
});

describe("dbmail_admin", () => {
  it("cannot read or write any table directly", async () => {
    await expectNoTableAccess(t.adminClient);
  });

  it("may execute exactly the user functions and the configuration procedures", async () => {
    expect(await executable("dbmail_admin")).toEqual(
      [...USER_FUNCTIONS, ...CONFIG_PROCEDURES, "schema_version"].sort(),
    );
  });
});

describe("dbmail_sender", () => {
  it("can heartbeat, claim, record an outcome, release, and read accounts", async () => {
    const senderId = `test-sender-${randomBytes(3).toString("hex")}`;
    const beat = first(
      (await t.senderClient.query(`SELECT * FROM dbmail.sender_heartbeat($1)`, [senderId])).rows,
    );
    expect(beat.started).toBe(true);
    const mine = await send(t.aliceClient, { subject: "for the sender" });
    const { rows: claimed } = await t.senderClient.query<{ mailitem_id: string; lease_token: string }>(
      "SELECT mailitem_id, lease_token FROM dbmail.claim_mailitems($1, 10000, 60)",
      [senderId],
    );
    const ids = claimed.map((r) => String(r.mailitem_id));
    const token = first(claimed).lease_token;
    expect(ids).toContain(mine);
    const outcome = first(
      (
        await t.senderClient.query<{ s: string }>(
          "SELECT dbmail.record_outcome($1, $2, $3, 'sent', $4, '250 OK') AS s",
          [mine, senderId, token, t.accountId],
        )
      ).rows,
    ).s;
    expect(outcome).toBe("sent");
    const rest = ids.filter((id) => id !== mine);
    const released = first(
      (
        await t.senderClient.query<{ n: number }>(
          "SELECT dbmail.release_mailitems($1, $2::bigint[], ARRAY[$3::uuid]) AS n",
          [senderId, rest, token],
        )
      ).rows,
    ).n;
    expect(released).toBe(rest.length);
    const row = await item(mine);
    expect(row.sent_status).toBe("sent");
    expect(row.sent_by).toBe(senderId);
    const { rows: accounts } = await t.senderClient.query("SELECT * FROM dbmail.sender_accounts()");
    expect(accounts.length).toBeGreaterThan(0);
    await t.senderClient.query("SELECT dbmail.sender_stopped($1)", [senderId]);
  });

  it("cannot call sp_send_dbmail or queue_mail (it is not a dbmail_user)", async () => {
    await expectUnchanged(async () => {
      await expectDenied(send(t.senderClient), /permission denied for function sp_send_dbmail/);
      await expectDenied(queueMailUnstamped(t.senderClient), /permission denied for function queue_mail/);
    });
  });

  it("cannot select any sysmail_* view", async () => {
    expect(await viewViolations(t.senderClient)).toEqual([]);
  });

  it("cannot call configuration procedures (only sysmail_help_status_sp)", async () => {
    const procedures = CONFIG_PROCEDURES.filter((name) => name !== "sysmail_help_status_sp");
    await expectNoCalls(
      t.senderClient,
      [...procedures, ...USER_PROCEDURES],
      /permission denied for function/,
    );
    const status = first(
      (await t.senderClient.query<{ s: string }>("SELECT dbmail.sysmail_help_status_sp() AS s")).rows,
    ).s;
    expect(status).toBe("STARTED");
  });

  it("cannot read or write any table directly", async () => {
    await expectNoTableAccess(t.senderClient);
  });

  it("may execute exactly the sender protocol and sysmail_help_status_sp", async () => {
    // require_sender: whether SenderRoles lets this sender serve this database.
    expect(await executable("dbmail_sender")).toEqual(
      [...SENDER_FUNCTIONS, "require_sender", "sysmail_help_status_sp"].sort(),
    );
  });
});

describe("PUBLIC", () => {
  it("has no EXECUTE on any function of schema dbmail", async () => {
    const { rows } = await t.db.query<{ fn: string }>(
      `SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
       WHERE p.pronamespace = 'dbmail'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')
       ORDER BY 1`,
    );
    expect(rows.map((r) => r.fn)).toEqual([]);
  });

  it("has no USAGE on schema dbmail and no privilege on any table, view or sequence", async () => {
    const { rows } = await t.db.query<{ usage: boolean }>(
      "SELECT has_schema_privilege('public', 'dbmail', 'USAGE,CREATE') AS usage",
    );
    expect(first(rows).usage).toBe(false);
    const { rows: relations } = await t.db.query<{ r: string }>(
      `SELECT c.oid::regclass::text AS r FROM pg_class c
       WHERE c.relnamespace = 'dbmail'::regnamespace AND (
         (c.relkind IN ('r', 'p', 'v', 'm')
           AND has_table_privilege('public', c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE,REFERENCES,TRIGGER'))
         OR (c.relkind = 'S' AND has_sequence_privilege('public', c.oid, 'USAGE,SELECT,UPDATE')))
       ORDER BY 1`,
    );
    expect(relations.map((r) => r.r)).toEqual([]);
    const { rows: type } = await t.db.query<{ u: boolean }>(
      "SELECT has_type_privilege('public', 'dbmail.attachment', 'USAGE') AS u",
    );
    expect(first(type).u).toBe(false);
  });
});
