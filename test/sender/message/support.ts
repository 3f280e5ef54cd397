// The setup of the message tests: a sender delivering to one SMTP server through profile "p" (an account
// with display name and reply-to address, the public default) and profile "bare" (an account with
// neither); sending as an application role, finding the message that arrived, and reading its headers as
// they stand in the raw message.
import { createHash } from "node:crypto";
import type { Sender } from "@pg-dbmail/sender";
import type { AddressObject, EmailAddress } from "mailparser";
import type pg from "pg";
import { afterAll, beforeAll } from "vitest";
import { TestDatabase } from "../../support/database.js";
import { type Args, profileWith, type Queryable, send, uniqueSubject } from "../../support/mail.js";
import { addAccount, eventually, startSender } from "../../support/sender.js";
import { type ReceivedMail, TestSmtpServer } from "../../support/smtp.js";

export { decodeWords } from "../../../packages/sender/test/fixtures.js";

export const SENDER_ID = "sender-x";

/** An attachment row as the test stores it (a NULL content type included). */
export interface StoredAttachment {
  filename: string;
  content: Buffer;
  contentType: string | null;
}

export interface SentItem {
  mailitem_id: string;
  message_id: string;
  sent_status: string;
  sent_account_id: number;
  smtp_response: string | null;
  sent_by: string | null;
  send_attempts: number;
  sent_date: Date | null;
  last_error: string | null;
}

/** Registers the hooks of a message test file and returns its helpers. */
export function useMessages() {
  let db: TestDatabase;
  let smtp: TestSmtpServer;
  let sender: Sender;
  let app: pg.Client;
  let admin: pg.Client;
  let accountId: number;

  beforeAll(async () => {
    db = await TestDatabase.create();
    smtp = await TestSmtpServer.start();
    const senderRole = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
    app = await db.connect(await db.createRole("app", { memberOf: ["dbmail_user"] }));
    admin = await db.connect();
    accountId = await addAccount(db, "main", smtp, {
      display_name: "Database Mail",
      replyto_address: "replies@example.com",
    });
    await profileWith(db, "p", ["main"], true);
    // A second profile whose account has neither a display name nor a reply-to address.
    await addAccount(db, "plain", smtp);
    await profileWith(db, "bare", ["plain"], false);
    sender = await startSender(senderRole, { senderId: SENDER_ID });
  });

  afterAll(async () => {
    await sender?.stop();
    await smtp?.stop();
    await db?.drop();
  });

  /** Queues a mail as `client` (the app role unless given); returns its mailitem_id. */
  const sendAs = (args: Args, client: Queryable = app) => send(client, args);

  /** The first received message matching `match`, waiting for it. */
  const receivedWhere = (match: (m: ReceivedMail) => boolean): Promise<ReceivedMail> =>
    eventually(async () => smtp.received.find(match));

  const receivedWithSubject = (subject: string) => receivedWhere((m) => m.parsed.subject === subject);

  /** Sends as the app role and waits for the message at the SMTP server. */
  async function sendAndReceive(args: Args): Promise<{ id: string; mail: ReceivedMail }> {
    const subject = (args.subject as string | undefined) ?? uniqueSubject("message");
    const id = await sendAs({ recipients: "to@example.org", ...args, subject });
    return { id, mail: await receivedWithSubject(subject) };
  }

  /**
   * Queues a message as superuser and adds its attachment rows in the same transaction (so the sender
   * cannot claim the item before they exist), stored exactly as given: a NULL content type stays NULL.
   */
  async function sendWithAttachments(
    args: Args,
    attachments: StoredAttachment[],
  ): Promise<{ id: string; mail: ReceivedMail }> {
    const subject = uniqueSubject((args.subject as string | undefined) ?? "attachments");
    await admin.query("BEGIN");
    try {
      const id = await sendAs({ recipients: "to@example.org", ...args, subject }, admin);
      for (const a of attachments) {
        await admin.query(
          `INSERT INTO dbmail.attachments (mailitem_id, filename, content_type, filesize, attachment, last_mod_user)
           VALUES ($1, $2, $3, $4, $5, current_user)`,
          [id, a.filename, a.contentType, a.content.length, a.content],
        );
      }
      await admin.query("COMMIT");
      return { id, mail: await receivedWithSubject(subject) };
    } catch (error) {
      await admin.query("ROLLBACK").catch(() => {});
      throw error;
    }
  }

  /** The item once it is recorded 'sent', read as the app role. */
  function itemRow(id: string): Promise<SentItem> {
    return eventually(async () => {
      const { rows } = await app.query<SentItem>(
        `SELECT mailitem_id::text, message_id, sent_status, sent_account_id, smtp_response, sent_by, send_attempts,
                sent_date, last_error
         FROM dbmail.sysmail_allitems WHERE mailitem_id = $1 AND sent_status = 'sent'`,
        [id],
      );
      return rows[0];
    });
  }

  return {
    get smtp() {
      return smtp;
    },
    get accountId() {
      return accountId;
    },
    send: sendAs,
    receivedWhere,
    receivedWithSubject,
    sendAndReceive,
    sendWithAttachments,
    itemRow,
  };
}

export function addresses(field: AddressObject | AddressObject[] | undefined): EmailAddress[] {
  if (!field) return [];
  return (Array.isArray(field) ? field : [field]).flatMap((a) => a.value);
}

export function header(mail: ReceivedMail, name: string): unknown {
  return mail.parsed.headers.get(name.toLowerCase());
}

/** The value of a header as it stands in the message (unfolded, not decoded); mailparser folds some away. */
export function headerLine(mail: ReceivedMail, name: string): string | undefined {
  const line = mail.parsed.headerLines.find((h) => h.key === name.toLowerCase())?.line;
  return line
    ?.slice(line.indexOf(":") + 1)
    .replace(/\r?\n[ \t]+/g, " ")
    .trim();
}

/** The raw header block (up to the first empty line), as text. */
export function rawHeaders(mail: ReceivedMail): string {
  const raw = mail.raw.toString("latin1");
  const end = raw.search(/\r?\n\r?\n/);
  return end < 0 ? raw : raw.slice(0, end);
}

export function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}
