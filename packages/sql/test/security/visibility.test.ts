// Who may use which profile and see which rows (SPEC sections 5 and 6): a dbmail_user only its granted
// profiles and its own items, events and attachments, also when deleting; a dbmail_admin every profile and
// every row.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { first, refusedUnchanged } from "../../../../test/support/mail.js";
import { expectDenied, useSecurityDatabase } from "../support/security.js";

const t = useSecurityDatabase();
const { send, item, idsOf, expectUnchanged } = t;

describe("dbmail_user", () => {
  it("cannot use a private profile granted to a role it is not a member of", async () => {
    const error = await refusedUnchanged(t.db, () => send(t.aliceClient, { profile_name: "vip_only" }));
    expect(error.code).toBe("42501");
    expect(error.message).toContain("profile_name");
    expect(error.message).toContain(t.alice.name);
  });

  it("cannot use a profile with no grants (private to admins)", async () => {
    await expectUnchanged(() => expectDenied(send(t.aliceClient, { profile_name: "admins_only" })));
  });

  it("cannot use another group's profile, even named in another case or with spaces", async () => {
    await expectUnchanged(() => expectDenied(send(t.aliceClient, { profile_name: "  TEAM_ONLY " })));
  });

  it("can use a profile granted to a group role it is a member of", async () => {
    const client = await t.db.connect(t.carol);
    const id = await send(client, { profile_name: "team_only" });
    const row = await item(id);
    expect(row.send_request_user).toBe(t.carol.name);
    expect(row.profile_id).toBe(
      first((await t.db.query("SELECT profile_id FROM dbmail.profiles WHERE name = 'team_only'")).rows)
        .profile_id,
    );
  });

  it("cannot collide with another user's idempotency key", async () => {
    const key = `key-${randomBytes(4).toString("hex")}`;
    const bobs = await send(t.bobClient, { idempotency_key: key, subject: "bob's keyed" });
    const alices = await send(t.aliceClient, { idempotency_key: key, subject: "alice's keyed" });
    expect(alices).not.toBe(bobs);
    expect((await item(alices)).send_request_user).toBe(t.alice.name);
    expect((await item(bobs)).subject).toBe("bob's keyed");
  });

  it.each([
    ["sysmail_allitems", null],
    ["sysmail_sentitems", ["sent"]],
    ["sysmail_unsentitems", ["unsent", "sending", "retrying"]],
    ["sysmail_faileditems", ["failed"]],
  ] as const)("sees only its own items in %s", async (view, statuses) => {
    const filter = "($2::text[] IS NULL OR sent_status = ANY ($2::text[]))";
    const others = await idsOf(
      `SELECT mailitem_id AS id FROM dbmail.mailitems WHERE send_request_user <> $1 AND ${filter}`,
      [t.alice.name, statuses],
    );
    expect(others.length, "other users have items here").toBeGreaterThan(0);
    const own = await idsOf(
      `SELECT mailitem_id AS id FROM dbmail.mailitems WHERE send_request_user = $1 AND ${filter}`,
      [t.alice.name, statuses],
    );
    expect(own.length).toBeGreaterThan(0);
    const { rows } = await t.aliceClient.query<{ id: string; u: string }>(
      `SELECT mailitem_id AS id, send_request_user AS u FROM dbmail.${view}`,
    );
    expect(rows.map((r) => String(r.id)).sort()).toEqual(own);
    expect(new Set(rows.map((r) => r.u))).toEqual(new Set([t.alice.name]));
  });

  it("sees only the events of its own items in sysmail_event_log (events without an item are admin-only)", async () => {
    const expected = await idsOf(
      `SELECT e.log_id AS id FROM dbmail.event_log e JOIN dbmail.mailitems m USING (mailitem_id)
       WHERE m.send_request_user = $1`,
      [t.alice.name],
    );
    expect(expected.length).toBeGreaterThan(0);
    const hidden = await idsOf(
      `SELECT e.log_id AS id FROM dbmail.event_log e LEFT JOIN dbmail.mailitems m USING (mailitem_id)
       WHERE m.send_request_user IS DISTINCT FROM $1`,
      [t.alice.name],
    );
    expect(hidden.length, "events of others and without an item exist").toBeGreaterThan(1);
    const { rows } = await t.aliceClient.query<{ id: string }>(
      "SELECT log_id AS id FROM dbmail.sysmail_event_log",
    );
    expect(rows.map((r) => String(r.id)).sort()).toEqual(expected);
  });

  it("sees only its own attachments in sysmail_mailattachments", async () => {
    const { rows } = await t.aliceClient.query<{ id: string; filename: string }>(
      "SELECT mailitem_id AS id, filename FROM dbmail.sysmail_mailattachments",
    );
    expect(rows.map((r) => r.filename)).toEqual(["alice.txt"]);
    expect(rows.map((r) => String(r.id))).toEqual([t.items.alice.unsent]);
    const { rows: bobs } = await t.bobClient.query<{ filename: string }>(
      "SELECT filename FROM dbmail.sysmail_mailattachments",
    );
    expect(bobs.map((r) => r.filename)).toEqual(["bob.txt"]);
  });

  it("sysmail_delete_mailitems_sp deletes only the caller's own items", async () => {
    const client = await t.db.connect(t.dave);
    await send(client);
    await send(client);
    const othersBefore = await idsOf(
      "SELECT mailitem_id AS id FROM dbmail.mailitems WHERE send_request_user <> $1",
      [t.dave.name],
    );
    const { rows } = await client.query<{ n: string }>(
      "SELECT dbmail.sysmail_delete_mailitems_sp(sent_before => now() + interval '1 hour') AS n",
    );
    expect(Number(first(rows).n)).toBe(2);
    expect(
      await idsOf("SELECT mailitem_id AS id FROM dbmail.mailitems WHERE send_request_user = $1", [
        t.dave.name,
      ]),
    ).toEqual([]);
    expect(
      await idsOf("SELECT mailitem_id AS id FROM dbmail.mailitems WHERE send_request_user <> $1", [
        t.dave.name,
      ]),
    ).toEqual(othersBefore);
  });
});

describe("dbmail_admin", () => {
  it("can configure: add an account and a profile", async () => {
    const { rows } = await t.adminClient.query<{ a: number; p: number }>(
      `SELECT dbmail.sysmail_add_account_sp(account_name => 'admin-added', email_address => 'a@example.com',
                mailserver_name => 'localhost') AS a,
              dbmail.sysmail_add_profile_sp(profile_name => 'admin-added') AS p`,
    );
    const row = first(rows);
    expect(row.a).toBeGreaterThan(0);
    expect(row.p).toBeGreaterThan(0);
    const stored = first(
      (await t.db.query("SELECT last_mod_user FROM dbmail.accounts WHERE account_id = $1", [row.a])).rows,
    );
    expect(stored.last_mod_user).toBe(t.admin.name);
  });

  it("can send with a profile that has no grants", async () => {
    expect((await item(await send(t.adminClient, { profile_name: "admins_only" }))).send_request_user).toBe(
      t.admin.name,
    );
  });

  it("sees every user's items", async () => {
    const all = await idsOf("SELECT mailitem_id AS id FROM dbmail.mailitems");
    const { rows } = await t.adminClient.query<{ id: string }>(
      "SELECT mailitem_id AS id FROM dbmail.sysmail_allitems",
    );
    expect(rows.map((r) => String(r.id)).sort()).toEqual(all);
    expect(all).toEqual(expect.arrayContaining(Object.values(t.items.bob)));
  });

  it("sees every event, including those without an item", async () => {
    const all = await idsOf("SELECT log_id AS id FROM dbmail.event_log");
    const { rows } = await t.adminClient.query<{ id: string }>(
      "SELECT log_id AS id FROM dbmail.sysmail_event_log",
    );
    expect(rows.map((r) => String(r.id)).sort()).toEqual(all);
    const { rows: attachments } = await t.adminClient.query<{ filename: string }>(
      "SELECT filename FROM dbmail.sysmail_mailattachments ORDER BY filename",
    );
    expect(attachments.map((r) => r.filename)).toEqual(["alice.txt", "bob.txt"]);
  });
});
