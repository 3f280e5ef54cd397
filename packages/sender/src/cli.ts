#!/usr/bin/env node
import { type ParseArgsConfig, parseArgs } from "node:util";
import { devHelp, runDev } from "./commands/dev.js";
import { migrateHelp, runMigrate } from "./commands/migrate.js";
import { CliError, ExitCode } from "./exit-codes.js";

const help = `Usage: dbmail <command> [options]

pg-dbmail: SQL Server's Database Mail for PostgreSQL.

Commands:
  migrate     install or upgrade schema dbmail in a database
  dev         run everything locally (its own PostgreSQL, schema, demo profile)

Run 'dbmail <command> --help' for a command's options.

Environment:
  DATABASE_URL   the database, when --database-url is not given
  PG*            libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE), used when neither is given

Exit codes: 0 ok, 1 unexpected failure, 2 bad command line, 3 cannot connect, 4 database newer than
this pg-dbmail, 5 an applied migration changed, 6 schema installed by other means, 7 migration lock
timeout, 8 a migration failed (rolled back).
`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "-h" || command === "--help" || command === "help") {
    process.stdout.write(help);
    return;
  }
  if (command === "migrate") {
    const { values } = parse(rest, {
      "database-url": { type: "string" },
      "dry-run": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    });
    if (values.help) {
      process.stdout.write(migrateHelp);
      return;
    }
    await runMigrate({ databaseUrl: values["database-url"], dryRun: values["dry-run"] === true });
    return;
  }
  if (command === "dev") {
    const { values } = parse(rest, {
      "database-url": { type: "string" },
      "data-dir": { type: "string" },
      port: { type: "string" },
      help: { type: "boolean", short: "h" },
    });
    if (values.help) {
      process.stdout.write(devHelp);
      return;
    }
    if (values.port !== undefined && !/^\d{1,5}$/.test(values.port)) {
      throw new CliError(`--port: "${values.port}": not a port number`, ExitCode.usage);
    }
    await runDev({ databaseUrl: values["database-url"], dataDir: values["data-dir"], port: values.port });
    return;
  }
  throw new CliError(`unknown command '${command}'; run 'dbmail --help'`, ExitCode.usage);
}

function parse<const O extends NonNullable<ParseArgsConfig["options"]>>(args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: false, strict: true });
  } catch (error) {
    throw new CliError(error instanceof Error ? error.message : String(error), ExitCode.usage);
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(ExitCode.ok),
  (error: unknown) => {
    if (error instanceof CliError) {
      process.stderr.write(`dbmail: ${error.message}\n`);
      process.exit(error.exitCode);
    }
    process.stderr.write(
      `dbmail: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(ExitCode.failure);
  },
);
