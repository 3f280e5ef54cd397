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

/** One line for the event log and last_error: the server's own reply when there is one. */
export function describeSmtpError(error: SmtpError): string {
  const reply = error.response ? error.response.replace(/\s+/g, " ").trim() : undefined;
  const where = error.command ? ` (after ${error.command})` : "";
  const base = reply ?? error.message;
  return error.code ? `${error.code}: ${base}${where}` : `${base}${where}`;
}
