import { safeText } from "../safe-text.js";

/** What nodemailer tells about a failed SMTP conversation. */
export interface SmtpError {
  message: string;
  code?: string;
  /** Set by nodemailer when it wraps an error in its own code: an OAuth2 token error becomes EAUTH. */
  originalCode?: string;
  responseCode?: number;
  command?: string;
  response?: string;
}

/**
 * What a failed attempt says about the message and the account, in three verdicts:
 * - `permanent`: the server refused the recipients or the message itself with a 5xx reply; no other
 *   account or later round will do better, so the item fails at once when every account says so;
 * - `account`: this account cannot send at all (login, TLS, its configuration): another account may,
 *   and an operator must act;
 * - `transient`: this moment (4xx, network, timeouts, a protocol hiccup): another account or a later
 *   round may succeed.
 * Only `permanent` changes what happens to the item; `account` is what an operator is told to fix.
 */
export type Verdict = "permanent" | "account" | "transient";

/** nodemailer's error codes (nodemailer/lib/errors), by what they say about the account. */
const ACCOUNT_CODES = new Set([
  "EAUTH", // the server refused the login
  "ENOAUTH", // no credentials for a server that wants them
  "EOAUTH2", // no OAuth2 access token could be had
  "ETLS", // the TLS handshake or STARTTLS failed (certificate, protocol)
  "EREQUIRETLS", // the server cannot keep the message on TLS
  "ECONFIG", // the transport's settings are invalid
  "EPROXY",
]);
const RECIPIENT_OR_MESSAGE_CODES = new Set(["EENVELOPE", "EMESSAGE"]);

export function verdictOf(error: SmtpError): Verdict {
  // The OAuth2 token endpoint could not be reached or failed: a later login may get a token.
  if (error.originalCode === "ETOKENENDPOINT") return "transient";
  if (error.originalCode === "EOAUTH2") return "account";
  if (error.code && ACCOUNT_CODES.has(error.code)) return "account";
  const reply = error.responseCode;
  if (reply === undefined || reply < 500 || reply >= 600) return "transient";
  // nodemailer reports a refused MAIL FROM like a refused recipient; the sender address is the account's.
  if (error.command === "MAIL FROM") return "account";
  return error.code && RECIPIENT_OR_MESSAGE_CODES.has(error.code) ? "permanent" : "transient";
}

/**
 * One line for the event log and last_error: the server's own reply when there is one, made safe to
 * store (a server may say anything, NUL and escape sequences included).
 */
export function describeSmtpError(error: SmtpError): string {
  const where = error.command ? ` (after ${error.command})` : "";
  const base = serverText(error.response || error.message || "no reply");
  // An OAuth2 token error says more than the EAUTH nodemailer wraps it in.
  const code = error.originalCode?.match(/^E(TOKENENDPOINT|OAUTH2)$/) ? error.originalCode : error.code;
  return code ? `${code}: ${base}${where}` : `${base}${where}`;
}

/**
 * What an SMTP server said, as text safe to store and show. nodemailer hands replies over decoded byte
 * for byte (latin1); servers that say more than ASCII speak UTF-8 (RFC 6531), so the bytes are read as
 * UTF-8 again (what is not UTF-8 becomes U+FFFD), then made safe (see safeText).
 */
export function serverText(reply: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: byte-for-byte text is any of 0x00-0xff
  const bytes = /^[\u0000-\u00ff]*$/.test(reply) ? Buffer.from(reply, "latin1").toString("utf8") : reply;
  return safeText(bytes);
}
