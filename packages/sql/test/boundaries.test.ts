// Attempts to cross the boundaries of SECURITY.md that security.test.ts, query-results.test.ts,
// send.test.ts and test/attachments.test.ts do not already try: a `query` never runs with more privilege
// than its caller (whatever it calls or switches to), `file_attachments` never reads outside
// AttachmentDirectories, no header can be injected through the parameters and paths left, and the
// sender's role reaches nothing beyond the sender protocol. Every refused attempt must leave schema dbmail
// unchanged: nothing queued, nothing configured.
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, TestDatabase, type TestRole } from "../../../test/support/database.js";

const SECRET = `S3cret-${randomBytes(8).toString("hex")}`;
const VAULT_SECRET = `vault-${randomBytes(8).toString("hex")}`;

let db: TestDatabase;
/** dbmail_user members; alice is also a member of team. */
let alice: TestRole;
let bob: TestRole;
let team: TestRole;
/** A role nobody in this file is a member of. */
let stranger: TestRole;
/** Owns schema vault: application data that is not dbmail's. */
let keeper: TestRole;
let admin: TestRole;
let sender: TestRole;
let aliceClient: pg.Client;
let adminClient: pg.Client;
let senderClient: pg.Client;
/** The directory named in AttachmentDirectories while the file tests run, and one that is not. */
let allowed: string;
let outside: string;

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
  const all: Record<string, unknown> = { recipients: "to@example.com", subject: "s", ...args };
  const names = Object.keys(all);
  const sql = `SELECT dbmail.sp_send_dbmail(${names.map((n, i) => `${n} => $${i + 1}`).join(", ")}) AS id`;
  const { rows } = await client.query<{ id: string }>(sql, Object.values(all));
  return first(rows).id;
}

/** The body of a message whose only content is the JSON result of `query`, run as client. */
async function queryResult(client: pg.Client, query: string): Promise<unknown> {
  const id = await send(client, { query, query_result_format: "JSON" });
  const { rows } = await db.query<{ body: string }>(
    "SELECT body FROM dbmail.mailitems WHERE mailitem_id = $1",
    [id],
  );
  return JSON.parse(first(rows).body);
}

/** The same query run directly by client, as JSON rows (what the mail must show). */
async function directResult(client: pg.Client, query: string): Promise<unknown> {
  const { rows } = await client.query<{ j: string }>(
    `SELECT COALESCE(json_agg(t), '[]')::text AS j FROM (${query}) t`,
  );
  return JSON.parse(first(rows).j);
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

/** The error of an attempt that must change nothing in schema dbmail. */
async function refusedUnchanged(attempt: () => Promise<unknown>): Promise<{ code: string; message: string }> {
  const before = await snapshot();
  const error = await errorOf(attempt());
  expect(await snapshot()).toEqual(before);
  return error;
}

async function configure(name: string, value: string): Promise<void> {
  await db.query("SELECT dbmail.sysmail_configure_sp($1, $2)", [name, value]);
}

/**
 * Calls dbmail.queue_mail directly, as a dbmail_user may, after stamping the caller by hand in the same
 * transaction (all sp_send_dbmail does before it). The arguments are found in the catalog, so a new
 * parameter does not break the call; those not given are NULL, or a harmless value.
 */
async function queueMailDirectly(client: pg.Client, overrides: Record<string, unknown>): Promise<string> {
  const { rows } = await db.query<{ names: string[]; types: string[] }>(
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

/** Collects the NOTICE messages a client receives. */
function notices(client: pg.Client): string[] {
  const received: string[] = [];
  client.on("notice", (notice) => received.push(notice.message ?? ""));
  return received;
}

function writeFile(path: string, content: string): void {
  writeFileSync(path, content);
  chmodSync(path, 0o644);
}

function makeDirectory(): string {
  const directory = mkdtempSync(join(tmpdir(), "dbmail-boundaries-"));
  chmodSync(directory, 0o755);
  return directory;
}

beforeAll(async () => {
  db = await TestDatabase.create();
  team = await db.createRole("team", { login: false, memberOf: ["dbmail_user"] });
  alice = await db.createRole("alice", { memberOf: ["dbmail_user", team.name] });
  bob = await db.createRole("bob", { memberOf: ["dbmail_user"] });
  stranger = await db.createRole("stranger", { login: false });
  keeper = await db.createRole("keeper");
  admin = await db.createRole("admin", { memberOf: ["dbmail_admin"] });
  sender = await db.createRole("sender", { memberOf: ["dbmail_sender"] });

  await db.query(
    `SELECT dbmail.sysmail_add_account_sp(account_name => 'main', email_address => 'dbmail@example.com',
       mailserver_name => 'localhost', username => 'mailer', password => $1)`,
    [SECRET],
  );
  await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'general')");
  await db.query(
    "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'general', account_name => 'main', sequence_number => 1)",
  );
  await db.query(
    "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'general', is_default => true)",
  );

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

  aliceClient = await db.connect(alice);
  adminClient = await db.connect(admin);
  senderClient = await db.connect(sender);
  allowed = makeDirectory();
  outside = makeDirectory();
});

afterAll(async () => {
  await db?.drop();
  for (const directory of [allowed, outside])
    if (directory) rmSync(directory, { recursive: true, force: true });
});

describe("query never runs with more privilege than its caller", () => {
  it("runs as the caller: current_user and session_user inside the query are the caller's", async () => {
    const query = "SELECT current_user::text AS cu, session_user::text AS su";
    expect(await queryResult(aliceClient, query)).toEqual([{ cu: alice.name, su: alice.name }]);
    expect(await queryResult(adminClient, query)).toEqual([{ cu: admin.name, su: admin.name }]);
  });

  it("a SECURITY DEFINER function the caller may execute reads for it exactly as when called directly", async () => {
    // Allowed by PostgreSQL: the function's owner chose to expose a count of its table. The mail shows
    // what a direct call shows, and not a row more; the table itself stays closed, in the query too.
    const query = "SELECT vault.secret_count() AS n";
    expect(await directResult(aliceClient, query)).toEqual([{ n: 3 }]);
    expect(await queryResult(aliceClient, query)).toEqual([{ n: 3 }]);
    const direct = await errorOf(aliceClient.query("SELECT * FROM vault.secrets"));
    expect(direct.code).toBe("42501");
    const viaQuery = await refusedUnchanged(() =>
      send(aliceClient, { query: "SELECT * FROM vault.secrets" }),
    );
    expect(viaQuery.code).toBe("42501");
    expect(viaQuery.message).toContain("permission denied for table secrets");
  });

  it("a SECURITY DEFINER function the caller may not execute is refused (42501), nothing queued", async () => {
    const query = "SELECT vault.secret_of(current_user) AS s";
    expect((await errorOf(aliceClient.query(query))).code).toBe("42501");
    const error = await refusedUnchanged(() => send(aliceClient, { query }));
    expect(error.code).toBe("42501");
    expect(error.message).toContain("permission denied for function secret_of");
    // Nor does bob get it, who may not even execute secret_count.
    const bobClient = await db.connect(bob);
    const bobs = await refusedUnchanged(() => send(bobClient, { query: "SELECT vault.secret_count() AS n" }));
    expect(bobs.code).toBe("42501");
  });

  it("a security-barrier view owned by another role returns exactly the caller's rows, as when read directly", async () => {
    const query = "SELECT owner::text, secret FROM vault.my_secrets ORDER BY secret";
    const expected = [{ owner: alice.name, secret: "alice's" }];
    expect(await directResult(aliceClient, query)).toEqual(expected);
    expect(await queryResult(aliceClient, query)).toEqual(expected);
    // A leaky function in the query's WHERE clause sees no row the view's filter removes.
    const received = notices(aliceClient);
    await aliceClient.query(
      `CREATE OR REPLACE FUNCTION pg_temp.peek(v text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS
       $$BEGIN RAISE NOTICE 'peek %', v; RETURN true; END$$`,
    );
    expect(
      await queryResult(aliceClient, "SELECT secret FROM vault.my_secrets WHERE pg_temp.peek(secret)"),
    ).toEqual([{ secret: "alice's" }]);
    const peeked = received.filter((m) => m.startsWith("peek "));
    expect(peeked).toEqual(["peek alice's"]);
  });

  it("row-level security applies to the query as to the caller", async () => {
    const query = "SELECT owner::text, note FROM vault.notes ORDER BY note";
    const expected = [{ owner: alice.name, note: "alice's note" }];
    expect(await directResult(aliceClient, query)).toEqual(expected);
    expect(await queryResult(aliceClient, query)).toEqual(expected);
  });

  it.each([
    ["set_config('role', <a role the caller is not in>, true)", "SELECT set_config('role', '%s', true) AS r"],
    ["set_config('role', <the same>, false)", "SELECT set_config('role', '%s', false) AS r"],
    ["set_config('role', 'dbmail_admin', true)", "SELECT set_config('role', 'dbmail_admin', true) AS r"],
    ["set_config('role', 'dbmail_sender', true)", "SELECT set_config('role', 'dbmail_sender', true) AS r"],
    [
      "set_config('session_authorization', ...)",
      "SELECT set_config('session_authorization', '%s', true) AS r",
    ],
  ])("%s inside the query is refused by PostgreSQL (42501), nothing queued", async (_label, template) => {
    const query = template.replace("%s", stranger.name);
    const error = await refusedUnchanged(() => send(aliceClient, { query }));
    expect(error.code, error.message).toBe("42501");
    expect(error.message).toMatch(/permission denied to set (role|session authorization)/);
    // The session is unchanged: the next mail is alice's.
    const { rows } = await db.query<{ u: string }>(
      "SELECT send_request_user AS u FROM dbmail.mailitems WHERE mailitem_id = $1",
      [await send(aliceClient)],
    );
    expect(first(rows).u).toBe(alice.name);
  });

  it("SET ROLE, SET SESSION AUTHORIZATION and RESET ROLE as the query are refused, nothing queued", async () => {
    for (const query of [
      `SET ROLE ${ident(stranger.name)}`,
      `SET SESSION AUTHORIZATION ${ident(bob.name)}`,
      "SELECT 1) x; SET ROLE dbmail_admin; SELECT (1",
    ]) {
      const error = await refusedUnchanged(() => send(aliceClient, { query }));
      expect(["42601", "42501"], `${query}: ${error.code} ${error.message}`).toContain(error.code);
    }
    expect(first((await aliceClient.query<{ u: string }>("SELECT current_user AS u")).rows).u).toBe(
      alice.name,
    );
  });

  it("switching inside the query to a role the caller is a member of gives nothing SET ROLE would not", async () => {
    // The query may do what its caller may: alice is in team, so she could SET LOCAL ROLE team herself.
    // Today the switch makes the query lose access to its own result table (created as alice), so the
    // call is refused and nothing is queued; were it accepted, the mail could only be alice's or team's.
    const before = await snapshot();
    const query = `SELECT set_config('role', '${team.name}', true) AS r`;
    try {
      const id = await send(aliceClient, { query });
      const { rows } = await db.query<{ u: string }>(
        "SELECT send_request_user AS u FROM dbmail.mailitems WHERE mailitem_id = $1",
        [id],
      );
      expect([alice.name, team.name]).toContain(first(rows).u);
    } catch (error) {
      expect((error as { code: string }).code).toBe("42501");
      expect(await snapshot()).toEqual(before);
    }
    // The switch was local to the statement's transaction.
    expect(first((await aliceClient.query<{ u: string }>("SELECT current_user AS u")).rows).u).toBe(
      alice.name,
    );
  });

  it.each([
    ["dbmail.sender_accounts()", "SELECT * FROM dbmail.sender_accounts()"],
    ["dbmail.sender_accounts() for the password only", "SELECT password FROM dbmail.sender_accounts()"],
    ["dbmail.account_secrets", "SELECT * FROM dbmail.account_secrets"],
    ["dbmail.accounts", "SELECT * FROM dbmail.accounts"],
    ["dbmail.mailitems (every user's mail)", "SELECT * FROM dbmail.mailitems"],
    ["dbmail.attachments", "SELECT * FROM dbmail.attachments"],
    ["dbmail.caller_stamps", "SELECT * FROM dbmail.caller_stamps"],
  ])(
    "reading %s through the query is refused (42501) for a user and an admin, nothing queued",
    async (_label, query) => {
      for (const client of [aliceClient, adminClient]) {
        const error = await refusedUnchanged(() => send(client, { query }));
        expect(error.code, error.message).toBe("42501");
        expect(error.message).not.toContain(SECRET);
      }
    },
  );

  it("with append_query_error, a refused read queues only the error text, never the secret", async () => {
    const id = await send(adminClient, {
      query: "SELECT password FROM dbmail.sender_accounts()",
      append_query_error: true,
      body: "b",
    });
    const { rows } = await db.query<{ item: string }>(
      `SELECT row_to_json(m)::text || COALESCE((SELECT string_agg(a::text, '|') FROM dbmail.attachments a
                                                WHERE a.mailitem_id = m.mailitem_id), '') AS item
       FROM dbmail.mailitems m WHERE m.mailitem_id = $1`,
      [id],
    );
    const item = first(rows).item;
    expect(item).toContain("permission denied for function sender_accounts");
    expect(item).not.toContain(SECRET);
  });

  it("the view filter holds inside the query: another user's mail stays invisible", async () => {
    const bobClient = await db.connect(bob);
    const bobs = await send(bobClient, { subject: "bob's private mail" });
    const seen = (await queryResult(
      aliceClient,
      "SELECT mailitem_id, send_request_user::text AS u FROM dbmail.sysmail_allitems",
    )) as { mailitem_id: number; u: string }[];
    expect(seen.length).toBeGreaterThan(0);
    expect(new Set(seen.map((r) => r.u))).toEqual(new Set([alice.name]));
    expect(seen.map((r) => String(r.mailitem_id))).not.toContain(bobs);
  });

  it.each([
    ["claim_mailitems", "SELECT * FROM dbmail.claim_mailitems('evil', 100, 60)"],
    [
      "record_outcome",
      "SELECT dbmail.record_outcome(1, 'evil', '00000000-0000-4000-8000-000000000000', 'sent', 1, '250 OK')",
    ],
    ["release_mailitems", "SELECT dbmail.release_mailitems('evil', ARRAY[1]::bigint[], ARRAY[NULL]::uuid[])"],
    ["sender_attachments", "SELECT * FROM dbmail.sender_attachments('evil', 1, NULL)"],
    ["sender_heartbeat", "SELECT * FROM dbmail.sender_heartbeat('evil')"],
    ["log_event", "SELECT dbmail.log_event('error', 'forged event')"],
    ["sysmail_configure_sp", "SELECT dbmail.sysmail_configure_sp('AttachmentDirectories', '/')"],
    [
      "sysmail_add_account_sp",
      "SELECT dbmail.sysmail_add_account_sp('evil', 'e@example.com', mailserver_name => 'x')",
    ],
    ["sysmail_help_account_sp", "SELECT * FROM dbmail.sysmail_help_account_sp()"],
    [
      "sysmail_add_principalprofile_sp",
      "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'general', is_default => false)",
    ],
    ["sysmail_stop_sp", "SELECT dbmail.sysmail_stop_sp()"],
    ["sysmail_delete_log_sp", "SELECT dbmail.sysmail_delete_log_sp(now())"],
    ["read_attachment_files", "SELECT dbmail.read_attachment_files('/etc/passwd')"],
    ["take_caller_stamp", "SELECT dbmail.take_caller_stamp('sp_send_dbmail')"],
    ["pg_read_file", "SELECT pg_read_file('/etc/passwd') AS f"],
    ["pg_read_binary_file", "SELECT pg_read_binary_file('/proc/self/environ') AS f"],
    ["pg_ls_dir", "SELECT pg_ls_dir('/') AS f"],
    ["lo_import", "SELECT lo_import('/etc/passwd') AS f"],
  ])("a user's query cannot reach %s (42501), nothing changed", async (_label, query) => {
    const error = await refusedUnchanged(() => send(aliceClient, { query }));
    expect(error.code, error.message).toBe("42501");
  });
});

describe("file_attachments never reads outside AttachmentDirectories", () => {
  beforeAll(async () => {
    writeFile(join(allowed, "ok.txt"), "ok");
    writeFile(join(outside, "secret.txt"), "outside");
    await configure("AttachmentDirectories", allowed);
  });

  afterAll(async () => {
    await configure("AttachmentDirectories", "");
  });

  it("the control: a file of the allowed directory is attached", async () => {
    const id = await send(aliceClient, { file_attachments: join(allowed, "ok.txt") });
    const { rows } = await db.query<{ filename: string }>(
      "SELECT filename FROM dbmail.attachments WHERE mailitem_id = $1",
      [id],
    );
    expect(rows.map((r) => r.filename)).toEqual(["ok.txt"]);
  });

  it("refuses a path with a NUL byte (PostgreSQL refuses NUL in text), nothing queued", async () => {
    for (const path of [`${join(allowed, "ok.txt")}\u0000../../etc/passwd`, `${outside}\u0000/secret.txt`]) {
      const error = await refusedUnchanged(() => send(aliceClient, { file_attachments: path }));
      expect(["22021", "22P05", "22023"], `${error.code} ${error.message}`).toContain(error.code);
    }
  });

  it("refuses a CR, a CRLF and other control characters in a path, nothing queued", async () => {
    for (const path of [
      `${allowed}/ok.txt\r`,
      `${allowed}/ok\r\n.txt`,
      `${allowed}/\r/../${basename(outside)}/secret.txt`,
      `${allowed}/ok\u001b.txt`,
    ]) {
      const error = await refusedUnchanged(() => send(aliceClient, { file_attachments: path }));
      expect(error.code, error.message).toBe("22023");
      expect(error.message).toMatch(/^file_attachments: /);
    }
  });

  it("refuses '..' however it is spelt: doubled slashes, after a file name, behind an allowed file", async () => {
    const outsideName = basename(outside);
    for (const path of [
      `${allowed}//..//${outsideName}/secret.txt`,
      `${allowed}/../${outsideName}/secret.txt`,
      `${allowed}/ok.txt/../../${outsideName}/secret.txt`,
      `${join(allowed, "ok.txt")};${allowed}/../${outsideName}/secret.txt`,
      `${allowed}/../${basename(allowed)}/ok.txt`,
    ]) {
      const error = await refusedUnchanged(() => send(aliceClient, { file_attachments: path }));
      expect(error.code, `${path}: ${error.message}`).toBe("22023");
    }
  });

  it("refuses /proc/self/environ and the server's own files even next to an allowed file, nothing queued", async () => {
    const { rows } = await db.query<{ d: string }>("SELECT current_setting('data_directory') AS d");
    const dataDirectory = first(rows).d;
    for (const path of [
      "/proc/self/environ",
      "/proc/self/cmdline",
      `${dataDirectory}/postgresql.auto.conf`,
      `${dataDirectory}/PG_VERSION`,
    ]) {
      const error = await refusedUnchanged(() =>
        send(aliceClient, { file_attachments: `${join(allowed, "ok.txt")};${path}` }),
      );
      expect(error.code, `${path}: ${error.message}`).toBe("42501");
      expect(error.message).toContain("AttachmentDirectories");
    }
  });

  it("a direct call to queue_mail (stamped by hand) is held to the same directories", async () => {
    for (const path of ["/proc/self/environ", `${allowed}/../${basename(outside)}/secret.txt`, "ok.txt"]) {
      const error = await refusedUnchanged(() => queueMailDirectly(aliceClient, { file_attachments: path }));
      expect(["42501", "22023"], `${path}: ${error.code} ${error.message}`).toContain(error.code);
    }
  });
});

describe("header injection through the parameters not covered elsewhere", () => {
  it.each([
    ["CRLF", "report\r\nBcc: evil@attacker.example.csv"],
    ["LF", "report\n.csv"],
    ["CR", "report\r.csv"],
    ["another control character", "report\u0007.csv"],
  ])("refuses %s in query_attachment_filename, nothing queued", async (_label, name) => {
    const error = await refusedUnchanged(() =>
      send(aliceClient, {
        query: "SELECT 1 AS one",
        attach_query_result_as_file: true,
        query_attachment_filename: name,
      }),
    );
    expect(error.code, error.message).toBe("22023");
    expect(error.message).toMatch(/^query_attachment_filename: /);
    expect(error.message).not.toMatch(/[\r\n]/);
  });

  it.each(["copy_recipients", "blind_copy_recipients"])(
    "refuses a line break inside a quoted display name in %s, nothing queued",
    async (parameter) => {
      for (const value of ['"Jane\r\nBcc: evil@attacker.example" <jane@x.org>', "Jane\rDoe <jane@x.org>"]) {
        const error = await refusedUnchanged(() => send(aliceClient, { [parameter]: value }));
        expect(error.code, error.message).toBe("22023");
        expect(error.message.startsWith(`${parameter}: `), error.message).toBe(true);
      }
    },
  );

  it("refuses a NUL byte in the subject (PostgreSQL refuses NUL in text), nothing queued", async () => {
    const error = await refusedUnchanged(() =>
      send(aliceClient, { subject: "Hi\u0000Bcc: evil@attacker.example" }),
    );
    expect(["22021", "22P05", "22023"], `${error.code} ${error.message}`).toContain(error.code);
  });

  it.each([
    ["subject", { subject: "Hi\r\nBcc: evil@attacker.example" }],
    ["from_address", { from_address: "ops@x.org\r\nBcc: evil@attacker.example" }],
    ["reply_to", { reply_to: '"Help\r\nDesk" <help@x.org>' }],
    ["recipients", { recipients: '"Jane\nDoe" <jane@x.org>' }],
    ["headers (name)", { headers: JSON.stringify({ "X-A\r\nBcc": "v" }) }],
    ["headers (value)", { headers: JSON.stringify({ "X-Tag": "a\r\nBcc: evil@attacker.example" }) }],
    ["headers (an overridden From)", { headers: JSON.stringify({ From: "boss@x.org" }) }],
  ])(
    "a direct call to queue_mail (stamped by hand) refuses a line break in %s, nothing queued",
    async (_label, overrides) => {
      const error = await refusedUnchanged(() => queueMailDirectly(aliceClient, overrides));
      expect(error.code, error.message).toBe("22023");
    },
  );

  it("a line break in query_attachment_filename is refused, and a direct call to queue_mail takes no query at all", async () => {
    const error = await refusedUnchanged(() =>
      send(aliceClient, {
        query: "SELECT 1",
        attach_query_result_as_file: true,
        query_attachment_filename: "a\r\nb.csv",
      }),
    );
    expect(error.code, error.message).toBe("22023");
    expect(error.message.startsWith("query_attachment_filename: "), error.message).toBe(true);
    // Directly, with a result of its own making: refused before the name is looked at.
    const direct = await refusedUnchanged(() =>
      queueMailDirectly(aliceClient, {
        query: "SELECT 1",
        query_result: "1",
        attach_query_result_as_file: true,
        query_attachment_filename: "a\r\nb.csv",
      }),
    );
    expect(direct.code, direct.message).toBe("42501");
    expect(direct.message.startsWith('query: "SELECT 1": '), direct.message).toBe(true);
  });

  it("a direct call to queue_mail refuses an in-memory attachment whose name or content type has a line break", async () => {
    for (const attachment of [
      "SELECT ARRAY[dbmail.attachment(E'a\\r\\nContent-Type: text/html.txt', '\\x61'::bytea)]::text AS a",
      "SELECT ARRAY[dbmail.attachment('a.txt', '\\x61'::bytea, E'text/plain\\r\\nX-Evil: 1')]::text AS a",
    ]) {
      const value = first((await db.query<{ a: string }>(attachment)).rows).a;
      const error = await refusedUnchanged(() => queueMailDirectly(aliceClient, { attachments: value }));
      expect(error.code, error.message).toBe("22023");
    }
  });
});

describe("dbmail_sender reaches nothing beyond the sender protocol", () => {
  it("cannot read or write an application table with no grants (42501)", async () => {
    for (const sql of [
      "SELECT * FROM public.payroll",
      "INSERT INTO public.payroll VALUES ('mallory', 1)",
      "UPDATE public.payroll SET salary = 0",
    ]) {
      const error = await errorOf(senderClient.query(sql));
      expect(error.code, `${sql}: ${error.message}`).toBe("42501");
      expect(error.message).toContain("permission denied for table payroll");
    }
    expect((await db.query("SELECT * FROM public.payroll")).rows).toEqual([
      { employee: "alice", salary: "100" },
    ]);
  });

  it("cannot read another application's data that dbmail_user members may read", async () => {
    const error = await errorOf(senderClient.query("SELECT * FROM vault.my_secrets"));
    expect(error.code).toBe("42501");
  });

  it("cannot become a user or an admin, so it cannot send mail as one or change configuration", async () => {
    for (const role of ["dbmail_user", "dbmail_admin", alice.name, team.name]) {
      const error = await refusedUnchanged(() => senderClient.query(`SET ROLE ${ident(role)}`));
      expect(error.code, `${role}: ${error.message}`).toBe("42501");
      const viaConfig = await refusedUnchanged(() =>
        senderClient.query("SELECT set_config('role', $1, false)", [role]),
      );
      expect(viaConfig.code).toBe("42501");
    }
    for (const sql of [
      "SELECT dbmail.sp_send_dbmail(recipients => 'to@example.com', subject => 's')",
      "SELECT dbmail.sysmail_configure_sp('MaxFileSize', '1')",
      "INSERT INTO dbmail.caller_stamps DEFAULT VALUES",
    ]) {
      const error = await refusedUnchanged(() => senderClient.query(sql));
      expect(error.code, `${sql}: ${error.message}`).toBe("42501");
    }
    expect(first((await senderClient.query<{ u: string }>("SELECT current_user AS u")).rows).u).toBe(
      sender.name,
    );
  });
});
