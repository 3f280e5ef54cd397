import { readMigrationFiles } from "@pg-dbmail/sql";
import type pg from "pg";
import { DatabaseRefusedError, type RefusalCode } from "./errors.js";

// What PostgreSQL answers when the sender may not or cannot serve this database.
const REFUSALS: Record<string, [RefusalCode, string]> = {
  "28P01": ["LOGIN_REFUSED", "the login was refused"],
  "28000": ["LOGIN_REFUSED", "the login was refused"],
  "3D000": ["NO_DATABASE", "the database does not exist"],
  "3F000": [
    "SCHEMA_MISSING",
    "schema dbmail is missing from this database, or older than this sender: run dbmail migrate",
  ],
  "42883": [
    "SCHEMA_MISSING",
    "schema dbmail is missing from this database, or older than this sender: run dbmail migrate",
  ],
  "42501": ["NOT_A_SENDER", "this login may not use schema dbmail: GRANT dbmail_sender TO it"],
};

/**
 * Checks that this login may serve the database: a member of dbmail_sender, schema dbmail at exactly
 * this sender's version. Throws DatabaseRefusedError when not; other errors (the database unreachable,
 * starting up) are thrown as they are.
 */
export async function checkSchema(pool: pg.Pool): Promise<void> {
  let row: { version: number | null; sender: boolean };
  try {
    const { rows } = await pool.query<{ version: number | null; sender: boolean }>(
      "SELECT pg_has_role(current_user, 'dbmail_sender', 'USAGE') AS sender, dbmail.schema_version() AS version",
    );
    row = rows[0] as { version: number | null; sender: boolean };
  } catch (error) {
    const refusal = REFUSALS[(error as { code?: string }).code ?? ""];
    if (!refusal) throw error;
    const [code, reason] = refusal;
    const message =
      code === "LOGIN_REFUSED" || code === "NO_DATABASE" ? `${reason}: ${(error as Error).message}` : reason;
    throw new DatabaseRefusedError(code, message, { cause: error });
  }
  if (!row.sender) {
    throw new DatabaseRefusedError(
      "NOT_A_SENDER",
      "this login is not a member of dbmail_sender; GRANT dbmail_sender TO it",
    );
  }
  const version = row.version ?? 0;
  const latest = readMigrationFiles().length;
  if (version > latest) {
    throw new DatabaseRefusedError(
      "SCHEMA_NEWER",
      `the database's dbmail schema is version ${version}, newer than this sender (${latest}): upgrade the sender`,
    );
  }
  if (version < latest) {
    throw new DatabaseRefusedError(
      "SCHEMA_OLDER",
      `the database's dbmail schema is version ${version}, older than this sender (${latest}): ` +
        "run dbmail migrate (a CREATE EXTENSION install: ALTER EXTENSION pg_dbmail UPDATE)",
    );
  }
}
