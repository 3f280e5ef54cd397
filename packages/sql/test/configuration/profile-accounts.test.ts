// The accounts of a profile, its failover order (SPEC.md sections 4, 5 and 9):
// sysmail_add/update/delete/help_profileaccount_sp, by ids and by names, and their refusals.
import { beforeAll, describe, expect, it } from "vitest";
import { addAccount, addProfile, call } from "../../../../test/support/mail.js";
import {
  admin,
  adminRole,
  type BadCall,
  expectBadCall,
  expectRefused,
  link,
  su,
  useDatabase,
} from "../support/configuration.js";

useDatabase("cfg_profile_accounts");

describe("profile accounts", () => {
  type Named = { id: number; name: string };
  /** A row of sysmail_help_profileaccount_sp. */
  const linkRow = (profile: Named, account: Named, sequence_number: number) => ({
    profile_id: profile.id,
    profile_name: profile.name,
    account_id: account.id,
    account_name: account.name,
    sequence_number,
  });

  it("help lists a profile's accounts by sequence number, lowest first", async () => {
    const profile = await addProfile(admin);
    const [a, b, c] = [await addAccount(admin), await addAccount(admin), await addAccount(admin)] as const;
    // By names, by ids, and mixed: every way of addressing them works.
    await call(admin, "sysmail_add_profileaccount_sp", {
      profile_name: profile.name,
      account_name: a.name,
      sequence_number: 3,
    });
    await link(profile.id, b.id, 1);
    await call(admin, "sysmail_add_profileaccount_sp", {
      profile_id: profile.id,
      account_name: c.name,
      sequence_number: 2,
    });
    expect(await call(admin, "sysmail_help_profileaccount_sp", { profile_name: profile.name })).toEqual([
      linkRow(profile, b, 1),
      linkRow(profile, c, 2),
      linkRow(profile, a, 3),
    ]);
    const modifiedBy = await su(
      "SELECT DISTINCT last_mod_user FROM dbmail.profile_accounts WHERE profile_id = $1",
      [profile.id],
    );
    expect(modifiedBy).toEqual([{ last_mod_user: adminRole.name }]);
  });

  it("help by account lists the profiles it belongs to; by both, that one link", async () => {
    const [p1, p2] = [await addProfile(admin), await addProfile(admin)] as const;
    const account = await addAccount(admin);
    await link(p2.id, account.id, 5);
    await link(p1.id, account.id, 7);
    const byAccount = await call(admin, "sysmail_help_profileaccount_sp", { account_name: account.name });
    expect(byAccount.map((r) => [r.profile_id, r.sequence_number])).toEqual([
      [p1.id, 7],
      [p2.id, 5],
    ]);
    expect(
      await call(admin, "sysmail_help_profileaccount_sp", { profile_id: p2.id, account_id: account.id }),
    ).toEqual([linkRow(p2, account, 5)]);
    const all = await call(admin, "sysmail_help_profileaccount_sp");
    expect(all.filter((r) => r.account_id === account.id)).toHaveLength(2);
  });

  it("update changes the sequence number and so the order", async () => {
    const profile = await addProfile(admin);
    const [a, b] = [await addAccount(admin), await addAccount(admin)] as const;
    await link(profile.id, a.id, 1);
    await link(profile.id, b.id, 2);
    await call(admin, "sysmail_update_profileaccount_sp", {
      profile_name: profile.name,
      account_name: a.name,
      sequence_number: 9,
    });
    const rows = await call(admin, "sysmail_help_profileaccount_sp", { profile_id: profile.id });
    expect(rows.map((r) => [r.account_id, r.sequence_number])).toEqual([
      [b.id, 2],
      [a.id, 9],
    ]);
  });

  it("delete removes one link, every account of a profile, or an account from every profile", async () => {
    const [p1, p2] = [await addProfile(admin), await addProfile(admin)] as const;
    const [a, b, c] = [await addAccount(admin), await addAccount(admin), await addAccount(admin)] as const;
    for (const [p, acc, seq] of [
      [p1, a, 1],
      [p1, b, 2],
      [p2, a, 1],
      [p2, c, 2],
    ] as const) {
      await link(p.id, acc.id, seq);
    }
    const links = async () =>
      (
        await su(
          "SELECT profile_id, account_id FROM dbmail.profile_accounts WHERE profile_id IN ($1, $2) ORDER BY 1, 2",
          [p1.id, p2.id],
        )
      ).map((r) => [r.profile_id, r.account_id]);
    await call(admin, "sysmail_delete_profileaccount_sp", { profile_name: p1.name, account_name: b.name });
    expect(await links()).toEqual([
      [p1.id, a.id],
      [p2.id, a.id],
      [p2.id, c.id],
    ]);
    await call(admin, "sysmail_delete_profileaccount_sp", { account_id: a.id });
    expect(await links()).toEqual([[p2.id, c.id]]);
    await call(admin, "sysmail_delete_profileaccount_sp", { profile_id: p2.id });
    expect(await links()).toEqual([]);
  });

  describe("bad input", () => {
    let profile: { id: number; name: string };
    let linked: { id: number; name: string };
    let unlinked: { id: number; name: string };

    beforeAll(async () => {
      profile = await addProfile(admin);
      linked = await addAccount(admin);
      unlinked = await addAccount(admin);
      await link(profile.id, linked.id, 1);
    });

    // biome-ignore format: a table reads best one case per line
    const cases: (BadCall & { fn: string })[] = [
      { fn: "sysmail_add_profileaccount_sp", label: "sequence_number NULL", args: () => ({ profile_id: profile.id, account_id: unlinked.id }), code: "22004", parameter: "sequence_number", value: null },
      { fn: "sysmail_add_profileaccount_sp", label: "an unknown profile", args: () => ({ profile_name: "ghost", account_id: unlinked.id, sequence_number: 1 }), code: "42704", parameter: "profile_name", value: "ghost" },
      { fn: "sysmail_add_profileaccount_sp", label: "an unknown account", args: () => ({ profile_id: profile.id, account_name: "ghost", sequence_number: 1 }), code: "42704", parameter: "account_name", value: "ghost" },
      { fn: "sysmail_add_profileaccount_sp", label: "no profile", args: () => ({ account_id: unlinked.id, sequence_number: 1 }), code: "22004", parameter: "profile_id, profile_name", value: null },
      { fn: "sysmail_add_profileaccount_sp", label: "no account", args: () => ({ profile_id: profile.id, sequence_number: 1 }), code: "22004", parameter: "account_id, account_name", value: null },
      { fn: "sysmail_add_profileaccount_sp", label: "an account already in the profile", args: () => ({ profile_id: profile.id, account_id: linked.id, sequence_number: 2 }), code: "42710", parameter: "account_id", value: () => String(linked.id), problem: "already in profile" },
      { fn: "sysmail_update_profileaccount_sp", label: "sequence_number NULL", args: () => ({ profile_id: profile.id, account_id: linked.id }), code: "22004", parameter: "sequence_number", value: null },
      { fn: "sysmail_update_profileaccount_sp", label: "an account not in the profile", args: () => ({ profile_id: profile.id, account_id: unlinked.id, sequence_number: 3 }), code: "42704", parameter: "account_id", value: () => String(unlinked.id), problem: "not in profile" },
      { fn: "sysmail_delete_profileaccount_sp", label: "neither profile nor account", args: () => ({}), code: "22004", parameter: "profile_id, profile_name, account_id, account_name", value: null },
      { fn: "sysmail_delete_profileaccount_sp", label: "an account not in the profile", args: () => ({ profile_id: profile.id, account_id: unlinked.id }), code: "42704", parameter: "account_id", value: () => String(unlinked.id) },
      { fn: "sysmail_delete_profileaccount_sp", label: "an unknown profile", args: () => ({ profile_name: "ghost" }), code: "42704", parameter: "profile_name", value: "ghost" },
      { fn: "sysmail_help_profileaccount_sp", label: "an unknown account", args: () => ({ account_id: 999999 }), code: "42704", parameter: "account_id", value: "999999" },
    ];

    it.each(cases)("$fn refuses $label", async ({ fn, ...bad }) => {
      await expectBadCall(fn, bad);
    });

    it("a duplicate given by names is reported with the name the caller gave", async () => {
      await expectRefused(
        () =>
          call(admin, "sysmail_add_profileaccount_sp", {
            profile_name: profile.name,
            account_name: linked.name,
            sequence_number: 2,
          }),
        { code: "42710", parameter: "account_name", value: linked.name, problem: "already in profile" },
      );
    });
  });
});
