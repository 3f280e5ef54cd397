// The sending user cannot be forged (SPEC sections 3 and 5): dbmail.queue_mail needs its caller's own
// stamp, SET ROLE and SECURITY DEFINER wrappers record current_user, leaky functions and a fake pg_roles
// see or change nothing, and a rolled-back send leaves nothing queued or notified.
import { describe, expect, it } from "vitest";
import { first, ident, refusedUnchanged, sleep, snapshot } from "../../../../test/support/mail.js";
import {
  expectDenied,
  notices,
  queueMail,
  queueMailUnstamped,
  useSecurityDatabase,
} from "../support/security.js";

const t = useSecurityDatabase();
const { send, item, idsOf, expectUnchanged } = t;

describe("dbmail_user", () => {
  it("cannot call queue_mail directly without a stamp of its own transaction", async () => {
    const error = await refusedUnchanged(t.db, () =>
      queueMailUnstamped(t.aliceClient, { subject: "queued directly" }),
    );
    expect(error.code).toBe("42501");
    expect(error.message).toContain("call dbmail.sp_send_dbmail");
  });

  it("with a stamp made by hand, queue_mail records the stamper, and a stamp is only ever its maker's", async () => {
    const id = await queueMail(t.aliceClient, { subject: "queued directly" });
    const row = await item(id);
    expect(row.send_request_user).toBe(t.alice.name);
    expect(row.last_mod_user).toBe(t.alice.name);
    await expectUnchanged(async () => {
      await expectDenied(
        t.aliceClient.query("INSERT INTO dbmail.caller_stamps (role_name) VALUES ($1)", [t.bob.name]),
      );
      await expectDenied(t.aliceClient.query("SELECT * FROM dbmail.caller_stamps"));
      await expectDenied(t.aliceClient.query("UPDATE dbmail.caller_stamps SET role_name = role_name"));
    });
  });

  it("a stamp left committed by one user cannot be used by another session", async () => {
    await t.aliceClient.query("INSERT INTO dbmail.caller_stamps DEFAULT VALUES");
    const error = await refusedUnchanged(t.db, () =>
      queueMailUnstamped(t.bobClient, { subject: "with alice's stamp" }),
    );
    expect(error.code).toBe("42501");
    await t.db.query("DELETE FROM dbmail.caller_stamps");
  });

  it("cannot bypass sp_send_dbmail's refusals by calling queue_mail directly", async () => {
    // sp_send_dbmail refuses these (file attachments outside AttachmentDirectories, which is empty; a
    // prohibited extension, also as a query attachment name); queue_mail, granted to the same users, must
    // too. (A query's result is formatted by sp_send_dbmail in the caller's session; a direct caller can
    // only hand queue_mail a "result" it could as well have written in the body.)
    const exe = first(
      (
        await t.db.query<{ a: string }>(
          "SELECT ARRAY[dbmail.attachment('evil.exe', '\\x4d5a'::bytea)]::text AS a",
        )
      ).rows,
    ).a;
    const attempts: Record<string, Record<string, unknown>> = {
      file_attachments: { file_attachments: "/etc/passwd" },
      attachments: { attachments: exe },
      query_attachment_filename: {
        query: "SELECT 1",
        query_result: "1",
        attach_query_result_as_file: true,
        query_attachment_filename: "run.vbs",
      },
    };
    const accepted: string[] = [];
    for (const [name, overrides] of Object.entries(attempts)) {
      const before = await snapshot(t.db);
      try {
        const id = await queueMail(t.aliceClient, overrides);
        accepted.push(`${name}: queued mailitem ${id}`);
        await t.db.query("DELETE FROM dbmail.mailitems WHERE mailitem_id = $1", [id]);
      } catch {
        expect(await snapshot(t.db)).toEqual(before);
      }
    }
    expect(accepted).toEqual([]);
  });
});

describe("forging the sender", () => {
  it("send_request_user is the calling role", async () => {
    const id = await send(t.aliceClient, { subject: "who am i" });
    const row = await item(id);
    expect(row.send_request_user).toBe(t.alice.name);
    expect(row.last_mod_user).toBe(t.alice.name);
  });

  it("after SET ROLE to a group the user belongs to, the group is recorded (current_user)", async () => {
    const client = await t.db.connect(t.carol);
    await client.query(`SET ROLE ${ident(t.team.name)}`);
    expect(first((await client.query<{ u: string }>("SELECT current_user AS u")).rows).u).toBe(t.team.name);
    expect((await item(await send(client, { profile_name: "team_only" }))).send_request_user).toBe(
      t.team.name,
    );
    expect((await item(await queueMail(client))).send_request_user).toBe(t.team.name);
    await client.query("RESET ROLE");
    expect((await item(await send(client))).send_request_user).toBe(t.carol.name);
  });

  it("set_config('role', ...) to a role the user is not a member of fails, and the true user is recorded", async () => {
    const client = await t.db.connect(t.alice);
    await expectUnchanged(async () => {
      await expectDenied(client.query("SELECT set_config('role', $1, false)", [t.bob.name]));
      await expectDenied(client.query(`SET ROLE ${ident(t.bob.name)}`));
      await expectDenied(client.query(`SET SESSION AUTHORIZATION ${ident(t.bob.name)}`));
      await expectDenied(client.query(`SET ROLE ${ident(t.vip.name)}`));
    });
    expect((await item(await send(client))).send_request_user).toBe(t.alice.name);
  });

  it("a per-role setting of role (ALTER ROLE ... SET role) does not forge the sender", async () => {
    await t.aliceClient
      .query(`ALTER ROLE ${ident(t.alice.name)} SET role = ${ident(t.bob.name)}`)
      .catch(() => {});
    try {
      const client = await t.db.connect(t.alice).catch(() => undefined);
      if (client) {
        expect((await item(await send(client))).send_request_user).toBe(t.alice.name);
      }
    } finally {
      await t.db.query(`ALTER ROLE ${ident(t.alice.name)} RESET ALL`);
    }
  });

  it("inside a SECURITY DEFINER function, the recorded user is its owner (current_user), not the session's role", async () => {
    // alice wraps sp_send_dbmail in a SECURITY DEFINER function and lets a role with no dbmail role call it.
    // SPEC 5: the sending principal is the caller's current_user, here alice; the session role (nobody) is
    // not a dbmail_user at all and must not appear as a sender, nor have its grants decide the profile.
    await t.db.query(`CREATE SCHEMA app AUTHORIZATION ${ident(t.alice.name)}`);
    await t.db.query(`GRANT USAGE ON SCHEMA app TO ${ident(t.nobody.name)}`);
    const owner = await t.db.connect(t.alice);
    await owner.query(
      `CREATE FUNCTION app.notify() RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS
       $$SELECT dbmail.sp_send_dbmail(recipients => 'to@example.com', subject => 'wrapped', body => 'b')$$`,
    );
    await owner.query(`GRANT EXECUTE ON FUNCTION app.notify() TO ${ident(t.nobody.name)}`);
    const { rows } = await t.nobodyClient.query<{ id: string }>("SELECT app.notify() AS id");
    const row = await item(first(rows).id);
    expect(row.send_request_user).toBe(t.alice.name);
  });

  it("a direct call to queue_mail records the true user", async () => {
    const client = await t.db.connect(t.alice);
    expect((await item(await queueMail(client))).send_request_user).toBe(t.alice.name);
  });

  it("a leaky function in a WHERE clause over the views never sees other users' rows (security barrier)", async () => {
    const client = await t.db.connect(t.alice);
    const received = notices(client);
    await client.query(
      `CREATE FUNCTION pg_temp.peek(a bigint, b text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS
       $$BEGIN RAISE NOTICE 'peek %|%', a, b; RETURN true; END$$`,
    );
    const aliceItems = await idsOf(
      "SELECT mailitem_id AS id FROM dbmail.mailitems WHERE send_request_user = $1",
      [t.alice.name],
    );
    const seenItems = (): string[] =>
      received.filter((m) => m.startsWith("peek ")).map((m) => m.slice(5).split("|")[0] ?? "");

    for (const view of [
      "sysmail_allitems",
      "sysmail_sentitems",
      "sysmail_unsentitems",
      "sysmail_faileditems",
    ]) {
      received.length = 0;
      await client.query(
        `SELECT * FROM dbmail.${view} WHERE pg_temp.peek(mailitem_id, send_request_user::text)`,
      );
      const users = received.filter((m) => m.startsWith("peek ")).map((m) => m.split("|")[1]);
      expect(users.length, `${view}: the function ran`).toBeGreaterThan(0);
      expect(new Set(users), view).toEqual(new Set([t.alice.name]));
    }

    received.length = 0;
    await client.query(
      "SELECT * FROM dbmail.sysmail_event_log WHERE pg_temp.peek(log_id, COALESCE(mailitem_id::text, 'none'))",
    );
    const eventItems = received.filter((m) => m.startsWith("peek ")).map((m) => m.split("|")[1] ?? "");
    expect(eventItems.length).toBeGreaterThan(0);
    for (const id of eventItems) expect(aliceItems).toContain(id);

    received.length = 0;
    await client.query(
      "SELECT * FROM dbmail.sysmail_mailattachments WHERE pg_temp.peek(mailitem_id, filename)",
    );
    const attachmentItems = seenItems();
    expect(attachmentItems).toEqual([t.items.alice.unsent]);
  });

  it("a temporary pg_roles claiming the caller is a superuser changes nothing", async () => {
    const client = await t.db.connect(t.alice);
    await client.query(
      `CREATE TEMP VIEW pg_roles AS
       SELECT r.oid, r.rolname, true AS rolsuper FROM pg_catalog.pg_roles r`,
    );
    await client.query("SET search_path = pg_temp, pg_catalog, public");
    await expectUnchanged(() => expectDenied(send(client, { profile_name: "vip_only" })));
    const { rows } = await client.query<{ u: string }>(
      "SELECT DISTINCT send_request_user AS u FROM dbmail.sysmail_allitems",
    );
    expect(rows.map((r) => r.u)).toEqual([t.alice.name]);
  });
});

describe("transactions", () => {
  it("BEGIN; sp_send_dbmail; ROLLBACK queues nothing and notifies nobody", async () => {
    const listener = await t.db.connect();
    const notifications: string[] = [];
    listener.on("notification", (n) => notifications.push(n.channel));
    // As an idle sender listens (sp_send_dbmail notifies only when one does; 000017).
    await listener.query("LISTEN dbmail_queue; SELECT dbmail.sender_listening()");
    const client = await t.db.connect(t.alice);
    await expectUnchanged(async () => {
      await client.query("BEGIN");
      const id = await send(client, { subject: "rolled back" });
      expect(Number(id)).toBeGreaterThan(0);
      await client.query("ROLLBACK");
      await sleep(300);
    });
    expect(notifications).toEqual([]);
    // The control: a committed send does notify.
    await send(client, { subject: "committed" });
    await sleep(300);
    expect(notifications).toEqual(["dbmail_queue"]);
  });
});
