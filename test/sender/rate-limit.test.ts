// max_messages_per_minute (SPEC.md section 13): the limit holds for all senders of a database together,
// in every 60-second window, as the SMTP server sees the messages arrive; items over it wait, without a
// failure or a retry round, and every one arrives once. Three real senders share one account; the test
// runs a little over a minute, as the window it checks.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole } from "../support/database.js";
import { call, send, uniqueSubject } from "../support/mail.js";
import { addAccount, eventually, startSender } from "../support/sender.js";
import { TestSmtpServer } from "../support/smtp.js";

const LIMIT = 4;
const MAILS = 7;
const WINDOW_MS = 60_000;

let db: TestDatabase;
let role: TestRole;
let smtp: TestSmtpServer;

beforeAll(async () => {
  db = await TestDatabase.create();
  role = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
  smtp = await TestSmtpServer.start();
  await addAccount(db, "limited", smtp, { max_messages_per_minute: LIMIT });
  await call(db, "sysmail_add_profile_sp", { profile_name: "limited" });
  await call(db, "sysmail_add_profileaccount_sp", {
    profile_name: "limited",
    account_name: "limited",
    sequence_number: 1,
  });
});

afterAll(async () => {
  await smtp?.stop();
  await db?.drop();
});

/** The most arrivals within any WINDOW_MS, by the server's clock. */
function busiestWindow(arrivals: number[]): number {
  const sorted = [...arrivals].sort((a, b) => a - b);
  let most = 0;
  for (const [i, start] of sorted.entries()) {
    most = Math.max(most, sorted.slice(i).filter((t) => t < start + WINDOW_MS).length);
  }
  return most;
}

describe("max_messages_per_minute", () => {
  it("three senders together never exceed it in any 60-second window, and every mail arrives once", async () => {
    const senders = await Promise.all([1, 2, 3].map(() => startSender(role, { batchSize: 3 })));
    try {
      const subjects = Array.from({ length: MAILS }, (_, i) => uniqueSubject(`limited ${i}`));
      for (const subject of subjects) {
        await send(db, { profile_name: "limited", recipients: "to@example.org", subject, body: "x" });
      }
      // The first LIMIT go out at once; the rest wait for the window.
      await smtp.waitFor(LIMIT);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      expect(smtp.received).toHaveLength(LIMIT);
      const { rows: waiting } = await db.query<{ sent_status: string; send_attempts: number; due: boolean }>(
        `SELECT sent_status, send_attempts, next_attempt_at > now() + interval '40 seconds' AS due
         FROM dbmail.mailitems WHERE sent_status <> 'sent'`,
      );
      // Waiting is neither a failure nor a round: unsent, no attempt counted, due when the window allows.
      expect(waiting).toEqual(
        Array(MAILS - LIMIT).fill({ sent_status: "unsent", send_attempts: 0, due: true }),
      );

      await smtp.waitFor(MAILS, 90_000);
      await eventually(async () => {
        const { rows } = await db.query<{ n: number }>(
          "SELECT count(*)::integer AS n FROM dbmail.mailitems WHERE sent_status = 'sent'",
        );
        return rows[0]?.n === MAILS;
      });
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(smtp.received.map((m) => m.parsed.subject).sort()).toEqual([...subjects].sort());
      expect(busiestWindow(smtp.received.map((m) => m.at))).toBe(LIMIT);
      const { rows } = await db.query<{ attempts: number[]; retried: number }>(
        `SELECT array_agg(DISTINCT send_attempts) AS attempts,
                (SELECT count(*)::integer FROM dbmail.event_log WHERE description LIKE '%retrying%') AS retried
         FROM dbmail.mailitems`,
      );
      expect(rows[0]).toEqual({ attempts: [1], retried: 0 });
      // The waiting mail went out a minute after the first, not much later.
      const times = smtp.received.map((m) => m.at).sort((a, b) => a - b);
      expect((times.at(-1) ?? 0) - (times[0] ?? 0)).toBeLessThan(WINDOW_MS + 15_000);
    } finally {
      await Promise.all(senders.map((s) => s.stop()));
    }
  }, 150_000);
});
