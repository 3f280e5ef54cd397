import pg from "pg";
import { CliError, ExitCode } from "./exit-codes.js";

/**
 * The database URL by precedence: --database-url, then DATABASE_URL. Without either, node-postgres falls
 * back to libpq's PG* variables (PGHOST, PGUSER, PGDATABASE, ...), so an empty result is still usable.
 */
export function databaseUrlFrom(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  return flag ?? env.DATABASE_URL;
}

/** Connects, turning connection failures into one clear CLI error (never echoing the password). */
export async function connect(url: string | undefined, applicationName: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: applicationName });
  try {
    await client.connect();
    return client;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new CliError(`cannot connect to ${describe(url)}: ${reason}`, ExitCode.connection, {
      cause: error,
    });
  }
}

/** The URL without its password, for messages. */
export function describe(url: string | undefined): string {
  if (!url) return "the database named by the PG* environment variables";
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "****";
    return parsed.toString();
  } catch {
    return "the given database URL";
  }
}
