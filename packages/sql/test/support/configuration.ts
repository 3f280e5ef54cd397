// What the tests of the configuration procedures (SPEC.md section 4) and of the operator procedures
// (docs/sql-reference.md section 6) share: a database of the test file's own with a dbmail_admin and a
// dbmail_user login, shortcuts to the private tables, and the expectation that a refused call says
// why and changes nothing in schema dbmail. The general helpers (call, addAccount, ...) are in
// test/support/mail.ts; this module keeps only what these two groups add.
import type pg from "pg";
import { afterAll, beforeAll, expect } from "vitest";
import { TestDatabase, type TestRole } from "../../../../test/support/database.js";
import {
  type Args,
  call,
  expectError,
  first,
  type Queryable,
  refusedUnchanged,
  send,
  unique,
} from "../../../../test/support/mail.js";

export type Row = Record<string, unknown>;

// Set by useDatabase before the file's tests run; live bindings, so importers see the values.
export let db: TestDatabase;
export let adminRole: TestRole;
export let admin: pg.Client;
export let userRole: TestRole;
export let user: pg.Client;

/**
 * Gives the test file a database of its own, with a dbmail_admin login (`admin`) that configures as a
 * DBA would (not as the superuser) and a dbmail_user login (`user`); all dropped after the file. Roles
 * are cluster-wide: `prefix` names them after the file that made them.
 */
export function useDatabase(prefix: string): void {
  beforeAll(async () => {
    db = await TestDatabase.create();
    adminRole = await db.createRole(`${prefix}_admin`, { memberOf: ["dbmail_admin"] });
    admin = await db.connect(adminRole);
    userRole = await db.createRole(`${prefix}_user`, { memberOf: ["dbmail_user"] });
    user = await db.connect(userRole);
  });
  afterAll(async () => {
    await db?.drop();
  });
}

/** Rows read (or written) as the superuser, which alone may see the private tables. */
export async function su(sql: string, params?: unknown[]): Promise<Row[]> {
  return (await db.query(sql, params)).rows as Row[];
}

/** The single value `dbmail.<fn>(name => value, ...)` returns, called as `client`. */
export async function scalar(client: Queryable, fn: string, args: Args = {}): Promise<unknown> {
  return Object.values(first(await call(client, fn, args)))[0];
}

/** The one row `dbmail.<fn>(...)` returns to the admin; fails when there is not exactly one. */
export async function single(fn: string, args: Args = {}): Promise<Row> {
  const rows = await call(admin, fn, args);
  expect(rows).toHaveLength(1);
  return rows[0] as Row;
}

/**
 * The rows `dbmail.<fn>()` lists to the admin, after checking that they come in `idColumn` order and
 * include `ids`.
 */
export async function listedInIdOrder(fn: string, idColumn: string, ids: number[]): Promise<Row[]> {
  const all = await call(admin, fn);
  const listed = all.map((r) => r[idColumn] as number);
  expect(listed).toEqual([...listed].sort((x, y) => x - y));
  expect(listed).toEqual(expect.arrayContaining(ids));
  return all;
}

/** A refusal as the configuration procedures word it: `<parameter>: <value>: <problem>`. */
export interface ExpectedRefusal {
  code: string;
  parameter: string;
  value: string | null;
  /** A part of the problem the message must contain (the start is always compared). */
  problem?: string;
}

/** The call fails with the SQLSTATE and a `<parameter>: <value>: <problem>` message, and changes nothing. */
export async function expectRefused(
  attempt: () => Promise<unknown>,
  { code, parameter, value, problem }: ExpectedRefusal,
): Promise<void> {
  const error = await refusedUnchanged(db, attempt);
  expectError(error, code, parameter, value);
  if (problem) expect(error.message).toContain(problem);
}

/** The call fails with the SQLSTATE and exactly this message (or one matching it), and changes nothing. */
export async function expectRefusedWith(
  attempt: () => Promise<unknown>,
  code: string,
  message: string | RegExp,
): Promise<void> {
  const error = await refusedUnchanged(db, attempt);
  expect(error.code, error.message).toBe(code);
  if (typeof message === "string") expect(error.message).toBe(message);
  else expect(error.message).toMatch(message);
}

/** One row of a bad-input table: arguments and the expected refusal (the value may need a fixture). */
export interface BadCall extends Omit<ExpectedRefusal, "value"> {
  label: string;
  args: () => Args;
  value: string | null | (() => string);
}

/** Calls `dbmail.<fn>` as the admin with `extra` and the row's arguments, expecting the row's refusal. */
export async function expectBadCall(fn: string, { args, value, ...refusal }: BadCall, extra: Args = {}) {
  const shown = typeof value === "function" ? value() : value;
  await expectRefused(() => call(admin, fn, { ...extra, ...args() }), { ...refusal, value: shown });
}

// ---------------------------------------------------------------------------------------------------------
// Profiles, grants, mail and the event log, for the configuration tests.

/** Adds an account to a profile (by ids). */
export async function link(profileId: number, accountId: number, sequenceNumber: number): Promise<void> {
  await call(admin, "sysmail_add_profileaccount_sp", {
    profile_id: profileId,
    account_id: accountId,
    sequence_number: sequenceNumber,
  });
}

/** Lets a role (or "public") use a profile (by id). */
export async function grant(principalName: string, profileId: number, isDefault: boolean): Promise<void> {
  await call(admin, "sysmail_add_principalprofile_sp", {
    principal_name: principalName,
    profile_id: profileId,
    is_default: isDefault,
  });
}

/** Queues one message with the given profile (NULL: the sender's default); returns its mailitem_id. */
export async function queueMessage(profileName: string | null, client: Queryable = admin): Promise<number> {
  const message = { recipients: "someone@example.com", subject: "test", body: "hello" };
  return Number(await send(client, { profile_name: profileName, ...message }));
}

/** Queues three messages with the profile, one after another; returns their mailitem_ids in order. */
export async function queueThree(profileName: string): Promise<[number, number, number]> {
  return [await queueMessage(profileName), await queueMessage(profileName), await queueMessage(profileName)];
}

export async function setStatus(mailitemId: number, status: string): Promise<void> {
  await su("UPDATE dbmail.mailitems SET sent_status = $2 WHERE mailitem_id = $1", [mailitemId, status]);
}

export async function lastLogId(): Promise<number> {
  return Number((await su("SELECT COALESCE(max(log_id), 0) AS id FROM dbmail.event_log"))[0]?.id);
}

export async function eventsAfter(logId: number): Promise<Row[]> {
  return su(
    "SELECT event_type, description, last_mod_user FROM dbmail.event_log WHERE log_id > $1 ORDER BY log_id",
    [logId],
  );
}

/** Since `logId`, one event was logged: of `eventType`, by the admin, its description matching `pattern`. */
export async function expectAdminEvent(logId: number, eventType: string, pattern: string): Promise<void> {
  expect(await eventsAfter(logId)).toEqual([
    {
      event_type: eventType,
      description: expect.stringMatching(new RegExp(pattern)),
      last_mod_user: adminRole.name,
    },
  ]);
}

// ---------------------------------------------------------------------------------------------------------
// Operators, for the operator tests.

export let nobody: pg.Client;
export let superuserName: string;
export let generalProfileId: number;
export let restrictedProfileId: number;

/**
 * useDatabase, plus a login in neither dbmail role (`nobody`) and what sp_notify_operator sends with:
 * account "main" in profiles "general" (the public default) and "restricted" (granted to no one).
 */
export function useOperatorDatabase(prefix: string): void {
  useDatabase(prefix);
  beforeAll(async () => {
    nobody = await db.connect(await db.createRole(`${prefix}_nobody`));
    superuserName = (await su("SELECT current_user AS u"))[0]?.u as string;
    await scalar(admin, "sysmail_add_account_sp", {
      account_name: "main",
      email_address: "db@example.com",
      mailserver_name: "smtp.example.com",
    });
    generalProfileId = (await scalar(admin, "sysmail_add_profile_sp", { profile_name: "general" })) as number;
    restrictedProfileId = (await scalar(admin, "sysmail_add_profile_sp", {
      profile_name: "restricted",
    })) as number;
    for (const profile of ["general", "restricted"]) {
      await call(admin, "sysmail_add_profileaccount_sp", {
        profile_name: profile,
        account_name: "main",
        sequence_number: 1,
      });
    }
    await call(admin, "sysmail_add_principalprofile_sp", {
      principal_name: "public",
      profile_name: "general",
      is_default: true,
    });
  });
}

/** Adds an operator (address `<name>@example.com` unless given); returns its id and name. */
export async function addOperator(args: Args = {}): Promise<{ id: number; name: string }> {
  const name = (args.name as string | undefined) ?? unique("op");
  const id = await scalar(admin, "sp_add_operator", { name, email_address: `${name}@example.com`, ...args });
  return { id: id as number, name };
}

export const helpOperator = (args: Args) => single("sp_help_operator", args);

/** help_operator shows the operator without any address or category: each one NULL. */
export async function expectNoAddresses(operatorId: number): Promise<void> {
  const row = await helpOperator({ operator_id: operatorId });
  expect([row.email_address, row.pager_address, row.netsend_address, row.category_name]).toEqual([
    null,
    null,
    null,
    null,
  ]);
}
