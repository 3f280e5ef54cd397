import { type MigrateOptions, type MigrateResult, MigrationError, migrate } from "@pg-dbmail/sql";
import type pg from "pg";
import { connect, databaseUrlFrom, describe } from "../connection.js";
import { CliError, migrationExitCodes } from "../exit-codes.js";

export const migrateHelp = `Usage: dbmail migrate [--database-url URL] [--dry-run]

Installs or upgrades schema dbmail: applies every pending migration, each in its own transaction,
under an advisory lock (safe to run twice, or from many processes at once).

Options:
  --database-url URL   the database to install into (default: DATABASE_URL, else libpq PG* variables)
  --dry-run            list the migrations that would be applied; change nothing
  -h, --help           show this help
`;

export async function runMigrate(options: { databaseUrl?: string; dryRun?: boolean }): Promise<void> {
  const url = databaseUrlFrom(options.databaseUrl, process.env, { writes: true });
  const client = await connect(url, "dbmail migrate");
  try {
    const result = await migrateOrExplain(client, {
      dryRun: options.dryRun ?? false,
      onApplied: (m) => console.log(`applied ${pad(m.version)}_${m.name} (${Math.round(m.ms)} ms)`),
    });
    const target = describe(url);
    if (options.dryRun) {
      if (result.applied.length === 0) console.log(`${target} is up to date (version ${result.version})`);
      for (const m of result.applied) console.log(`would apply ${pad(m.version)}_${m.name}`);
    } else if (result.applied.length === 0) {
      console.log(`${target} is up to date (version ${result.version})`);
    } else {
      console.log(`${target} is at version ${result.version}`);
    }
  } finally {
    await client.end();
  }
}

/** migrate(), with a refusal turned into the CLI error and exit code documented for it. */
export async function migrateOrExplain(
  client: pg.Client,
  options: MigrateOptions = {},
): Promise<MigrateResult> {
  try {
    return await migrate(client, options);
  } catch (error) {
    if (error instanceof MigrationError) {
      throw new CliError(error.message, migrationExitCodes[error.code], { cause: error });
    }
    throw error;
  }
}

function pad(version: number): string {
  return String(version).padStart(6, "0");
}
