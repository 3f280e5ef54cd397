// A claimed item and a profile's account as the sender gets them from dbmail.claim_mailitems and
// dbmail.sender_accounts, for tests that compose messages without a database; and a reader of the
// encoded words non-ASCII header values become.
import type { ClaimedItem, ProfileAccount } from "../src/rows.js";

export const ACCOUNT: ProfileAccount = {
  profile_id: 1,
  profile_name: "p",
  account_id: 1,
  sequence_number: 1,
  is_last_success: false,
  account_name: "main",
  email_address: "dbmail@example.com",
  display_name: "Database Mail",
  replyto_address: null,
  mailserver_name: "127.0.0.1",
  port: 25,
  username: null,
  password: null,
  use_default_credentials: false,
  security: "none",
  timeout: null,
  tls_reject_unauthorized: true,
  auth_method: "none",
  oauth2_token_url: null,
  oauth2_client_id: null,
  oauth2_client_secret: null,
  oauth2_scope: null,
  oauth2_refresh_token: null,
  dkim_domain: null,
  dkim_selector: null,
  dkim_private_key: null,
  max_messages_per_minute: null,
};

let nextId = 1;
/** A claimed item with a short text body to one recipient, and a mailitem_id of its own. */
export function claimedItem(overrides: Partial<ClaimedItem> = {}): ClaimedItem {
  const id = String(nextId++);
  return {
    mailitem_id: id,
    profile_id: 1,
    envelope: { to: [{ name: null, address: "to@example.org" }], cc: [], bcc: [] },
    subject: "A message",
    body: "Hello,\n\na short body.\n",
    body_format: "TEXT",
    importance: "NORMAL",
    sensitivity: "NORMAL",
    from_address: null,
    reply_to: null,
    headers: null,
    message_id: `<${id}.test@example.com>`,
    send_attempts: 0,
    attachment_count: 0,
    lease_token: "00000000-0000-4000-8000-000000000000",
    ...overrides,
  };
}

/** Decodes RFC 2047 encoded words (UTF-8, B or Q), joining adjacent ones as RFC 2047 says. */
export function decodeWords(value: string): string {
  return value
    .replace(/(=\?[^?]+\?[BbQq]\?[^?]*\?=)\s+(?==\?)/g, "$1")
    .replace(/=\?UTF-8\?([BbQq])\?([^?]*)\?=/gi, (_, encoding: string, text: string) =>
      encoding.toUpperCase() === "B"
        ? Buffer.from(text, "base64").toString("utf8")
        : Buffer.from(
            text
              .replace(/_/g, " ")
              .replace(/=([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))),
            "latin1",
          ).toString("utf8"),
    );
}
