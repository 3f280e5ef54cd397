// Who may manage and notify operators (docs/sql-reference.md sections 1 and 6; operators are beyond
// SPEC.md): dbmail_admin manages them, dbmail_user may only notify, any other role may do nothing.
import { describe, expect, it } from "vitest";
import { type Args, call, unique } from "../../../../test/support/mail.js";
import {
  addOperator,
  expectRefusedWith,
  nobody,
  scalar,
  su,
  useOperatorDatabase,
  user,
} from "../support/configuration.js";

useOperatorDatabase("op_privileges");

describe("privileges", () => {
  it("a dbmail_user cannot add, update, delete or list operators, nor notify job failures", async () => {
    const op = await addOperator();
    const attempts: [string, Args][] = [
      ["sp_add_operator", { name: unique("sneaky"), email_address: "x@example.com" }],
      ["sp_update_operator", { name: op.name, email_address: "evil@example.com" }],
      ["sp_delete_operator", { name: op.name }],
      ["sp_help_operator", {}],
      ["notify_job_failures", { operator_name: op.name }],
      ["job_failure_operator", { operator_name: op.name }],
      ["claim_job_failure", { operator_id: op.id, runid: 1, jobid: 1, run_ended_at: new Date() }],
    ];
    for (const [fn, args] of attempts) {
      await expectRefusedWith(() => call(user, fn, args), "42501", `permission denied for function ${fn}`);
    }
    await expectRefusedWith(
      () => user.query("SELECT * FROM dbmail.operators"),
      "42501",
      "permission denied for table operators",
    );
    await expectRefusedWith(
      () => user.query("SELECT * FROM dbmail.notified_job_runs"),
      "42501",
      "permission denied for table notified_job_runs",
    );
  });

  it("a role without dbmail_user cannot notify an operator", async () => {
    const op = await addOperator();
    await expectRefusedWith(
      () => scalar(nobody, "sp_notify_operator", { name: op.name, body: "b" }),
      "42501",
      "permission denied for schema dbmail",
    );
  });

  it("dbmail_user may execute sp_notify_operator and operator_address; dbmail_admin the rest", async () => {
    const rows = await su(
      `SELECT proname, has_function_privilege('dbmail_user', oid, 'EXECUTE') AS user_may,
              has_function_privilege('dbmail_admin', oid, 'EXECUTE') AS admin_may,
              has_function_privilege('public', oid, 'EXECUTE') AS public_may
       FROM pg_proc WHERE pronamespace = 'dbmail'::regnamespace
         AND proname IN ('sp_add_operator', 'sp_update_operator', 'sp_delete_operator', 'sp_help_operator',
                         'sp_notify_operator', 'operator_address', 'notify_job_failures', 'job_failure_operator',
                         'claim_job_failure', 'find_by_id_or_name', 'check_operator', 'check_operator_name',
                         'check_pager_time', 'check_operator_addresses')
       ORDER BY proname`,
    );
    const grants = Object.fromEntries(
      rows.map((r) => [
        r.proname,
        `${r.user_may ? "user" : "-"} ${r.admin_may ? "admin" : "-"} ${r.public_may}`,
      ]),
    );
    expect(grants).toEqual({
      check_operator: "- - false",
      check_operator_addresses: "- - false",
      check_operator_name: "- - false",
      check_pager_time: "- - false",
      claim_job_failure: "- admin false",
      find_by_id_or_name: "- - false",
      job_failure_operator: "- admin false",
      notify_job_failures: "- admin false",
      operator_address: "user admin false",
      sp_add_operator: "- admin false",
      sp_delete_operator: "- admin false",
      sp_help_operator: "- admin false",
      sp_notify_operator: "user admin false",
      sp_update_operator: "- admin false",
    });
  });
});
