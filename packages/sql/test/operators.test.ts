import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, TestDatabase, type TestRole } from "../../../test/support/database.js";

// Operators and SQL Server Agent-style notifications (000017, 000018): sp_add/update/delete/help_operator as a
// dbmail_admin member, sp_notify_operator as a dbmail_user (the mail is the caller's), and
// notify_job_failures against a pg_cron simulated in the test database (the test machine has no pg_cron).

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
let nobodyRole: TestRole;
let nobody: pg.Client;
let superuserName: string;
let generalProfileId: number;
let restrictedProfileId: number;
let counter = 0;

/** A name no other test uses. */
const unique = (base: string) => `${base}_${++counter}`;

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

/** Superuser rows. */
async function su(sql: string, params?: unknown[]): Promise<Row[]> {
  return (await db.query(sql, params)).rows as Row[];
}

async function addOperator(args: Args = {}): Promise<{ id: number; name: string }> {
  const name = (args.name as string | undefined) ?? unique("op");
  const id = await scalar("sp_add_operator", { name, email_address: `${name}@example.com`, ...args });
  return { id: id as number, name };
}

async function helpOperator(args: Args): Promise<Row> {
  const rows = await call("sp_help_operator", args);
  expect(rows).toHaveLength(1);
  return rows[0] as Row;
}

/** Everything the operator procedures could change, read as the superuser. */
async function snapshot(): Promise<Row> {
  const rows = await su(`SELECT
    (SELECT json_agg(t ORDER BY t.operator_id) FROM dbmail.operators t) AS operators,
    (SELECT json_agg(t ORDER BY t.operator_id, t.runid) FROM dbmail.notified_job_runs t) AS notified,
    (SELECT json_agg(t ORDER BY t.mailitem_id) FROM dbmail.mailitems t) AS mailitems`);
  return rows[0] as Row;
}

/** Expects the call to fail with the SQLSTATE and message, and to change nothing. */
async function expectRefused(
  attempt: () => Promise<unknown>,
  code: string,
  message: string | RegExp,
): Promise<void> {
  const before = await snapshot();
  const error = await errorOf(attempt());
  expect(error.code, error.message).toBe(code);
  if (typeof message === "string") expect(error.message).toBe(message);
  else expect(error.message).toMatch(message);
  expect(await snapshot()).toEqual(before);
}

async function mailitem(id: unknown): Promise<Row> {
  const rows = await su(
    `SELECT m.*, p.name AS profile_name FROM dbmail.mailitems m JOIN dbmail.profiles p USING (profile_id)
     WHERE m.mailitem_id = $1`,
    [id],
  );
  expect(rows).toHaveLength(1);
  return rows[0] as Row;
}

/** Collects the NOTICE messages a client receives. */
function notices(client: pg.Client): string[] {
  const received: string[] = [];
  client.on("notice", (notice) => received.push(notice.message ?? ""));
  return received;
}

beforeAll(async () => {
  db = await TestDatabase.create();
  adminRole = await db.createRole("op_admin", { memberOf: ["dbmail_admin"] });
  admin = await db.connect(adminRole);
  userRole = await db.createRole("op_user", { memberOf: ["dbmail_user"] });
  user = await db.connect(userRole);
  nobodyRole = await db.createRole("op_nobody");
  nobody = await db.connect(nobodyRole);
  superuserName = (await su("SELECT current_user AS u"))[0]?.u as string;

  await scalar("sysmail_add_account_sp", {
    account_name: "main",
    email_address: "db@example.com",
    mailserver_name: "smtp.example.com",
  });
  generalProfileId = (await scalar("sysmail_add_profile_sp", { profile_name: "general" })) as number;
  restrictedProfileId = (await scalar("sysmail_add_profile_sp", { profile_name: "restricted" })) as number;
  for (const profile of ["general", "restricted"]) {
    await call("sysmail_add_profileaccount_sp", {
      profile_name: profile,
      account_name: "main",
      sequence_number: 1,
    });
  }
  await call("sysmail_add_principalprofile_sp", {
    principal_name: "public",
    profile_name: "general",
    is_default: true,
  });
});

afterAll(async () => {
  await db?.drop();
});

describe("sp_add_operator and sp_help_operator", () => {
  it("add returns the new id; help shows SQL Server's defaults for what was not given", async () => {
    const { id, name } = await addOperator();
    expect(id).toBeGreaterThan(0);
    expect(await helpOperator({ operator_name: name })).toEqual({
      id,
      name,
      enabled: true,
      email_address: `${name}@example.com`,
      pager_address: null,
      weekday_pager_start_time: 90000,
      weekday_pager_end_time: 180000,
      saturday_pager_start_time: 90000,
      saturday_pager_end_time: 180000,
      sunday_pager_start_time: 90000,
      sunday_pager_end_time: 180000,
      pager_days: 0,
      netsend_address: null,
      category_name: null,
    });
  });

  it("stores every parameter, trimmed, and records the calling role", async () => {
    const name = unique("Night Shift");
    const id = await scalar("sp_add_operator", {
      name: `  ${name} `,
      enabled: false,
      email_address: ' night@example.com; "Doe, Jane" <jane@example.com> ',
      pager_address: " pager@example.com ",
      weekday_pager_start_time: 220000,
      weekday_pager_end_time: 60000,
      saturday_pager_start_time: 0,
      saturday_pager_end_time: 235959,
      sunday_pager_start_time: 123045,
      sunday_pager_end_time: 130000,
      pager_days: 65,
      netsend_address: " NIGHTPC ",
      category_name: " Shifts ",
    });
    expect(await helpOperator({ operator_id: id })).toEqual({
      id,
      name,
      enabled: false,
      email_address: 'night@example.com; "Doe, Jane" <jane@example.com>',
      pager_address: "pager@example.com",
      weekday_pager_start_time: 220000,
      weekday_pager_end_time: 60000,
      saturday_pager_start_time: 0,
      saturday_pager_end_time: 235959,
      sunday_pager_start_time: 123045,
      sunday_pager_end_time: 130000,
      pager_days: 65,
      netsend_address: "NIGHTPC",
      category_name: "Shifts",
    });
    const [row] = await su(
      "SELECT last_mod_user, last_mod_date FROM dbmail.operators WHERE operator_id = $1",
      [id],
    );
    expect(row?.last_mod_user).toBe(adminRole.name);
    expect(row?.last_mod_date).toBeInstanceOf(Date);
  });

  it("'' addresses and category are stored as NULL", async () => {
    const { id } = await addOperator({
      email_address: "",
      pager_address: " ",
      netsend_address: "",
      category_name: "",
    });
    const row = await helpOperator({ operator_id: id });
    expect([row.email_address, row.pager_address, row.netsend_address, row.category_name]).toEqual([
      null,
      null,
      null,
      null,
    ]);
  });

  it("help lists every operator by name, and finds one by name in any case, by id, or by both", async () => {
    const b = await addOperator({ name: unique("zz_b") });
    const a = await addOperator({ name: unique("ZZ_a") });
    const all = await call("sp_help_operator");
    const byName = await su("SELECT name FROM dbmail.operators ORDER BY lower(name), operator_id");
    expect(all.map((r) => r.name)).toEqual(byName.map((r) => r.name));
    expect(all.map((r) => r.name)).toEqual(expect.arrayContaining([a.name, b.name]));
    expect((await helpOperator({ operator_name: ` ${a.name.toLowerCase()} ` })).id).toBe(a.id);
    expect((await helpOperator({ operator_id: b.id })).name).toBe(b.name);
    expect((await helpOperator({ operator_name: b.name, operator_id: b.id })).id).toBe(b.id);
  });

  it("help refuses an unknown operator instead of returning nothing", async () => {
    const a = await addOperator();
    await expectRefused(
      () => call("sp_help_operator", { operator_name: "ghost" }),
      "42704",
      'operator_name: "ghost": no such operator',
    );
    await expectRefused(
      () => call("sp_help_operator", { operator_id: 999999 }),
      "42704",
      'operator_id: "999999": no such operator',
    );
    await expectRefused(
      () => call("sp_help_operator", { operator_name: a.name, operator_id: 999999 }),
      "22023",
      `operator_name: "${a.name}": is operator ${a.id}, not operator_id 999999`,
    );
  });
});

describe("sp_add_operator: bad input", () => {
  const cases: [string, Args, string, string][] = [
    ["a NULL name", { name: null }, "22004", "name: NULL: an operator needs a name"],
    ["a blank name", { name: "   " }, "22004", 'name: "   ": an operator needs a name'],
    [
      "a name with a line break",
      { name: "a\nb" },
      "22023",
      'name: "a\\nb": line breaks and control characters are not allowed here',
    ],
    ["a name of 129 characters", { name: "n".repeat(129) }, "22023", "is longer than 128 characters"],
    ["enabled NULL", { enabled: null }, "22004", "enabled: NULL: must be true or false"],
    [
      "addresses separated by a comma",
      { email_address: "a@example.com, b@example.com" },
      "22023",
      `email_address: "a@example.com, b@example.com": use ';' to separate addresses`,
    ],
    [
      "an invalid e-mail address",
      { email_address: "ok@example.com; not-an-address" },
      "22023",
      'email_address: "not-an-address": not an e-mail address (no @)',
    ],
    [
      "an e-mail address list without an address",
      { email_address: " ; " },
      "22023",
      'email_address: ";": no e-mail address given',
    ],
    [
      "an invalid pager address",
      { pager_address: "pager@" },
      "22023",
      'pager_address: "pager@": not an e-mail address (nothing after the @)',
    ],
    [
      "a time after 23:59:59",
      { weekday_pager_start_time: 240000 },
      "22023",
      'weekday_pager_start_time: "240000": must be a time of day HHMMSS, from 000000 to 235959',
    ],
    [
      "a negative time",
      { saturday_pager_end_time: -1 },
      "22023",
      'saturday_pager_end_time: "-1": must be a time of day HHMMSS, from 000000 to 235959',
    ],
    [
      "60 minutes",
      { sunday_pager_start_time: 126000 },
      "22023",
      'sunday_pager_start_time: "126000": the minutes (MM of HHMMSS) must be from 00 to 59',
    ],
    [
      "60 seconds",
      { sunday_pager_end_time: 125960 },
      "22023",
      'sunday_pager_end_time: "125960": the seconds (SS of HHMMSS) must be from 00 to 59',
    ],
    [
      "a NULL time",
      { weekday_pager_end_time: null },
      "22004",
      "weekday_pager_end_time: NULL: must be a time of day HHMMSS, from 000000 to 235959",
    ],
    [
      "pager_days above 127",
      { pager_days: 128 },
      "22023",
      'pager_days: "128": must be from 0 to 127: add up 1 Sunday, 2 Monday, 4 Tuesday, 8 Wednesday, 16 Thursday, 32 Friday, 64 Saturday',
    ],
    ["negative pager_days", { pager_days: -1 }, "22023", 'pager_days: "-1": must be from 0 to 127'],
    ["pager_days NULL", { pager_days: null }, "22004", "pager_days: NULL: must be from 0 to 127"],
    [
      "a net send address of 101 characters",
      { netsend_address: "x".repeat(101) },
      "22023",
      "is longer than 100 characters",
    ],
    [
      "a category with a line break",
      { category_name: "a\r\nb" },
      "22023",
      'category_name: "a\\r\\nb": line breaks and control characters are not allowed here',
    ],
  ];

  it.each(cases)(
    "%s is refused, naming the parameter and value, and nothing is stored",
    async (_, args, code, message) => {
      const full = { name: unique("bad"), ...args };
      await expectRefused(
        () => scalar("sp_add_operator", full),
        code,
        message.includes(": ") ? new RegExp(`^${escapeRegExp(message)}`) : new RegExp(escapeRegExp(message)),
      );
    },
  );

  it("a name that exists in another case is refused (42710)", async () => {
    const { name } = await addOperator();
    await expectRefused(
      () => scalar("sp_add_operator", { name: ` ${name.toUpperCase()} ` }),
      "42710",
      `name: " ${name.toUpperCase()} ": an operator with this name exists`,
    );
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

describe("sp_update_operator", () => {
  it("NULL arguments keep every stored value", async () => {
    const { id, name } = await addOperator({
      pager_address: "p@example.com",
      pager_days: 62,
      netsend_address: "PC1",
      category_name: "c",
      weekday_pager_start_time: 80000,
    });
    const before = await helpOperator({ operator_id: id });
    await call("sp_update_operator", { name });
    expect(await helpOperator({ operator_id: id })).toEqual(before);
  });

  it("'' clears email_address, pager_address, netsend_address and category_name", async () => {
    const { id, name } = await addOperator({
      pager_address: "p@example.com",
      netsend_address: "PC1",
      category_name: "c",
    });
    await call("sp_update_operator", {
      name,
      email_address: "",
      pager_address: "",
      netsend_address: " ",
      category_name: "",
    });
    const row = await helpOperator({ operator_id: id });
    expect([row.email_address, row.pager_address, row.netsend_address, row.category_name]).toEqual([
      null,
      null,
      null,
      null,
    ]);
  });

  it("changes what is given and records who changed it", async () => {
    const { id, name } = await addOperator();
    await db.query(
      "UPDATE dbmail.operators SET last_mod_user = 'someone', last_mod_date = now() - interval '1 day'",
    );
    await call("sp_update_operator", {
      name: name.toUpperCase(),
      enabled: false,
      email_address: "new@example.com;other@example.com",
      pager_address: "pager@example.com",
      weekday_pager_start_time: 70000,
      weekday_pager_end_time: 190000,
      saturday_pager_start_time: 100000,
      saturday_pager_end_time: 140000,
      sunday_pager_start_time: 110000,
      sunday_pager_end_time: 120000,
      pager_days: 127,
      netsend_address: "PC2",
      category_name: "Team",
    });
    expect(await helpOperator({ operator_id: id })).toEqual({
      id,
      name,
      enabled: false,
      email_address: "new@example.com;other@example.com",
      pager_address: "pager@example.com",
      weekday_pager_start_time: 70000,
      weekday_pager_end_time: 190000,
      saturday_pager_start_time: 100000,
      saturday_pager_end_time: 140000,
      sunday_pager_start_time: 110000,
      sunday_pager_end_time: 120000,
      pager_days: 127,
      netsend_address: "PC2",
      category_name: "Team",
    });
    const [row] = await su(
      "SELECT last_mod_user, last_mod_date > now() - interval '1 hour' AS recent FROM dbmail.operators WHERE operator_id = $1",
      [id],
    );
    expect(row).toEqual({ last_mod_user: adminRole.name, recent: true });
  });

  it("new_name renames (a change of case too); the old name is then unknown", async () => {
    const { id, name } = await addOperator();
    const renamed = unique("renamed");
    await call("sp_update_operator", { name, new_name: ` ${renamed} ` });
    expect((await helpOperator({ operator_id: id })).name).toBe(renamed);
    await expectRefused(
      () => call("sp_help_operator", { operator_name: name }),
      "42704",
      `operator_name: "${name}": no such operator`,
    );
    await call("sp_update_operator", { name: renamed, new_name: renamed.toUpperCase() });
    expect((await helpOperator({ operator_id: id })).name).toBe(renamed.toUpperCase());
  });

  it("refuses a new name that another operator has, in any case", async () => {
    const a = await addOperator();
    const b = await addOperator();
    await expectRefused(
      () => call("sp_update_operator", { name: a.name, new_name: b.name.toUpperCase() }),
      "42710",
      `new_name: "${b.name.toUpperCase()}": an operator with this name exists`,
    );
  });

  it("refuses an unknown or missing operator, a blank new name and bad values, changing nothing", async () => {
    const { name } = await addOperator();
    await expectRefused(
      () => call("sp_update_operator", { name: "ghost", enabled: false }),
      "42704",
      'name: "ghost": no such operator',
    );
    await expectRefused(
      () => call("sp_update_operator", { enabled: false }),
      "22004",
      "name: NULL: give the operator's name",
    );
    await expectRefused(
      () => call("sp_update_operator", { name, new_name: " " }),
      "22004",
      'new_name: " ": an operator needs a name',
    );
    await expectRefused(
      () =>
        call("sp_update_operator", { name, email_address: "x@example.com, y@example.com", enabled: false }),
      "22023",
      `email_address: "x@example.com, y@example.com": use ';' to separate addresses`,
    );
    await expectRefused(
      () => call("sp_update_operator", { name, pager_days: 1000 }),
      "22023",
      /^pager_days: "1000": must be from 0 to 127/,
    );
    await expectRefused(
      () => call("sp_update_operator", { name, weekday_pager_end_time: 236000 }),
      "22023",
      'weekday_pager_end_time: "236000": must be a time of day HHMMSS, from 000000 to 235959',
    );
  });
});

describe("sp_delete_operator", () => {
  it("deletes by name in any case; the operator is then unknown", async () => {
    const { name } = await addOperator();
    await call("sp_delete_operator", { name: ` ${name.toUpperCase()} ` });
    await expectRefused(
      () => call("sp_help_operator", { operator_name: name }),
      "42704",
      `operator_name: "${name}": no such operator`,
    );
  });

  it("refuses an unknown or missing name, changing nothing", async () => {
    await expectRefused(
      () => call("sp_delete_operator", { name: "ghost" }),
      "42704",
      'name: "ghost": no such operator',
    );
    await expectRefused(() => call("sp_delete_operator"), "22004", "name: NULL: give the operator's name");
  });
});

describe("sp_notify_operator", () => {
  it("queues a mail to the operator's addresses, recorded as sent by the caller with its default profile", async () => {
    const { name } = await addOperator({ email_address: 'dba@example.com; "On Call" <oncall@example.com>' });
    const id = await scalar("sp_notify_operator", { name, subject: "Disk full", body: "on db1" }, user);
    const item = await mailitem(id);
    expect(item).toMatchObject({
      recipients: 'dba@example.com; "On Call" <oncall@example.com>',
      subject: "Disk full",
      body: "on db1",
      send_request_user: userRole.name,
      profile_name: "general",
      sent_status: "unsent",
    });
    expect(item.envelope).toEqual({
      to: [
        { name: null, address: "dba@example.com" },
        { name: "On Call", address: "oncall@example.com" },
      ],
      cc: [],
      bcc: [],
    });
    // The caller sees it as its own mail.
    const { rows } = await user.query("SELECT subject FROM dbmail.sysmail_allitems WHERE mailitem_id = $1", [
      id,
    ]);
    expect(rows).toEqual([{ subject: "Disk full" }]);
  });

  it("finds the operator by id, by both, or by a name in another case with spaces; trims profile_name", async () => {
    const op = await addOperator();
    for (const args of [
      { id: op.id },
      { id: op.id, name: op.name },
      { name: ` ${op.name.toUpperCase()} `, profile_name: " General " },
      { name: op.name, profile_name: "" },
    ]) {
      const id = await scalar("sp_notify_operator", { ...args, body: "b" }, user);
      expect(await mailitem(id)).toMatchObject({
        recipients: `${op.name}@example.com`,
        profile_name: "general",
      });
    }
  });

  it("without a subject uses sp_send_dbmail's default subject", async () => {
    const op = await addOperator();
    const id = await scalar("sp_notify_operator", { name: op.name, body: "only a body" }, user);
    expect((await mailitem(id)).subject).toBe("PostgreSQL Message");
  });

  it("applies the caller's profile rights: a user may not use a profile not granted to it, an admin may", async () => {
    const op = await addOperator();
    await expectRefused(
      () => scalar("sp_notify_operator", { name: op.name, profile_name: "restricted", body: "b" }, user),
      "42501",
      `profile_name: "restricted": role ${userRole.name} may not use this profile (an admin can grant it with sysmail_add_principalprofile_sp)`,
    );
    const id = await scalar(
      "sp_notify_operator",
      { name: op.name, profile_name: "restricted", body: "b" },
      admin,
    );
    const item = await mailitem(id);
    expect(item.profile_id).toBe(restrictedProfileId);
    expect(item.send_request_user).toBe(adminRole.name);
    expect(generalProfileId).not.toBe(restrictedProfileId);
  });

  it("refuses a disabled operator (SQL Server's 14601) and one without an e-mail address (14602)", async () => {
    const off = await addOperator({ enabled: false });
    const noAddress = await addOperator({ email_address: null, pager_address: "pager@example.com" });
    await expectRefused(
      () => scalar("sp_notify_operator", { name: off.name, body: "b" }, user),
      "55000",
      `name: "${off.name}": operator is not enabled and therefore cannot receive notifications`,
    );
    await expectRefused(
      () => scalar("sp_notify_operator", { id: off.id, body: "b" }, user),
      "55000",
      `id: "${off.id}": operator is not enabled and therefore cannot receive notifications`,
    );
    await expectRefused(
      () => scalar("sp_notify_operator", { name: noAddress.name, body: "b" }, user),
      "55000",
      `name: "${noAddress.name}": operator has no e-mail address (an admin can set one with sp_update_operator)`,
    );
  });

  it("refuses an unknown operator, ids and names that disagree, and a call without either", async () => {
    const a = await addOperator();
    const b = await addOperator();
    await expectRefused(
      () => scalar("sp_notify_operator", { name: "ghost", body: "b" }, user),
      "42704",
      'name: "ghost": no such operator',
    );
    await expectRefused(
      () => scalar("sp_notify_operator", { id: 999999, body: "b" }, user),
      "42704",
      'id: "999999": no such operator',
    );
    await expectRefused(
      () => scalar("sp_notify_operator", { id: b.id, name: a.name, body: "b" }, user),
      "22023",
      `name: "${a.name}": is operator ${a.id}, not id ${b.id}`,
    );
    await expectRefused(
      () => scalar("sp_notify_operator", { name: " ", body: "b" }, user),
      "22004",
      "id, name: NULL: give the operator's id or name",
    );
  });

  it("passes its message to sp_send_dbmail, whose checks apply", async () => {
    const op = await addOperator();
    await expectRefused(
      () => scalar("sp_notify_operator", { name: op.name }, user),
      "22004",
      /^body, query, file_attachments, attachments, subject: NULL: a message needs at least one of these/,
    );
    await expectRefused(
      () => scalar("sp_notify_operator", { name: op.name, subject: "a\r\nBcc: x@evil.org" }, user),
      "22023",
      'subject: "a\\r\\nBcc: x@evil.org": line breaks and control characters are not allowed here',
    );
    const error = await errorOf(
      scalar(
        "sp_notify_operator",
        { name: op.name, body: "b", file_attachments: " /srv/missing/report.txt " },
        user,
      ),
    );
    expect(error.message).toMatch(/^file_attachments: "\/srv\/missing\/report\.txt": /);
  });

  it("runs as the caller: SECURITY INVOKER, while its address lookup is SECURITY DEFINER", async () => {
    const rows = await su(
      `SELECT proname, prosecdef FROM pg_proc WHERE pronamespace = 'dbmail'::regnamespace
         AND proname IN ('sp_notify_operator', 'operator_address', 'notify_job_failures') ORDER BY proname`,
    );
    expect(rows).toEqual([
      { proname: "notify_job_failures", prosecdef: false },
      { proname: "operator_address", prosecdef: true },
      { proname: "sp_notify_operator", prosecdef: false },
    ]);
  });

  it("a rolled-back transaction queues nothing", async () => {
    const op = await addOperator();
    const before = await snapshot();
    await user.query("BEGIN");
    await scalar("sp_notify_operator", { name: op.name, body: "b" }, user);
    await user.query("ROLLBACK");
    expect(await snapshot()).toEqual(before);
  });
});

describe("privileges", () => {
  it("a dbmail_user cannot add, update, delete or list operators, nor notify job failures", async () => {
    const op = await addOperator();
    const attempts: [string, Args][] = [
      ["sp_add_operator", { name: unique("sneaky"), email_address: "x@example.com" }],
      ["sp_update_operator", { name: op.name, email_address: "evil@example.com" }],
      ["sp_delete_operator", { name: op.name }],
      ["sp_help_operator", {}],
      ["notify_job_failures", { operator_name: op.name }],
      ["job_failure_operator", { operator_name: op.name }],
      ["claim_job_failure", { operator_id: op.id, runid: 1, jobid: 1, run_ended_at: new Date() }],
    ];
    for (const [fn, args] of attempts) {
      await expectRefused(() => call(fn, args, user), "42501", `permission denied for function ${fn}`);
    }
    await expectRefused(
      () => user.query("SELECT * FROM dbmail.operators"),
      "42501",
      "permission denied for table operators",
    );
    await expectRefused(
      () => user.query("SELECT * FROM dbmail.notified_job_runs"),
      "42501",
      "permission denied for table notified_job_runs",
    );
  });

  it("a role without dbmail_user cannot notify an operator", async () => {
    const op = await addOperator();
    await expectRefused(
      () => scalar("sp_notify_operator", { name: op.name, body: "b" }, nobody),
      "42501",
      "permission denied for schema dbmail",
    );
  });

  it("dbmail_user may execute sp_notify_operator and operator_address; dbmail_admin the rest", async () => {
    const rows = await su(
      `SELECT proname, has_function_privilege('dbmail_user', oid, 'EXECUTE') AS user_may,
              has_function_privilege('dbmail_admin', oid, 'EXECUTE') AS admin_may,
              has_function_privilege('public', oid, 'EXECUTE') AS public_may
       FROM pg_proc WHERE pronamespace = 'dbmail'::regnamespace
         AND proname IN ('sp_add_operator', 'sp_update_operator', 'sp_delete_operator', 'sp_help_operator',
                         'sp_notify_operator', 'operator_address', 'notify_job_failures', 'job_failure_operator',
                         'claim_job_failure', 'find_by_id_or_name', 'check_operator', 'check_operator_name',
                         'check_pager_time', 'check_operator_addresses')
       ORDER BY proname`,
    );
    const grants = Object.fromEntries(
      rows.map((r) => [
        r.proname,
        `${r.user_may ? "user" : "-"} ${r.admin_may ? "admin" : "-"} ${r.public_may}`,
      ]),
    );
    expect(grants).toEqual({
      check_operator: "- - false",
      check_operator_addresses: "- - false",
      check_operator_name: "- - false",
      check_pager_time: "- - false",
      claim_job_failure: "- admin false",
      find_by_id_or_name: "- - false",
      job_failure_operator: "- admin false",
      notify_job_failures: "- admin false",
      operator_address: "user admin false",
      sp_add_operator: "- admin false",
      sp_delete_operator: "- admin false",
      sp_help_operator: "- admin false",
      sp_notify_operator: "user admin false",
      sp_update_operator: "- admin false",
    });
  });
});

describe("notify_job_failures without pg_cron", () => {
  it("refuses cleanly: pg_cron is not installed in this database (55000), changing nothing", async () => {
    const op = await addOperator();
    await expectRefused(
      () => scalar("notify_job_failures", { operator_name: op.name }),
      "55000",
      new RegExp(`^operator_name: "${op.name}": pg_cron is not installed in this database`),
    );
  });

  it("refuses a missing or out-of-range look-back before anything else", async () => {
    await expectRefused(
      () => scalar("notify_job_failures", { operator_name: "x", since: null }),
      "22004",
      "since: NULL: give how far back to look, e.g. interval '1 hour'",
    );
    for (const since of ["0", "-1 hour", "31 days"]) {
      await expectRefused(
        () => admin.query("SELECT dbmail.notify_job_failures('x', since => $1::interval)", [since]),
        "22023",
        /^since: "[^"]+": must be more than 0 and at most 30 days$/,
      );
    }
  });
});

describe("notify_job_failures with pg_cron (simulated)", () => {
  let cronAdminRole: TestRole;
  let cronAdmin: pg.Client;
  let runid = 1000;

  /** Inserts one run of a job into the simulated cron.job_run_details; returns its runid. */
  async function addRun(run: {
    jobid: number;
    status: string;
    endedAgo: string | null;
    username?: string;
    command?: string;
    message?: string | null;
  }): Promise<number> {
    runid += 1;
    await db.query(
      `INSERT INTO cron.job_run_details (jobid, runid, job_pid, database, username, command, status,
         return_message, start_time, end_time)
       VALUES ($1, $2, 4242, 'appdb', $3, $4, $5, $6, now() - COALESCE($7::interval, '0'::interval) - interval '30 seconds',
               now() - $7::interval)`,
      [
        run.jobid,
        runid,
        run.username ?? superuserName,
        run.command ?? "VACUUM ANALYZE",
        run.status,
        run.message === undefined ? "ERROR:  canceling statement due to statement timeout" : run.message,
        run.endedAgo,
      ],
    );
    return runid;
  }

  /** The pg_cron mails queued after mailitem_id `after`, in order. */
  async function cronMails(after: number): Promise<Row[]> {
    return su(
      `SELECT mailitem_id, recipients, subject, body, send_request_user, profile_id FROM dbmail.mailitems
       WHERE mailitem_id > $1 AND subject LIKE 'pg_cron job %' ORDER BY mailitem_id`,
      [after],
    );
  }

  async function lastMailitemId(): Promise<number> {
    return Number((await su("SELECT COALESCE(max(mailitem_id), 0) AS id FROM dbmail.mailitems"))[0]?.id);
  }

  beforeAll(async () => {
    // What CREATE EXTENSION pg_cron makes, as far as notify_job_failures reads it: the two tables, readable
    // by everyone, with row security showing each role its own jobs (superusers see all).
    await db.query(`
      CREATE SCHEMA cron;
      CREATE TABLE cron.job (jobid bigint PRIMARY KEY, schedule text, command text, nodename text,
        nodeport integer, database text, username text, active boolean DEFAULT true, jobname text);
      CREATE TABLE cron.job_run_details (jobid bigint, runid bigint PRIMARY KEY, job_pid integer, database text,
        username text, command text, status text, return_message text, start_time timestamptz,
        end_time timestamptz);
      GRANT SELECT ON cron.job, cron.job_run_details TO PUBLIC;
      ALTER TABLE cron.job ENABLE ROW LEVEL SECURITY;
      ALTER TABLE cron.job_run_details ENABLE ROW LEVEL SECURITY;
      CREATE POLICY cron_job_policy ON cron.job USING (username = CURRENT_USER);
      CREATE POLICY cron_job_run_details_policy ON cron.job_run_details USING (username = CURRENT_USER);
    `);
    cronAdminRole = await db.createRole("op_cron_admin", { memberOf: ["dbmail_admin"] });
    cronAdmin = await db.connect(cronAdminRole);
    await db.query(`GRANT USAGE ON SCHEMA cron TO ${cronAdminRole.name}`);
    await db.query(
      `INSERT INTO cron.job (jobid, schedule, command, database, username, jobname) VALUES
         (1, '0 3 * * *', 'VACUUM ANALYZE', 'appdb', $1, 'nightly-vacuum'),
         (2, '*/5 * * * *', 'CALL refresh()', 'appdb', $1, NULL),
         (3, '@hourly', 'SELECT 1', 'appdb', $1, E'two\\nlines'),
         (4, '@daily', 'CALL own_job()', 'appdb', $2, 'admins-job')`,
      [superuserName, cronAdminRole.name],
    );
  });

  it("mails one message per failed run within `since`, and none twice", async () => {
    const op = await addOperator({ email_address: "dba@example.com; oncall@example.com" });
    const after = await lastMailitemId();
    const failed = await addRun({
      jobid: 1,
      status: "failed",
      endedAgo: "10 minutes",
      command: "VACUUM (VERBOSE)",
    });
    await addRun({ jobid: 1, status: "succeeded", endedAgo: "8 minutes", message: "VACUUM" });
    await addRun({ jobid: 1, status: "running", endedAgo: null, message: null });
    await addRun({ jobid: 1, status: "failed", endedAgo: "3 hours" });
    const unnamed = await addRun({ jobid: 2, status: "failed", endedAgo: "5 minutes", message: null });
    const twoLines = await addRun({ jobid: 3, status: "failed", endedAgo: "1 minute" });

    expect(await scalar("notify_job_failures", { operator_name: op.name }, db)).toBe(3);
    const mails = await cronMails(after);
    expect(mails.map((m) => m.subject)).toEqual([
      "pg_cron job nightly-vacuum failed",
      "pg_cron job 2 failed",
      "pg_cron job two lines failed",
    ]);
    for (const mail of mails) {
      expect(mail.recipients).toBe("dba@example.com; oncall@example.com");
      expect(mail.send_request_user).toBe(superuserName);
      expect(mail.profile_id).toBe(generalProfileId);
    }
    const [vacuum, refresh] = mails as [Row, Row];
    expect(vacuum.body).toContain("pg_cron job nightly-vacuum failed.");
    expect(vacuum.body).toContain("Job id:   1\n");
    expect(vacuum.body).toContain(`Run id:   ${failed}\n`);
    expect(vacuum.body).toContain("Database: appdb\n");
    expect(vacuum.body).toContain(`User:     ${superuserName}\n`);
    expect(vacuum.body).toMatch(/Started: {2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/);
    expect(vacuum.body).toMatch(/Ended: {4}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/);
    expect(vacuum.body).toContain("Command:\nVACUUM (VERBOSE)\n");
    expect(vacuum.body).toContain("Message:\nERROR:  canceling statement due to statement timeout\n");
    expect(refresh.body).toContain(`Run id:   ${unnamed}\n`);
    expect(refresh.body).toContain("Message:\n(none)\n");

    expect(await scalar("notify_job_failures", { operator_name: op.name }, db)).toBe(0);
    expect(await cronMails(after)).toHaveLength(3);

    // A new failure is mailed on the next call, alone.
    const later = await addRun({ jobid: 1, status: "failed", endedAgo: "0 seconds" });
    expect(await scalar("notify_job_failures", { operator_name: op.name }, db)).toBe(1);
    const all = await cronMails(after);
    expect(all).toHaveLength(4);
    expect(all[3]?.body).toContain(`Run id:   ${later}\n`);
    const notified = await su(
      "SELECT runid FROM dbmail.notified_job_runs WHERE operator_id = $1 ORDER BY runid",
      [op.id],
    );
    expect(notified.map((r) => Number(r.runid))).toEqual([failed, unnamed, twoLines, later]);
  });

  it("a longer `since` reaches older failures, still once each", async () => {
    const op = await addOperator();
    await addRun({ jobid: 1, status: "failed", endedAgo: "2 days" });
    const recent = await scalar("notify_job_failures", { operator_name: op.name }, db);
    const total = await su(
      `SELECT count(*)::integer AS n FROM cron.job_run_details
       WHERE status = 'failed' AND end_time >= now() - interval '3 days'`,
    );
    expect(await scalar("notify_job_failures", { operator_name: op.name, since: "3 days" }, db)).toBe(
      Number(total[0]?.n) - Number(recent),
    );
    expect(await scalar("notify_job_failures", { operator_name: op.name, since: "3 days" }, db)).toBe(0);
  });

  it("each operator is mailed about each failure once", async () => {
    const after = await lastMailitemId();
    const first = await addOperator();
    const second = await addOperator();
    await addRun({ jobid: 1, status: "failed", endedAgo: "1 minute" });
    const firstCount = Number(await scalar("notify_job_failures", { operator_name: first.name }, db));
    expect(firstCount).toBeGreaterThan(0);
    expect(await scalar("notify_job_failures", { operator_name: second.name }, db)).toBe(firstCount);
    const mails = await cronMails(after);
    expect(mails.filter((m) => m.recipients === `${first.name}@example.com`)).toHaveLength(firstCount);
    expect(mails.filter((m) => m.recipients === `${second.name}@example.com`)).toHaveLength(firstCount);
  });

  it("runs as the caller: an admin sees only its own jobs' runs, and the mail is its own", async () => {
    const op = await addOperator();
    const after = await lastMailitemId();
    const own = await addRun({
      jobid: 4,
      status: "failed",
      endedAgo: "1 minute",
      username: cronAdminRole.name,
    });
    await addRun({ jobid: 1, status: "failed", endedAgo: "1 minute" });
    expect(
      await scalar("notify_job_failures", { operator_name: op.name, profile_name: "restricted" }, cronAdmin),
    ).toBe(1);
    const mails = await cronMails(after);
    expect(mails).toHaveLength(1);
    expect(mails[0]).toMatchObject({
      subject: "pg_cron job admins-job failed",
      send_request_user: cronAdminRole.name,
      profile_id: restrictedProfileId,
    });
    expect(mails[0]?.body).toContain(`Run id:   ${own}\n`);
    expect(await scalar("notify_job_failures", { operator_name: op.name }, cronAdmin)).toBe(0);
  });

  it("an admin without USAGE on schema cron is told so (42501)", async () => {
    const op = await addOperator();
    await expectRefused(
      () => scalar("notify_job_failures", { operator_name: op.name }),
      "42501",
      new RegExp(`^caller: "${adminRole.name}": may not use schema cron`),
    );
  });

  it("a rolled-back call forgets what it mailed: the next call mails the same failures", async () => {
    const op = await addOperator();
    await addRun({ jobid: 1, status: "failed", endedAgo: "1 minute" });
    const client = await db.connect();
    await client.query("BEGIN");
    const count = Number(await scalar("notify_job_failures", { operator_name: op.name }, client));
    expect(count).toBeGreaterThan(0);
    await client.query("ROLLBACK");
    expect(await scalar("notify_job_failures", { operator_name: op.name }, client)).toBe(count);
  });

  it("a disabled operator gets nothing (a NOTICE says so, no error); once enabled, the failures are mailed", async () => {
    const op = await addOperator({ enabled: false });
    await addRun({ jobid: 1, status: "failed", endedAgo: "1 minute" });
    const client = await db.connect();
    const received = notices(client);
    const before = await snapshot();
    expect(await scalar("notify_job_failures", { operator_name: op.name }, client)).toBe(0);
    expect(received).toContain(
      `operator_name: "${op.name}": operator is not enabled; no job failures were mailed`,
    );
    const after = await snapshot();
    expect(after.operators).toEqual(before.operators);
    expect(after.notified).toEqual(before.notified);
    expect(after.mailitems).toEqual(before.mailitems);
    await call("sp_update_operator", { name: op.name, enabled: true });
    expect(Number(await scalar("notify_job_failures", { operator_name: op.name }, client))).toBeGreaterThan(
      0,
    );
  });

  it("refuses an operator without an e-mail address, an unknown one and none, changing nothing", async () => {
    await addRun({ jobid: 1, status: "failed", endedAgo: "1 minute" });
    const noAddress = await addOperator({ email_address: "" });
    await expectRefused(
      () => scalar("notify_job_failures", { operator_name: noAddress.name }, db),
      "55000",
      `operator_name: "${noAddress.name}": operator has no e-mail address (an admin can set one with sp_update_operator)`,
    );
    await expectRefused(
      () => scalar("notify_job_failures", { operator_name: "ghost" }, db),
      "42704",
      'operator_name: "ghost": no such operator',
    );
    await expectRefused(
      () => scalar("notify_job_failures", {}, db),
      "22004",
      "operator_name: NULL: give the operator's name",
    );
  });

  it("an unknown profile fails the call, and nothing is recorded as notified", async () => {
    const op = await addOperator();
    await addRun({ jobid: 1, status: "failed", endedAgo: "1 minute" });
    await expectRefused(
      () => scalar("notify_job_failures", { operator_name: op.name, profile_name: "nope" }, db),
      "42704",
      'profile_name: "nope": no such profile',
    );
  });

  it("forgets notified runs that ended more than 30 days ago; deleting the operator forgets its runs", async () => {
    const op = await addOperator();
    await db.query(
      `INSERT INTO dbmail.notified_job_runs (operator_id, runid, jobid, run_ended_at)
       VALUES ($1, -1, 1, now() - interval '31 days'), ($1, -2, 1, now() - interval '29 days')`,
      [op.id],
    );
    await scalar("notify_job_failures", { operator_name: op.name }, db);
    const kept = await su("SELECT runid FROM dbmail.notified_job_runs WHERE operator_id = $1 AND runid < 0", [
      op.id,
    ]);
    expect(kept.map((r) => Number(r.runid))).toEqual([-2]);
    await call("sp_delete_operator", { name: op.name });
    expect(await su("SELECT runid FROM dbmail.notified_job_runs WHERE operator_id = $1", [op.id])).toEqual(
      [],
    );
  });
});
