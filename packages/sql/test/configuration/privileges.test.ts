// Who may configure (SPEC.md sections 4 and 5): a dbmail_user may not call the configuration procedures;
// the superuser may, as a dbmail_admin member does.
import { describe, expect, it } from "vitest";
import { type Args, call, refusedUnchanged, unique } from "../../../../test/support/mail.js";
import { admin, db, scalar, useDatabase, user } from "../support/configuration.js";

useDatabase("cfg_privileges");

describe("privileges", () => {
  it.each([
    ["sysmail_add_profile_sp", { profile_name: "user_profile" }],
    ["sysmail_help_account_sp", {}],
    ["sysmail_configure_sp", { parameter_name: "LoggingLevel", parameter_value: "3" }],
    ["sysmail_stop_sp", {}],
    ["sysmail_delete_log_sp", { event_type: "error" }],
    ["sysmail_help_queue_sp", {}],
  ] as [string, Args][])("a dbmail_user may not call %s", async (fn, args) => {
    const error = await refusedUnchanged(db, () => call(user, fn, args));
    expect(error.code).toBe("42501");
  });

  it("a superuser may configure too", async () => {
    const name = unique("su_profile");
    const id = await scalar(db, "sysmail_add_profile_sp", { profile_name: name });
    expect(await call(admin, "sysmail_help_profile_sp", { profile_id: id })).toEqual([
      { profile_id: id, name, description: null },
    ]);
  });
});
