/** Why a migration run was refused or failed; the CLI maps each code to an exit code. */
export type MigrationErrorCode =
  | "DATABASE_AHEAD"
  | "CHECKSUM_MISMATCH"
  | "UNTRACKED_SCHEMA"
  | "LOCK_TIMEOUT"
  | "MIGRATION_FAILED"
  | "EXTENSION_MANAGED";

export class MigrationError extends Error {
  override name = "MigrationError";
  constructor(
    readonly code: MigrationErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
