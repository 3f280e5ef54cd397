import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { CliError, ExitCode } from "../exit-codes.js";

// `dbmail dev` is a command of this CLI, but what it runs (a PostgreSQL from npm binaries, an SMTP mail
// catcher, a mail parser: most of the install's size) lives in @pg-dbmail/dev, a development dependency
// that production installs and the container image leave out. It is loaded only when `dbmail dev` runs,
// by name, so this package neither depends on it nor refers to its types: the contract is below.

export const devHelp = `Usage: dbmail dev [--database-url URL] [--data-dir DIR] [--port N]
       dbmail dev --list [--data-dir DIR]

Runs pg-dbmail locally: with no database URL, starts a PostgreSQL of its own (data kept in DIR),
installs schema dbmail, creates a demo profile that sends to a local mail catcher, starts the sender,
and prints what to paste: export DATABASE_URL=... (for dbmail status, send-test and dev --list in
another terminal), a psql connection string and a ready-to-paste SELECT dbmail.sp_send_dbmail(...).
Every mail sent lands in DIR/mail as an .eml file. Ctrl-C stops everything.

Needs the development package: npm install --save-dev @pg-dbmail/dev (a checkout of the repository
has it).

Options:
  --database-url URL   use this database instead of starting one (default: DATABASE_URL)
  --data-dir DIR       where the local PostgreSQL and the caught mail are kept (default: .dbmail);
                       one dbmail dev at a time per directory
  --port N             the local PostgreSQL's port (default: 54329, or a free one if taken)
  --list               list the mail caught so far and exit
  -h, --help           show this help

Exit codes: 12 @pg-dbmail/dev is not installed, 13 DIR is in use by another dbmail dev; and those of
dbmail --help.
`;

/** What `dbmail dev` is given (the command line, checked). */
export interface DevOptions {
  databaseUrl?: string;
  dataDir?: string;
  port?: string;
  list?: boolean;
}

/** What @pg-dbmail/dev exports for the CLI. */
export interface DevModule {
  runDev(options: DevOptions): Promise<void>;
}

const devPackage = "@pg-dbmail/dev";

export async function runDev(options: DevOptions): Promise<void> {
  const dev = await loadDevPackage();
  try {
    await dev.runDev(options);
  } catch (error) {
    throw asCliError(error);
  }
}

/**
 * Imports @pg-dbmail/dev: next to this package (a project that installed both, a checkout), else from the
 * current directory's project (this CLI run by npx or installed globally, the project having the package).
 */
async function loadDevPackage(): Promise<DevModule> {
  try {
    // A specifier in a variable: TypeScript leaves it alone (no reference to the package's types).
    return (await import(devPackage)) as DevModule;
  } catch (error) {
    if (!isMissing(error)) throw cannotLoad(error);
  }
  try {
    const entry = createRequire(join(process.cwd(), "package.json")).resolve(devPackage);
    return (await import(pathToFileURL(entry).href)) as DevModule;
  } catch (error) {
    if (!isMissing(error)) throw cannotLoad(error);
  }
  throw new CliError(
    `dev needs the development package: npm install --save-dev ${devPackage}`,
    ExitCode.devNotInstalled,
  );
}

/** Whether `error` says that @pg-dbmail/dev itself is not installed (not that something it needs is missing). */
function isMissing(error: unknown): boolean {
  const { code, message } = error as { code?: string; message?: string };
  return (
    (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") &&
    typeof message === "string" &&
    message.includes(`'${devPackage}'`)
  );
}

function cannotLoad(error: unknown): CliError {
  const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
  return new CliError(`cannot load ${devPackage}: ${reason}`, ExitCode.failure, { cause: error });
}

/**
 * The development package throws this package's CliError; when it was loaded from another copy of this
 * package (npx, a global install), that is another class, so recognise it by its shape.
 */
function asCliError(error: unknown): unknown {
  if (error instanceof CliError) return error;
  const { name, message, exitCode } = error as { name?: string; message?: string; exitCode?: unknown };
  if (name === "CliError" && typeof message === "string" && typeof exitCode === "number") {
    return new CliError(message, exitCode, { cause: error });
  }
  return error;
}
