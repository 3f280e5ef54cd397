#!/usr/bin/env node
import { type ParseArgsConfig, parseArgs } from "node:util";
import { consoleHelp, runConsoleCommand } from "./commands/console.js";
import { devHelp, runDev } from "./commands/dev.js";
import { extensionHelp, runExtensionInstall } from "./commands/extension.js";
import { migrateHelp, runMigrate } from "./commands/migrate.js";
import { runSendTest, sendTestHelp } from "./commands/send-test.js";
import { runStart, startHelp } from "./commands/start.js";
import { runStatus, statusHelp } from "./commands/status.js";
import { optionFlags } from "./config/options.js";
import { CliError, ExitCode, refusalExitCodes } from "./exit-codes.js";
import { DatabaseRefusedError } from "./sender/errors.js";
import { packageVersion } from "./version.js";

const help = `Usage: dbmail <command> [options]
       dbmail --version

pg-dbmail: SQL Server's Database Mail for PostgreSQL.

Commands:
  migrate     install or upgrade schema dbmail in a database
  start       run the sender: deliver queued mail over SMTP
  status      show the queue, the live senders and recent failures
  send-test   send a test mail through a profile and wait for its outcome
  dev         run everything locally: a PostgreSQL, a mail catcher, the sender (needs @pg-dbmail/dev)
  console     serve the web console, where people sign in with their own role (needs @pg-dbmail/console)
  extension   extension install: put the PostgreSQL extension pg_dbmail into a server's extension directory

Run 'dbmail <command> --help' for a command's options.

Environment:
  DATABASE_URL   the database, when --database-url is not given
  PG*            libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE), used when neither is given

Exit codes: 0 ok, 1 unexpected failure, 2 bad command line, 3 cannot connect or log in, 4 database newer
than this pg-dbmail, 5 an applied migration changed, 6 schema dbmail without migration history, 7 migration
lock timeout, 8 a migration failed (rolled back), 9 schema dbmail missing or older (run dbmail migrate),
10 send-test: the mail failed, 11 send-test: no outcome in time, 12 dev: @pg-dbmail/dev is not
installed, 13 dev: the data directory is in use by another dbmail dev, 14 start: cannot listen on the
--http address, 15 console: @pg-dbmail/console is not installed, 16 extension install: no pg_config, or
its extension directory cannot be written, 17 migrate: the database has the extension pg_dbmail (upgrade
it with ALTER EXTENSION pg_dbmail UPDATE).
`;

type Options = NonNullable<ParseArgsConfig["options"]>;

const common = { "database-url": { type: "string" }, help: { type: "boolean", short: "h" } } as const;

interface Command {
  help: string;
  options: Options;
  run: (values: Record<string, string | boolean | undefined>) => Promise<void>;
  /** A command that takes a subcommand (`dbmail extension install`): the ones it has. */
  subcommands?: string[];
}

const str = (value: string | boolean | undefined) => (typeof value === "string" ? value : undefined);

/** A TCP port option (1 to 65535), checked; undefined when not given. */
function portOption(flag: string, value: string | undefined): string | undefined {
  if (value !== undefined && !(/^\d{1,5}$/.test(value) && Number(value) >= 1 && Number(value) <= 65535)) {
    throw new CliError(`${flag}: "${value}": not a port number`, ExitCode.usage);
  }
  return value;
}

const commands: Record<string, Command> = {
  migrate: {
    help: migrateHelp,
    options: { ...common, "dry-run": { type: "boolean" } },
    run: (v) => runMigrate({ databaseUrl: str(v["database-url"]), dryRun: v["dry-run"] === true }),
  },
  start: {
    help: startHelp,
    options: {
      ...common,
      config: { type: "string" },
      ...Object.fromEntries(
        optionFlags.map(({ flag, boolean }) => [flag, { type: boolean ? "boolean" : "string" }]),
      ),
    } as Options,
    run: (v) => runStart(v),
  },
  status: {
    help: statusHelp,
    options: { ...common, json: { type: "boolean" } },
    run: (v) => runStatus({ databaseUrl: str(v["database-url"]), json: v.json === true }),
  },
  "send-test": {
    help: sendTestHelp,
    options: {
      ...common,
      to: { type: "string" },
      profile: { type: "string" },
      subject: { type: "string" },
      body: { type: "string" },
      timeout: { type: "string" },
    },
    run: (v) =>
      runSendTest({
        databaseUrl: str(v["database-url"]),
        to: str(v.to),
        profile: str(v.profile),
        subject: str(v.subject),
        body: str(v.body),
        timeout: str(v.timeout),
      }),
  },
  dev: {
    help: devHelp,
    options: {
      ...common,
      "data-dir": { type: "string" },
      port: { type: "string" },
      "console-port": { type: "string" },
      list: { type: "boolean" },
    },
    run: (v) =>
      runDev({
        databaseUrl: str(v["database-url"]),
        dataDir: str(v["data-dir"]),
        port: portOption("--port", str(v.port)),
        consolePort: portOption("--console-port", str(v["console-port"])),
        list: v.list === true,
      }),
  },
  console: {
    help: consoleHelp,
    options: {
      ...common,
      listen: { type: "string" },
      "allow-remote": { type: "boolean" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
    },
    run: (v) => runConsoleCommand(v),
  },
  extension: {
    help: extensionHelp,
    options: { "pg-config": { type: "string" }, help: common.help },
    subcommands: ["install"],
    run: (v) => runExtensionInstall({ pgConfig: str(v["pg-config"]) }),
  },
};

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "-h" || name === "--help" || name === "help") {
    process.stdout.write(help);
    return;
  }
  if (name === "--version" || name === "-v" || name === "version") {
    process.stdout.write(`dbmail ${packageVersion}\n`);
    return;
  }
  const command = commands[name];
  if (!command) throw new CliError(`unknown command '${name}'; run 'dbmail --help'`, ExitCode.usage);
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    const parsed = parseArgs({
      args: rest,
      options: command.options,
      allowPositionals: command.subcommands !== undefined,
      strict: true,
    });
    values = parsed.values as Record<string, string | boolean | undefined>;
    positionals = parsed.positionals;
  } catch (error) {
    throw new CliError(`${(error as Error).message}; run 'dbmail ${name} --help'`, ExitCode.usage);
  }
  if (values.help) {
    process.stdout.write(command.help);
    return;
  }
  if (command.subcommands) {
    const [sub, ...extra] = positionals;
    const problem =
      sub === undefined
        ? "needs a subcommand"
        : !command.subcommands.includes(sub)
          ? `unknown subcommand '${sub}'`
          : extra.length > 0
            ? `unexpected argument '${extra[0]}'`
            : undefined;
    if (problem) {
      throw new CliError(
        `${name}: ${problem} (${command.subcommands.join(", ")}); run 'dbmail ${name} --help'`,
        ExitCode.usage,
      );
    }
  }
  await command.run(values);
}

main(process.argv.slice(2)).then(
  () => process.exit(ExitCode.ok),
  (error: unknown) => {
    if (error instanceof CliError) {
      process.stderr.write(`dbmail: ${error.message}\n`);
      process.exit(error.exitCode);
    }
    if (error instanceof DatabaseRefusedError) {
      process.stderr.write(`dbmail: ${error.message}\n`);
      process.exit(refusalExitCodes[error.code]);
    }
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
    process.stderr.write(`dbmail: unexpected error: ${detail}\n`);
    process.exit(ExitCode.failure);
  },
);
