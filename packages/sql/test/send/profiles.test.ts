// Which profile sp_send_dbmail sends with: a named one the caller may use (public, a group's, its own, an
// admin's private one) and the default profile when none is named (SPEC.md section 5).
import type pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import type { TestRole } from "../../../../test/support/database.js";
import { call, expectError, first } from "../../../../test/support/mail.js";
import { addSendingProfile, message, useSendDatabase } from "../support/send.js";

const t = useSendDatabase();
const { refused, sendAndRead } = t;

describe("profiles", () => {
  it("refuses an unknown profile with 42704", async () => {
    const error = await refused(message({ profile_name: "Nope" }));
    expectError(error, "42704", "profile_name", "Nope", "no such profile");
  });

  it("refuses a private profile the caller was not granted with 42501 and a different message", async () => {
    const error = await refused(message({ profile_name: "Secret" }));
    expect(error.code).toBe("42501");
    expect(error.message.startsWith('profile_name: "Secret": ')).toBe(true);
    expect(error.message).toContain(`role ${t.aliceRole.name} may not use this profile`);
    expect(error.message).not.toContain("no such profile");
    for (const other of ["Main", "GroupOnly", "BobOnly"]) expect(error.message).not.toContain(other);
  });

  it("allows a profile granted to a group role the caller is a member of", async () => {
    const stored = await sendAndRead(message({ profile_name: "GroupOnly" }), t.carol);
    expect(stored.send_request_user).toBe(t.carolRole.name);
    const { rows } = await t.db.query<{ profile_id: number }>(
      "SELECT profile_id FROM dbmail.profiles WHERE name = 'GroupOnly'",
    );
    expect(stored.profile_id).toBe(first(rows).profile_id);
  });

  it("refuses a group's profile to a non-member", async () => {
    const error = await refused(message({ profile_name: "GroupOnly" }));
    expect(error.code).toBe("42501");
    expect(error.message.startsWith('profile_name: "GroupOnly": ')).toBe(true);
  });

  it("allows a profile granted to the caller itself, and only to it", async () => {
    expect((await sendAndRead(message({ profile_name: "BobOnly" }), t.bob)).send_request_user).toBe(
      t.bobRole.name,
    );
    expect((await refused(message({ profile_name: "BobOnly" }), t.alice)).code).toBe("42501");
  });

  it("allows a profile granted to public", async () => {
    expect((await sendAndRead(message({ profile_name: "Main" }), t.carol)).profile_id).toBe(t.mainProfileId);
  });

  it("lets a dbmail_admin member use a private profile", async () => {
    const stored = await sendAndRead(message({ profile_name: "Secret" }), t.boss);
    expect(stored.send_request_user).toBe(t.bossRole.name);
    expect(stored.sent_status).toBe("unsent");
  });

  it("lets a dbmail_admin member get 42704 for an unknown profile too", async () => {
    const error = await refused(message({ profile_name: "Nope" }), t.boss);
    expectError(error, "42704", "profile_name", "Nope", "no such profile");
  });

  it.each(["main", "MAIN", " Main "])("finds the profile case-insensitively (%j)", async (name) => {
    expect((await sendAndRead(message({ profile_name: name }))).profile_id).toBe(t.mainProfileId);
  });
});

describe("default profile (profile_name NULL)", () => {
  let team: TestRole;
  let dave: pg.Client;
  let erin: pg.Client;
  let daveRole: TestRole;
  const profileIds: Record<string, number> = {};

  beforeAll(async () => {
    team = await t.db.createRole("team", { login: false });
    daveRole = await t.db.createRole("dave", { memberOf: ["dbmail_user", team.name] });
    const erinRole = await t.db.createRole("erin", { memberOf: ["dbmail_user"] });
    for (const name of ["PublicDefault", "TeamDefault", "DaveDefault"]) {
      profileIds[name] = await addSendingProfile(t.db, name, "main_acct");
    }
    dave = await t.db.connect(daveRole);
    erin = await t.db.connect(erinRole);
  });

  const sendDefault = (client: pg.Client) => sendAndRead(message({ profile_name: undefined }), client);

  it("refuses with 55000 when no default is configured (a non-default public grant is not a default)", async () => {
    const error = await refused(message({ profile_name: undefined }), dave);
    expect(error.code).toBe("55000");
    expect(
      error.message.startsWith(
        `profile_name: NULL: no default profile is configured for role ${daveRole.name}`,
      ),
    ).toBe(true);
    expect(error.message).not.toContain("Main");
  });

  // Each grants one more default; the caller's own beats its group's, which beats public's.
  it.each([
    ["uses the public default", () => "public", "PublicDefault"],
    [
      "prefers the default of a role the caller is a member of over the public default",
      () => team.name,
      "TeamDefault",
    ],
    ["prefers the caller's own default over a group's", () => daveRole.name, "DaveDefault"],
  ])("%s", async (_name, principal, profile) => {
    await call(t.db, "sysmail_add_principalprofile_sp", {
      principal_name: principal(),
      profile_name: profile,
      is_default: true,
    });
    expect((await sendDefault(dave)).profile_id).toBe(profileIds[profile]);
    expect((await sendDefault(erin)).profile_id).toBe(profileIds.PublicDefault);
  });

  it("still lets the caller name another profile it may use", async () => {
    expect((await sendAndRead(message({ profile_name: "Main" }), dave)).profile_id).toBe(t.mainProfileId);
  });

  it("gives a superuser the public default, not some role's default (superusers are members of no role)", async () => {
    // The team and dave defaults exist now; a superuser belongs to neither.
    expect((await sendAndRead(message({ profile_name: undefined }), await t.db.connect())).profile_id).toBe(
      profileIds.PublicDefault,
    );
  });

  // sp_send_dbmail reads the public default, and whether any role has one, from a copy that triggers keep
  // (system_state): each removal shows in the next call, a profile's deletion (cascading to its grants)
  // and a grant removed by hand included.
  it("follows defaults as they are removed: the caller's own, its group's with the profile, public's", async () => {
    await call(t.db, "sysmail_delete_principalprofile_sp", {
      principal_name: daveRole.name,
      profile_name: "DaveDefault",
    });
    expect((await sendDefault(dave)).profile_id).toBe(profileIds.TeamDefault);
    await call(t.db, "sysmail_delete_profile_sp", { profile_name: "TeamDefault" });
    expect((await sendDefault(dave)).profile_id).toBe(profileIds.PublicDefault);
    await t.db.query("DELETE FROM dbmail.principal_profiles WHERE principal_id = 0 AND is_default");
    expect((await refused(message({ profile_name: undefined }), dave)).code).toBe("55000");
    expect((await refused(message({ profile_name: undefined }), erin)).code).toBe("55000");
  });
});
