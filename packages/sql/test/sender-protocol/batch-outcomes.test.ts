// record_outcomes (SPEC.md section 7): several outcomes in one call, with exactly record_outcome's
// effect on items, retry rounds, sticky accounts and the event log; one bad entry changes nothing.
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import { configure } from "../../../../test/support/mail.js";
import {
  A,
  type AccountRow,
  B,
  type BatchOutcome,
  backupId,
  claim,
  claimIds,
  db,
  events,
  item,
  makeDue,
  primaryId,
  recordOutcome,
  recordOutcomes,
  s1,
  s2,
  s3,
  send,
  useSenderProtocol,
} from "../support/sender-protocol.js";

useSenderProtocol();

describe("record_outcomes", () => {
  it("applies mixed outcomes in one call and returns each item's status, lease_lost per item", async () => {
    const sent = await send();
    const retrying = await send();
    const failed = await send();
    const others = await send();
    await claim(s1, A, 3);
    expect(await claimIds(s2, B)).toEqual([others]);
    const never = "999999999";
    const result = await recordOutcomes(
      s1,
      A,
      [
        { mailitem_id: failed, outcome: "failed", error: "550 no such user" },
        { mailitem_id: sent, outcome: "sent", account_id: primaryId, smtp_response: "250 OK" },
        { mailitem_id: others, outcome: "sent", account_id: primaryId },
        { mailitem_id: retrying, outcome: "retrying", error: "421 later" },
        { mailitem_id: never, outcome: "sent", account_id: primaryId },
      ],
      7,
    );
    // In mailitem_id order.
    expect(result).toEqual([
      [sent, "sent"],
      [retrying, "retrying"],
      [failed, "failed"],
      [others, "lease_lost"],
      [never, "lease_lost"],
    ]);
    expect(await item(sent)).toMatchObject({ sent_status: "sent", sent_account_id: primaryId, sent_by: A });
    expect(await item(retrying)).toMatchObject({
      sent_status: "retrying",
      send_attempts: 1,
      lease_owner: null,
    });
    expect(await item(failed)).toMatchObject({ sent_status: "failed", last_error: "550 no such user" });
    // Another sender's item is left alone.
    expect(await item(others)).toMatchObject({ sent_status: "sending", lease_owner: B, send_attempts: 0 });
    expect((await events(others)).length).toBe(0);
    expect((await events(retrying)).map((e) => [e.event_type, e.process_id, e.sender_id])).toEqual([
      ["warning", 7, A],
    ]);
  });

  it("has exactly record_outcome's effect on items and the event log", async () => {
    await configure(db, "LoggingLevel", "3");
    const outcomes = (ids: string[]): BatchOutcome[] => [
      {
        mailitem_id: ids[0] as string,
        outcome: "sent",
        account_id: backupId,
        smtp_response: "250 queued",
        account_errors: [{ account_id: primaryId, error: "421 busy" }],
      },
      {
        mailitem_id: ids[1] as string,
        outcome: "retrying",
        account_errors: [{ account_id: primaryId, error: "timeout" }],
      },
      { mailitem_id: ids[2] as string, outcome: "failed", error: "550 refused" },
    ];
    const snapshot = async (ids: string[]) => {
      const rows = [];
      for (const [i, id] of ids.entries()) {
        const { mailitem_id, sent_date, next_attempt_at, message_id, retry_delay, ...row } = await item(id);
        const evs = (await events(id)).map((e) => ({
          ...e,
          mailitem_id: null,
          description: e.description.replace(`Mail Id ${id}`, `Mail Id #${i}`),
        }));
        const wait = row.sent_status === "retrying" ? Math.round(retry_delay ?? 0) : null;
        rows.push({ row: { ...row, sent: sent_date !== null, wait }, evs });
      }
      return rows;
    };
    const single = [await send(), await send(), await send()];
    await claim(s1, A);
    for (const o of outcomes(single)) {
      await recordOutcome(s1, o.mailitem_id, A, o.outcome, {
        accountId: o.account_id ?? null,
        smtpResponse: o.smtp_response ?? null,
        error: o.error ?? null,
        accountErrors: o.account_errors,
        processId: 5,
      });
    }
    const viaOne = await snapshot(single);
    await db.query("UPDATE dbmail.profiles SET last_success_account_id = NULL");
    const batch = [await send(), await send(), await send()];
    await claim(s1, A);
    await recordOutcomes(s1, A, outcomes(batch), 5);
    expect(await snapshot(batch)).toEqual(viaOne);
    expect(viaOne[0]?.evs.map((e) => e.event_type)).toEqual(["warning", "success"]);
  });

  it("counts retry rounds like record_outcome: the item fails after 1 + AccountRetryAttempts rounds", async () => {
    const id = await send();
    await claim(s1, A);
    expect(await recordOutcomes(s1, A, [{ mailitem_id: id, outcome: "retrying", error: "one" }])).toEqual([
      [id, "retrying"],
    ]);
    expect((await item(id)).retry_delay).toBeCloseTo(60, 0);
    await makeDue(id);
    await claim(s1, A);
    expect(await recordOutcomes(s1, A, [{ mailitem_id: id, outcome: "retrying", error: "two" }])).toEqual([
      [id, "failed"],
    ]);
    expect(await item(id)).toMatchObject({ sent_status: "failed", send_attempts: 2, last_error: "two" });
  });

  it("makes the account sticky and tells the other senders (NOTIFY dbmail_config)", async () => {
    const id = await send();
    await claim(s1, A);
    await s3.query("LISTEN dbmail_config");
    const heard = new Promise<string>((resolve) => s3.once("notification", (n) => resolve(n.channel)));
    await recordOutcomes(s1, A, [{ mailitem_id: id, outcome: "sent", account_id: backupId }]);
    expect(await heard).toBe("dbmail_config");
    await s3.query("UNLISTEN dbmail_config");
    const { rows } = await s1.query<AccountRow>(
      "SELECT * FROM dbmail.sender_accounts() WHERE profile_name = 'p' AND is_last_success",
    );
    expect(rows.map((r) => r.account_id)).toEqual([backupId]);
  });

  it("returns nothing for an empty array", async () => {
    expect(await recordOutcomes(s1, A, [])).toEqual([]);
  });

  it("changes nothing when one entry is bad (the whole call fails)", async () => {
    const good = await send();
    const bad = await send();
    await claim(s1, A);
    const error = await errorOf(
      recordOutcomes(s1, A, [
        { mailitem_id: good, outcome: "sent", account_id: primaryId },
        { mailitem_id: bad, outcome: "sent" },
      ]),
    );
    expect(error.code).toBe("22004");
    expect(error.message).toMatch(/^account_id: /);
    expect(await item(good)).toMatchObject({ sent_status: "sending", lease_owner: A });
    expect((await events()).length).toBe(0);
  });

  it.each([
    [{ mailitem_id: 1, outcome: "sent" }, "22023", /^outcomes: /],
    [[{ outcome: "sent", account_id: 1 }], "22004", /^mailitem_id: /],
    [[{ mailitem_id: 1, outcome: "bogus" }], "22023", /^outcome: /],
  ])("refuses %j with %s", async (outcomes, code, message) => {
    const error = await errorOf(recordOutcomes(s1, A, outcomes));
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
  });
});
