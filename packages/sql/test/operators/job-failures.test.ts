// notify_job_failures (docs/sql-reference.md section 6.6; operators are beyond SPEC.md): mail about
// failed pg_cron runs, each once per operator, without pg_cron and against a pg_cron simulated in the test
// database (the test machine has no pg_cron).
import type pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import type { TestRole } from "../../../../test/support/database.js";
import { call, snapshot } from "../../../../test/support/mail.js";
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
  superuserName,
  useOperatorDatabase,
} from "../support/configuration.js";

useOperatorDatabase("op_job_failures");

/** Collects the NOTICE messages a client receives. */
function notices(client: pg.Client): string[] {
  const received: string[] = [];
  client.on("notice", (notice) => received.push(notice.message ?? ""));
  return received;
}

describe("notify_job_failures without pg_cron", () => {
  it("refuses cleanly: pg_cron is not installed in this database (55000), changing nothing", async () => {
    const op = await addOperator();
    await expectRefusedWith(
      () => scalar(admin, "notify_job_failures", { operator_name: op.name }),
      "55000",
      new RegExp(`^operator_name: "${op.name}": pg_cron is not installed in this database`),
    );
  });

  it("refuses a missing or out-of-range look-back before anything else", async () => {
    await expectRefusedWith(
      () => scalar(admin, "notify_job_failures", { operator_name: "x", since: null }),
      "22004",
      "since: NULL: give how far back to look, e.g. interval '1 hour'",
    );
    for (const since of ["0", "-1 hour", "31 days"]) {
      await expectRefusedWith(
        () => admin.query("SELECT dbmail.notify_job_failures('x', since => $1::interval)", [since]),
        "22023",
        /^since: "[^"]+": must be more than 0 and at most 30 days$/,
      );
    }
  });
});

describe("notify_job_failures with pg_cron (simulated)", () => {
  let cronAdminRole: TestRole;
  let cronAdmin: pg.Client;
  let runid = 1000;

  /** Inserts one run of a job into the simulated cron.job_run_details; returns its runid. */
  async function addRun(run: {
    jobid: number;
    status: string;
    endedAgo: string | null;
    username?: string;
    command?: string;
    message?: string | null;
  }): Promise<number> {
    runid += 1;
    await db.query(
      `INSERT INTO cron.job_run_details (jobid, runid, job_pid, database, username, command, status,
         return_message, start_time, end_time)
       VALUES ($1, $2, 4242, 'appdb', $3, $4, $5, $6, now() - COALESCE($7::interval, '0'::interval) - interval '30 seconds',
               now() - $7::interval)`,
      [
        run.jobid,
        runid,
        run.username ?? superuserName,
        run.command ?? "VACUUM ANALYZE",
        run.status,
        run.message === undefined ? "ERROR:  canceling statement due to statement timeout" : run.message,
        run.endedAgo,
      ],
    );
    return runid;
  }

  /** The pg_cron mails queued after mailitem_id `after`, in order. */
  async function cronMails(after: number): Promise<Row[]> {
    return su(
      `SELECT mailitem_id, recipients, subject, body, send_request_user, profile_id FROM dbmail.mailitems
       WHERE mailitem_id > $1 AND subject LIKE 'pg_cron job %' ORDER BY mailitem_id`,
      [after],
    );
  }

  async function lastMailitemId(): Promise<number> {
    return Number((await su("SELECT COALESCE(max(mailitem_id), 0) AS id FROM dbmail.mailitems"))[0]?.id);
  }

  beforeAll(async () => {
    // What CREATE EXTENSION pg_cron makes, as far as notify_job_failures reads it: the two tables, readable
    // by everyone, with row security showing each role its own jobs (superusers see all).
    await db.query(`
      CREATE SCHEMA cron;
      CREATE TABLE cron.job (jobid bigint PRIMARY KEY, schedule text, command text, nodename text,
        nodeport integer, database text, username text, active boolean DEFAULT true, jobname text);
      CREATE TABLE cron.job_run_details (jobid bigint, runid bigint PRIMARY KEY, job_pid integer, database text,
        username text, command text, status text, return_message text, start_time timestamptz,
        end_time timestamptz);
      GRANT SELECT ON cron.job, cron.job_run_details TO PUBLIC;
      ALTER TABLE cron.job ENABLE ROW LEVEL SECURITY;
      ALTER TABLE cron.job_run_details ENABLE ROW LEVEL SECURITY;
      CREATE POLICY cron_job_policy ON cron.job USING (username = CURRENT_USER);
      CREATE POLICY cron_job_run_details_policy ON cron.job_run_details USING (username = CURRENT_USER);
    `);
    cronAdminRole = await db.createRole("op_cron_admin", { memberOf: ["dbmail_admin"] });
    cronAdmin = await db.connect(cronAdminRole);
    await db.query(`GRANT USAGE ON SCHEMA cron TO ${cronAdminRole.name}`);
    await db.query(
      `INSERT INTO cron.job (jobid, schedule, command, database, username, jobname) VALUES
         (1, '0 3 * * *', 'VACUUM ANALYZE', 'appdb', $1, 'nightly-vacuum'),
         (2, '*/5 * * * *', 'CALL refresh()', 'appdb', $1, NULL),
         (3, '@hourly', 'SELECT 1', 'appdb', $1, E'two\\nlines'),
         (4, '@daily', 'CALL own_job()', 'appdb', $2, 'admins-job')`,
      [superuserName, cronAdminRole.name],
    );
  });

  it("mails one message per failed run within `since`, and none twice", async () => {
    const op = await addOperator({ email_address: "dba@example.com; oncall@example.com" });
    const after = await lastMailitemId();
    const failed = await addRun({
      jobid: 1,
      status: "failed",
      endedAgo: "10 minutes",
      command: "VACUUM (VERBOSE)",
    });
    await addRun({ jobid: 1, status: "succeeded", endedAgo: "8 minutes", message: "VACUUM" });
    await addRun({ jobid: 1, status: "running", endedAgo: null, message: null });
    await addRun({ jobid: 1, status: "failed", endedAgo: "3 hours" });
    const unnamed = await addRun({ jobid: 2, status: "failed", endedAgo: "5 minutes", message: null });
    const twoLines = await addRun({ jobid: 3, status: "failed", endedAgo: "1 minute" });

    expect(await scalar(db, "notify_job_failures", { operator_name: op.name })).toBe(3);
    const mails = await cronMails(after);
    expect(mails.map((m) => m.subject)).toEqual([
      "pg_cron job nightly-vacuum failed",
      "pg_cron job 2 failed",
      "pg_cron job two lines failed",
    ]);
    for (const mail of mails) {
      expect(mail.recipients).toBe("dba@example.com; oncall@example.com");
      expect(mail.send_request_user).toBe(superuserName);
      expect(mail.profile_id).toBe(generalProfileId);
    }
    const [vacuum, refresh] = mails as [Row, Row];
    expect(vacuum.body).toContain("pg_cron job nightly-vacuum failed.");
    expect(vacuum.body).toContain("Job id:   1\n");
    expect(vacuum.body).toContain(`Run id:   ${failed}\n`);
    expect(vacuum.body).toContain("Database: appdb\n");
    expect(vacuum.body).toContain(`User:     ${superuserName}\n`);
    expect(vacuum.body).toMatch(/Started: {2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/);
    expect(vacuum.body).toMatch(/Ended: {4}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/);
    expect(vacuum.body).toContain("Command:\nVACUUM (VERBOSE)\n");
    expect(vacuum.body).toContain("Message:\nERROR:  canceling statement due to statement timeout\n");
    expect(refresh.body).toContain(`Run id:   ${unnamed}\n`);
    expect(refresh.body).toContain("Message:\n(none)\n");

    expect(await scalar(db, "notify_job_failures", { operator_name: op.name })).toBe(0);
    expect(await cronMails(after)).toHaveLength(3);

    // A new failure is mailed on the next call, alone.
    const later = await addRun({ jobid: 1, status: "failed", endedAgo: "0 seconds" });
    expect(await scalar(db, "notify_job_failures", { operator_name: op.name })).toBe(1);
    const all = await cronMails(after);
    expect(all).toHaveLength(4);
    expect(all[3]?.body).toContain(`Run id:   ${later}\n`);
    const notified = await su(
      "SELECT runid FROM dbmail.notified_job_runs WHERE operator_id = $1 ORDER BY runid",
      [op.id],
    );
    expect(notified.map((r) => Number(r.runid))).toEqual([failed, unnamed, twoLines, later]);
  });

  it("a longer `since` reaches older failures, still once each", async () => {
    const op = await addOperator();
    await addRun({ jobid: 1, status: "failed", endedAgo: "2 days" });
    const recent = await scalar(db, "notify_job_failures", { operator_name: op.name });
    const total = await su(
      `SELECT count(*)::integer AS n FROM cron.job_run_details
       WHERE status = 'failed' AND end_time >= now() - interval '3 days'`,
    );
    expect(await scalar(db, "notify_job_failures", { operator_name: op.name, since: "3 days" })).toBe(
      Number(total[0]?.n) - Number(recent),
    );
    expect(await scalar(db, "notify_job_failures", { operator_name: op.name, since: "3 days" })).toBe(0);
  });

  it("each operator is mailed about each failure once", async () => {
    const after = await lastMailitemId();
    const first = await addOperator();
    const second = await addOperator();
    await addRun({ jobid: 1, status: "failed", endedAgo: "1 minute" });
    const firstCount = Number(await scalar(db, "notify_job_failures", { operator_name: first.name }));
    expect(firstCount).toBeGreaterThan(0);
    expect(await scalar(db, "notify_job_failures", { operator_name: second.name })).toBe(firstCount);
    const mails = await cronMails(after);
    expect(mails.filter((m) => m.recipients === `${first.name}@example.com`)).toHaveLength(firstCount);
    expect(mails.filter((m) => m.recipients === `${second.name}@example.com`)).toHaveLength(firstCount);
  });

  it("runs as the caller: an admin sees only its own jobs' runs, and the mail is its own", async () => {
    const op = await addOperator();
    const after = await lastMailitemId();
    const own = await addRun({
      jobid: 4,
      status: "failed",
      endedAgo: "1 minute",
      username: cronAdminRole.name,
    });
    await addRun({ jobid: 1, status: "failed", endedAgo: "1 minute" });
    expect(
      await scalar(cronAdmin, "notify_job_failures", { operator_name: op.name, profile_name: "restricted" }),
    ).toBe(1);
    const mails = await cronMails(after);
    expect(mails).toHaveLength(1);
    expect(mails[0]).toMatchObject({
      subject: "pg_cron job admins-job failed",
      send_request_user: cronAdminRole.name,
      profile_id: restrictedProfileId,
    });
    expect(mails[0]?.body).toContain(`Run id:   ${own}\n`);
    expect(await scalar(cronAdmin, "notify_job_failures", { operator_name: op.name })).toBe(0);
  });

  it("an admin without USAGE on schema cron is told so (42501)", async () => {
    const op = await addOperator();
    await expectRefusedWith(
      () => scalar(admin, "notify_job_failures", { operator_name: op.name }),
      "42501",
      new RegExp(`^caller: "${adminRole.name}": may not use schema cron`),
    );
  });

  it("a rolled-back call forgets what it mailed: the next call mails the same failures", async () => {
    const op = await addOperator();
    await addRun({ jobid: 1, status: "failed", endedAgo: "1 minute" });
    const client = await db.connect();
    await client.query("BEGIN");
    const count = Number(await scalar(client, "notify_job_failures", { operator_name: op.name }));
    expect(count).toBeGreaterThan(0);
    await client.query("ROLLBACK");
    expect(await scalar(client, "notify_job_failures", { operator_name: op.name })).toBe(count);
  });

  it("a disabled operator gets nothing (a NOTICE says so, no error); once enabled, the failures are mailed", async () => {
    const op = await addOperator({ enabled: false });
    await addRun({ jobid: 1, status: "failed", endedAgo: "1 minute" });
    const client = await db.connect();
    const received = notices(client);
    const before = await snapshot(db);
    expect(await scalar(client, "notify_job_failures", { operator_name: op.name })).toBe(0);
    expect(received).toContain(
      `operator_name: "${op.name}": operator is not enabled; no job failures were mailed`,
    );
    const after = await snapshot(db);
    expect(after.operators).toEqual(before.operators);
    expect(after.notified_job_runs).toEqual(before.notified_job_runs);
    expect(after.mailitems).toEqual(before.mailitems);
    await call(admin, "sp_update_operator", { name: op.name, enabled: true });
    expect(Number(await scalar(client, "notify_job_failures", { operator_name: op.name }))).toBeGreaterThan(
      0,
    );
  });

  it("refuses an operator without an e-mail address, an unknown one and none, changing nothing", async () => {
    await addRun({ jobid: 1, status: "failed", endedAgo: "1 minute" });
    const noAddress = await addOperator({ email_address: "" });
    await expectRefusedWith(
      () => scalar(db, "notify_job_failures", { operator_name: noAddress.name }),
      "55000",
      `operator_name: "${noAddress.name}": operator has no e-mail address (an admin can set one with sp_update_operator)`,
    );
    await expectRefusedWith(
      () => scalar(db, "notify_job_failures", { operator_name: "ghost" }),
      "42704",
      'operator_name: "ghost": no such operator',
    );
    await expectRefusedWith(
      () => scalar(db, "notify_job_failures", {}),
      "22004",
      "operator_name: NULL: give the operator's name",
    );
  });

  it("an unknown profile fails the call, and nothing is recorded as notified", async () => {
    const op = await addOperator();
    await addRun({ jobid: 1, status: "failed", endedAgo: "1 minute" });
    await expectRefusedWith(
      () => scalar(db, "notify_job_failures", { operator_name: op.name, profile_name: "nope" }),
      "42704",
      'profile_name: "nope": no such profile',
    );
  });

  it("forgets notified runs that ended more than 30 days ago; deleting the operator forgets its runs", async () => {
    const op = await addOperator();
    await db.query(
      `INSERT INTO dbmail.notified_job_runs (operator_id, runid, jobid, run_ended_at)
       VALUES ($1, -1, 1, now() - interval '31 days'), ($1, -2, 1, now() - interval '29 days')`,
      [op.id],
    );
    await scalar(db, "notify_job_failures", { operator_name: op.name });
    const kept = await su("SELECT runid FROM dbmail.notified_job_runs WHERE operator_id = $1 AND runid < 0", [
      op.id,
    ]);
    expect(kept.map((r) => Number(r.runid))).toEqual([-2]);
    await call(admin, "sp_delete_operator", { name: op.name });
    expect(await su("SELECT runid FROM dbmail.notified_job_runs WHERE operator_id = $1", [op.id])).toEqual(
      [],
    );
  });
});
