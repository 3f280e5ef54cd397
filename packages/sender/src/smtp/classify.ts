import { safeText } from "../safe-text.js";

/** What nodemailer tells about a failed SMTP conversation. */
export interface SmtpError {
  message: string;
  code?: string;
  responseCode?: number;
  command?: string;
  response?: string;
}

/**
 * A permanent failure is one no other account or later attempt can fix: the server refused the
 * recipients or the message itself with a 5xx reply. Everything else (4xx, network, timeouts, TLS,
 * authentication, a 5xx to MAIL FROM) is a problem of this account or this moment, worth another
 * account or another round.
 */
export function isPermanent(error: SmtpError): boolean {
  const code = error.responseCode;
  if (code === undefined || code < 500 || code >= 600) return false;
  // nodemailer reports a refused MAIL FROM like a refused recipient; the sender address is the account's.
  if (error.command === "MAIL FROM") return false;
  return error.code === "EENVELOPE" || error.code === "EMESSAGE";
}

/**
 * One line for the event log and last_error: the server's own reply when there is one, made safe to
 * store (a server may say anything, NUL and escape sequences included).
 */
export function describeSmtpError(error: SmtpError): string {
  const where = error.command ? ` (after ${error.command})` : "";
  const base = serverText(error.response || error.message || "no reply");
  return error.code ? `${error.code}: ${base}${where}` : `${base}${where}`;
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
