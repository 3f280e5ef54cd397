// The helpers every test of sp_send_dbmail and the configuration procedures uses: one way to call
// sp_send_dbmail, to expect a refusal that changed nothing, to change a setting for a while, and to
// fingerprint schema dbmail. Test files keep only what is about their own concern.
import { randomBytes } from "node:crypto";
import type pg from "pg";
import { expect } from "vitest";
import { errorOf } from "./database.js";

/** Arguments of a procedure: undefined leaves the parameter out (its default), null passes NULL. */
export type Args = Record<string, unknown>;

/** Anything that runs SQL: a pg.Client, a pg.Pool or a TestDatabase. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params?: unknown[],
  ): Promise<pg.QueryResult<R>>;
}

/** The refusal of a call: its SQLSTATE and message. */
export interface Refusal {
  code: string;
  message: string;
}

/** A literal SQL expression for an argument, instead of a bound parameter. */
export class Raw {
  constructor(readonly sql: string) {}
}

/** An attachment given to sp_send_dbmail's `attachments` parameter. */
export interface NewAttachment {
  filename: string;
  content: Buffer | string;
  contentType?: string;
}

export function first<T>(rows: T[]): T {
  const row = rows[0];
  if (row === undefined) throw new Error("expected a row");
  return row;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A name no other test (or earlier run) uses: `<prefix>_<hex>`. */
export function unique(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString("hex")}`;
}

/** A subject no other test uses, to find a message at the SMTP server. */
export function uniqueSubject(label: string): string {
  return `${label} ${randomBytes(4).toString("hex")}`;
}

/** A double-quoted SQL identifier. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

const casts: Record<string, string> = { headers: "::jsonb", send_at: "::timestamptz" };

/**
 * `SELECT <fn>(name => $1, ...) AS id` in named notation. Raw values are written in as SQL, attachments
 * as dbmail.attachment(...), and a headers object travels as JSON text (pg would turn a JS array into a
 * PostgreSQL array).
 */
export function sendCall(args: Args, fn = "dbmail.sp_send_dbmail"): { text: string; values: unknown[] } {
  const parts: string[] = [];
  const values: unknown[] = [];
  const param = (value: unknown, cast = "") => {
    values.push(value);
    return `$${values.length}${cast}`;
  };
  for (const [name, value] of Object.entries(args)) {
    if (value === undefined) continue;
    if (value instanceof Raw) {
      parts.push(`${name} => ${value.sql}`);
    } else if (name === "attachments" && Array.isArray(value)) {
      const items = (value as NewAttachment[]).map((a) => {
        const filename = param(a.filename, "::text");
        const content = param(a.content, "::bytea");
        return a.contentType === undefined
          ? `dbmail.attachment(${filename}, ${content})`
          : `dbmail.attachment(${filename}, ${content}, ${param(a.contentType, "::text")})`;
      });
      parts.push(`attachments => ARRAY[${items.join(", ")}]::dbmail.attachment[]`);
    } else {
      const json = name === "headers" && value !== null && typeof value !== "string";
      parts.push(`${name} => ${param(json ? JSON.stringify(value) : value, casts[name] ?? "")}`);
    }
  }
  return { text: `SELECT ${fn}(${parts.join(", ")}) AS id`, values };
}

/** Queues a message through sp_send_dbmail as `client`; returns its mailitem_id. */
export async function send(client: Queryable, args: Args): Promise<string> {
  const { text, values } = sendCall(args);
  const { rows } = await client.query<{ id: string }>(text, values);
  return String(first(rows).id);
}

/** How many mail items are queued (any status), read as `admin`. */
export async function queued(admin: Queryable): Promise<number> {
  const { rows } = await admin.query<{ n: number }>("SELECT count(*)::integer AS n FROM dbmail.mailitems");
  return first(rows).n;
}

/**
 * The refusal of an attempt that must change nothing in schema dbmail: every table's fingerprint is
 * the same after it as before.
 */
export async function refusedUnchanged(admin: Queryable, attempt: () => Promise<unknown>): Promise<Refusal> {
  const before = await snapshot(admin);
  const error = await errorOf(attempt());
  expect(await snapshot(admin)).toEqual(before);
  return error;
}

/** Sends expecting a refusal; asserts that nothing was queued, and returns the refusal. */
export async function refused(admin: Queryable, client: Queryable, args: Args): Promise<Refusal> {
  const before = await queued(admin);
  const error = await errorOf(send(client, args));
  expect(await queued(admin)).toBe(before);
  return error;
}

/** How dbmail.show_value shows a value in an error message. */
export function shown(value: string | null): string {
  if (value === null) return "NULL";
  const short = value.length > 200 ? `${value.slice(0, 200)}…` : value;
  return `"${short.replace(/\r/g, "\\r").replace(/\n/g, "\\n").replace(/\t/g, "\\t")}"`;
}

/**
 * The refusal has the SQLSTATE and reads `<parameter>: <value>: <problem>`; without a problem, only
 * the start is compared.
 */
export function expectError(
  error: Refusal,
  code: string,
  parameter: string,
  value: string | null,
  problem?: string,
): void {
  expect(error.code).toBe(code);
  const prefix = `${parameter}: ${shown(value)}: `;
  if (problem === undefined) expect(error.message.startsWith(prefix), error.message).toBe(true);
  else expect(error.message).toBe(`${prefix}${problem}`);
}

/** Sets a sysmail_configure_sp parameter, as `admin`. */
export async function configure(admin: Queryable, name: string, value: string): Promise<void> {
  await admin.query("SELECT dbmail.sysmail_configure_sp(parameter_name => $1, parameter_value => $2)", [
    name,
    value,
  ]);
}

/** A sysmail_configure_sp parameter's current value. */
export async function setting(admin: Queryable, name: string): Promise<string> {
  const { rows } = await admin.query<{ v: string }>(
    "SELECT paramvalue AS v FROM dbmail.sysmail_help_configure_sp($1)",
    [name],
  );
  return first(rows).v;
}

/** Runs `fn` with settings changed, restoring the previous values afterwards (also when it throws). */
export async function withSettings<T>(
  admin: Queryable,
  values: Record<string, string>,
  fn: () => Promise<T>,
): Promise<T> {
  const previous: Record<string, string> = {};
  for (const [name, value] of Object.entries(values)) {
    previous[name] = await setting(admin, name);
    await configure(admin, name, value);
  }
  try {
    return await fn();
  } finally {
    for (const [name, value] of Object.entries(previous)) await configure(admin, name, value);
  }
}

/** A fingerprint of every table in schema dbmail (row count and an md5 of all rows), read as `admin`. */
export async function snapshot(admin: Queryable): Promise<Record<string, string>> {
  const { rows: tables } = await admin.query<{ t: string }>(
    "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'dbmail' ORDER BY 1",
  );
  const result: Record<string, string> = {};
  for (const { t } of tables) {
    const { rows } = await admin.query<{ n: string; h: string | null }>(
      `SELECT count(*) AS n, md5(string_agg(x::text, '|' ORDER BY x::text)) AS h FROM dbmail.${ident(t)} x`,
    );
    const row = first(rows);
    result[t] = `${row.n}:${row.h}`;
  }
  return result;
}

/** Calls `dbmail.<procedure>(name => $1, ...)` as `client` and returns its rows. */
export async function call(
  client: Queryable,
  procedure: string,
  args: Args = {},
): Promise<pg.QueryResultRow[]> {
  const names = Object.keys(args).filter((n) => args[n] !== undefined);
  const sql = `SELECT * FROM dbmail.${procedure}(${names.map((n, i) => `${n} => $${i + 1}`).join(", ")})`;
  const { rows } = await client.query(
    sql,
    names.map((n) => args[n]),
  );
  return rows;
}

/** Adds an account (placeholder server unless given); returns its id and name. */
export async function addAccount(admin: Queryable, args: Args = {}): Promise<{ id: number; name: string }> {
  const name = (args.account_name as string | undefined) ?? unique("acct");
  const rows = await call(admin, "sysmail_add_account_sp", {
    account_name: name,
    email_address: "ops@example.com",
    mailserver_name: "smtp.example.com",
    ...args,
  });
  return { id: Number(Object.values(first(rows))[0]), name };
}

/** Adds a profile; returns its id and name. */
export async function addProfile(admin: Queryable, args: Args = {}): Promise<{ id: number; name: string }> {
  const name = (args.profile_name as string | undefined) ?? unique("prof");
  const rows = await call(admin, "sysmail_add_profile_sp", { profile_name: name, ...args });
  return { id: Number(Object.values(first(rows))[0]), name };
}

/** An account of a profile: its name or id, at the next sequence number or at `[account, sequence]`. */
export type ProfileMember = string | number | [account: string | number, sequence: number];

/**
 * Creates `profile` with `members` (sequence 1, 2, ... unless given). With `publicDefault`, the profile
 * is granted to public, as its default profile when true.
 */
export async function profileWith(
  admin: Queryable,
  profile: string,
  members: ProfileMember[],
  publicDefault?: boolean,
): Promise<void> {
  await addProfile(admin, { profile_name: profile });
  for (const [i, member] of members.entries()) {
    const [account, sequence] = Array.isArray(member) ? member : [member, i + 1];
    await call(admin, "sysmail_add_profileaccount_sp", {
      profile_name: profile,
      ...(typeof account === "number" ? { account_id: account } : { account_name: account }),
      sequence_number: sequence,
    });
  }
  if (publicDefault === undefined) return;
  await call(admin, "sysmail_add_principalprofile_sp", {
    principal_name: "public",
    profile_name: profile,
    is_default: publicDefault,
  });
}
