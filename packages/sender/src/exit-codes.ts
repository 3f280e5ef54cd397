import type { MigrationErrorCode } from "@pg-dbmail/sql";
import type { RefusalCode } from "./sender/errors.js";

/** The dbmail CLI's exit codes (documented in docs/cli.md). */
export const ExitCode = {
  ok: 0,
  /** Something unexpected; the message says what. */
  failure: 1,
  /** Bad command line: unknown command or option, missing value. */
  usage: 2,
  /** The database could not be reached, refused the login, or the login lacks the dbmail role needed. */
  connection: 3,
  /** The database's schema is newer than this pg-dbmail. */
  databaseAhead: 4,
  /** An applied migration's file changed since it was applied. */
  checksumMismatch: 5,
  /** Schema dbmail exists but dbmail.migrations records no migration (installed by some other means). */
  untrackedSchema: 6,
  /** Another migration held the lock too long. */
  lockTimeout: 7,
  /** A migration failed and was rolled back. */
  migrationFailed: 8,
  /** Schema dbmail is missing from the database, or older than this pg-dbmail: run dbmail migrate. */
  notInstalled: 9,
  /** send-test: the test mail failed. */
  testMailFailed: 10,
  /** send-test: no outcome within --timeout. */
  testMailTimeout: 11,
  /** dev: @pg-dbmail/dev is not installed. */
  devNotInstalled: 12,
  /** dev: the data directory is in use by another dbmail dev (or a PostgreSQL one left running). */
  devDataDirInUse: 13,
  /** start: --http cannot listen on its address (the port is in use, or the address is not this host's). */
  httpUnavailable: 14,
  /** console: @pg-dbmail/console is not installed. */
  consoleNotInstalled: 15,
  /** extension install: pg_config is missing or fails, or its extension directory cannot be written. */
  extensionInstallFailed: 16,
  /** migrate: schema dbmail is the extension pg_dbmail; ALTER EXTENSION pg_dbmail UPDATE upgrades it. */
  extensionManaged: 17,
} as const;

export const migrationExitCodes: Record<MigrationErrorCode, number> = {
  DATABASE_AHEAD: ExitCode.databaseAhead,
  CHECKSUM_MISMATCH: ExitCode.checksumMismatch,
  UNTRACKED_SCHEMA: ExitCode.untrackedSchema,
  LOCK_TIMEOUT: ExitCode.lockTimeout,
  MIGRATION_FAILED: ExitCode.migrationFailed,
  EXTENSION_MANAGED: ExitCode.extensionManaged,
};

export const refusalExitCodes: Record<RefusalCode, number> = {
  LOGIN_REFUSED: ExitCode.connection,
  NO_DATABASE: ExitCode.connection,
  NOT_A_SENDER: ExitCode.connection,
  SCHEMA_MISSING: ExitCode.notInstalled,
  SCHEMA_OLDER: ExitCode.notInstalled,
  SCHEMA_NEWER: ExitCode.databaseAhead,
};

/** An error the CLI reports as one line and exits with `exitCode`. */
export class CliError extends Error {
  override name = "CliError";
  constructor(
    message: string,
    readonly exitCode: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
