// The SMTP attempts a sender reports with an outcome (SPEC section 12): record_outcome and record_outcomes
// turn each into a row of dbmail.attempts, seen through sysmail_attempts; older calls without attempts
// still work and record none; bad attempts are refused and change nothing; an outcome whose lease is lost
// records no attempt. End to end with a real sender: test/sender/attempts.test.ts.
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import { first, snapshot } from "../../../../test/support/mail.js";
import { untilBlocked } from "../support/boundaries.js";
import {
  A,
  B,
  backupId,
  claim,
  db,
  expireLease,
  primaryId,
  recordOutcome,
  recordOutcomes,
  s1,
  s2,
  send,
  tokenOf,
  useSenderProtocol,
} from "../support/sender-protocol.js";

useSenderProtocol();

interface AttemptRow {
  mailitem_id: string;
  attempt: number;
  account_id: number | null;
  started_at: Date;
  duration_ms: number;
  outcome: string;
  smtp_code: number | null;
  smtp_response: string | null;
  sent_by: string | null;
}

async function attempts(id: string): Promise<AttemptRow[]> {
  const { rows } = await db.query<AttemptRow>(
    "SELECT * FROM dbmail.sysmail_attempts WHERE mailitem_id = $1 ORDER BY started_at, account_id",
    [id],
  );
  return rows;
}

const refusedBy = (accountId: number, startedAt: string) => ({
  account_id: accountId,
  started_at: startedAt,
  duration_ms: 35,
  outcome: "failed",
  smtp_code: 451,
  smtp_response: "451 4.3.0 try later (after RCPT TO)",
});

describe("record_outcome with attempts", () => {
  it("records one row per attempt, numbered with the round, with the sender as sent_by", async () => {
    const id = await send();
    await claim(s1, A);
    const status = await recordOutcome(s1, id, A, "sent", {
      accountId: backupId,
      smtpResponse: "250 2.0.0 queued",
      accountErrors: [{ account_id: primaryId, error: "451 4.3.0 try later (after RCPT TO)" }],
      attempts: [
        refusedBy(primaryId, "2026-01-02T03:04:05.000Z"),
        {
          account_id: backupId,
          started_at: "2026-01-02T03:04:05.100Z",
          duration_ms: 12,
          outcome: "sent",
          smtp_code: 250,
          smtp_response: "250 2.0.0 queued",
        },
      ],
    });
    expect(status).toBe("sent");
    expect(await attempts(id)).toEqual([
      {
        mailitem_id: id,
        attempt: 1,
        account_id: primaryId,
        started_at: new Date("2026-01-02T03:04:05.000Z"),
        duration_ms: 35,
        outcome: "failed",
        smtp_code: 451,
        smtp_response: "451 4.3.0 try later (after RCPT TO)",
        sent_by: A,
      },
      {
        mailitem_id: id,
        attempt: 1,
        account_id: backupId,
        started_at: new Date("2026-01-02T03:04:05.100Z"),
        duration_ms: 12,
        outcome: "sent",
        smtp_code: 250,
        smtp_response: "250 2.0.0 queued",
        sent_by: A,
      },
    ]);
  });

  it("numbers the attempts of a later round with that round", async () => {
    const id = await send();
    await claim(s1, A);
    const first = [refusedBy(primaryId, "2026-01-02T03:00:00Z")];
    expect(await recordOutcome(s1, id, A, "retrying", { error: "e", attempts: first })).toBe("retrying");
    await db.query("UPDATE dbmail.mailitems SET next_attempt_at = now() WHERE mailitem_id = $1", [id]);
    await claim(s2, B);
    const second = [{ ...refusedBy(primaryId, "2026-01-02T03:01:00Z"), outcome: "refused", smtp_code: 550 }];
    expect(await recordOutcome(s2, id, B, "failed", { error: "e", attempts: second })).toBe("failed");
    const rows = await attempts(id);
    expect(rows.map((r) => [r.attempt, r.outcome, r.smtp_code, r.sent_by])).toEqual([
      [1, "failed", 451, A],
      [2, "refused", 550, B],
    ]);
  });

  it("records none without attempts: the older arguments work as before", async () => {
    const id = await send();
    await claim(s1, A);
    const { rows } = await s1.query<{ s: string }>(
      "SELECT dbmail.record_outcome($1, $2, $3, 'sent', $4, '250 OK') AS s",
      [id, A, tokenOf(A, id), primaryId],
    );
    expect(rows[0]?.s).toBe("sent");
    expect(await attempts(id)).toEqual([]);
  });

  it("records nothing when the lease is lost", async () => {
    const id = await send();
    await claim(s1, A);
    await expireLease(id);
    await claim(s2, B);
    const status = await recordOutcome(s1, id, A, "sent", {
      accountId: primaryId,
      attempts: [{ ...refusedBy(primaryId, "2026-01-02T03:00:00Z"), outcome: "sent", smtp_code: 250 }],
    });
    expect(status).toBe("lease_lost");
    expect(await attempts(id)).toEqual([]);
  });

  it.each([
    ["not an array", { account_id: 1 }, /^attempts: ".*": must be a JSON array$/],
    ["an entry without started_at", [{ duration_ms: 1, outcome: "sent" }], /each attempt is an object/],
    [
      "a negative duration",
      [{ started_at: "2026-01-01T00:00:00Z", duration_ms: -1, outcome: "sent" }],
      /duration_ms of 0 or more/,
    ],
    [
      "a duration that is text",
      [{ started_at: "2026-01-01T00:00:00Z", duration_ms: "1", outcome: "sent" }],
      /each attempt/,
    ],
    [
      "an unknown outcome",
      [{ started_at: "2026-01-01T00:00:00Z", duration_ms: 1, outcome: "bounced" }],
      /sent, refused or failed/,
    ],
    ["an entry that is not an object", [42], /each attempt is an object/],
  ])("refuses attempts that are %s, changing nothing", async (_label, bad, message) => {
    const id = await send();
    await claim(s1, A);
    const before = await snapshot(db);
    const error = await errorOf(recordOutcome(s1, id, A, "sent", { accountId: primaryId, attempts: bad }));
    expect(error.code).toBe("22023");
    expect(error.message).toMatch(message);
    expect(await snapshot(db)).toEqual(before);
  });
});

describe("record_outcomes with attempts", () => {
  it("records each outcome's attempts", async () => {
    const one = await send();
    const two = await send();
    await claim(s1, A);
    const statuses = await recordOutcomes(s1, A, [
      {
        mailitem_id: one,
        outcome: "sent",
        account_id: primaryId,
        attempts: [{ ...refusedBy(primaryId, "2026-01-02T03:00:00Z"), outcome: "sent", smtp_code: 250 }],
      },
      {
        mailitem_id: two,
        outcome: "failed",
        error: "550",
        attempts: [
          { ...refusedBy(primaryId, "2026-01-02T03:00:00Z"), outcome: "refused", smtp_code: 550 },
          { ...refusedBy(backupId, "2026-01-02T03:00:01Z"), outcome: "refused", smtp_code: 550 },
        ],
      },
    ]);
    expect(statuses).toEqual([
      [one, "sent"],
      [two, "failed"],
    ]);
    expect((await attempts(one)).map((r) => [r.account_id, r.outcome])).toEqual([[primaryId, "sent"]]);
    expect((await attempts(two)).map((r) => [r.account_id, r.outcome])).toEqual([
      [primaryId, "refused"],
      [backupId, "refused"],
    ]);
  });

  it("deletes an item's attempts with the item", async () => {
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "sent", {
      accountId: primaryId,
      attempts: [{ ...refusedBy(primaryId, "2026-01-02T03:00:00Z"), outcome: "sent", smtp_code: 250 }],
    });
    expect(await attempts(id)).toHaveLength(1);
    await db.query("SELECT dbmail.sysmail_delete_mailitems_sp(sent_status => 'sent')");
    const { rows } = await db.query("SELECT count(*)::int AS n FROM dbmail.attempts");
    expect(rows[0]?.n).toBe(0);
  });

  it("deletes the attempts a sender commits while the deletion waits for the item", async () => {
    const id = await send();
    await claim(s1, A);
    // The sender reports first and holds the item's lock; the deletion (by date: the row it reads is still
    // 'sending') waits for it, then must also remove the attempts that were committed meanwhile.
    await s1.query("BEGIN");
    await recordOutcome(s1, id, A, "failed", {
      error: "550 no",
      attempts: [refusedBy(primaryId, "2026-01-02T03:00:00Z")],
    });
    const admin = await db.connect();
    try {
      const pid = first((await admin.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows).pid;
      const deleting = admin.query(
        "SELECT dbmail.sysmail_delete_mailitems_sp(sent_before => now() + interval '1 hour') AS n",
      );
      await untilBlocked(db, pid);
      await s1.query("COMMIT");
      expect(first((await deleting).rows).n).toBe("1");
    } finally {
      await admin.end();
    }
    const { rows } = await db.query<{ mailitem_id: string }>("SELECT mailitem_id::text FROM dbmail.attempts");
    expect(rows).toEqual([]);
  });
});
