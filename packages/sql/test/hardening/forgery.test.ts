// Issue 13, the database side: a mail is what it is recorded as. It is not sent as a group role, not
// seen or replayed by a role created again under a dropped role's name, not stamped for another
// transaction; its query is exactly one statement and its result is not made up; its addresses are
// read by mail programs as dbmail reads them (SECURITY.md §3.3, §3.5 and §3.7; docs/sql-reference.md
// §1, Who "the caller" is, and §2.3). AdminRoles and SenderRoles are in confinement.test.ts;
// attachment names receivers read differently in test/attachments.test.ts.
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, type TestDatabase, type TestRole } from "../../../../test/support/database.js";
import { type Args, first, type Queryable, refused, send, shown } from "../../../../test/support/mail.js";
import { bodyOf, mailArgs, setUpHardening } from "../support/boundaries.js";
import { QUEUE_MAIL_PARAMETERS } from "../support/security.js";

const sendAs = (client: Queryable, args: Args) => send(client, mailArgs(args));
const refusedAs = (client: Queryable, args: Args) => refused(db, client, mailArgs(args));

let db: TestDatabase;
let aliceRole: TestRole;
let alice: pg.Client;
let bob: pg.Client;
let boss: pg.Client;

beforeAll(async () => {
  ({ db, aliceRole, alice, bob, boss } = await setUpHardening());
});

afterAll(async () => {
  await db?.drop();
});

describe("who sends", () => {
  // Before: SET ROLE dbmail_user, then sp_send_dbmail, queued mail of no one (every member could SET
  // ROLE dbmail_user and read it).
  it.each([
    ["dbmail_user", () => alice],
    ["dbmail_admin", () => boss],
  ])("refuses to send as the group role %s, naming it", async (role, client) => {
    const c = client();
    await c.query(`SET ROLE ${role}`);
    try {
      const error = await refusedAs(c, { body: "anonymous" });
      expect(error.code).toBe("42501");
      expect(error.message).toMatch(
        new RegExp(`^caller: "${role}": mail cannot be sent as a dbmail group role`),
      );
    } finally {
      await c.query("RESET ROLE");
    }
  });

  // Before: items were matched by role name, so a role created again under a dropped role's name read
  // the old role's mail and replayed its idempotency keys.
  it("a role created again under a dropped role's name does not see, replay or delete the old one's mail", async () => {
    const name = `reborn_${aliceRole.name.split("_").pop()}`;
    await db.query(`CREATE ROLE ${name} LOGIN PASSWORD 'test' IN ROLE dbmail_user`);
    const url = new URL(db.url);
    url.username = name;
    url.password = "test";
    let old: pg.Client | undefined;
    let reborn: pg.Client | undefined;
    try {
      old = await db.connect({ name, url: url.toString() });
      const secret = await sendAs(old, { body: "the old role's secret", idempotency_key: "mine" });
      await old.end();
      await db.query(`DROP ROLE ${name}`);
      await db.query(`CREATE ROLE ${name} LOGIN PASSWORD 'test' IN ROLE dbmail_user`);
      reborn = await db.connect({ name, url: url.toString() });
      expect((await reborn.query("SELECT * FROM dbmail.sysmail_allitems")).rows).toEqual([]);
      expect((await reborn.query("SELECT * FROM dbmail.sysmail_event_log")).rows).toEqual([]);
      const replay = await sendAs(reborn, { body: "new", idempotency_key: "mine" });
      expect(replay).not.toBe(secret);
      const { rows } = await reborn.query<{ n: string }>(
        "SELECT dbmail.sysmail_delete_mailitems_sp(sent_before => now() + interval '1 day') AS n",
      );
      expect(Number(first(rows).n)).toBe(1);
      expect(await bodyOf(db, secret)).toBe("the old role's secret");
      // Admins still see it.
      const admin = await boss.query(
        "SELECT mailitem_id FROM dbmail.sysmail_allitems WHERE mailitem_id = $1",
        [secret],
      );
      expect(admin.rows).toHaveLength(1);
    } finally {
      await reborn?.end().catch(() => {});
      await db.query(`DROP ROLE IF EXISTS ${name}`);
    }
  });
});

describe("caller stamps", () => {
  // Before: INSERT was granted on transaction_id, so a stamp for a future transaction could be planted;
  // nothing ever removed it.
  it("cannot be planted for another transaction", async () => {
    const error = await errorOf(
      alice.query("INSERT INTO dbmail.caller_stamps (transaction_id) VALUES ('999999999')"),
    );
    expect(error.code, error.message).toBe("42501");
    // What sp_send_dbmail does still works: every column takes its default.
    await alice.query("BEGIN");
    try {
      await alice.query("INSERT INTO dbmail.caller_stamps DEFAULT VALUES");
      await alice.query("INSERT INTO dbmail.caller_stamps (inserted) VALUES (false)");
    } finally {
      await alice.query("ROLLBACK");
    }
  });
});

describe("the name of the caller that the entry points pass to queue_mail", () => {
  /** queue_mail called as `client` with every argument and caller => `name`, from `via` (a SELECT's text). */
  async function queueAs(client: pg.Client, name: string, via = "SELECT dbmail.queue_mail(%s) AS id") {
    const args = QUEUE_MAIL_PARAMETERS.map(([p, type], i) => `${p} => $${i + 1}::${type}`).join(", ");
    const values = QUEUE_MAIL_PARAMETERS.map(([, , value]) => value);
    return client.query(via.replace("%s", `${args}, caller => $${values.length + 1}::name`), [
      ...values,
      name,
    ]);
  }

  it("is not taken from a direct call: without a stamp it is refused, with one the stamp decides", async () => {
    const bobName = first((await bob.query<{ n: string }>("SELECT current_user AS n")).rows).n;
    const error = await errorOf(queueAs(alice, bobName));
    expect(error.code, error.message).toBe("42501");
    expect(error.message).toMatch(/call dbmail\.sp_send_dbmail, not this internal function/);
    await alice.query("BEGIN");
    try {
      await alice.query("INSERT INTO dbmail.caller_stamps DEFAULT VALUES");
      const id = first((await queueAs(alice, bobName)).rows).id;
      const { rows } = await alice.query(
        "SELECT send_request_user FROM dbmail.sysmail_allitems WHERE mailitem_id = $1",
        [id],
      );
      expect(first(rows).send_request_user).toBe(aliceRole.name);
    } finally {
      await alice.query("ROLLBACK");
    }
  });

  it("is not taken from a direct call of send_usual_mail (the usual call's queue_mail)", async () => {
    const bobName = first((await bob.query<{ n: string }>("SELECT current_user AS n")).rows).n;
    const error = await errorOf(
      alice.query(
        "SELECT dbmail.send_usual_mail('to@example.org', 's', 'b', 'TEXT', 'NORMAL', false, false, $1::name)",
        [bobName],
      ),
    );
    expect(error.code, error.message).toBe("42501");
    expect(error.message).toMatch(/call dbmail\.sp_send_dbmail, not this internal function/);
  });

  it("is not taken from a function of the caller's own named like an entry point", async () => {
    const bobName = first((await bob.query<{ n: string }>("SELECT current_user AS n")).rows).n;
    await alice.query(`CREATE FUNCTION pg_temp.send_as_caller(who name) RETURNS bigint LANGUAGE plpgsql AS $f$
      BEGIN RETURN dbmail.queue_mail(NULL, 'to@example.org', NULL, NULL, 's', 'b', 'TEXT', 'NORMAL', 'NORMAL',
        NULL, NULL, NULL, false, NULL, true, 256, ' ', false, false, false, false, NULL, NULL, NULL, NULL, NULL,
        NULL, 'TEXT', NULL, who); END $f$`);
    const error = await errorOf(alice.query("SELECT pg_temp.send_as_caller($1)", [bobName]));
    expect(error.code, error.message).toBe("42501");
  });

  // queue_mail trusts a frame above it that starts "<words>dbmail.send_": a schema whose name begins so
  // is named in quotes, so its functions' frames do not.
  it("is not taken from a function in a schema named like dbmail.send_", async () => {
    const bobName = first((await bob.query<{ n: string }>("SELECT current_user AS n")).rows).n;
    await db.query(`CREATE SCHEMA "dbmail.send_as_caller" AUTHORIZATION ${aliceRole.name}`);
    try {
      await alice.query(`CREATE FUNCTION "dbmail.send_as_caller".f(who name) RETURNS bigint LANGUAGE plpgsql AS $f$
        BEGIN RETURN dbmail.queue_mail(NULL, 'to@example.org', NULL, NULL, 's', 'b', 'TEXT', 'NORMAL', 'NORMAL',
          NULL, NULL, NULL, false, NULL, true, 256, ' ', false, false, false, false, NULL, NULL, NULL, NULL, NULL,
          NULL, 'TEXT', NULL, who); END $f$`);
      const error = await errorOf(alice.query(`SELECT "dbmail.send_as_caller".f($1)`, [bobName]));
      expect(error.code, error.message).toBe("42501");
    } finally {
      await db.query(`DROP SCHEMA "dbmail.send_as_caller" CASCADE`);
    }
  });
});

describe("the query", () => {
  // Before: the query was wrapped in parentheses and run with EXECUTE, which runs several statements:
  // closing the parenthesis let a query add statements of its own.
  it("is exactly one statement: one that closes the wrapper's parenthesis is refused and runs nothing", async () => {
    await alice.query("CREATE TEMPORARY TABLE side (x integer)");
    for (const query of [
      "SELECT 1) q; INSERT INTO side VALUES (1); SELECT * FROM (SELECT 1",
      "SELECT 1) q; SELECT pg_sleep(20); SELECT * FROM (SELECT 1",
    ]) {
      const error = await refusedAs(alice, { query });
      expect(error.code).toBe("42601");
      expect(error.message).toBe(
        `query: ${shown(query)}: must be one statement that returns rows (this one closes the parenthesis sp_send_dbmail puts around it, and adds statements)`,
      );
      // With append_query_error: queued with the error, still nothing run.
      const id = await sendAs(alice, { query, append_query_error: true });
      expect(await bodyOf(db, id)).toMatch(/^Query failed: must be one statement that returns rows/);
    }
    expect((await alice.query("SELECT count(*)::int AS n FROM side")).rows).toEqual([{ n: 0 }]);
  });

  it("still sees the caller's temporary tables and search_path", async () => {
    await alice.query("CREATE TEMPORARY TABLE mine (v text)");
    await alice.query("INSERT INTO mine VALUES ('temporary')");
    const id = await sendAs(alice, { query: "SELECT v FROM mine", query_result_format: "CSV" });
    expect(await bodyOf(db, id)).toBe("v\r\ntemporary\r\n");
  });

  // Before: queue_mail, granted to every dbmail_user, recorded whatever query and result it was given.
  it("and its result cannot be made up: queue_mail takes a query only from sp_send_dbmail's own path", async () => {
    const forged = async (client: pg.Client, sql: string) => {
      await client.query("BEGIN");
      try {
        await client.query("INSERT INTO dbmail.caller_stamps DEFAULT VALUES");
        await client.query(sql);
      } finally {
        await client.query("ROLLBACK");
      }
    };
    const direct = `SELECT dbmail.queue_mail(NULL, 'to@example.org', NULL, NULL, 'Salaries', NULL, 'TEXT', 'NORMAL',
      'NORMAL', NULL, 'SELECT name, salary FROM public.payroll', NULL, false, NULL, true, 256, ' ', false, false,
      false, false, NULL, NULL, NULL, NULL, NULL, NULL, 'TEXT', 'alice 1000000')`;
    const error = await errorOf(forged(alice, direct));
    expect(error.code).toBe("42501");
    expect(error.message).toBe(
      `query: "SELECT name, salary FROM public.payroll": a query is run, and its result recorded, only through dbmail.sp_send_dbmail (queue_mail does not take one)`,
    );
    // Nor through a function of the caller's that looks like the real one.
    await db.query(`CREATE SCHEMA IF NOT EXISTS lookalike AUTHORIZATION ${aliceRole.name}`);
    await alice.query(`CREATE FUNCTION lookalike.send_with_query() RETURNS bigint LANGUAGE plpgsql AS $$
      BEGIN RETURN ${direct.replace(/^SELECT /, "")}; END $$`);
    const error2 = await errorOf(forged(alice, "SELECT lookalike.send_with_query()"));
    expect(error2.code).toBe("42501");
    const { rows } = await db.query("SELECT 1 FROM dbmail.mailitems WHERE subject = 'Salaries'");
    expect(rows).toEqual([]);
  });

  it("send_with_query, called directly, runs the query it records", async () => {
    const { rows } = await alice.query<{ id: string }>(
      `SELECT dbmail.send_with_query(NULL, 'to@example.org', NULL, NULL, 's', NULL, 'TEXT', 'NORMAL', 'NORMAL', NULL,
         'SELECT 41 + 1 AS answer', NULL, false, NULL, true, 256, ' ', true, false, false, false, NULL, NULL, NULL,
         NULL, NULL, NULL, 'TEXT', 'public') AS id`,
    );
    expect(await bodyOf(db, first(rows).id)).toBe("answer\n------\n    42\n\n(1 row affected)");
    // The caller's query cannot read what the caller may not.
    const error = await errorOf(sendAs(bob, { query: "SELECT * FROM public.payroll" }));
    expect(error.code).toBe("42501");
  });
});

describe("addresses that mail programs read differently", () => {
  // Before: accepted; nodemailer turns < and > in a quoted local part into spaces, so the mail went to
  // another address than the one recorded.
  it.each([
    ["a quoted local part with < and >", '"x<evil@attacker.example>"@example.org'],
    ["a quoted local part with <", '"<evil@attacker.example"@example.org'],
    ["a domain literal with >", "x@[a>b]"],
  ])("refuses %s", async (_label, address) => {
    for (const parameter of ["recipients", "from_address", "reply_to"]) {
      const error = await refusedAs(alice, { [parameter]: address, body: "b" });
      expect(error.code).toBe("22023");
      expect(error.message).toBe(
        `${parameter}: ${shown(address)}: contains < or >, which mail programs rewrite (the mail would go to another address)`,
      );
    }
  });

  // Before: a 200 kB display name was stored and sent.
  it("refuses a display name over 256 characters, and accepts 256", async () => {
    for (const name of ["N".repeat(257), "N".repeat(200000)]) {
      for (const entry of [`${name} <a@example.org>`, `"${name}" <a@example.org>`]) {
        const error = await refusedAs(alice, { recipients: `ok@example.org; ${entry}`, body: "b" });
        expect(error.code).toBe("22023");
        expect(error.message).toBe(
          `recipients: ${shown(entry)}: the display name is longer than 256 characters`,
        );
      }
    }
    await sendAs(alice, { recipients: `"${"é".repeat(256)}" <a@example.org>`, body: "b" });
  });

  // Before: `Grp: <x@y>` in from_address became a group (From: Grp:x@y;) in the message.
  it.each(["from_address", "reply_to"])(
    "refuses group syntax in %s; a quoted name with a colon is fine",
    async (p) => {
      for (const value of ["Grp: <x@example.org>", "Team:Ops <x@example.org>"]) {
        const error = await refusedAs(alice, { [p]: value, body: "b" });
        expect(error.code).toBe("22023");
        expect(error.message).toBe(
          `${p}: ${shown(value)}: a display name followed by a colon is group syntax, which is not allowed here (put a name with a colon in double quotes)`,
        );
      }
      await sendAs(alice, { [p]: '"Grp:" <x@example.org>', body: "b" });
    },
  );

  it("accepts a colon in a recipient's display name (recipients go to the sender parsed, never as text)", async () => {
    await sendAs(alice, { recipients: "Ops: on call <ops@example.org>", body: "b" });
  });
});
