// record_outcome's retrying and failed outcomes (SPEC.md section 5): AccountRetryDelay between rounds,
// the item failed after 1 + AccountRetryAttempts rounds, last_error and the warning and error events.
import { describe, expect, it } from "vitest";
import { configure, first } from "../../../../test/support/mail.js";
import {
  A,
  B,
  backupId,
  claim,
  claimIds,
  db,
  events,
  item,
  makeDue,
  primaryId,
  recordOutcome,
  s1,
  s2,
  send,
  useSenderProtocol,
} from "../support/sender-protocol.js";

useSenderProtocol();

describe("record_outcome: retrying and failed", () => {
  it("puts the item in retrying for AccountRetryDelay (60 s by default) after the first failed round", async () => {
    const id = await send();
    await claim(s1, A);
    expect(await recordOutcome(s1, id, A, "retrying", { error: "421 try later", processId: 5 })).toBe(
      "retrying",
    );
    const row = await item(id);
    expect(row).toMatchObject({
      sent_status: "retrying",
      send_attempts: 1,
      last_error: "421 try later",
      lease_owner: null,
      lease_expires_at: null,
      sent_date: null,
      retry_delay: 60,
    });
    const wait = (row.next_attempt_at?.getTime() ?? 0) - Date.now();
    expect(wait).toBeGreaterThan(50_000);
    expect(wait).toBeLessThanOrEqual(61_000);
    const logged = await events(id);
    expect(logged).toHaveLength(1);
    expect(first(logged)).toMatchObject({ event_type: "warning", sender_id: A, process_id: 5 });
    expect(first(logged).description).toContain("421 try later");
    const unsent = await db.query(
      "SELECT mailitem_id FROM dbmail.sysmail_unsentitems WHERE sent_status = 'retrying'",
    );
    expect(unsent.rows.map((r) => r.mailitem_id)).toEqual([id]);
  });

  it("waits the configured AccountRetryDelay", async () => {
    await configure(db, "AccountRetryDelay", "5");
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "retrying", { error: "timeout" });
    expect((await item(id)).retry_delay).toBe(5);
  });

  it("fails the item after 1 + AccountRetryAttempts rounds (default 1), with one error event", async () => {
    const id = await send();
    await claim(s1, A);
    expect(await recordOutcome(s1, id, A, "retrying", { error: "round one" })).toBe("retrying");
    await makeDue(id);
    expect(await claimIds(s2, B)).toEqual([id]);
    expect(await recordOutcome(s2, id, B, "retrying", { error: "round two" })).toBe("failed");
    const row = await item(id);
    expect(row).toMatchObject({
      sent_status: "failed",
      send_attempts: 2,
      last_error: "round two",
      lease_owner: null,
      next_attempt_at: null,
    });
    expect(row.sent_date).toBeInstanceOf(Date);
    const logged = await events(id);
    expect(logged.map((e) => e.event_type)).toEqual(["warning", "error"]);
    expect(logged.filter((e) => e.event_type === "error")).toHaveLength(1);
    expect(logged[1]?.description).toContain("round two");
    expect(logged[1]?.sender_id).toBe(B);
    const failed = await db.query("SELECT mailitem_id FROM dbmail.sysmail_faileditems");
    expect(failed.rows.map((r) => r.mailitem_id)).toEqual([id]);
    expect(await claimIds(s1, A)).toEqual([]);
  });

  it("fails at the first retrying outcome when AccountRetryAttempts is 0", async () => {
    await configure(db, "AccountRetryAttempts", "0");
    const id = await send();
    await claim(s1, A);
    expect(await recordOutcome(s1, id, A, "retrying", { error: "down" })).toBe("failed");
    expect(await item(id)).toMatchObject({ sent_status: "failed", send_attempts: 1, last_error: "down" });
    expect((await events(id)).map((e) => e.event_type)).toEqual(["error"]);
  });

  it("allows 1 + AccountRetryAttempts rounds when AccountRetryAttempts is 2", async () => {
    await configure(db, "AccountRetryAttempts", "2");
    const id = await send();
    const results: string[] = [];
    for (let round = 0; round < 3; round++) {
      await makeDue(id);
      expect(await claimIds(s1, A)).toEqual([id]);
      results.push(await recordOutcome(s1, id, A, "retrying", { error: `round ${round + 1}` }));
    }
    expect(results).toEqual(["retrying", "retrying", "failed"]);
    expect((await item(id)).send_attempts).toBe(3);
  });

  it("summarises account_errors into last_error when no error text is given", async () => {
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "retrying", {
      accountErrors: [
        { account_id: primaryId, error: "ETIMEDOUT" },
        { account_id: backupId, error: "421 busy" },
      ],
    });
    const { last_error } = await item(id);
    expect(last_error).toContain(`account ${primaryId}: ETIMEDOUT`);
    expect(last_error).toContain(`account ${backupId}: 421 busy`);
  });

  it("fails the item at once on a failed outcome, with an error event and last_error", async () => {
    const id = await send();
    await claim(s1, A);
    expect(await recordOutcome(s1, id, A, "failed", { error: "550 5.1.1 no such user", processId: 3 })).toBe(
      "failed",
    );
    const row = await item(id);
    expect(row).toMatchObject({
      sent_status: "failed",
      send_attempts: 1,
      last_error: "550 5.1.1 no such user",
      lease_owner: null,
      lease_expires_at: null,
    });
    const logged = await events(id);
    expect(logged).toHaveLength(1);
    expect(first(logged)).toMatchObject({
      event_type: "error",
      mailitem_id: id,
      sender_id: A,
      process_id: 3,
    });
    expect(first(logged).description).toContain("550 5.1.1 no such user");
  });
});
