// The rows of the sender protocol (dbmail.claim_mailitems, sender_accounts, sender_attachments) and the
// outcome it records: what the database side and the SMTP side of the sender share. Types only.

/** An address as dbmail parsed it at enqueue. */
export interface Address {
  name: string | null;
  address: string;
}

/** A claimed mail item, as dbmail.claim_mailitems returns it. */
export interface ClaimedItem {
  mailitem_id: string;
  profile_id: number;
  envelope: { to: Address[]; cc: Address[]; bcc: Address[] };
  subject: string;
  body: string | null;
  body_format: "TEXT" | "HTML";
  importance: "LOW" | "NORMAL" | "HIGH";
  sensitivity: "NORMAL" | "PERSONAL" | "PRIVATE" | "CONFIDENTIAL";
  from_address: string | null;
  reply_to: string | null;
  headers: Record<string, string> | null;
  message_id: string;
  send_attempts: number;
  attachment_count: number;
  /** The claim's proof of the lease: every later call about the item carries it. */
  lease_token: string;
}

/** One account of one profile, in failover order, as dbmail.sender_accounts returns it. */
export interface ProfileAccount {
  profile_id: number;
  profile_name: string;
  account_id: number;
  sequence_number: number;
  is_last_success: boolean;
  account_name: string;
  email_address: string;
  display_name: string | null;
  replyto_address: string | null;
  mailserver_name: string;
  port: number;
  username: string | null;
  password: string | null;
  use_default_credentials: boolean;
  security: "none" | "starttls" | "tls";
  timeout: number | null;
  tls_reject_unauthorized: boolean;
  auth_method: "none" | "password" | "oauth2";
  oauth2_token_url: string | null;
  oauth2_client_id: string | null;
  /** Like every secret here: the value, or its env:/file: reference (see secrets.ts). */
  oauth2_client_secret: string | null;
  oauth2_scope: string | null;
  oauth2_refresh_token: string | null;
  dkim_domain: string | null;
  dkim_selector: string | null;
  dkim_private_key: string | null;
  /** The combined rate of all senders through the account (dbmail.take_send_slot), or no limit. */
  max_messages_per_minute: number | null;
}

/** An attachment of a claimed item. Small ones come with their bytes; larger ones are streamed. */
export interface StoredAttachment {
  attachment_id: string;
  filename: string;
  content_type: string | null;
  /** Bytes. */
  size: number;
  /** The bytes when `size` is at most the inline limit, else null (read with attachmentChunk). */
  content: Buffer | null;
}

/** One SMTP attempt: one account tried in one round (a row of dbmail.attempts). */
export interface Attempt {
  account_id: number;
  /** When the SMTP conversation began (ISO 8601). */
  started_at: string;
  duration_ms: number;
  /** sent; refused: a permanent 5xx refusal; failed: anything else (transient, or the account's fault). */
  outcome: "sent" | "refused" | "failed";
  smtp_code: number | null;
  /** The server's reply, or the error, made safe to store. */
  smtp_response: string;
}

export interface Outcome {
  status: "sent" | "retrying" | "failed";
  accountId?: number;
  smtpResponse?: string;
  error?: string;
  accountErrors: { account_id: number; error: string }[];
  /** Every account tried in this round, in order (none when the round never reached a server). */
  attempts?: Attempt[];
}
