import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { databaseUrlFrom } from "../connection.js";
import { CliError, ExitCode } from "../exit-codes.js";

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

export async function runConsoleCommand(values: Record<string, string | boolean | undefined>): Promise<void> {
  const str = (value: string | boolean | undefined) => (typeof value === "string" ? value : undefined);
  const options: ConsoleCommandOptions = {
    listen: str(values.listen) ?? (process.env.DBMAIL_CONSOLE_LISTEN || "127.0.0.1:8025"),
    databaseUrl: databaseUrlFrom(str(values["database-url"])),
    allowRemote: values["allow-remote"] === true,
    tlsCert: str(values["tls-cert"]),
    tlsKey: str(values["tls-key"]),
  };
  const module = await loadConsolePackage();
  try {
    await module.runConsole(options);
  } catch (error) {
    throw asCliError(error);
  }
}

/** Imports @pg-dbmail/console: next to this package, else from the current directory's project. */
async function loadConsolePackage(): Promise<ConsoleModule> {
  const tries = [
    () => consolePackage,
    () => pathToFileURL(createRequire(join(process.cwd(), "package.json")).resolve(consolePackage)).href,
  ];
  for (const specifier of tries) {
    try {
      return (await import(specifier())) as ConsoleModule;
    } catch (error) {
      const { code, message } = error as { code?: string; message?: string };
      const missing =
        (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") &&
        typeof message === "string" &&
        message.includes(`'${consolePackage}'`);
      if (!missing) {
        const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
        throw new CliError(`cannot load ${consolePackage}: ${reason}`, ExitCode.failure, { cause: error });
      }
    }
  }
  throw new CliError(
    `console needs its package: npm install ${consolePackage}`,
    ExitCode.consoleNotInstalled,
  );
}

/** The console throws CliError from its own copy of this package (npx, a global install): match by shape. */
function asCliError(error: unknown): unknown {
  if (error instanceof CliError) return error;
  const { name, message, exitCode } = error as { name?: string; message?: string; exitCode?: unknown };
  if (name === "CliError" && typeof message === "string" && typeof exitCode === "number") {
    return new CliError(message, exitCode, { cause: error });
  }
  return error;
}
