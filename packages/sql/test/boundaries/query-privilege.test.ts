// A `query` never runs with more privilege than its caller, whatever it calls or switches to: SECURITY
// DEFINER functions, security-barrier views, row-level security, role switches, and dbmail's own
// secrets, sender functions and admin functions reached from a query (SECURITY.md §3.5 and §4). Every
// refused attempt leaves schema dbmail unchanged.
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, type TestDatabase, type TestRole } from "../../../../test/support/database.js";
import {
  type Args,
  first,
  ident,
  type Queryable,
  refusedUnchanged,
  send,
  snapshot,
} from "../../../../test/support/mail.js";
import { bodyOf, SECRET, setUpBoundaries } from "../support/boundaries.js";

let db: TestDatabase;
/** dbmail_user members; alice is also a member of team. */
let alice: TestRole;
let bob: TestRole;
let team: TestRole;
/** A role nobody in this file is a member of. */
let stranger: TestRole;
let admin: TestRole;
let aliceClient: pg.Client;
let adminClient: pg.Client;

beforeAll(async () => {
  ({ db, alice, bob, team, stranger, admin, aliceClient, adminClient } = await setUpBoundaries());
});

afterAll(async () => {
  await db?.drop();
});

const sendAs = (client: Queryable, args: Args = {}) =>
  send(client, { recipients: "to@example.com", subject: "s", ...args });

/** The body of a message whose only content is the JSON result of `query`, run as client. */
async function queryResult(client: pg.Client, query: string): Promise<unknown> {
  const id = await sendAs(client, { query, query_result_format: "JSON" });
  return JSON.parse(await bodyOf(db, id));
}

/** The same query run directly by client, as JSON rows (what the mail must show). */
async function directResult(client: pg.Client, query: string): Promise<unknown> {
  const { rows } = await client.query<{ j: string }>(
    `SELECT COALESCE(json_agg(t), '[]')::text AS j FROM (${query}) t`,
  );
  return JSON.parse(first(rows).j);
}

/** Collects the NOTICE messages a client receives. */
function notices(client: pg.Client): string[] {
  const received: string[] = [];
  client.on("notice", (notice) => received.push(notice.message ?? ""));
  return received;
}

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
    const viaQuery = await refusedUnchanged(db, () =>
      sendAs(aliceClient, { query: "SELECT * FROM vault.secrets" }),
    );
    expect(viaQuery.code).toBe("42501");
    expect(viaQuery.message).toContain("permission denied for table secrets");
  });

  it("a SECURITY DEFINER function the caller may not execute is refused (42501), nothing queued", async () => {
    const query = "SELECT vault.secret_of(current_user) AS s";
    expect((await errorOf(aliceClient.query(query))).code).toBe("42501");
    const error = await refusedUnchanged(db, () => sendAs(aliceClient, { query }));
    expect(error.code).toBe("42501");
    expect(error.message).toContain("permission denied for function secret_of");
    // Nor does bob get it, who may not even execute secret_count.
    const bobClient = await db.connect(bob);
    const bobs = await refusedUnchanged(db, () =>
      sendAs(bobClient, { query: "SELECT vault.secret_count() AS n" }),
    );
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
    const error = await refusedUnchanged(db, () => sendAs(aliceClient, { query }));
    expect(error.code, error.message).toBe("42501");
    expect(error.message).toMatch(/permission denied to set (role|session authorization)/);
    // The session is unchanged: the next mail is alice's.
    const { rows } = await db.query<{ u: string }>(
      "SELECT send_request_user AS u FROM dbmail.mailitems WHERE mailitem_id = $1",
      [await sendAs(aliceClient)],
    );
    expect(first(rows).u).toBe(alice.name);
  });

  it("SET ROLE, SET SESSION AUTHORIZATION and RESET ROLE as the query are refused, nothing queued", async () => {
    for (const query of [
      `SET ROLE ${ident(stranger.name)}`,
      `SET SESSION AUTHORIZATION ${ident(bob.name)}`,
      "SELECT 1) x; SET ROLE dbmail_admin; SELECT (1",
    ]) {
      const error = await refusedUnchanged(db, () => sendAs(aliceClient, { query }));
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
    const before = await snapshot(db);
    const query = `SELECT set_config('role', '${team.name}', true) AS r`;
    try {
      const id = await sendAs(aliceClient, { query });
      const { rows } = await db.query<{ u: string }>(
        "SELECT send_request_user AS u FROM dbmail.mailitems WHERE mailitem_id = $1",
        [id],
      );
      expect([alice.name, team.name]).toContain(first(rows).u);
    } catch (error) {
      expect((error as { code: string }).code).toBe("42501");
      expect(await snapshot(db)).toEqual(before);
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
        const error = await refusedUnchanged(db, () => sendAs(client, { query }));
        expect(error.code, error.message).toBe("42501");
        expect(error.message).not.toContain(SECRET);
      }
    },
  );

  it("with append_query_error, a refused read queues only the error text, never the secret", async () => {
    const id = await sendAs(adminClient, {
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
    const bobs = await sendAs(bobClient, { subject: "bob's private mail" });
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
    const error = await refusedUnchanged(db, () => sendAs(aliceClient, { query }));
    expect(error.code, error.message).toBe("42501");
  });
});
