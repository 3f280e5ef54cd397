import { convert } from "html-to-text";
import type Mail from "nodemailer/lib/mailer/index.js";
import type { Address, ClaimedItem, ProfileAccount, StoredAttachment } from "../sender/queries.js";

// RFC 2156's Sensitivity values; NORMAL means no header at all.
const SENSITIVITY_HEADER: Record<ClaimedItem["sensitivity"], string | undefined> = {
  NORMAL: undefined,
  PERSONAL: "Personal",
  PRIVATE: "Private",
  CONFIDENTIAL: "Company-Confidential",
};

const PRIORITY: Record<ClaimedItem["importance"], "high" | "normal" | "low" | undefined> = {
  HIGH: "high",
  NORMAL: undefined,
  LOW: "low",
};

function toMailAddress(address: Address): Mail.Address {
  return { name: address.name ?? "", address: address.address };
}

/** The message for one item sent through one account. Bcc goes only into the envelope. */
export function composeMessage(
  item: ClaimedItem,
  account: ProfileAccount,
  attachments: StoredAttachment[],
): Mail.Options {
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
      ? { html: item.body ?? "", text: convert(item.body ?? "", { wordwrap: 78 }) }
      : { text: item.body ?? "" }),
    priority: PRIORITY[item.importance],
    messageId: item.message_id,
    headers: {
      ...(item.headers ?? {}),
      "X-DBMail-Mailitem-Id": item.mailitem_id,
      ...(sensitivity ? { Sensitivity: sensitivity } : {}),
    },
    attachments: attachments.map((a) => ({
      filename: a.filename,
      content: a.attachment,
      ...(a.content_type ? { contentType: a.content_type } : {}),
    })),
    // Content comes only from the database: never let a message make the sender read files or URLs.
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}
