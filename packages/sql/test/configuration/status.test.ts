// Starting and stopping delivery and watching the queue (SPEC.md section 4): sysmail_start_sp,
// sysmail_stop_sp, sysmail_help_status_sp and sysmail_help_queue_sp with live and stale senders.
import { afterEach, describe, expect, it } from "vitest";
import { type Args, addProfile, call, configure } from "../../../../test/support/mail.js";
import {
  admin,
  adminRole,
  eventsAfter,
  expectAdminEvent,
  expectRefused,
  lastLogId,
  queueMessage,
  queueThree,
  type Row,
  scalar,
  setStatus,
  single,
  su,
  useDatabase,
} from "../support/configuration.js";

useDatabase("cfg_status");

describe("start, stop and status", () => {
  afterEach(async () => {
    await su("UPDATE dbmail.system_state SET started = true");
    await su("UPDATE dbmail.settings SET paramvalue = '2' WHERE paramname = 'LoggingLevel'");
  });

  it("status is STARTED on a fresh install", async () => {
    expect(await scalar(admin, "sysmail_help_status_sp")).toBe("STARTED");
  });

  it("stop makes the status STOPPED and logs an information event naming the role", async () => {
    const logId = await lastLogId();
    await call(admin, "sysmail_stop_sp");
    expect(await scalar(admin, "sysmail_help_status_sp")).toBe("STOPPED");
    await expectAdminEvent(logId, "information", `stopped by ${adminRole.name}`);
    expect(await su("SELECT started, last_mod_user FROM dbmail.system_state")).toEqual([
      { started: false, last_mod_user: adminRole.name },
    ]);
  });

  it("start makes the status STARTED again and logs it", async () => {
    await call(admin, "sysmail_stop_sp");
    const logId = await lastLogId();
    await call(admin, "sysmail_start_sp");
    expect(await scalar(admin, "sysmail_help_status_sp")).toBe("STARTED");
    await expectAdminEvent(logId, "information", `started by ${adminRole.name}`);
  });

  it("mail is still accepted and queued while stopped", async () => {
    const profile = await addProfile(admin);
    await call(admin, "sysmail_stop_sp");
    const id = await queueMessage(profile.name);
    expect(await su("SELECT sent_status FROM dbmail.mailitems WHERE mailitem_id = $1", [id])).toEqual([
      { sent_status: "unsent" },
    ]);
    expect(await scalar(admin, "sysmail_help_status_sp")).toBe("STOPPED");
  });

  it("with LoggingLevel 1 a stop is not logged", async () => {
    await configure(admin, "LoggingLevel", "1");
    const logId = await lastLogId();
    await call(admin, "sysmail_stop_sp");
    expect(await scalar(admin, "sysmail_help_status_sp")).toBe("STOPPED");
    expect(await eventsAfter(logId)).toEqual([]);
  });
});

describe("help_queue", () => {
  afterEach(async () => {
    await su("UPDATE dbmail.system_state SET started = true");
    await su("DELETE FROM dbmail.senders");
  });

  const queue = (args: Args = {}) => single("sysmail_help_queue_sp", args);

  it("returns one mail row with SQL Server's columns and the live-sender ones", async () => {
    const { rows, fields } = await admin.query("SELECT * FROM dbmail.sysmail_help_queue_sp()");
    expect(fields.map((f) => f.name)).toEqual([
      "queue_type",
      "length",
      "state",
      "last_empty_rowset_time",
      "last_activated_time",
      "live_senders",
      "senders",
      "oldest_unsent_date",
      "stalled",
      "unsent",
      "sending",
      "retrying",
      "sent",
      "failed",
    ]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ queue_type: "mail", live_senders: 0, senders: [] });
  });

  it("length counts mail waiting to be sent, not sent or failed mail", async () => {
    const profile = await addProfile(admin);
    const waiting = async () =>
      (
        await su(`SELECT count(*)::int AS length, min(send_request_date) AS oldest_unsent_date
                  FROM dbmail.mailitems WHERE sent_status IN ('unsent', 'sending', 'retrying')`)
      )[0] as Row;
    const before = await waiting();
    expect({ ...(await queue()), length: Number((await queue()).length) }).toMatchObject(before);
    const [a, b, c] = await queueThree(profile.name);
    expect(Number((await queue()).length)).toBe(Number(before.length) + 3);
    await setStatus(a, "sent");
    await setStatus(b, "failed");
    await setStatus(c, "retrying");
    expect(Number((await queue()).length)).toBe(Number(before.length) + 1);
  });

  it("counts the items of each status, as a GROUP BY over the table does", async () => {
    const profile = await addProfile(admin);
    const [a, b, c] = await queueThree(profile.name);
    await setStatus(a, "sent");
    await setStatus(b, "failed");
    await setStatus(c, "sending");
    const byStatus = Object.fromEntries(
      (await su("SELECT sent_status, count(*)::int AS n FROM dbmail.mailitems GROUP BY sent_status")).map(
        (r) => [r.sent_status, r.n],
      ),
    );
    const row = await queue();
    for (const status of ["unsent", "sending", "retrying", "sent", "failed"]) {
      expect(Number(row[status]), status).toBe(byStatus[status] ?? 0);
    }
    expect(Number(row.sent)).toBeGreaterThan(0);
    expect(Number(row.failed)).toBeGreaterThan(0);
  });

  it("with due mail and no live sender: INACTIVE and stalled; a live sender makes it RECEIVES_OCCURRING", async () => {
    const profile = await addProfile(admin);
    await queueMessage(profile.name);
    expect(await queue()).toMatchObject({ state: "INACTIVE", live_senders: 0, stalled: true });
    await su(
      `INSERT INTO dbmail.senders (sender_id, hostname, process_id, version, last_empty_claim_at, last_heartbeat)
       VALUES ('live-1', 'host-a', 4242, '0.1.0', now(), now()),
              ('stale-1', 'host-b', 4343, '0.1.0', now(), now() - interval '5 minutes')`,
    );
    const row = await queue();
    expect(row).toMatchObject({ state: "RECEIVES_OCCURRING", live_senders: 1, stalled: false });
    expect(row.senders).toEqual([
      expect.objectContaining({ sender_id: "live-1", hostname: "host-a", process_id: 4242 }),
    ]);
    expect(row.last_empty_rowset_time).toBeInstanceOf(Date);
    expect(row.last_activated_time).toBeInstanceOf(Date);
  });

  it("state is STOPPED after stop, and stopped mail is not stalled", async () => {
    const profile = await addProfile(admin);
    await call(admin, "sysmail_stop_sp");
    await queueMessage(profile.name);
    expect(await queue()).toMatchObject({ state: "STOPPED", stalled: false });
    expect(Number((await queue()).length)).toBeGreaterThan(0);
  });

  it("accepts queue_type 'mail' in any case and refuses others", async () => {
    expect((await queue({ queue_type: "MAIL" })).queue_type).toBe("mail");
    await expectRefused(() => call(admin, "sysmail_help_queue_sp", { queue_type: "status" }), {
      code: "22023",
      parameter: "queue_type",
      value: "status",
    });
  });
});
