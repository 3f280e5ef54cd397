import type { Readable } from "node:stream";
import { convert } from "html-to-text";
import type Mail from "nodemailer/lib/mailer/index.js";
import type { Address, ClaimedItem, ProfileAccount } from "../rows.js";
import { composeRawMessage, type MessageFields } from "./raw-message.js";

/**
 * An attachment as a message takes it: its bytes, or a stream that reads them (from the database, a
 * piece at a time) while the message is being sent. A stream is read once: every message gets its own.
 */
export interface MessageAttachment {
  filename: string;
  contentType: string | null;
  content: Buffer | Readable;
}

// RFC 2156's Sensitivity values; NORMAL means no header at all.
const SENSITIVITY_HEADER: Record<ClaimedItem["sensitivity"], string | undefined> = {
  NORMAL: undefined,
  PERSONAL: "Personal",
  PRIVATE: "Private",
  CONFIDENTIAL: "Company-Confidential",
};

const PRIORITY: Record<ClaimedItem["importance"], "high" | "low" | undefined> = {
  HIGH: "high",
  NORMAL: undefined,
  LOW: "low",
};

/**
 * How the plain-text part of an HTML mail is derived: tables (a query result with
 * query_result_format HTML, say) become aligned columns, their header cells as written, instead of
 * cells run together.
 */
const HTML_TO_TEXT = {
  wordwrap: 78,
  selectors: [
    {
      selector: "table",
      format: "dataTable",
      options: { uppercaseHeaderCells: false, leadingLineBreaks: 1 },
    },
  ],
};

function toMailAddress(address: Address): Mail.Address {
  return { name: address.name ?? "", address: address.address };
}

/** The fields of the message for one item sent through one account. Bcc goes only into the envelope. */
export function messageFields(item: ClaimedItem, account: ProfileAccount): MessageFields {
  const sensitivity = SENSITIVITY_HEADER[item.sensitivity];
  const html = item.body_format === "HTML";
  return {
    from: item.from_address ?? { name: account.display_name ?? "", address: account.email_address },
    replyTo: item.reply_to ?? account.replyto_address ?? undefined,
    to: item.envelope.to.map(toMailAddress),
    cc: item.envelope.cc.map(toMailAddress),
    bcc: item.envelope.bcc.map(toMailAddress),
    subject: item.subject,
    // HTML goes out as multipart/alternative with a plain-text part for clients that show no HTML.
    ...(html
      ? { html: item.body ?? "", text: convert(item.body ?? "", HTML_TO_TEXT) }
      : { text: item.body ?? "" }),
    priority: PRIORITY[item.importance],
    messageId: item.message_id,
    headers: {
      ...(item.headers ?? {}),
      "X-DBMail-Mailitem-Id": item.mailitem_id,
      ...(sensitivity ? { Sensitivity: sensitivity } : {}),
    },
  };
}

// Content comes only from the database: never let a message make the sender read files or URLs.
const NO_FILES_OR_URLS = { disableFileAccess: true, disableUrlAccess: true } as const;

/** The message for one item sent through one account, as nodemailer composes it (MailComposer). */
export function composeMessage(
  item: ClaimedItem,
  account: ProfileAccount,
  attachments: MessageAttachment[],
): Mail.Options {
  return {
    ...messageFields(item, account),
    attachments: attachments.map((a) => ({
      filename: a.filename,
      content: a.content,
      ...(a.contentType ? { contentType: a.contentType } : {}),
    })),
    ...NO_FILES_OR_URLS,
  };
}

/**
 * The message for one item, composed the cheapest way that yields the same bytes: without attachments
 * (the common case) directly into a finished message (see raw-message.ts), which costs a fraction of
 * nodemailer's MIME tree and streams; with attachments through nodemailer's MailComposer.
 */
export function composeForSending(
  item: ClaimedItem,
  account: ProfileAccount,
  attachments: MessageAttachment[],
): Mail.Options {
  if (attachments.length > 0) return composeMessage(item, account, attachments);
  const { raw, envelope, messageId } = composeRawMessage(messageFields(item, account));
  return { raw, envelope, messageId, ...NO_FILES_OR_URLS };
}
