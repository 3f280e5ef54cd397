import pg from "pg";
import { MigrationError } from "./errors.js";
import { MIGRATION_LOCK_KEY, type MigrationFile, readMigrationFiles } from "./migration-files.js";

export interface MigrateOptions {
  /** Report what would be applied without changing anything. */
  dryRun?: boolean;
  /** Where the NNNNNN_slug.sql files are; defaults to the ones shipped with this package. */
  migrationsDir?: string;
  /** How long to wait for another migrator holding the lock (ms). Default 60 000. */
  lockTimeoutMs?: number;
  /** Told about each migration as it is applied. */
  onApplied?: (migration: { version: number; name: string; ms: number }) => void;
}

export interface MigrateResult {
  /** Versions applied by this call (with dryRun: the versions that would be applied). */
  applied: { version: number; name: string }[];
  /** The schema version after the call (with dryRun: before). 0 = not installed. */
  version: number;
  /** The newest version the code knows. */
  latest: number;
}

interface AppliedRow {
  version: number;
  name: string;
  checksum: string;
}

/**
 * Applies every pending migration to the database, each file in its own transaction (the file's last
 * statement records it in dbmail.migrations), all under one advisory lock so concurrent migrators apply
 * each file once. Refuses a database that is ahead of this code or whose applied files changed.
 */
export async function migrate(
  target: pg.Client | string,
  options: MigrateOptions = {},
): Promise<MigrateResult> {
  const files = readMigrationFiles(options.migrationsDir);
  const client =
    typeof target === "string"
      ? new pg.Client({ connectionString: target, application_name: "dbmail migrate" })
      : target;
  if (typeof target === "string") await client.connect();
  try {
    await takeLock(client, options.lockTimeoutMs ?? 60_000);
    try {
      return await applyPending(client, files, options);
    } finally {
      await client.query(`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY})`);
    }
  } finally {
    if (typeof target === "string") await client.end();
  }
}

// Every migrator of one database serialises on one key (advisory locks are per database), and so does
// each file's guard: `psql -1 -f` of a file waits for a running `dbmail migrate`, and the other way round.
async function takeLock(client: pg.Client, timeoutMs: number): Promise<void> {
  await client.query(`SET lock_timeout = ${Math.max(1, Math.floor(timeoutMs))}`);
  try {
    await client.query(`SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY})`);
  } catch (error) {
    if ((error as { code?: string }).code === "55P03") {
      throw new MigrationError(
        "LOCK_TIMEOUT",
        `another migration of this database held the lock for more than ${timeoutMs} ms; try again when it has finished`,
        { cause: error },
      );
    }
    throw error;
  } finally {
    await client.query("RESET lock_timeout");
  }
}

async function applyPending(
  client: pg.Client,
  files: MigrationFile[],
  options: MigrateOptions,
): Promise<MigrateResult> {
  const applied = await readApplied(client);
  checkHistory(applied, files);
  const current = applied.length;
  const pending = files.filter((f) => f.version > current);
  const latest = files.length;
  if (pending.length > 0) await refuseExtension(client);
  if (options.dryRun) {
    return { applied: pending.map(({ version, name }) => ({ version, name })), version: current, latest };
  }
  for (const file of pending) {
    const started = performance.now();
    await applyOne(client, file);
    options.onApplied?.({ version: file.version, name: file.name, ms: performance.now() - started });
  }
  return { applied: pending.map(({ version, name }) => ({ version, name })), version: latest, latest };
}

async function readApplied(client: pg.Client): Promise<AppliedRow[]> {
  const { rows } = await client.query<{ history: string | null; objects: number }>(
    `SELECT to_regclass('dbmail.migrations')::text AS history,
            (SELECT count(*)::int FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'dbmail' AND c.relname NOT IN ('migrations', 'migrations_pkey')) AS objects`,
  );
  const state = rows[0] as { history: string | null; objects: number };
  const history = state.history
    ? (
        await client.query<AppliedRow>(
          "SELECT version, name, checksum FROM dbmail.migrations ORDER BY version",
        )
      ).rows
    : [];
  if (history.length === 0 && state.objects > 0) {
    throw new MigrationError(
      "UNTRACKED_SCHEMA",
      "schema dbmail exists but no migration is recorded in dbmail.migrations: it was not installed from " +
        "these migration files; keep using what installed it, or drop schema dbmail and migrate again",
    );
  }
  return history;
}

// Objects a migration creates outside CREATE EXTENSION / ALTER EXTENSION UPDATE would not be the
// extension's, and the update script that brings the same migration later would find it applied already.
async function refuseExtension(client: pg.Client): Promise<void> {
  const { rows } = await client.query<{ version: string }>(
    "SELECT extversion AS version FROM pg_catalog.pg_extension WHERE extname = 'pg_dbmail'",
  );
  const version = rows[0]?.version;
  if (version !== undefined) {
    throw new MigrationError(
      "EXTENSION_MANAGED",
      `schema dbmail is the extension pg_dbmail ${version}: upgrade it as an extension (\`dbmail extension ` +
        "install` of this version's files, then ALTER EXTENSION pg_dbmail UPDATE), not with dbmail migrate",
    );
  }
}

function checkHistory(applied: AppliedRow[], files: MigrationFile[]): void {
  const latest = files.length;
  for (const row of applied) {
    if (row.version > latest) {
      throw new MigrationError(
        "DATABASE_AHEAD",
        `the database has migration ${row.version} (${row.name}) but this code only knows up to ${latest}: ` +
          "upgrade pg-dbmail before migrating or running against this database",
      );
    }
    const file = files[row.version - 1] as MigrationFile;
    if (file.checksum !== row.checksum) {
      throw new MigrationError(
        "CHECKSUM_MISMATCH",
        `migration ${row.version} (${file.name}) was applied with checksum ${row.checksum.slice(0, 12)}… ` +
          `but the file now has ${file.checksum.slice(0, 12)}…: applied migrations must never change; ` +
          "put the change in a new migration",
      );
    }
  }
}

// The file records itself (its last statement), exactly as it does under `psql -1 -f`; this checks that
// it did, before committing.
async function applyOne(client: pg.Client, file: MigrationFile): Promise<void> {
  await client.query("BEGIN");
  try {
    await client.query(file.sql);
    const { rows } = await client.query<{ name: string; checksum: string }>(
      "SELECT name, checksum FROM dbmail.migrations WHERE version = $1",
      [file.version],
    );
    const row = rows[0];
    if (row?.name !== file.name || row.checksum !== file.checksum) {
      throw new Error(
        `it did not record itself in dbmail.migrations as version ${file.version} (${file.name}) with ` +
          `checksum ${file.checksum.slice(0, 12)}… (found ${row ? `${row.name}, ${row.checksum.slice(0, 12)}…` : "no row"})`,
      );
    }
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK");
    const detail = error instanceof Error ? error.message : String(error);
    throw new MigrationError(
      "MIGRATION_FAILED",
      `migration ${file.version} (${file.name}) failed: ${detail}`,
      {
        cause: error,
      },
    );
  }
}
