import { randomBytes } from "node:crypto";
import { type DemoLogin, type RunningConsole, startConsole } from "@pg-dbmail/console";
import { CliError, ExitCode } from "@pg-dbmail/sender";
import type pg from "pg";
import { freePort, portIsFree } from "./local-postgres.js";

export const demoRole = "dbmail_demo";

/** Where the console is looked for first, as `dbmail console` defaults to; then the next few ports. */
const firstConsolePort = 8025;
const consolePortsTried = 10;

/**
 * The role that signs in to the dev console without a password: a dbmail admin, created once, given a
 * new random password at each start. Only in the PostgreSQL that dbmail dev runs itself: a role that
 * administers Database Mail is not added to a cluster someone else's URL names.
 */
export async function ensureDemoRole(client: pg.Client): Promise<DemoLogin> {
  const password = randomBytes(24).toString("base64url");
  const { rows } = await client.query("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1", [demoRole]);
  if (rows.length === 0) await client.query(`CREATE ROLE ${demoRole}`);
  await client.query(`ALTER ROLE ${demoRole} LOGIN PASSWORD ${client.escapeLiteral(password)}`);
  await client.query(`GRANT dbmail_admin TO ${demoRole}`);
  return { role: demoRole, password };
}

/**
 * The web console for the dev database, on 127.0.0.1: at `--console-port`, else at 8025 or the first
 * free port after it, else any free one. With `demoLogin`, the demo role signs in without a password.
 */
export async function startDevConsole(
  url: string,
  consolePort: string | undefined,
  demoLogin: DemoLogin | undefined,
): Promise<RunningConsole> {
  const port = consolePort === undefined ? await freeConsolePort() : Number(consolePort);
  if (consolePort !== undefined && !(await portIsFree(port))) {
    throw new CliError(`--console-port: "${consolePort}": in use on 127.0.0.1`, ExitCode.usage);
  }
  return startConsole({ listen: `127.0.0.1:${port}`, databaseUrl: url, demoLogin });
}

async function freeConsolePort(): Promise<number> {
  for (let port = firstConsolePort; port < firstConsolePort + consolePortsTried; port++) {
    if (await portIsFree(port)) return port;
  }
  return freePort();
}
