import { CliError, ExitCode } from "../exit-codes.js";
import { asCliError, loadOptionalPackage } from "./optional-package.js";

// What `dbmail dev` runs (a PostgreSQL from npm binaries, an SMTP mail catcher, a mail parser: most of the
// install's size) lives in @pg-dbmail/dev, a development dependency loaded only when the command runs
// (optional-package.ts): the contract is below.

export const devHelp = `Usage: dbmail dev [--database-url URL] [--data-dir DIR] [--port N] [--console-port N]
       dbmail dev --list [--data-dir DIR]

Runs pg-dbmail locally: with no database URL, starts a PostgreSQL of its own (data kept in DIR),
installs schema dbmail, creates a demo profile that sends to a local mail catcher, starts the sender
and the web console, and prints what to paste: export DATABASE_URL=... (for dbmail status, send-test
and dev --list in another terminal), a psql connection string, a ready-to-paste
SELECT dbmail.sp_send_dbmail(...), and the console's address. In its own PostgreSQL the role
dbmail_demo signs in to the console without a password, from this machine only. Every mail sent
lands in DIR/mail as an .eml file. Ctrl-C stops everything.

Needs the development package: npm install --save-dev @pg-dbmail/dev (a checkout of the repository
has it).

Options:
  --database-url URL   use this database instead of starting one (default: DATABASE_URL)
  --data-dir DIR       where the local PostgreSQL and the caught mail are kept (default: .dbmail);
                       one dbmail dev at a time per directory
  --port N             the local PostgreSQL's port (default: 54329, or a free one if taken)
  --console-port N     the web console's port, on 127.0.0.1 (default: 8025, or a free one near it)
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
  consolePort?: string;
  list?: boolean;
}

/** What @pg-dbmail/dev exports for the CLI. */
export interface DevModule {
  runDev(options: DevOptions): Promise<void>;
}

const devPackage = "@pg-dbmail/dev";

export async function runDev(options: DevOptions): Promise<void> {
  const dev = await loadOptionalPackage<DevModule>(
    devPackage,
    new CliError(
      `dev needs the development package: npm install --save-dev ${devPackage}`,
      ExitCode.devNotInstalled,
    ),
  );
  try {
    await dev.runDev(options);
  } catch (error) {
    throw asCliError(error);
  }
}
