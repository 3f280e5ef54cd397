import { beforeAll, describe, expect, it } from "vitest";
import type { TestRole } from "../support/database.js";
import { addAccount, send, unique } from "../support/mail.js";
import { useSignedInAdmin } from "./support.js";

const t = useSignedInAdmin("console_prof_admin");
let member: TestRole;

beforeAll(async () => {
  member = await t.db.createRole("console_prof_user", { memberOf: ["dbmail_user"] });
});

async function help(procedure: string, profileId: string): Promise<Record<string, unknown>[]> {
  return (await t.db.query(`SELECT * FROM dbmail.${procedure}(profile_id => $1)`, [profileId])).rows;
}

/** Adds a profile through the form; its id, from the page it leads to. */
async function addProfile(name: string, description = ""): Promise<string> {
  const added = await t.visitor.post("/profiles/new", { profile_name: name, description });
  expect(added.status).toBe(303);
  return /^\/profiles\/(\d+)$/.exec(added.headers.get("Location") ?? "")?.[1] ?? "";
}

describe("the profiles page", () => {
  it("adds, renames, lists and deletes a profile", async () => {
    const name = unique("prof");
    const id = await addProfile(name, "first");
    expect(await help("sysmail_help_profile_sp", id)).toEqual([
      { profile_id: Number(id), name, description: "first" },
    ]);
    const page = await t.visitor.get(`/profiles/${id}`);
    expect(page.status).toBe(200);
    expect(page.text).toContain(`Profile ${name}`);

    const renamed = await t.visitor.post(`/profiles/${id}`, {
      profile_name: `${name}_b`,
      description: "second",
    });
    expect(renamed.status).toBe(303);
    expect(await help("sysmail_help_profile_sp", id)).toEqual([
      { profile_id: Number(id), name: `${name}_b`, description: "second" },
    ]);
    // Saving an unchanged form is no error (the procedure would refuse a call that changes nothing).
    expect(
      (await t.visitor.post(`/profiles/${id}`, { profile_name: `${name}_b`, description: "second" })).status,
    ).toBe(303);
    expect((await t.visitor.get("/profiles")).text).toContain(`>${name}_b</a>`);

    expect((await t.visitor.get(`/profiles/${id}/delete`)).text).toContain(`Delete profile ${name}_b?`);
    const deleted = await t.visitor.post(`/profiles/${id}/delete`, { force_delete: "true" });
    expect(deleted.headers.get("Location")).toBe("/profiles");
    expect((await t.db.query("SELECT 1 FROM dbmail.profiles WHERE profile_id = $1", [id])).rowCount).toBe(0);
    expect((await t.visitor.get(`/profiles/${id}`)).status).toBe(404);
  });

  it("refuses to delete a profile whose mail waits unless force_delete is ticked, which fails that mail", async () => {
    const name = unique("busy");
    const id = await addProfile(name);
    const item = await send(t.db, {
      profile_name: name,
      recipients: "a@example.com",
      subject: "waiting",
      body: "b",
    });
    const refused = await t.visitor.post(`/profiles/${id}/delete`, {});
    expect(refused.status).toBe(422);
    expect(refused.text).toMatch(
      /<li>profile_name: &quot;\w+&quot;: 1 mail items of this profile are waiting to be sent; use force_delete =&gt; true to fail them<\/li>/,
    );
    expect(await help("sysmail_help_profile_sp", id)).toHaveLength(1);
    expect((await t.visitor.post(`/profiles/${id}/delete`, { force_delete: "true" })).status).toBe(303);
    const { rows } = await t.db.query(
      "SELECT sent_status FROM dbmail.sysmail_allitems WHERE mailitem_id = $1",
      [item],
    );
    expect(rows).toEqual([{ sent_status: "failed" }]);
  });

  it("shows a refused profile, escaped, and adds nothing", async () => {
    const name = unique("dup");
    await addProfile(name);
    const refused = await t.visitor.post("/profiles/new", {
      profile_name: name.toUpperCase(),
      description: "<b>x</b>",
    });
    expect(refused.status).toBe(422);
    expect(refused.text).toMatch(
      /<ul class="problems" role="alert"><li>profile_name: &quot;\w+&quot;: [^<]+<\/li>/,
    );
    expect(refused.text).toContain('value="&lt;b&gt;x&lt;/b&gt;"');
    const { rowCount } = await t.db.query("SELECT 1 FROM dbmail.profiles WHERE lower(name) = lower($1)", [
      name,
    ]);
    expect(rowCount).toBe(1);
  });

  it("adds a profile's accounts with sequence numbers, renumbers and removes them", async () => {
    const id = await addProfile(unique("failover"));
    const first = await addAccount(t.db, { account_name: unique("first") });
    const second = await addAccount(t.db, { account_name: unique("second") });
    const base = `/profiles/${id}/accounts`;
    expect(
      (await t.visitor.post(`${base}/add`, { account_id: String(first.id), sequence_number: "1" })).status,
    ).toBe(303);
    await t.visitor.post(`${base}/add`, { account_id: String(second.id), sequence_number: "2" });
    const order = async () =>
      (await help("sysmail_help_profileaccount_sp", id)).map((r) => [r.account_name, r.sequence_number]);
    expect(await order()).toEqual([
      [first.name, 1],
      [second.name, 2],
    ]);
    const page = await t.visitor.get(`/profiles/${id}`);
    expect(page.text).toContain(first.name);
    expect(page.text).toContain('name="sequence_number" value="2"');

    await t.visitor.post(`${base}/update`, { account_id: String(first.id), sequence_number: "3" });
    expect(await order()).toEqual([
      [second.name, 2],
      [first.name, 3],
    ]);
    // The same account twice is refused by the procedure; the page says so.
    const twice = await t.visitor.post(`${base}/add`, {
      account_id: String(second.id),
      sequence_number: "5",
    });
    expect(twice.status).toBe(422);
    expect(twice.text).toContain('class="problems"');
    const bad = await t.visitor.post(`${base}/add`, {
      account_id: String(second.id),
      sequence_number: "one",
    });
    expect(bad.text).toContain("sequence_number: &quot;one&quot;: not a whole number");

    await t.visitor.post(`${base}/delete`, { account_id: String(second.id) });
    expect(await order()).toEqual([[first.name, 3]]);
  });

  it("grants a profile to a role and to public, makes one the default, and removes a grant", async () => {
    const id = await addProfile(unique("granted"));
    const base = `/profiles/${id}/grants`;
    expect((await t.visitor.post(`${base}/add`, { principal_name: member.name })).status).toBe(303);
    await t.visitor.post(`${base}/add`, { principal_name: "public", is_default: "true" });
    const grants = async () =>
      Object.fromEntries(
        (await help("sysmail_help_principalprofile_sp", id)).map((r) => [r.principal_name, r.is_default]),
      );
    expect(await grants()).toEqual({ [member.name]: false, public: true });
    const { rows } = await t.db.query<{ oid: string }>("SELECT oid FROM pg_roles WHERE rolname = $1", [
      member.name,
    ]);
    const oid = rows[0]?.oid ?? "";
    expect((await t.visitor.get(`/profiles/${id}`)).text).toContain(`name="principal_id" value="${oid}"`);

    await t.visitor.post(`${base}/update`, { principal_id: oid, is_default: "true" });
    expect(await grants()).toEqual({ [member.name]: true, public: true });
    await t.visitor.post(`${base}/delete`, { principal_id: "0" });
    expect(await grants()).toEqual({ [member.name]: true });

    const unknown = await t.visitor.post(`${base}/add`, { principal_name: "<no_such_role>" });
    expect(unknown.status).toBe(422);
    expect(unknown.text).toContain("&lt;no_such_role&gt;");
    expect(unknown.text).not.toContain("<no_such_role>");
  });
});

describe("the settings page", () => {
  it("lists the settings and changes one; a bad value is refused with the procedure's message", async () => {
    const page = await t.visitor.get("/settings");
    expect(page.status).toBe(200);
    expect(page.text).toContain('name="parameter_name" value="AccountRetryAttempts"');
    const saved = await t.visitor.post("/settings", {
      parameter_name: "AccountRetryAttempts",
      parameter_value: " 7 ",
    });
    expect(saved.status).toBe(303);
    const value = async () =>
      (await t.db.query("SELECT paramvalue FROM dbmail.sysmail_help_configure_sp('AccountRetryAttempts')"))
        .rows[0]?.paramvalue;
    expect(await value()).toBe("7");
    expect((await t.visitor.get("/settings")).text).toContain('aria-label="AccountRetryAttempts"');

    const refused = await t.visitor.post("/settings", {
      parameter_name: "AccountRetryAttempts",
      parameter_value: "-1",
    });
    expect(refused.status).toBe(422);
    expect(refused.text).toMatch(/<li>[^<]*&quot;-1&quot;[^<]*<\/li>/);
    expect(await value()).toBe("7");
    const unknown = await t.visitor.post("/settings", { parameter_name: "<Nope>", parameter_value: "1" });
    expect(unknown.status).toBe(422);
    expect(unknown.text).toContain("&lt;Nope&gt;");
  });

  it("stops and starts delivery, showing the status", async () => {
    const status = async () => (await t.db.query("SELECT dbmail.sysmail_help_status_sp() AS s")).rows[0]?.s;
    expect(await status()).toBe("STARTED");
    expect((await t.visitor.get("/settings")).text).toContain("Database Mail is STARTED.");
    expect((await t.visitor.post("/settings/stop", {})).status).toBe(303);
    expect(await status()).toBe("STOPPED");
    const stopped = await t.visitor.get("/settings");
    expect(stopped.text).toContain("Database Mail is STOPPED.");
    expect(stopped.text).toContain('action="/settings/start"');
    await t.visitor.post("/settings/start", {});
    expect(await status()).toBe("STARTED");
  });
});
