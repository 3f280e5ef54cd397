import pg from "pg";
import { parse } from "pg-connection-string";
import { CliError, ExitCode } from "./exit-codes.js";

/**
 * The database URL by precedence: --database-url, then DATABASE_URL, checked so that a mistyped URL is
 * one clear line (exit 2) instead of a stack trace or a sender retrying forever. Without either,
 * node-postgres falls back to libpq's PG* variables (PGHOST, PGUSER, PGDATABASE, ...), so an empty
 * result is still usable.
 */
export function databaseUrlFrom(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  if (flag !== undefined) return checkedDatabaseUrl(flag, "--database-url");
  if (env.DATABASE_URL) return checkedDatabaseUrl(env.DATABASE_URL, "DATABASE_URL");
  return undefined;
}

/** `url` when node-postgres can use it; else a usage error naming `where` it came from. */
export function checkedDatabaseUrl(url: string, where: string): string {
  let problem: string | undefined;
  if (!/^postgres(ql)?:\/\//i.test(url)) problem = "must start with postgres:// or postgresql://";
  else {
    try {
      parse(url);
    } catch (error) {
      problem = (error as Error).message;
    }
  }
  if (problem === undefined) return url;
  throw new CliError(
    `${where}: "${redact(url)}": not a usable PostgreSQL URL (${problem}); ` +
      "the form is postgres://user:password@host:port/database",
    ExitCode.usage,
  );
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
    return redact(url);
  }
}

/** A URL that may not parse, with whatever stands where a password would masked. */
function redact(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:@/]*:)[^@]*@/i, "$1****@");
}
