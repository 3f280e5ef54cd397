/**
 * Errors a later attempt can get past: the server is starting up, recovering, shutting down or
 * restarting, has no connection slot free, or the network between is down. The sender waits these out
 * (with backoff) and never exits for them. Anything else is a refusal to act on (a wrong password, a
 * missing schema) or a bug.
 */
const TRANSIENT_SQLSTATES: Record<string, string> = {
  "08000": "connection exception",
  "08001": "the client could not establish a connection",
  "08003": "the connection does not exist",
  "08004": "the server rejected the connection",
  "08006": "the connection failed",
  "40001": "serialization failure",
  "40P01": "deadlock detected",
  "53300": "too many connections",
  "57P01": "the server is shutting down (admin shutdown)",
  "57P02": "the server is shutting down (crash shutdown)",
  "57P03": "the server is starting up or recovering (cannot connect now)",
};

/** Node's codes for a network that is down, refusing, or resetting (the server restarting, a failover). */
const TRANSIENT_NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
  // A host name that does not resolve: a typo stays in the log, retried; a DNS outage passes.
  "ENOTFOUND",
]);

// node-postgres reports a connection lost mid-query, or a connect that timed out, without a code.
const TRANSIENT_MESSAGES =
  /^Connection terminated|^timeout expired|^Client has encountered a connection error/;

export function isTransient(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === "string" && (code in TRANSIENT_SQLSTATES || TRANSIENT_NETWORK_CODES.has(code))) {
    return true;
  }
  return typeof message === "string" && TRANSIENT_MESSAGES.test(message);
}
