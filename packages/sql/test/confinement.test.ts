// Issue 13, item 5: roles are cluster-wide, so without confinement a sender login meant for one database
// reads another database's SMTP passwords, and an admin of one database is an admin of all. AdminRoles and
// SenderRoles (settings of each database, empty by default: every member) confine
// dbmail_admin's and dbmail_sender's rights in a database to the members of the roles they list.
// Two databases of one cluster, one sender login and one admin for both: confined in db1, not in db2.
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, TestDatabase, type TestRole } from "../../../test/support/database.js";
import { withDatabase } from "../../../test/support/global-setup.js";
import { addAccount, first } from "../../../test/support/mail.js";
import { addSendingProfile } from "./support/send.js";

const SECRET = "db1-smtp-password";

let db1: TestDatabase;
let db2: TestDatabase;
/** A sender login and an admin, both meant for db2 only (members of no listed role). */
let mailer: TestRole;
let boss: TestRole;
/** db1's own: members of the roles db1 lists. */
let db1Mailer: TestRole;
let db1Boss: TestRole;
let db1Senders: TestRole;
let db1Admins: TestRole;

/** A connection as `role` to `db` (a TestRole's URL names the database that made it). */
async function connect(db: TestDatabase, role: TestRole): Promise<pg.Client> {
  return db.connect({ name: role.name, url: withDatabase(role.url, db.name) });
}

async function setUp(db: TestDatabase, password: string): Promise<void> {
  await addAccount(db, {
    account_name: "main",
    email_address: "mailer@example.org",
    mailserver_name: "localhost",
    username: "mailer",
    password,
  });
  await addSendingProfile(db, "Main", "main", "public", true);
  await addSendingProfile(db, "Private", "main");
  // Mail of the superuser's (not the admin's own) waiting to be sent.
  await db.query(
    "SELECT dbmail.sp_send_dbmail(recipients => 'to@example.org', subject => 'queued', body => 'b')",
  );
}

/** Whether the sender function calls dbmail.require_sender() (the sender protocol's owner adds those calls). */
async function callsRequireSender(db: TestDatabase, name: string): Promise<boolean> {
  const { rows } = await db.query<{ wired: boolean }>(
    `SELECT bool_and(strpos(prosrc, 'dbmail.require_sender()') > 0) AS wired FROM pg_proc
     WHERE pronamespace = 'dbmail'::regnamespace AND proname = $1`,
    [name],
  );
  return first(rows).wired === true;
}

/** The sender login passes require_sender, reads the account's password, and claims (then releases) mail. */
async function expectServes(client: pg.Client, senderId: string, password: string): Promise<void> {
  await client.query("SELECT dbmail.require_sender()");
  const { rows } = await client.query<{ password: string }>("SELECT password FROM dbmail.sender_accounts()");
  expect(rows.map((r) => r.password)).toContain(password);
  const claimed = await client.query("SELECT * FROM dbmail.claim_mailitems($1, 10, 60)", [senderId]);
  expect(claimed.rows.length).toBeGreaterThan(0);
  await client.query("SELECT dbmail.release_mailitems($1, $2, $3)", [
    senderId,
    claimed.rows.map((r) => r.mailitem_id),
    claimed.rows.map((r) => r.lease_token),
  ]);
}

beforeAll(async () => {
  db1 = await TestDatabase.create();
  db2 = await TestDatabase.create();
  mailer = await db1.createRole("mailer", { memberOf: ["dbmail_sender"] });
  boss = await db1.createRole("boss", { memberOf: ["dbmail_admin"] });
  db1Senders = await db1.createRole("db1_senders", { login: false });
  db1Admins = await db1.createRole("db1_admins", { login: false });
  db1Mailer = await db1.createRole("db1_mailer", { memberOf: ["dbmail_sender", db1Senders.name] });
  db1Boss = await db1.createRole("db1_boss", { memberOf: ["dbmail_admin", db1Admins.name] });
  await setUp(db1, SECRET);
  await setUp(db2, "db2-smtp-password");
  await db1.query("SELECT dbmail.sysmail_configure_sp('SenderRoles', $1)", [db1Senders.name]);
  await db1.query("SELECT dbmail.sysmail_configure_sp('AdminRoles', $1)", [db1Admins.name]);
});

afterAll(async () => {
  await db2?.drop();
  await db1?.drop();
});

describe("SenderRoles", () => {
  it("in db1, refuses the sender login that is not a member of a listed role, naming the setting", async () => {
    const client = await connect(db1, mailer);
    const error = await errorOf(client.query("SELECT dbmail.require_sender()"));
    expect(error.code).toBe("42501");
    expect(error.message).toBe(
      `caller: "${mailer.name}": may not act as a sender in database ${db1.name}: SenderRoles allows the sender functions only to members of the roles it lists`,
    );
    // Nor may it write events.
    const logged = await errorOf(client.query("SELECT dbmail.log_event('error', 'forged')"));
    expect(logged.code).toBe("42501");
  });

  it("in db1, the sender login cannot read the account passwords nor claim", async () => {
    // Every sender function checks SenderRoles first.
    for (const name of [
      "sender_accounts",
      "sender_heartbeat",
      "sender_stopped",
      "claim_mailitems",
      "extend_leases",
      "release_mailitems",
      "record_outcome",
      "record_outcomes",
      "sender_attachments",
      "sender_attachment_chunk",
      "sender_queue_stats",
    ]) {
      expect(await callsRequireSender(db1, name), name).toBe(true);
    }
    const client = await connect(db1, mailer);
    const accounts = await errorOf(client.query("SELECT password FROM dbmail.sender_accounts()"));
    expect(accounts.code).toBe("42501");
    expect(accounts.message).toContain("SenderRoles");
    const claim = await errorOf(client.query("SELECT * FROM dbmail.claim_mailitems('confined', 10, 60)"));
    expect(claim.code).toBe("42501");
    expect(
      (await db1.query("SELECT count(*)::int AS n FROM dbmail.mailitems WHERE sent_status = 'sending'")).rows,
    ).toEqual([{ n: 0 }]);
  });

  it("in db1, a sender login that is a member of a listed role serves as before", async () => {
    await expectServes(await connect(db1, db1Mailer), "db1-sender", SECRET);
  });

  it("in db2 (SenderRoles empty), the same login serves as before", async () => {
    await expectServes(await connect(db2, mailer), "db2-sender", "db2-smtp-password");
  });

  it("never confines a superuser", async () => {
    await db1.query("SELECT dbmail.require_sender()");
    const { rows } = await db1.query<{ password: string }>("SELECT password FROM dbmail.sender_accounts()");
    expect(rows.map((r) => r.password)).toContain(SECRET);
  });
});

describe("AdminRoles", () => {
  const refusal = (role: TestRole) =>
    `caller: "${role.name}": may not use the dbmail_admin procedures in database ${db1.name}: AdminRoles allows them only to members of the roles it lists`;

  it("in db1, refuses every admin procedure to an admin that is not a member of a listed role", async () => {
    const client = await connect(db1, boss);
    for (const call of [
      "SELECT dbmail.sysmail_configure_sp('LoggingLevel', '3')",
      "SELECT dbmail.sysmail_configure_sp('AdminRoles', '')",
      "SELECT * FROM dbmail.sysmail_help_configure_sp()",
      "SELECT * FROM dbmail.sysmail_help_account_sp()",
      "SELECT * FROM dbmail.sysmail_help_account_sp(account_name => 'nope')",
      "SELECT dbmail.sysmail_add_account_sp(account_name => 'x', email_address => 'x@example.org', mailserver_name => 'evil.example')",
      "SELECT dbmail.sysmail_update_account_sp(account_name => 'main', mailserver_name => 'evil.example')",
      "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'Private', is_default => false)",
      "SELECT dbmail.sysmail_stop_sp()",
      "SELECT * FROM dbmail.sysmail_help_queue_sp()",
      "SELECT dbmail.sysmail_delete_log_sp(logged_before => now())",
      "SELECT dbmail.sp_add_operator(name => 'x', email_address => 'x@example.org')",
    ]) {
      const error = await errorOf(client.query(call));
      expect({ call, code: error.code, message: error.message }).toEqual({
        call,
        code: "42501",
        message: refusal(boss),
      });
    }
    expect(
      (await db1.query("SELECT paramvalue FROM dbmail.settings WHERE paramname = 'LoggingLevel'")).rows,
    ).toEqual([{ paramvalue: "2" }]);
  });

  it("in db1, the same admin sees only its own mail, uses only granted profiles and deletes only its own", async () => {
    const client = await connect(db1, boss);
    expect((await client.query("SELECT * FROM dbmail.sysmail_allitems")).rows).toEqual([]);
    expect((await client.query("SELECT * FROM dbmail.sysmail_event_log")).rows).toEqual([]);
    const error = await errorOf(
      client.query(
        "SELECT dbmail.sp_send_dbmail(profile_name => 'Private', recipients => 'a@example.org', body => 'b')",
      ),
    );
    expect(error.code).toBe("42501");
    const { rows } = await client.query<{ n: string }>(
      "SELECT dbmail.sysmail_delete_mailitems_sp(sent_before => now() + interval '1 day') AS n",
    );
    expect(Number(first(rows).n)).toBe(0);
    expect((await db1.query("SELECT count(*)::int AS n FROM dbmail.mailitems")).rows).toEqual([{ n: 1 }]);
  });

  it("in db1, an admin that is a member of a listed role administers as before", async () => {
    const client = await connect(db1, db1Boss);
    await client.query("SELECT dbmail.sysmail_configure_sp('LoggingLevel', '2')");
    expect((await client.query("SELECT * FROM dbmail.sysmail_help_account_sp()")).rows).toHaveLength(1);
    expect((await client.query("SELECT * FROM dbmail.sysmail_allitems")).rows).toHaveLength(1);
  });

  it("in db2 (AdminRoles empty), the same admin administers as before", async () => {
    const client = await connect(db2, boss);
    await client.query("SELECT dbmail.sysmail_configure_sp('LoggingLevel', '2')");
    expect((await client.query("SELECT * FROM dbmail.sysmail_help_account_sp()")).rows).toHaveLength(1);
    expect((await client.query("SELECT * FROM dbmail.sysmail_allitems")).rows).toHaveLength(1);
  });

  it("never confines a superuser", async () => {
    await db1.query("SELECT dbmail.sysmail_configure_sp('LoggingLevel', '2')");
    expect((await db1.query("SELECT * FROM dbmail.sysmail_help_account_sp()")).rows).toHaveLength(1);
  });

  it("cannot be set so that it takes the calling admin's own rights away", async () => {
    const client = await connect(db1, db1Boss);
    const error = await errorOf(
      client.query("SELECT dbmail.sysmail_configure_sp('AdminRoles', $1)", [boss.name]),
    );
    expect(error.code).toBe("22023");
    expect(error.message).toBe(
      `parameter_value: "${boss.name}": AdminRoles would take your own admin rights in this database away (role ${db1Boss.name} is a member of none of these roles); list a role of yours too`,
    );
    expect(
      (await db1.query("SELECT paramvalue FROM dbmail.settings WHERE paramname = 'AdminRoles'")).rows,
    ).toEqual([{ paramvalue: db1Admins.name }]);
    // A list that keeps one of the caller's roles is fine; so is emptying it.
    await client.query("SELECT dbmail.sysmail_configure_sp('AdminRoles', $1)", [
      `${boss.name}; ${db1Admins.name}`,
    ]);
    expect(
      (await db1.query("SELECT paramvalue FROM dbmail.settings WHERE paramname = 'AdminRoles'")).rows,
    ).toEqual([{ paramvalue: `${boss.name};${db1Admins.name}` }]);
    await client.query("SELECT dbmail.sysmail_configure_sp('AdminRoles', $1)", [db1Admins.name]);
  });
});

describe("the settings", () => {
  it("are listed by sysmail_help_configure_sp, empty by default", async () => {
    const { rows } = await db2.query<{ paramname: string; paramvalue: string }>(
      "SELECT paramname, paramvalue FROM dbmail.sysmail_help_configure_sp() WHERE paramname LIKE '%Roles'",
    );
    expect(rows).toEqual([
      { paramname: "AdminRoles", paramvalue: "" },
      { paramname: "SenderRoles", paramvalue: "" },
    ]);
  });

  it("refuse a role that does not exist, naming it", async () => {
    for (const name of ["AdminRoles", "SenderRoles"]) {
      const error = await errorOf(
        db2.query("SELECT dbmail.sysmail_configure_sp($1, 'nobody_at_all; x')", [name]),
      );
      expect(error.code).toBe("42704");
      expect(error.message).toBe(
        `parameter_value: "nobody_at_all; x": ${name}: no role is named "nobody_at_all" (role names are case-sensitive)`,
      );
    }
  });

  it("every admin procedure asks dbmail.require_admin first (so a new one cannot miss AdminRoles)", async () => {
    const { rows } = await db1.query<{ name: string }>(
      `SELECT p.oid::regprocedure::text AS name FROM pg_proc p
       WHERE p.pronamespace = 'dbmail'::regnamespace AND p.prosecdef
         AND has_function_privilege('dbmail_admin', p.oid, 'EXECUTE')
         AND NOT has_function_privilege('dbmail_user', p.oid, 'EXECUTE')
         AND NOT has_function_privilege('dbmail_sender', p.oid, 'EXECUTE')
         AND strpos(p.prosrc, 'dbmail.require_admin()') = 0`,
    );
    expect(rows).toEqual([]);
  });
});
