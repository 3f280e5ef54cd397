import pg from "pg";
import { parse } from "pg-connection-string";
import { type DatabaseUrl, isPlainUrl, parseDatabaseUrl, type TargetSessionAttrs } from "./database-url.js";
import { CliError, ExitCode } from "./exit-codes.js";
import { multiHostClient } from "./multi-host.js";

/**
 * The database URL by precedence: --database-url, then DATABASE_URL, checked so that a mistyped URL is
 * one clear line (exit 2) instead of a stack trace or a sender retrying forever. Without either,
 * node-postgres falls back to libpq's PG* variables (PGHOST, PGUSER, PGDATABASE, ...), so an empty
 * result is still usable.
 */
export function databaseUrlFrom(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  { writes = false }: { writes?: boolean } = {},
): string | undefined {
  if (flag !== undefined) return checkedDatabaseUrl(flag, "--database-url", { writes });
  if (env.DATABASE_URL) return checkedDatabaseUrl(env.DATABASE_URL, "DATABASE_URL", { writes });
  return undefined;
}

/**
 * `url` when it is usable: one host as node-postgres takes it, or libpq's form of several hosts
 * (`postgres://u@h1:5432,h2:5433/db?target_session_attrs=read-write`, see database-url.ts); else a
 * usage error naming `where` it came from.
 */
export function checkedDatabaseUrl(
  url: string,
  where: string,
  { writes = false }: { writes?: boolean } = {},
): string {
  let problem: string | undefined;
  try {
    const parsed = parseDatabaseUrl(url);
    // What node-postgres will be given, host by host.
    for (let i = 0; i < parsed.hosts.length; i++) parse(parsed.urlFor(i));
    sessionAttrs(parsed, writes);
  } catch (error) {
    problem = (error as Error).message;
  }
  if (problem === undefined) return url;
  throw new CliError(
    `${where}: "${redact(url)}": not a usable PostgreSQL URL (${problem}); ` +
      "the form is postgres://user:password@host:port/database",
    ExitCode.usage,
  );
}

/**
 * What a pg.Client or pg.Pool needs to connect to `url`. A URL of several hosts, or one with
 * target_session_attrs, gets a Client class that picks the host (multi-host.ts). `writes`: the caller
 * writes (the sender, migrate, send-test), so it needs a read-write session whatever the URL says: with
 * target_session_attrs any (the default) it waits for, or moves on to, a host that is not in recovery,
 * instead of failing at its first write on a standby.
 */
export function connectionConfig(
  url: string | undefined,
  { writes }: { writes: boolean },
): { connectionString?: string; Client?: typeof pg.Client } {
  if (!url) return {};
  const parsed = parseDatabaseUrl(url);
  const attrs = sessionAttrs(parsed, writes);
  if (isPlainUrl(parsed) && attrs === "any") return { connectionString: url };
  return { connectionString: parsed.urlFor(0), Client: multiHostClient(parsed, attrs) };
}

function sessionAttrs(parsed: DatabaseUrl, writes: boolean): TargetSessionAttrs {
  const given = parsed.targetSessionAttrs;
  if (!writes) return given;
  if (given === "any") return "read-write";
  if (given === "read-write" || given === "primary") return given;
  throw new CliError(
    `target_session_attrs=${given}: this command writes to the database, so it needs read-write ` +
      "or primary (or leave target_session_attrs out)",
    ExitCode.usage,
  );
}

/** Connects, turning connection failures into one clear CLI error (never echoing the password). */
export async function connect(
  url: string | undefined,
  applicationName: string,
  { writes = true }: { writes?: boolean } = {},
): Promise<pg.Client> {
  const { Client = pg.Client, connectionString } = connectionConfig(url, { writes });
  const client = new Client({ connectionString, application_name: applicationName });
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
    // Several hosts (h1:5432,h2:5433) are not a WHATWG URL.
    return redact(url);
  }
}

/** A URL that may not parse, with whatever stands where a password would masked. */
function redact(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:@/]*:)[^@]*@/i, "$1****@");
}
