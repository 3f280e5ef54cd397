// The fixtures and helpers of the attack tests in boundaries/ (SECURITY.md's boundaries crossed) and
// hardening/ (issue 13's attacks): a database with a public default profile and the roles each side
// needs, and the ways in that bypass sp_send_dbmail.
import { randomBytes } from "node:crypto";
import type pg from "pg";
import { TestDatabase, type TestRole } from "../../../../test/support/database.js";
import {
  type Args,
  addAccount,
  first,
  ident,
  profileWith,
  type Queryable,
  sleep,
} from "../../../../test/support/mail.js";

/** The SMTP password of the boundaries fixture's account: no refusal may ever show it. */
export const SECRET = `S3cret-${randomBytes(8).toString("hex")}`;
const VAULT_SECRET = `vault-${randomBytes(8).toString("hex")}`;

/** Adds an account and a profile that uses it, and makes the profile every role's default. */
export async function addPublicProfile(admin: Queryable, profile: string, account: Args): Promise<void> {
  const { name } = await addAccount(admin, account);
  await profileWith(admin, profile, [name], true);
}

/** The body of a mail item, read as `admin`. */
export async function bodyOf(admin: Queryable, id: string): Promise<string> {
  const { rows } = await admin.query<{ body: string }>(
    "SELECT body FROM dbmail.mailitems WHERE mailitem_id = $1",
    [id],
  );
  return first(rows).body;
}

/** Waits until backend `pid` waits for a lock (another session holds what it needs). */
export async function untilBlocked(admin: Queryable, pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { rows } = await admin.query<{ waiting: boolean }>(
      "SELECT wait_event_type = 'Lock' AS waiting FROM pg_stat_activity WHERE pid = $1",
      [pid],
    );
    if (rows[0]?.waiting) return;
    await sleep(25);
  }
  throw new Error(`backend ${pid} never waited for a lock`);
}

/**
 * Calls dbmail.queue_mail directly, as a dbmail_user may, after stamping the caller by hand in the same
 * transaction (all sp_send_dbmail does before it). The arguments are found in the catalog (read as
 * `admin`), so a new parameter does not break the call; those not given are NULL, or a harmless value.
 */
export async function queueMailDirectly(
  admin: Queryable,
  client: pg.Client,
  overrides: Record<string, unknown>,
): Promise<string> {
  const { rows } = await admin.query<{ names: string[]; types: string[] }>(
    `SELECT p.proargnames[1:p.pronargs] AS names,
            array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, n) ORDER BY n)
              AS types
     FROM pg_proc p WHERE p.oid = (SELECT max(oid) FROM pg_proc
                                    WHERE pronamespace = 'dbmail'::regnamespace AND proname = 'queue_mail')`,
  );
  const { names, types } = first(rows);
  const defaults: Record<string, unknown> = {
    recipients: "to@example.com",
    subject: "direct",
    body: "body",
    body_format: "TEXT",
    importance: "NORMAL",
    sensitivity: "NORMAL",
    attach_query_result_as_file: false,
    query_result_header: true,
    query_result_width: 256,
    query_result_separator: " ",
    exclude_query_output: false,
    append_query_error: false,
    query_no_truncate: false,
    query_result_no_padding: false,
    query_result_format: "TEXT",
  };
  const values = names.map((name) => (name in overrides ? overrides[name] : (defaults[name] ?? null)));
  const args = names.map((name, i) => `${name} => $${i + 1}::${types[i]}`).join(", ");
  await client.query("BEGIN");
  try {
    await client.query("INSERT INTO dbmail.caller_stamps DEFAULT VALUES");
    const { rows: queued } = await client.query<{ id: string }>(
      `SELECT dbmail.queue_mail(${args}) AS id`,
      values,
    );
    await client.query("COMMIT");
    return first(queued).id;
  } catch (error) {
    await client.query("ROLLBACK");
    throw error;
  }
}

/** The database of a boundaries/ test file, its roles, and connections as alice, admin and sender. */
export interface Boundaries {
  db: TestDatabase;
  /** dbmail_user members; alice is also a member of team. */
  alice: TestRole;
  bob: TestRole;
  team: TestRole;
  /** A role nobody in the fixture is a member of. */
  stranger: TestRole;
  admin: TestRole;
  sender: TestRole;
  aliceClient: pg.Client;
  adminClient: pg.Client;
  senderClient: pg.Client;
}

/**
 * A database with profile general (every role's default; its account's password is SECRET), and
 * application data dbmail does not own: schema vault, owned by keeper, and a table public.payroll with
 * no grants at all.
 */
export async function setUpBoundaries(): Promise<Boundaries> {
  const db = await TestDatabase.create();
  const team = await db.createRole("team", { login: false, memberOf: ["dbmail_user"] });
  const alice = await db.createRole("alice", { memberOf: ["dbmail_user", team.name] });
  const bob = await db.createRole("bob", { memberOf: ["dbmail_user"] });
  const stranger = await db.createRole("stranger", { login: false });
  const keeper = await db.createRole("keeper");
  const admin = await db.createRole("admin", { memberOf: ["dbmail_admin"] });
  const sender = await db.createRole("sender", { memberOf: ["dbmail_sender"] });

  await addPublicProfile(db, "general", {
    account_name: "main",
    email_address: "dbmail@example.com",
    mailserver_name: "localhost",
    username: "mailer",
    password: SECRET,
  });

  // Application data owned by keeper, who decides what to expose: a table nobody else may read, a
  // SECURITY DEFINER function over it that alice may execute and one she may not, a security-barrier
  // view filtered by current_user, and a table with row-level security.
  await db.query(`CREATE SCHEMA vault AUTHORIZATION ${ident(keeper.name)}`);
  const owner = await db.connect(keeper);
  await owner.query("CREATE TABLE vault.secrets (owner name NOT NULL, secret text NOT NULL)");
  await owner.query("INSERT INTO vault.secrets VALUES ($1, 'alice''s'), ($2, 'bob''s'), ($3, $4)", [
    alice.name,
    bob.name,
    keeper.name,
    VAULT_SECRET,
  ]);
  await owner.query(
    `CREATE FUNCTION vault.secret_count() RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER
     SET search_path = pg_catalog, pg_temp AS $$SELECT count(*) FROM vault.secrets$$`,
  );
  await owner.query(
    `CREATE FUNCTION vault.secret_of(who name) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
     SET search_path = pg_catalog, pg_temp AS $$SELECT secret FROM vault.secrets WHERE owner = who$$`,
  );
  await owner.query("REVOKE ALL ON FUNCTION vault.secret_count(), vault.secret_of(name) FROM PUBLIC");
  await owner.query(
    `CREATE VIEW vault.my_secrets WITH (security_barrier) AS
     SELECT owner, secret FROM vault.secrets WHERE owner = current_user`,
  );
  await owner.query(
    `CREATE TABLE vault.notes (owner name NOT NULL DEFAULT current_user, note text NOT NULL);
     ALTER TABLE vault.notes ENABLE ROW LEVEL SECURITY;
     CREATE POLICY own_notes ON vault.notes USING (owner = current_user)`,
  );
  await owner.query("INSERT INTO vault.notes VALUES ($1, 'alice''s note'), ($2, 'bob''s note')", [
    alice.name,
    bob.name,
  ]);
  for (const role of [alice, bob, admin]) {
    await owner.query(`GRANT USAGE ON SCHEMA vault TO ${ident(role.name)}`);
    await owner.query(`GRANT SELECT ON vault.my_secrets, vault.notes TO ${ident(role.name)}`);
  }
  await owner.query(`GRANT EXECUTE ON FUNCTION vault.secret_count() TO ${ident(alice.name)}`);

  // An application table made by the superuser with no grants at all.
  await db.query("CREATE TABLE public.payroll (employee text, salary numeric)");
  await db.query("REVOKE ALL ON public.payroll FROM PUBLIC");
  await db.query("INSERT INTO public.payroll VALUES ('alice', 100)");

  return {
    db,
    alice,
    bob,
    team,
    stranger,
    admin,
    sender,
    aliceClient: await db.connect(alice),
    adminClient: await db.connect(admin),
    senderClient: await db.connect(sender),
  };
}

/** The database of a hardening/ test file: profile Main (every role's default), and public.payroll. */
export interface Hardening {
  db: TestDatabase;
  aliceRole: TestRole;
  /** Connections as alice and bob (dbmail_user) and boss (dbmail_admin). */
  alice: pg.Client;
  bob: pg.Client;
  boss: pg.Client;
}

export async function setUpHardening(): Promise<Hardening> {
  const db = await TestDatabase.create();
  const aliceRole = await db.createRole("alice", { memberOf: ["dbmail_user"] });
  const bobRole = await db.createRole("bob", { memberOf: ["dbmail_user"] });
  const bossRole = await db.createRole("boss", { memberOf: ["dbmail_admin"] });
  await addPublicProfile(db, "Main", {
    account_name: "main",
    email_address: "mailer@example.org",
    mailserver_name: "localhost",
  });
  await db.query("CREATE TABLE public.payroll (name text, salary integer)");
  await db.query("INSERT INTO public.payroll VALUES ('alice', 50000), ('bob', 60000)");
  return {
    db,
    aliceRole,
    alice: await db.connect(aliceRole),
    bob: await db.connect(bobRole),
    boss: await db.connect(bossRole),
  };
}

/** sp_send_dbmail's arguments in hardening/: a recipient and a subject unless the test gives them. */
export const mailArgs = (args: Args): Args => ({ recipients: "to@example.org", subject: "s", ...args });
