// record_outcome (SPEC.md sections 5, 6 and 7): a sent outcome, the sticky account and the events it
// writes; lease_lost for a sender that no longer holds the item; bad arguments refused. Retrying and
// failed outcomes: retries.test.ts.
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import { configure, first } from "../../../../test/support/mail.js";
import {
  A,
  type AccountRow,
  B,
  backupId,
  claim,
  claimIds,
  db,
  events,
  expireLease,
  item,
  primaryId,
  profileId,
  recordOutcome,
  s1,
  s2,
  send,
  senderRole,
  useSenderProtocol,
} from "../support/sender-protocol.js";

useSenderProtocol();

describe("record_outcome: sent", () => {
  it("marks the item sent with its account, response and sender, and clears the lease", async () => {
    const id = await send();
    await claim(s1, A);
    expect(
      await recordOutcome(s1, id, A, "sent", {
        accountId: primaryId,
        smtpResponse: "250 2.0.0 OK queued",
        processId: 77,
      }),
    ).toBe("sent");
    const row = await item(id);
    expect(row).toMatchObject({
      sent_status: "sent",
      sent_account_id: primaryId,
      smtp_response: "250 2.0.0 OK queued",
      sent_by: A,
      send_attempts: 1,
      lease_owner: null,
      lease_expires_at: null,
      next_attempt_at: null,
      // The sender's own login, not the owner of the SECURITY DEFINER functions.
      last_mod_user: senderRole,
    });
    expect(row.sent_date).toBeInstanceOf(Date);
    const { rows } = await db.query("SELECT mailitem_id FROM dbmail.sysmail_sentitems");
    expect(rows.map((r) => r.mailitem_id)).toEqual([id]);
  });

  it("makes the account sticky for its profile (sender_accounts().is_last_success)", async () => {
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "sent", { accountId: backupId });
    const { rows } = await s1.query<AccountRow>(
      "SELECT * FROM dbmail.sender_accounts() WHERE profile_name = 'p'",
    );
    expect(rows.map((r) => [r.account_id, r.is_last_success])).toEqual([
      [primaryId, false],
      [backupId, true],
    ]);
    const profile = await db.query<{ a: number }>(
      "SELECT last_success_account_id AS a FROM dbmail.profiles WHERE profile_id = $1",
      [profileId],
    );
    expect(first(profile.rows).a).toBe(backupId);
  });

  it("moves the sticky account when a later message is sent through another one", async () => {
    const sentFirst = await send();
    const second = await send();
    await claim(s1, A);
    await recordOutcome(s1, sentFirst, A, "sent", { accountId: backupId });
    await recordOutcome(s1, second, A, "sent", { accountId: primaryId });
    const { rows } = await s1.query<AccountRow>(
      "SELECT * FROM dbmail.sender_accounts() WHERE profile_name = 'p' AND is_last_success",
    );
    expect(rows.map((r) => r.account_id)).toEqual([primaryId]);
  });

  it("logs account_errors given with a sent outcome as warnings carrying their account", async () => {
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "sent", {
      accountId: backupId,
      accountErrors: [{ account_id: primaryId, error: "connect ECONNREFUSED 127.0.0.1:587" }],
      processId: 4242,
    });
    const logged = await events(id);
    expect(logged).toHaveLength(1);
    expect(first(logged)).toMatchObject({
      event_type: "warning",
      mailitem_id: id,
      account_id: primaryId,
      process_id: 4242,
      sender_id: A,
      last_mod_user: senderRole,
    });
    expect(first(logged).description).toContain("ECONNREFUSED");
  });

  it("writes no success event at LoggingLevel 2", async () => {
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "sent", { accountId: primaryId });
    expect(await events(id)).toEqual([]);
  });

  it("writes a success event at LoggingLevel 3", async () => {
    await configure(db, "LoggingLevel", "3");
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "sent", { accountId: primaryId, smtpResponse: "250 OK", processId: 9 });
    const logged = await events(id);
    expect(logged).toHaveLength(1);
    expect(first(logged)).toMatchObject({
      event_type: "success",
      account_id: primaryId,
      process_id: 9,
      sender_id: A,
    });
    expect(first(logged).description).toContain("250 OK");
  });

  it("returns lease_lost for a second outcome of an item already sent, changing nothing", async () => {
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "sent", { accountId: primaryId, smtpResponse: "250 first" });
    expect(await recordOutcome(s1, id, A, "failed", { error: "late" })).toBe("lease_lost");
    const row = await item(id);
    expect(row).toMatchObject({
      sent_status: "sent",
      smtp_response: "250 first",
      send_attempts: 1,
      last_error: null,
    });
  });
});

describe("record_outcome: lease_lost and bad arguments", () => {
  it("returns lease_lost to a sender that does not hold the item, changing nothing", async () => {
    const id = await send();
    await claim(s1, A);
    expect(await recordOutcome(s2, id, B, "sent", { accountId: primaryId })).toBe("lease_lost");
    expect(await recordOutcome(s2, id, B, "failed", { error: "x" })).toBe("lease_lost");
    const row = await item(id);
    expect(row).toMatchObject({ sent_status: "sending", lease_owner: A, send_attempts: 0, sent_by: null });
    expect(await events(id)).toEqual([]);
    expect(await recordOutcome(s1, id, A, "sent", { accountId: primaryId })).toBe("sent");
  });

  it("returns lease_lost for an item that was never claimed", async () => {
    const id = await send();
    expect(await recordOutcome(s1, id, A, "sent", { accountId: primaryId })).toBe("lease_lost");
    expect((await item(id)).sent_status).toBe("unsent");
  });

  it("returns lease_lost to the first sender after another sender reclaimed the expired lease", async () => {
    const id = await send();
    await claim(s1, A);
    await expireLease(id);
    await claim(s2, B);
    expect(await recordOutcome(s1, id, A, "sent", { accountId: primaryId, smtpResponse: "250 late" })).toBe(
      "lease_lost",
    );
    const row = await item(id);
    expect(row).toMatchObject({
      sent_status: "sending",
      lease_owner: B,
      send_attempts: 0,
      smtp_response: null,
    });
    expect(await recordOutcome(s2, id, B, "sent", { accountId: backupId })).toBe("sent");
    expect((await item(id)).sent_by).toBe(B);
  });

  it("still accepts the outcome of a sender whose lease ran out but was not reclaimed", async () => {
    const id = await send();
    await claim(s1, A);
    await expireLease(id);
    expect(await recordOutcome(s1, id, A, "sent", { accountId: primaryId })).toBe("sent");
    expect(await claimIds(s2, B)).toEqual([]);
  });

  it("returns lease_lost for an item deleted while it was being sent", async () => {
    const id = await send();
    await claim(s1, A);
    await db.query("SELECT dbmail.sysmail_delete_mailitems_sp(sent_status => 'sending')");
    expect(await recordOutcome(s1, id, A, "sent", { accountId: primaryId })).toBe("lease_lost");
    expect(await recordOutcome(s1, id, A, "retrying", { error: "x" })).toBe("lease_lost");
    const { rows } = await db.query("SELECT FROM dbmail.mailitems WHERE mailitem_id = $1", [id]);
    expect(rows).toHaveLength(0);
  });

  it.each(["bogus", "SENT ", null])("refuses outcome %s with 22023", async (outcome) => {
    const id = await send();
    await claim(s1, A);
    const error = await errorOf(recordOutcome(s1, id, A, outcome, { accountId: primaryId }));
    expect(error.code).toBe("22023");
    expect(error.message).toMatch(/^outcome: /);
    expect((await item(id)).sent_status).toBe("sending");
  });

  it("refuses a sent outcome without account_id with 22004", async () => {
    const id = await send();
    await claim(s1, A);
    const error = await errorOf(recordOutcome(s1, id, A, "sent"));
    expect(error.code).toBe("22004");
    expect(error.message).toMatch(/^account_id: /);
    expect((await item(id)).sent_status).toBe("sending");
  });

  it.each([{ account_id: 1, error: "x" }, "oops", 42])(
    "refuses account_errors %j (not an array) with 22023",
    async (accountErrors) => {
      const id = await send();
      await claim(s1, A);
      const error = await errorOf(recordOutcome(s1, id, A, "retrying", { error: "e", accountErrors }));
      expect(error.code).toBe("22023");
      expect(error.message).toMatch(/^account_errors: /);
      expect(await item(id)).toMatchObject({ sent_status: "sending", send_attempts: 0 });
    },
  );
});
