// Deleting old mail and old events (SPEC.md sections 4 and 9): sysmail_delete_mailitems_sp (a dbmail_user
// deletes only its own items) and sysmail_delete_log_sp (never with no arguments), and their refusals.
import { beforeAll, describe, expect, it } from "vitest";
import { addProfile } from "../../../../test/support/mail.js";
import {
  admin,
  adminRole,
  type BadCall,
  expectAdminEvent,
  expectBadCall,
  grant,
  lastLogId,
  queueMessage,
  queueThree,
  scalar,
  setStatus,
  su,
  useDatabase,
  user,
  userRole,
} from "../support/configuration.js";

useDatabase("cfg_cleanup");

describe("delete_mailitems_sp", () => {
  let profile: { id: number; name: string };

  beforeAll(async () => {
    profile = await addProfile(admin);
    await grant(userRole.name, profile.id, false);
  });

  const exists = async (ids: number[]) =>
    (await su("SELECT mailitem_id FROM dbmail.mailitems WHERE mailitem_id = ANY($1) ORDER BY 1", [ids])).map(
      (r) => Number(r.mailitem_id),
    );
  const count = async (where: string) =>
    Number((await su(`SELECT count(*) AS n FROM dbmail.mailitems WHERE ${where}`))[0]?.n);

  it("by status deletes every item in that status and returns the count", async () => {
    const [a, b, c] = await queueThree(profile.name);
    await setStatus(a, "failed");
    await setStatus(b, "failed");
    const failed = await count("sent_status = 'failed'");
    expect(failed).toBeGreaterThanOrEqual(2);
    expect(Number(await scalar(admin, "sysmail_delete_mailitems_sp", { sent_status: "FAILED" }))).toBe(
      failed,
    );
    expect(await count("sent_status = 'failed'")).toBe(0);
    expect(await exists([a, b, c])).toEqual([c]);
  });

  it("by date deletes items requested before it", async () => {
    const [a, b, c] = await queueThree(profile.name);
    await su("UPDATE dbmail.mailitems SET send_request_date = '1990-06-01' WHERE mailitem_id = ANY($1)", [
      [a, b],
    ]);
    const deleted = await scalar(admin, "sysmail_delete_mailitems_sp", {
      sent_before: new Date("1991-01-01T00:00:00Z"),
    });
    expect(Number(deleted)).toBe(2);
    expect(await exists([a, b, c])).toEqual([c]);
  });

  it("by status and date deletes only items matching both", async () => {
    const [a, b, c] = await queueThree(profile.name);
    await su("UPDATE dbmail.mailitems SET send_request_date = '2005-06-01' WHERE mailitem_id = ANY($1)", [
      [a, b],
    ]);
    await setStatus(a, "sent");
    await setStatus(c, "sent");
    const deleted = await scalar(admin, "sysmail_delete_mailitems_sp", {
      sent_before: new Date("2006-01-01T00:00:00Z"),
      sent_status: "sent",
    });
    expect(Number(deleted)).toBe(1);
    expect(await exists([a, b, c])).toEqual([b, c]);
  });

  it("returns 0 when nothing matches, and logs who deleted how many", async () => {
    const logId = await lastLogId();
    expect(
      Number(
        await scalar(admin, "sysmail_delete_mailitems_sp", { sent_before: new Date("1970-01-02T00:00:00Z") }),
      ),
    ).toBe(0);
    await expectAdminEvent(logId, "information", `${adminRole.name}.*\\b0 items deleted`);
  });

  it("deletes the items' attachments with them", async () => {
    const id = await queueMessage(profile.name);
    await su(
      `INSERT INTO dbmail.attachments (mailitem_id, filename, filesize, attachment, last_mod_user)
       VALUES ($1, 'a.txt', 1, 'x', 'postgres')`,
      [id],
    );
    await setStatus(id, "sent");
    await scalar(admin, "sysmail_delete_mailitems_sp", { sent_status: "sent" });
    expect(await su("SELECT * FROM dbmail.attachments WHERE mailitem_id = $1", [id])).toEqual([]);
  });

  it("a dbmail_user deletes only its own items", async () => {
    const mine = [await queueMessage(profile.name, user), await queueMessage(profile.name, user)];
    const theirs = await queueMessage(profile.name);
    const own = Number(
      (
        await su(
          "SELECT count(*) AS n FROM dbmail.mailitems WHERE sent_status = 'unsent' AND send_request_user = $1",
          [userRole.name],
        )
      )[0]?.n,
    );
    expect(own).toBeGreaterThanOrEqual(2);
    const deleted = await scalar(user, "sysmail_delete_mailitems_sp", { sent_status: "unsent" });
    expect(Number(deleted)).toBe(own);
    expect(await exists([...mine, theirs])).toEqual([theirs]);
  });

  // biome-ignore format: a table reads best one case per line
  const cases: BadCall[] = [
    { label: "neither argument", args: () => ({}), code: "22004", parameter: "sent_before, sent_status", value: null },
    { label: "an unknown sent_status", args: () => ({ sent_status: "done" }), code: "22023", parameter: "sent_status", value: "done", problem: "must be unsent, sending, retrying, sent or failed" },
    { label: "an empty sent_status", args: () => ({ sent_status: "" }), code: "22023", parameter: "sent_status", value: "" },
  ];

  it.each(cases)("refuses $label", async (bad) => {
    await queueMessage(profile.name);
    await expectBadCall("sysmail_delete_mailitems_sp", bad);
  });
});

describe("delete_log_sp", () => {
  const addEvents = async (events: [type: string, date: string | null][]) => {
    const ids: number[] = [];
    for (const [type, date] of events) {
      const rows = await su(
        `INSERT INTO dbmail.event_log (event_type, description, log_date, last_mod_user)
         VALUES ($1, 'test event', COALESCE($2::timestamptz, clock_timestamp()), 'postgres') RETURNING log_id`,
        [type, date],
      );
      ids.push(Number(rows[0]?.log_id));
    }
    return ids;
  };
  const existing = async (ids: number[]) =>
    (await su("SELECT log_id FROM dbmail.event_log WHERE log_id = ANY($1) ORDER BY 1", [ids])).map((r) =>
      Number(r.log_id),
    );
  const countOf = async (type: string) =>
    Number((await su("SELECT count(*) AS n FROM dbmail.event_log WHERE event_type = $1", [type]))[0]?.n);

  it("by event_type deletes every event of that type and returns the count", async () => {
    const ids = await addEvents([
      ["error", null],
      ["error", null],
      ["warning", null],
    ]);
    const errors = await countOf("error");
    const warnings = await countOf("warning");
    expect(Number(await scalar(admin, "sysmail_delete_log_sp", { event_type: " Error " }))).toBe(errors);
    expect(await countOf("error")).toBe(0);
    expect(await countOf("warning")).toBe(warnings);
    expect(await existing(ids)).toEqual([ids[2]]);
  });

  it("by date, and by date and type together", async () => {
    const ids = await addEvents([
      ["information", "1990-01-01"],
      ["success", "1990-01-01"],
      ["error", "1995-01-01"],
      ["information", "1995-01-01"],
      ["error", null],
    ]);
    expect(
      Number(
        await scalar(admin, "sysmail_delete_log_sp", { logged_before: new Date("1991-01-01T00:00:00Z") }),
      ),
    ).toBe(2);
    const deleted = await scalar(admin, "sysmail_delete_log_sp", {
      logged_before: new Date("1996-01-01T00:00:00Z"),
      event_type: "error",
    });
    expect(Number(deleted)).toBe(1);
    expect(await existing(ids)).toEqual([ids[3], ids[4]]);
  });

  // biome-ignore format: a table reads best one case per line
  const cases: BadCall[] = [
    { label: "no arguments (it would wipe the log)", args: () => ({}), code: "22004", parameter: "logged_before, event_type", value: null },
    { label: "an unknown event_type", args: () => ({ event_type: "debug" }), code: "22023", parameter: "event_type", value: "debug", problem: "must be success, information, warning or error" },
  ];

  it.each(cases)("refuses $label", async (bad) => {
    await addEvents([["information", null]]);
    await expectBadCall("sysmail_delete_log_sp", bad);
  });
});
