import { readMigrationFiles } from "@pg-dbmail/sql";
import type pg from "pg";
import { CliError, ExitCode } from "../exit-codes.js";

// What retrying cannot fix: a wrong password, a missing database, a role without dbmail_sender.
const FATAL_CODES: Record<string, string> = {
  "28P01": "the login was refused",
  "28000": "the login was refused",
  "3D000": "the database does not exist",
};

/** Refuses a database without schema dbmail, with an older or newer one, or a login that may not send. */
export async function checkSchema(pool: pg.Pool): Promise<void> {
  let version: number;
  try {
    const { rows } = await pool.query<{ version: number | null; sender: boolean }>(
      "SELECT pg_has_role(current_user, 'dbmail_sender', 'USAGE') AS sender, dbmail.schema_version() AS version",
    );
    const row = rows[0] as { version: number | null; sender: boolean };
    if (!row.sender) {
      throw new CliError(
        "this login is not a member of dbmail_sender; GRANT dbmail_sender TO it",
        ExitCode.connection,
      );
    }
    version = row.version ?? 0;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "3F000" || code === "42883") {
      throw new CliError(
        "schema dbmail is missing from this database, or older than this sender: run dbmail migrate",
        ExitCode.notInstalled,
      );
    }
    if (code === "42501") {
      throw new CliError(
        "this login may not use schema dbmail: GRANT dbmail_sender TO it",
        ExitCode.connection,
      );
    }
    if (code && FATAL_CODES[code]) {
      throw new CliError(`${FATAL_CODES[code]}: ${(error as Error).message}`, ExitCode.connection, {
        cause: error,
      });
    }
    throw error;
  }
  const latest = readMigrationFiles().length;
  if (version > latest) {
    throw new CliError(
      `the database's dbmail schema is version ${version}, newer than this sender (${latest}): upgrade the sender`,
      ExitCode.databaseAhead,
    );
  }
  if (version < latest) {
    throw new CliError(
      `the database's dbmail schema is version ${version}, older than this sender (${latest}): run dbmail migrate`,
      ExitCode.notInstalled,
    );
  }
}
