// Mail profiles (SPEC.md sections 4, 5 and 9): sysmail_add/update/delete/help_profile_sp, force_delete and
// what it does to waiting mail, and the refusals of each procedure.
import { beforeAll, describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import { addAccount, addProfile, call, unique } from "../../../../test/support/mail.js";
import {
  admin,
  adminRole,
  type BadCall,
  expectAdminEvent,
  expectBadCall,
  expectRefused,
  grant,
  lastLogId,
  link,
  listedInIdOrder,
  queueMessage,
  scalar,
  setStatus,
  su,
  useDatabase,
} from "../support/configuration.js";

useDatabase("cfg_profiles");

describe("profiles", () => {
  it("add returns the new id; help_profile_sp shows id, name and description", async () => {
    const name = unique("Ops");
    const id = await scalar(admin, "sysmail_add_profile_sp", {
      profile_name: name,
      description: "operations",
    });
    expect(typeof id).toBe("number");
    expect(await call(admin, "sysmail_help_profile_sp", { profile_name: name })).toEqual([
      { profile_id: id, name, description: "operations" },
    ]);
    expect(await su("SELECT last_mod_user FROM dbmail.profiles WHERE profile_id = $1", [id])).toEqual([
      { last_mod_user: adminRole.name },
    ]);
  });

  it("help_profile_sp lists every profile by id, and finds one by name in any case", async () => {
    const a = await addProfile(admin);
    const b = await addProfile(admin);
    await listedInIdOrder("sysmail_help_profile_sp", "profile_id", [a.id, b.id]);
    expect(await call(admin, "sysmail_help_profile_sp", { profile_name: b.name.toUpperCase() })).toEqual([
      { profile_id: b.id, name: b.name, description: null },
    ]);
  });

  it("update by name sets the description; NULL keeps it; '' clears it", async () => {
    const { id, name } = await addProfile(admin, { description: "first" });
    await call(admin, "sysmail_update_profile_sp", { profile_name: name, description: "second" });
    expect((await call(admin, "sysmail_help_profile_sp", { profile_id: id }))[0]?.description).toBe("second");
    await call(admin, "sysmail_update_profile_sp", { profile_id: id, profile_name: name });
    expect((await call(admin, "sysmail_help_profile_sp", { profile_id: id }))[0]?.description).toBe("second");
    await call(admin, "sysmail_update_profile_sp", { profile_id: id, description: "" });
    expect((await call(admin, "sysmail_help_profile_sp", { profile_id: id }))[0]?.description).toBeNull();
  });

  it("profile_id with profile_name renames the profile", async () => {
    const { id, name } = await addProfile(admin, { description: "kept" });
    const newName = unique("renamed_profile");
    await call(admin, "sysmail_update_profile_sp", { profile_id: id, profile_name: newName });
    expect(await call(admin, "sysmail_help_profile_sp", { profile_name: newName })).toEqual([
      { profile_id: id, name: newName, description: "kept" },
    ]);
    expect((await errorOf(call(admin, "sysmail_help_profile_sp", { profile_name: name }))).code).toBe(
      "42704",
    );
  });

  it("delete removes the profile with its account links and grants, not the accounts", async () => {
    const profile = await addProfile(admin);
    const account = await addAccount(admin);
    await link(profile.id, account.id, 1);
    await grant("public", profile.id, false);
    await call(admin, "sysmail_delete_profile_sp", { profile_name: profile.name });
    expect((await errorOf(call(admin, "sysmail_help_profile_sp", { profile_id: profile.id }))).code).toBe(
      "42704",
    );
    expect(await su("SELECT * FROM dbmail.profile_accounts WHERE profile_id = $1", [profile.id])).toEqual([]);
    expect(await su("SELECT * FROM dbmail.principal_profiles WHERE profile_id = $1", [profile.id])).toEqual(
      [],
    );
    expect(await call(admin, "sysmail_help_account_sp", { account_id: account.id })).toHaveLength(1);
  });

  it("force_delete => false refuses while mail is waiting, naming the profile", async () => {
    const profile = await addProfile(admin);
    await queueMessage(profile.name);
    await expectRefused(
      () => call(admin, "sysmail_delete_profile_sp", { profile_name: profile.name, force_delete: false }),
      { code: "55000", parameter: "profile_name", value: profile.name, problem: "1 mail items" },
    );
  });

  it("force_delete => false deletes a profile whose mail has all been sent", async () => {
    const profile = await addProfile(admin);
    await setStatus(await queueMessage(profile.name), "sent");
    await call(admin, "sysmail_delete_profile_sp", { profile_id: profile.id, force_delete: false });
    expect(await su("SELECT * FROM dbmail.profiles WHERE profile_id = $1", [profile.id])).toEqual([]);
  });

  it("force_delete (the default) fails the waiting items and logs a warning naming profile and role", async () => {
    const profile = await addProfile(admin);
    const unsent = await queueMessage(profile.name);
    const retrying = await queueMessage(profile.name);
    const sent = await queueMessage(profile.name);
    await setStatus(retrying, "retrying");
    await setStatus(sent, "sent");
    const logId = await lastLogId();
    await call(admin, "sysmail_delete_profile_sp", { profile_name: profile.name });
    const items = await su(
      `SELECT mailitem_id, sent_status, last_error, sent_date IS NOT NULL AS dated, last_mod_user
       FROM dbmail.mailitems WHERE mailitem_id = ANY($1) ORDER BY mailitem_id`,
      [[unsent, retrying, sent]],
    );
    const failed = { sent_status: "failed", last_error: `profile ${profile.name} was deleted`, dated: true };
    expect(items).toEqual([
      { mailitem_id: String(unsent), ...failed, last_mod_user: adminRole.name },
      { mailitem_id: String(retrying), ...failed, last_mod_user: adminRole.name },
      expect.objectContaining({ mailitem_id: String(sent), sent_status: "sent" }),
    ]);
    await expectAdminEvent(
      logId,
      "warning",
      `${profile.name}.*deleted by ${adminRole.name}.*\\b2\\b.*failed`,
    );
  });
});

describe("profiles: bad input", () => {
  let fixture: { id: number; name: string };
  let other: { id: number; name: string };

  beforeAll(async () => {
    fixture = await addProfile(admin, { profile_name: unique("Fixture_Prof") });
    other = await addProfile(admin, { profile_name: unique("Other_Prof") });
  });

  // biome-ignore format: a table reads best one case per line
  const cases: (BadCall & { fn: string })[] = [
    { fn: "sysmail_add_profile_sp", label: "a NULL name", args: () => ({ profile_name: null }), code: "22004", parameter: "profile_name", value: null, problem: "needs a name" },
    { fn: "sysmail_add_profile_sp", label: "an empty name", args: () => ({ profile_name: "" }), code: "22004", parameter: "profile_name", value: "" },
    { fn: "sysmail_add_profile_sp", label: "a duplicate name", args: () => ({ profile_name: fixture.name }), code: "42710", parameter: "profile_name", value: () => fixture.name, problem: "exists" },
    { fn: "sysmail_add_profile_sp", label: "a duplicate name in another case", args: () => ({ profile_name: fixture.name.toLowerCase() }), code: "42710", parameter: "profile_name", value: () => fixture.name.toLowerCase() },
    { fn: "sysmail_add_profile_sp", label: "a name with a line break", args: () => ({ profile_name: "a\nb" }), code: "22023", parameter: "profile_name", value: "a\nb" },
    { fn: "sysmail_add_profile_sp", label: "a name over 128 characters", args: () => ({ profile_name: "p".repeat(129) }), code: "22023", parameter: "profile_name", value: "p".repeat(129), problem: "128" },
    { fn: "sysmail_update_profile_sp", label: "an unknown id", args: () => ({ profile_id: 999999, description: "x" }), code: "42704", parameter: "profile_id", value: "999999", problem: "no such profile" },
    { fn: "sysmail_update_profile_sp", label: "an unknown name", args: () => ({ profile_name: "ghost", description: "x" }), code: "42704", parameter: "profile_name", value: "ghost" },
    { fn: "sysmail_update_profile_sp", label: "neither id nor name", args: () => ({ description: "x" }), code: "22004", parameter: "profile_id, profile_name", value: null },
    { fn: "sysmail_update_profile_sp", label: "nothing to change", args: () => ({ profile_id: fixture.id }), code: "22004", parameter: "profile_name, description", value: null },
    { fn: "sysmail_update_profile_sp", label: "a rename onto another profile (any case)", args: () => ({ profile_id: fixture.id, profile_name: other.name.toUpperCase() }), code: "42710", parameter: "profile_name", value: () => other.name.toUpperCase() },
    { fn: "sysmail_update_profile_sp", label: "a rename to ''", args: () => ({ profile_id: fixture.id, profile_name: "" }), code: "22004", parameter: "profile_name", value: "" },
    { fn: "sysmail_delete_profile_sp", label: "an unknown name", args: () => ({ profile_name: "ghost" }), code: "42704", parameter: "profile_name", value: "ghost" },
    { fn: "sysmail_delete_profile_sp", label: "neither id nor name", args: () => ({}), code: "22004", parameter: "profile_id, profile_name", value: null },
    { fn: "sysmail_delete_profile_sp", label: "force_delete NULL", args: () => ({ profile_id: fixture.id, force_delete: null }), code: "22004", parameter: "force_delete", value: null },
    { fn: "sysmail_delete_profile_sp", label: "id and name of different profiles", args: () => ({ profile_id: fixture.id, profile_name: other.name }), code: "22023", parameter: "profile_name", value: () => other.name, problem: "not profile_id" },
    { fn: "sysmail_help_profile_sp", label: "an unknown id", args: () => ({ profile_id: 999999 }), code: "42704", parameter: "profile_id", value: "999999" },
  ];

  it.each(cases)("$fn refuses $label", async ({ fn, ...bad }) => {
    await expectBadCall(fn, bad);
  });
});
