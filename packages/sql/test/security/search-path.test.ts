// SECURITY DEFINER code cannot be hijacked through the caller's search_path (SPEC section 6): every such
// function pins a trusted search_path, and a user's schema that shadows pg_catalog functions and operators
// hijacks only the user's own SQL, never sp_send_dbmail, queue_mail, the views or an admin's calls.
import type pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import { ident } from "../../../../test/support/mail.js";
import { expectDenied, notices, queueMail, useSecurityDatabase, VIEWS } from "../support/security.js";

const t = useSecurityDatabase();
const { send, item } = t;

describe("search_path and shadowing", () => {
  it("every SECURITY DEFINER function pins a search_path of trusted schemas with pg_temp last", async () => {
    const { rows } = await t.db.query<{ fn: string; config: string[] | null }>(
      `SELECT p.oid::regprocedure::text AS fn, p.proconfig AS config FROM pg_proc p
       WHERE p.pronamespace = 'dbmail'::regnamespace AND p.prosecdef ORDER BY 1`,
    );
    expect(rows.length).toBeGreaterThan(20);
    const violators: string[] = [];
    for (const { fn, config } of rows) {
      const entry = (config ?? []).find((c) => c.startsWith("search_path="));
      if (!entry) {
        violators.push(`${fn}: no search_path`);
        continue;
      }
      const schemas = entry
        .slice("search_path=".length)
        .split(",")
        .map((s) => s.trim().replace(/^"|"$/g, ""));
      if (
        schemas.some((s) => !["pg_catalog", "pg_temp", "dbmail"].includes(s)) ||
        schemas.at(-1) !== "pg_temp"
      ) {
        violators.push(`${fn}: ${entry}`);
      }
    }
    expect(violators).toEqual([]);
  });

  it("every other function a role may call pins search_path, except those that run the caller's own query in the caller's context", async () => {
    // Internal helpers that no role but their owner may execute run only inside SECURITY DEFINER
    // functions, whose pinned search_path they inherit; pinning them again would cost a GUC
    // save/restore on every call of the hot send path for nothing.
    const { rows } = await t.db.query<{ fn: string; callers: string[] }>(
      `SELECT p.oid::regprocedure::text AS fn,
              array(SELECT r.rolname::text FROM pg_roles r
                    WHERE r.oid <> p.proowner AND NOT r.rolsuper AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
                    UNION ALL SELECT 'PUBLIC' WHERE has_function_privilege('public', p.oid, 'EXECUTE')) AS callers
       FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
       WHERE p.pronamespace = 'dbmail'::regnamespace AND p.prosqlbody IS NULL
         AND l.lanname NOT IN ('internal', 'c') AND p.proname NOT IN ('sp_send_dbmail', 'run_query', 'run_query_as_json')
         AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')
       ORDER BY 1`,
    );
    // Not vacuous: the hot helpers (address parsing, profile resolution) are unpinned and owner-only.
    expect(rows.map((r) => r.fn)).toContain("dbmail.resolve_profile(name,oid,text,integer)");
    expect(rows.filter((r) => r.callers.length > 0)).toEqual([]);
  });

  describe("a user's own schema that shadows pg_catalog", () => {
    let evilClient: pg.Client;
    let received: string[];

    beforeAll(async () => {
      await t.db.query(`CREATE SCHEMA evil AUTHORIZATION ${ident(t.alice.name)}`);
      evilClient = await t.db.connect(t.alice);
      received = notices(evilClient);
      const wrap = (signature: string, returns: string, call: string) =>
        `CREATE FUNCTION evil.${signature} RETURNS ${returns} LANGUAGE plpgsql AS $$BEGIN
           RAISE NOTICE 'hijacked: %', ${`'${signature.replace(/'/g, "''")}'`}; RETURN ${call}; END$$`;
      const shadows = [
        wrap('"lower"(text)', "text", "pg_catalog.lower($1)"),
        wrap('"upper"(text)', "text", "pg_catalog.upper($1)"),
        wrap('"btrim"(text)', "text", "pg_catalog.btrim($1)"),
        wrap('"btrim"(text, text)', "text", "pg_catalog.btrim($1, $2)"),
        wrap('"length"(text)', "integer", "pg_catalog.length($1)"),
        wrap('"left"(text, integer)', "text", "pg_catalog.left($1, $2)"),
        wrap('"strpos"(text, text)', "integer", "pg_catalog.strpos($1, $2)"),
        wrap('"replace"(text, text, text)', "text", "pg_catalog.replace($1, $2, $3)"),
        wrap('"format"(text)', "text", "pg_catalog.format($1)"),
        wrap('"format"(text, text)', "text", "pg_catalog.format($1, $2)"),
        wrap('"format"(text, text, text)', "text", "pg_catalog.format($1, $2, $3)"),
        wrap('"cardinality"(anyarray)', "integer", "pg_catalog.cardinality($1)"),
        wrap('"current_setting"(text)', "text", "pg_catalog.current_setting($1)"),
        wrap('"pg_has_role"(oid, oid, text)', "boolean", "pg_catalog.pg_has_role($1, $2, $3)"),
        wrap('"pg_has_role"(name, name, text)', "boolean", "pg_catalog.pg_has_role($1, $2, $3)"),
        wrap('"nextval"(regclass)', "bigint", "pg_catalog.nextval($1)"),
        wrap('"now"()', "timestamptz", "pg_catalog.now()"),
        wrap('"string_to_array"(text, text)', "text[]", "pg_catalog.string_to_array($1, $2)"),
        wrap('"texteq"(text, text)', "boolean", "pg_catalog.texteq($1, $2)"),
        wrap('"nameeq"(name, name)', "boolean", "pg_catalog.nameeq($1, $2)"),
        wrap('"textcat"(text, text)', "text", "pg_catalog.textcat($1, $2)"),
        wrap('"textregexeq"(text, text)', "boolean", "pg_catalog.textregexeq($1, $2)"),
        "CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq)",
        "CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = name, FUNCTION = evil.nameeq)",
        "CREATE OPERATOR evil.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.textcat)",
        "CREATE OPERATOR evil.~ (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.textregexeq)",
        `CREATE FUNCTION evil."pg_notify"(text, text) RETURNS void LANGUAGE plpgsql AS $$BEGIN
           RAISE NOTICE 'hijacked: pg_notify'; PERFORM pg_catalog.pg_notify($1, $2); END$$`,
      ];
      for (const sql of shadows) await evilClient.query(sql);
      await evilClient.query(`GRANT USAGE ON SCHEMA evil TO ${ident(t.admin.name)}`);
      await evilClient.query("SET search_path = evil, pg_catalog, public");
    });

    const hijacks = () => received.filter((m) => m.startsWith("hijacked"));

    it("does hijack unqualified names in the caller's own SQL (the control)", async () => {
      received.length = 0;
      await evilClient.query("SELECT lower('X') AS l, 'a'::text = 'a'::text AS e");
      expect(hijacks()).toEqual(
        expect.arrayContaining(['hijacked: "lower"(text)', 'hijacked: "texteq"(text, text)']),
      );
    });

    it("does not hijack sp_send_dbmail, queue_mail, the views or the delete, retry and cancel procedures", async () => {
      received.length = 0;
      const id = await send(evilClient, {
        profile_name: " General ",
        subject: "Shadowed",
        importance: "high",
      });
      const direct = await queueMail(evilClient, { profile_name: "GENERAL" });
      const bad = await errorOf(send(evilClient, { recipients: "a@x.org, b@y.org" }));
      expect(bad.message).toContain("use ';' to separate addresses");
      await expectDenied(send(evilClient, { profile_name: "vip_only" }));
      for (const view of VIEWS) await evilClient.query(`SELECT * FROM dbmail.${view}`);
      await evilClient.query("SELECT dbmail.sysmail_delete_mailitems_sp(sent_before => '2000-01-01')");
      await evilClient.query("SELECT dbmail.sysmail_retry_mailitems_sp(sent_before => '2000-01-01')");
      await evilClient.query("SELECT dbmail.sysmail_cancel_mailitems_sp(ARRAY[0]::bigint[])");
      expect(hijacks()).toEqual([]);
      const row = await item(id);
      expect(row.send_request_user).toBe(t.alice.name);
      expect(row.subject).toBe("Shadowed");
      expect(row.importance).toBe("HIGH");
      expect((await item(direct)).send_request_user).toBe(t.alice.name);
    });

    it("does not hijack sp_send_dbmail's attachments path either", async () => {
      received.length = 0;
      await evilClient
        .query(
          `SELECT dbmail.sp_send_dbmail(profile_name => 'general', recipients => 'to@example.com', body => 'b',
             attachments => ARRAY[dbmail.attachment('a.txt', '\\x616263'::bytea, 'text/plain')])`,
        )
        .catch(() => {});
      expect(hijacks()).toEqual([]);
    });

    it("does not hijack an admin's configuration calls made with the user's schema first", async () => {
      const client = await t.db.connect(t.admin);
      const adminNotices = notices(client);
      await client.query("SET search_path = evil, pg_catalog, public");
      await client.query(
        `SELECT dbmail.sysmail_add_profile_sp(profile_name => 'Shadow Profile'),
                dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'shadow profile',
                                                        is_default => false)`,
      );
      await client.query("SELECT * FROM dbmail.sysmail_help_account_sp(account_name => 'MAIN')");
      await client.query(
        "SELECT dbmail.sysmail_configure_sp(parameter_name => 'loggingLevel', parameter_value => ' 2 ')",
      );
      await client.query("SELECT * FROM dbmail.sysmail_help_queue_sp()");
      await send(client, { profile_name: "shadow profile" });
      for (const view of VIEWS) await client.query(`SELECT * FROM dbmail.${view}`);
      expect(adminNotices.filter((m) => m.startsWith("hijacked"))).toEqual([]);
    });
  });
});
