// sp_notify_operator (docs/sql-reference.md section 6.5; operators are beyond SPEC.md), called as a
// dbmail_user: the mail is the caller's, sent with its profile rights and through sp_send_dbmail's checks.
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import { snapshot } from "../../../../test/support/mail.js";
import {
  addOperator,
  admin,
  adminRole,
  db,
  expectRefusedWith,
  generalProfileId,
  type Row,
  restrictedProfileId,
  scalar,
  su,
  useOperatorDatabase,
  user,
  userRole,
} from "../support/configuration.js";

useOperatorDatabase("op_notify");

/** A queued mail item with the name of its profile, read as the superuser. */
async function mailitem(id: unknown): Promise<Row> {
  const rows = await su(
    `SELECT m.*, p.name AS profile_name FROM dbmail.mailitems m JOIN dbmail.profiles p USING (profile_id)
     WHERE m.mailitem_id = $1`,
    [id],
  );
  expect(rows).toHaveLength(1);
  return rows[0] as Row;
}

describe("sp_notify_operator", () => {
  it("queues a mail to the operator's addresses, recorded as sent by the caller with its default profile", async () => {
    const { name } = await addOperator({ email_address: 'dba@example.com; "On Call" <oncall@example.com>' });
    const id = await scalar(user, "sp_notify_operator", { name, subject: "Disk full", body: "on db1" });
    const item = await mailitem(id);
    expect(item).toMatchObject({
      recipients: 'dba@example.com; "On Call" <oncall@example.com>',
      subject: "Disk full",
      body: "on db1",
      send_request_user: userRole.name,
      profile_name: "general",
      sent_status: "unsent",
    });
    expect(item.envelope).toEqual({
      to: [
        { name: null, address: "dba@example.com" },
        { name: "On Call", address: "oncall@example.com" },
      ],
      cc: [],
      bcc: [],
    });
    // The caller sees it as its own mail.
    const { rows } = await user.query("SELECT subject FROM dbmail.sysmail_allitems WHERE mailitem_id = $1", [
      id,
    ]);
    expect(rows).toEqual([{ subject: "Disk full" }]);
  });

  it("finds the operator by id, by both, or by a name in another case with spaces; trims profile_name", async () => {
    const op = await addOperator();
    for (const args of [
      { id: op.id },
      { id: op.id, name: op.name },
      { name: ` ${op.name.toUpperCase()} `, profile_name: " General " },
      { name: op.name, profile_name: "" },
    ]) {
      const id = await scalar(user, "sp_notify_operator", { ...args, body: "b" });
      expect(await mailitem(id)).toMatchObject({
        recipients: `${op.name}@example.com`,
        profile_name: "general",
      });
    }
  });

  it("without a subject uses sp_send_dbmail's default subject", async () => {
    const op = await addOperator();
    const id = await scalar(user, "sp_notify_operator", { name: op.name, body: "only a body" });
    expect((await mailitem(id)).subject).toBe("PostgreSQL Message");
  });

  it("applies the caller's profile rights: a user may not use a profile not granted to it, an admin may", async () => {
    const op = await addOperator();
    await expectRefusedWith(
      () => scalar(user, "sp_notify_operator", { name: op.name, profile_name: "restricted", body: "b" }),
      "42501",
      `profile_name: "restricted": role ${userRole.name} may not use this profile (an admin can grant it with sysmail_add_principalprofile_sp)`,
    );
    const id = await scalar(admin, "sp_notify_operator", {
      name: op.name,
      profile_name: "restricted",
      body: "b",
    });
    const item = await mailitem(id);
    expect(item.profile_id).toBe(restrictedProfileId);
    expect(item.send_request_user).toBe(adminRole.name);
    expect(generalProfileId).not.toBe(restrictedProfileId);
  });

  it("refuses a disabled operator (SQL Server's 14601) and one without an e-mail address (14602)", async () => {
    const off = await addOperator({ enabled: false });
    const noAddress = await addOperator({ email_address: null, pager_address: "pager@example.com" });
    await expectRefusedWith(
      () => scalar(user, "sp_notify_operator", { name: off.name, body: "b" }),
      "55000",
      `name: "${off.name}": operator is not enabled and therefore cannot receive notifications`,
    );
    await expectRefusedWith(
      () => scalar(user, "sp_notify_operator", { id: off.id, body: "b" }),
      "55000",
      `id: "${off.id}": operator is not enabled and therefore cannot receive notifications`,
    );
    await expectRefusedWith(
      () => scalar(user, "sp_notify_operator", { name: noAddress.name, body: "b" }),
      "55000",
      `name: "${noAddress.name}": operator has no e-mail address (an admin can set one with sp_update_operator)`,
    );
  });

  it("refuses an unknown operator, ids and names that disagree, and a call without either", async () => {
    const a = await addOperator();
    const b = await addOperator();
    await expectRefusedWith(
      () => scalar(user, "sp_notify_operator", { name: "ghost", body: "b" }),
      "42704",
      'name: "ghost": no such operator',
    );
    await expectRefusedWith(
      () => scalar(user, "sp_notify_operator", { id: 999999, body: "b" }),
      "42704",
      'id: "999999": no such operator',
    );
    await expectRefusedWith(
      () => scalar(user, "sp_notify_operator", { id: b.id, name: a.name, body: "b" }),
      "22023",
      `name: "${a.name}": is operator ${a.id}, not id ${b.id}`,
    );
    await expectRefusedWith(
      () => scalar(user, "sp_notify_operator", { name: " ", body: "b" }),
      "22004",
      "id, name: NULL: give the operator's id or name",
    );
  });

  it("passes its message to sp_send_dbmail, whose checks apply", async () => {
    const op = await addOperator();
    await expectRefusedWith(
      () => scalar(user, "sp_notify_operator", { name: op.name }),
      "22004",
      /^body, query, file_attachments, attachments, subject: NULL: a message needs at least one of these/,
    );
    await expectRefusedWith(
      () => scalar(user, "sp_notify_operator", { name: op.name, subject: "a\r\nBcc: x@evil.org" }),
      "22023",
      'subject: "a\\r\\nBcc: x@evil.org": line breaks and control characters are not allowed here',
    );
    const error = await errorOf(
      scalar(user, "sp_notify_operator", {
        name: op.name,
        body: "b",
        file_attachments: " /srv/missing/report.txt ",
      }),
    );
    expect(error.message).toMatch(/^file_attachments: "\/srv\/missing\/report\.txt": /);
  });

  it("runs as the caller: SECURITY INVOKER, while its address lookup is SECURITY DEFINER", async () => {
    const rows = await su(
      `SELECT proname, prosecdef FROM pg_proc WHERE pronamespace = 'dbmail'::regnamespace
         AND proname IN ('sp_notify_operator', 'operator_address', 'notify_job_failures') ORDER BY proname`,
    );
    expect(rows).toEqual([
      { proname: "notify_job_failures", prosecdef: false },
      { proname: "operator_address", prosecdef: true },
      { proname: "sp_notify_operator", prosecdef: false },
    ]);
  });

  it("a rolled-back transaction queues nothing", async () => {
    const op = await addOperator();
    const before = await snapshot(db);
    await user.query("BEGIN");
    await scalar(user, "sp_notify_operator", { name: op.name, body: "b" });
    await user.query("ROLLBACK");
    expect(await snapshot(db)).toEqual(before);
  });
});
