// dbmail_sender reaches nothing beyond the sender protocol: no application table, no other
// application's data, no user or admin role, so no mail sent and no setting changed
// (SECURITY.md §5).
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, type TestDatabase, type TestRole } from "../../../../test/support/database.js";
import { first, ident, refusedUnchanged } from "../../../../test/support/mail.js";
import { setUpBoundaries } from "../support/boundaries.js";

let db: TestDatabase;
let alice: TestRole;
let team: TestRole;
let sender: TestRole;
let senderClient: pg.Client;

beforeAll(async () => {
  ({ db, alice, team, sender, senderClient } = await setUpBoundaries());
});

afterAll(async () => {
  await db?.drop();
});

describe("dbmail_sender reaches nothing beyond the sender protocol", () => {
  it("cannot read or write an application table with no grants (42501)", async () => {
    for (const sql of [
      "SELECT * FROM public.payroll",
      "INSERT INTO public.payroll VALUES ('mallory', 1)",
      "UPDATE public.payroll SET salary = 0",
    ]) {
      const error = await errorOf(senderClient.query(sql));
      expect(error.code, `${sql}: ${error.message}`).toBe("42501");
      expect(error.message).toContain("permission denied for table payroll");
    }
    expect((await db.query("SELECT * FROM public.payroll")).rows).toEqual([
      { employee: "alice", salary: "100" },
    ]);
  });

  it("cannot read another application's data that dbmail_user members may read", async () => {
    const error = await errorOf(senderClient.query("SELECT * FROM vault.my_secrets"));
    expect(error.code).toBe("42501");
  });

  it("cannot become a user or an admin, so it cannot send mail as one or change configuration", async () => {
    for (const role of ["dbmail_user", "dbmail_admin", alice.name, team.name]) {
      const error = await refusedUnchanged(db, () => senderClient.query(`SET ROLE ${ident(role)}`));
      expect(error.code, `${role}: ${error.message}`).toBe("42501");
      const viaConfig = await refusedUnchanged(db, () =>
        senderClient.query("SELECT set_config('role', $1, false)", [role]),
      );
      expect(viaConfig.code).toBe("42501");
    }
    for (const sql of [
      "SELECT dbmail.sp_send_dbmail(recipients => 'to@example.com', subject => 's')",
      "SELECT dbmail.sysmail_configure_sp('MaxFileSize', '1')",
      "INSERT INTO dbmail.caller_stamps DEFAULT VALUES",
    ]) {
      const error = await refusedUnchanged(db, () => senderClient.query(sql));
      expect(error.code, `${sql}: ${error.message}`).toBe("42501");
    }
    expect(first((await senderClient.query<{ u: string }>("SELECT current_user AS u")).rows).u).toBe(
      sender.name,
    );
  });
});
