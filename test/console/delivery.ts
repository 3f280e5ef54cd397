// A console test database that really delivers: a TestSmtpServer, an account on it in a public default
// profile, and an in-process sender, with no retry rounds (AccountRetryAttempts 0) so a refused mail
// fails at once.
import type { Sender } from "@pg-dbmail/sender";
import type { TestDatabase, TestRole } from "../support/database.js";
import { configure, profileWith, unique } from "../support/mail.js";
import { addAccount, eventually, startSender } from "../support/sender.js";
import { type ReceivedMail, TestSmtpServer } from "../support/smtp.js";

export interface Delivery {
  smtp: TestSmtpServer;
  sender: Sender;
  profile: string;
  stop(): Promise<void>;
}

export async function startDelivery(db: TestDatabase): Promise<Delivery> {
  await configure(db, "AccountRetryAttempts", "0");
  const smtp = await TestSmtpServer.start();
  const account = unique("console_smtp");
  await addAccount(db, account, smtp);
  const profile = unique("console_default");
  await profileWith(db, profile, [account], true);
  const senderRole: TestRole = await db.createRole("console_sender", { memberOf: ["dbmail_sender"] });
  const sender = await startSender(senderRole);
  return {
    smtp,
    sender,
    profile,
    async stop() {
      await sender.stop(2000);
      await smtp.stop();
    },
  };
}

/** The messages the server received with this subject. */
export const withSubject = (smtp: TestSmtpServer, subject: string): ReceivedMail[] =>
  smtp.received.filter((mail) => mail.parsed.subject === subject);

/** An item's status, read as the superuser. */
export async function statusOf(
  db: TestDatabase,
  id: string,
): Promise<{ sent_status: string; last_error: string | null }> {
  const { rows } = await db.query<{ sent_status: string; last_error: string | null }>(
    "SELECT sent_status, last_error FROM dbmail.mailitems WHERE mailitem_id = $1",
    [id],
  );
  return rows[0] as { sent_status: string; last_error: string | null };
}

/** Waits until the item has reached `status`. */
export function reaches(db: TestDatabase, id: string, status: string): Promise<boolean> {
  return eventually(async () => (await statusOf(db, id)).sent_status === status);
}
