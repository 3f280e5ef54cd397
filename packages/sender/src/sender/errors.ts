/** Why a database cannot be served; the CLI maps each code to its exit code (exit-codes.ts). */
export type RefusalCode =
  | "LOGIN_REFUSED"
  | "NO_DATABASE"
  | "NOT_A_SENDER"
  | "SCHEMA_MISSING"
  | "SCHEMA_OLDER"
  | "SCHEMA_NEWER";

/**
 * A database the sender can reach but may not or cannot serve: retrying does not help until someone
 * acts (grants a role, runs dbmail migrate, upgrades the sender). The message says what to do.
 */
export class DatabaseRefusedError extends Error {
  override name = "DatabaseRefusedError";
  constructor(
    readonly code: RefusalCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
