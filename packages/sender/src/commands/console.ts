import { databaseUrlFrom, describe } from "../connection.js";
import { parseDatabaseUrl } from "../database-url.js";
import { CliError, ExitCode } from "../exit-codes.js";
import { asCliError, loadOptionalPackage } from "./optional-package.js";

// `dbmail console` is a command of this CLI, but the web console (a web server, its pages, htmx)
// lives in @pg-dbmail/console, which depends on this package; this package must not depend on it
// back, and the production image ships the sender alone. So it is loaded only when `dbmail console`
// runs, by name, as `dbmail dev` loads @pg-dbmail/dev: the contract is below.

export const consoleHelp = `Usage: dbmail console [--listen HOST:PORT] [--database-url URL] [--allow-remote]
                     [--tls-cert FILE --tls-key FILE]

Serves the web console: people sign in at /login with their own PostgreSQL role, and see the
queue, the mail items, their attachments and events, and the event log, exactly as that role may
in psql. The console holds no connection of its own. Ctrl-C stops it.

Needs the console package: npm install @pg-dbmail/console (a checkout of the repository has it).

Options:
  --listen HOST:PORT   where to listen (env DBMAIL_CONSOLE_LISTEN; default 127.0.0.1:8025);
                       loopback only unless --allow-remote
  --database-url URL   the database people sign in to; its user and password are not used
                       (default: DATABASE_URL, else libpq PG* variables)
  --allow-remote       allow a --listen address other than loopback (use TLS then)
  --tls-cert FILE      serve https with this certificate (PEM); cookies are then Secure
  --tls-key FILE       the certificate's private key (PEM)
  -h, --help           show this help

Exit codes: 15 @pg-dbmail/console is not installed; and those of dbmail --help (2 for a bad option,
a --listen that is not loopback without --allow-remote, or one that cannot be listened on).
`;

/** What `dbmail console` gives @pg-dbmail/console's runConsole. */
export interface ConsoleCommandOptions {
  listen: string;
  databaseUrl?: string;
  allowRemote?: boolean;
  tlsCert?: string;
  tlsKey?: string;
}

interface ConsoleModule {
  runConsole(options: ConsoleCommandOptions): Promise<void>;
}

const consolePackage = "@pg-dbmail/console";

/** The console signs people in with node-postgres as it is: one host, as node-postgres parses it. */
function singleHost(url: string | undefined): string | undefined {
  if (url === undefined || parseDatabaseUrl(url).hosts.length === 1) return url;
  throw new CliError(
    `console: ${describe(url)}: the console takes a URL of one host (connect it to the primary)`,
    ExitCode.usage,
  );
}

export async function runConsoleCommand(values: Record<string, string | boolean | undefined>): Promise<void> {
  const str = (value: string | boolean | undefined) => (typeof value === "string" ? value : undefined);
  const options: ConsoleCommandOptions = {
    listen: str(values.listen) ?? (process.env.DBMAIL_CONSOLE_LISTEN || "127.0.0.1:8025"),
    databaseUrl: singleHost(databaseUrlFrom(str(values["database-url"]))),
    allowRemote: values["allow-remote"] === true,
    tlsCert: str(values["tls-cert"]),
    tlsKey: str(values["tls-key"]),
  };
  const module = await loadOptionalPackage<ConsoleModule>(
    consolePackage,
    new CliError(`console needs its package: npm install ${consolePackage}`, ExitCode.consoleNotInstalled),
  );
  try {
    await module.runConsole(options);
  } catch (error) {
    throw asCliError(error);
  }
}
