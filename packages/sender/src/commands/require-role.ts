import type pg from "pg";
import { describe } from "../connection.js";
import { CliError, ExitCode } from "../exit-codes.js";

/**
 * Refuses, in one line, to run a command in a database without schema dbmail (exit 9), or as a login
 * that is not a member of the dbmail role the command needs (exit 3), rather than letting the first
 * query fail with PostgreSQL's "permission denied for ...". Superusers pass.
 */
export async function requireRole(
  client: pg.Client,
  url: string | undefined,
  role: "dbmail_admin" | "dbmail_user",
  command: string,
): Promise<void> {
  const { rows } = await client.query<{ login: string; installed: boolean; member: boolean }>(
    `SELECT current_user AS login, to_regnamespace('dbmail') IS NOT NULL AS installed,
            CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = $1)
                 THEN pg_catalog.pg_has_role($1, 'USAGE') ELSE false END AS member`,
    [role],
  );
  const { login, installed, member } = rows[0] as { login: string; installed: boolean; member: boolean };
  if (!installed) {
    throw new CliError(
      `${describe(url)} has no schema dbmail: install it with dbmail migrate`,
      ExitCode.notInstalled,
    );
  }
  if (!member) {
    throw new CliError(
      `${command} needs ${role}: the login "${login}" is not a member; GRANT ${role} TO "${login}", ` +
        `or connect as a login that is`,
      ExitCode.connection,
    );
  }
}
