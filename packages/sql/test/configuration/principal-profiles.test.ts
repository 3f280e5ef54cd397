// Who may use a profile (SPEC.md sections 4, 5 and 9): sysmail_add/update/delete/help_principalprofile_sp
// for roles and public, default profiles, and their refusals.
import { beforeAll, describe, expect, it } from "vitest";
import type { TestRole } from "../../../../test/support/database.js";
import { addProfile, call, unique } from "../../../../test/support/mail.js";
import {
  admin,
  adminRole,
  type BadCall,
  db,
  expectBadCall,
  expectRefused,
  grant,
  queueMessage,
  su,
  useDatabase,
  user,
  userRole,
} from "../support/configuration.js";

useDatabase("cfg_principal_profiles");

describe("principal profiles", () => {
  let group: TestRole;
  let groupOid: number;

  beforeAll(async () => {
    group = await db.createRole("cfg_group", { login: false });
    groupOid = (await su("SELECT oid::integer AS oid FROM pg_roles WHERE rolname = $1", [group.name]))[0]
      ?.oid as number;
  });

  const grantsOf = (profileId: number) =>
    call(admin, "sysmail_help_principalprofile_sp", { profile_id: profileId });

  it("grants public by principal_name 'public' (any case) or by principal_id 0", async () => {
    const [p1, p2] = [await addProfile(admin), await addProfile(admin)] as const;
    await call(admin, "sysmail_add_principalprofile_sp", {
      principal_name: "PUBLIC",
      profile_name: p1.name,
      is_default: false,
    });
    await call(admin, "sysmail_add_principalprofile_sp", {
      principal_id: 0,
      profile_id: p2.id,
      is_default: false,
    });
    expect(await grantsOf(p1.id)).toEqual([
      {
        principal_id: 0,
        principal_name: "public",
        profile_id: p1.id,
        profile_name: p1.name,
        is_default: false,
      },
    ]);
    expect(await grantsOf(p2.id)).toEqual([
      {
        principal_id: 0,
        principal_name: "public",
        profile_id: p2.id,
        profile_name: p2.name,
        is_default: false,
      },
    ]);
    const publicGrants = await call(admin, "sysmail_help_principalprofile_sp", { principal_name: "public" });
    expect(publicGrants.map((r) => r.profile_id)).toEqual(expect.arrayContaining([p1.id, p2.id]));
    expect(publicGrants.every((r) => r.principal_id === 0)).toBe(true);
  });

  it("grants a role by name; help shows its OID and name", async () => {
    const profile = await addProfile(admin);
    await grant(group.name, profile.id, true);
    expect(await grantsOf(profile.id)).toEqual([
      {
        principal_id: groupOid,
        principal_name: group.name,
        profile_id: profile.id,
        profile_name: profile.name,
        is_default: true,
      },
    ]);
    expect(
      await call(admin, "sysmail_help_principalprofile_sp", {
        principal_id: groupOid,
        profile_name: profile.name,
      }),
    ).toHaveLength(1);
    expect(
      await su("SELECT last_mod_user FROM dbmail.principal_profiles WHERE profile_id = $1", [profile.id]),
    ).toEqual([{ last_mod_user: adminRole.name }]);
  });

  it("a principal has one default: adding a second default clears the first", async () => {
    const [p1, p2] = [await addProfile(admin), await addProfile(admin)] as const;
    const role = await db.createRole(unique("cfg_principal"), { login: false });
    await grant(role.name, p1.id, true);
    await grant(role.name, p2.id, true);
    const rows = await call(admin, "sysmail_help_principalprofile_sp", { principal_name: role.name });
    expect(rows.map((r) => [r.profile_id, r.is_default])).toEqual([
      [p1.id, false],
      [p2.id, true],
    ]);
  });

  it("update with is_default => true moves the default; false clears it", async () => {
    const [p1, p2] = [await addProfile(admin), await addProfile(admin)] as const;
    const role = await db.createRole(unique("cfg_principal"), { login: false });
    await grant(role.name, p1.id, true);
    await grant(role.name, p2.id, false);
    await call(admin, "sysmail_update_principalprofile_sp", {
      principal_name: role.name,
      profile_name: p2.name,
      is_default: true,
    });
    const defaults = async () =>
      (await call(admin, "sysmail_help_principalprofile_sp", { principal_name: role.name })).map((r) => [
        r.profile_id,
        r.is_default,
      ]);
    expect(await defaults()).toEqual([
      [p1.id, false],
      [p2.id, true],
    ]);
    await call(admin, "sysmail_update_principalprofile_sp", {
      principal_name: role.name,
      profile_id: p2.id,
      is_default: false,
    });
    expect(await defaults()).toEqual([
      [p1.id, false],
      [p2.id, false],
    ]);
  });

  it("delete removes one grant, or every grant of a profile", async () => {
    const profile = await addProfile(admin);
    const role = await db.createRole(unique("cfg_principal"), { login: false });
    await grant(role.name, profile.id, false);
    await grant("public", profile.id, false);
    await grant(group.name, profile.id, false);
    await call(admin, "sysmail_delete_principalprofile_sp", {
      principal_name: role.name,
      profile_name: profile.name,
    });
    expect((await grantsOf(profile.id)).map((r) => r.principal_name).sort()).toEqual(
      [group.name, "public"].sort(),
    );
    await call(admin, "sysmail_delete_principalprofile_sp", { profile_id: profile.id });
    expect(await grantsOf(profile.id)).toEqual([]);
  });

  it("sending without profile_name uses the public default, and the sender's own default over it", async () => {
    const [shared, own] = [await addProfile(admin), await addProfile(admin)] as const;
    await call(admin, "sysmail_add_principalprofile_sp", {
      principal_id: 0,
      profile_id: shared.id,
      is_default: true,
    });
    const profileOf = async (id: number) =>
      (await su("SELECT profile_id FROM dbmail.mailitems WHERE mailitem_id = $1", [id]))[0]?.profile_id;
    expect(await profileOf(await queueMessage(null, user))).toBe(shared.id);
    await grant(userRole.name, own.id, true);
    expect(await profileOf(await queueMessage(null, user))).toBe(own.id);
  });

  describe("bad input", () => {
    let profile: { id: number; name: string };

    beforeAll(async () => {
      profile = await addProfile(admin);
      await grant("public", profile.id, false);
    });

    // biome-ignore format: a table reads best one case per line
    const cases: (BadCall & { fn: string })[] = [
      { fn: "sysmail_add_principalprofile_sp", label: "an unknown role name", args: () => ({ principal_name: "no_such_role_x", profile_id: profile.id, is_default: false }), code: "42704", parameter: "principal_name", value: "no_such_role_x", problem: "no such role" },
      { fn: "sysmail_add_principalprofile_sp", label: "an unknown role OID", args: () => ({ principal_id: 4294967000, profile_id: profile.id, is_default: false }), code: "42704", parameter: "principal_id", value: "4294967000" },
      { fn: "sysmail_add_principalprofile_sp", label: "is_default NULL", args: () => ({ principal_name: group.name, profile_id: profile.id }), code: "22004", parameter: "is_default", value: null },
      { fn: "sysmail_add_principalprofile_sp", label: "no principal", args: () => ({ profile_id: profile.id, is_default: false }), code: "22004", parameter: "principal_id, principal_name", value: null },
      { fn: "sysmail_add_principalprofile_sp", label: "no profile", args: () => ({ principal_name: "public", is_default: false }), code: "22004", parameter: "profile_id, profile_name", value: null },
      { fn: "sysmail_add_principalprofile_sp", label: "an unknown profile", args: () => ({ principal_name: "public", profile_name: "ghost", is_default: false }), code: "42704", parameter: "profile_name", value: "ghost" },
      { fn: "sysmail_add_principalprofile_sp", label: "a grant that exists", args: () => ({ principal_id: 0, profile_id: profile.id, is_default: true }), code: "42710", parameter: "principal_name", value: "public", problem: "already has profile" },
      { fn: "sysmail_add_principalprofile_sp", label: "principal_name and principal_id that disagree", args: () => ({ principal_name: "public", principal_id: 10, profile_id: profile.id, is_default: false }), code: "22023", parameter: "principal_name", value: "public", problem: "not principal_id 10" },
      { fn: "sysmail_update_principalprofile_sp", label: "a grant that does not exist", args: () => ({ principal_name: group.name, profile_id: profile.id, is_default: true }), code: "42704", parameter: "principal_name", value: () => group.name, problem: "has no grant" },
      { fn: "sysmail_update_principalprofile_sp", label: "is_default NULL", args: () => ({ principal_name: "public", profile_id: profile.id }), code: "22004", parameter: "is_default", value: null },
      { fn: "sysmail_delete_principalprofile_sp", label: "neither principal nor profile", args: () => ({}), code: "22004", parameter: "principal_id, principal_name, profile_id, profile_name", value: null },
      { fn: "sysmail_delete_principalprofile_sp", label: "a grant that does not exist", args: () => ({ principal_name: group.name, profile_id: profile.id }), code: "42704", parameter: "principal_name", value: () => group.name },
      { fn: "sysmail_help_principalprofile_sp", label: "an unknown role", args: () => ({ principal_name: "no_such_role_x" }), code: "42704", parameter: "principal_name", value: "no_such_role_x" },
    ];

    it.each(cases)("$fn refuses $label", async ({ fn, ...bad }) => {
      await expectBadCall(fn, bad);
    });

    it("delete by an OID with no grant names principal_id and that OID", async () => {
      await expectRefused(
        () =>
          call(admin, "sysmail_delete_principalprofile_sp", {
            principal_id: 4294967000,
            profile_id: profile.id,
          }),
        { code: "42704", parameter: "principal_id", value: "4294967000", problem: "has no grant" },
      );
    });
  });
});
