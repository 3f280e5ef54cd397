// Installing with `psql -v ON_ERROR_STOP=1 -1 -f` on each file (SPEC.md section 10): the same rows in
// dbmail.migrations as migrate(), after which migrate() has nothing to do; a file applied twice or out of
// order is refused, changing nothing; psql and migrate() wait for each other's lock.
import { spawnSync } from "node:child_process";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { errorOf, withClient } from "../../../../test/support/database.js";
import {
  allVersions,
  appliedVersions,
  emptyDatabase,
  fileOf,
  migrationsDir,
  removeDatabasesAndCopies,
} from "../../../../test/support/migrations.js";
import { toolMajorVersion } from "../../../../test/support/schema-dump.js";
import { type MigrationError, migrate } from "../../src/index.js";
import { MIGRATION_LOCK_KEY } from "../../src/migration-files.js";

afterAll(removeDatabasesAndCopies);

// psql users run each file with `psql -v ON_ERROR_STOP=1 -1 -f`. Off CI a machine with only Node has no
// psql, so these are skipped there; CI has it and must run them.
function psqlAvailable(): boolean {
  const usable = toolMajorVersion("psql") !== undefined;
  if (!usable && process.env.CI) throw new Error("CI needs psql on PATH to check installs by psql");
  return usable;
}

function psql(url: string, file: string, env: Record<string, string> = {}) {
  return spawnSync("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", url, "-f", file], {
    encoding: "utf8",
    env: { ...process.env, ...env },
  });
}

function psqlInstall(url: string, versions: number[] = allVersions): void {
  for (const version of versions) {
    const result = psql(url, fileOf(migrationsDir, version));
    if (result.status !== 0) throw new Error(`psql -f ${fileOf(migrationsDir, version)}: ${result.stderr}`);
  }
}

async function migrationRows(url: string) {
  return withClient(
    url,
    async (c) =>
      (await c.query("SELECT version, name, checksum FROM dbmail.migrations ORDER BY version")).rows,
  );
}

/** The migrations rows (with when and who) and the objects of schema dbmail, to show nothing changed. */
async function fingerprint(url: string) {
  return withClient(url, async (c) => {
    const { rows } = await c.query(
      `SELECT (SELECT json_agg(m ORDER BY m.version) FROM dbmail.migrations m)::text AS migrations,
              (SELECT string_agg(p.oid::regprocedure::text || ':' || md5(p.prosrc), ',' ORDER BY p.oid)
                 FROM pg_proc p WHERE p.pronamespace = 'dbmail'::regnamespace) AS functions,
              (SELECT string_agg(c.oid::regclass::text, ',' ORDER BY c.oid)
                 FROM pg_class c WHERE c.relnamespace = 'dbmail'::regnamespace) AS relations`,
    );
    return rows[0];
  });
}

describe("installing with psql -1 -f", () => {
  it("records each file as migrate() does; a later migrate() applies nothing", async (ctx) => {
    if (!psqlAvailable()) return ctx.skip();
    const [viaPsql, viaMigrate] = await Promise.all([emptyDatabase(), emptyDatabase()]);
    psqlInstall(viaPsql);
    await migrate(viaMigrate, { migrationsDir });
    expect(await migrationRows(viaPsql)).toEqual(await migrationRows(viaMigrate));
    const later = await migrate(viaPsql, { migrationsDir });
    expect(later.applied).toEqual([]);
    expect(later.version).toBe(allVersions.length);
  });

  it("refuses a file applied twice, with a clear message, changing nothing", async (ctx) => {
    if (!psqlAvailable()) return ctx.skip();
    const url = await emptyDatabase();
    psqlInstall(url);
    const before = await fingerprint(url);
    const again = psql(url, fileOf(migrationsDir, 3));
    expect(again.status).toBe(3);
    expect(again.stderr).toContain("ERROR:  000003_helpers is already applied to this database");
    const first = psql(url, fileOf(migrationsDir, 1));
    expect(first.status).toBe(3);
    expect(first.stderr).toContain("ERROR:  000001_schema is already applied to this database");
    expect(await fingerprint(url)).toEqual(before);
  });

  it("refuses a file applied out of order, naming the one it needs first", async (ctx) => {
    if (!psqlAvailable()) return ctx.skip();
    const url = await emptyDatabase();
    const tooEarly = psql(url, fileOf(migrationsDir, 2));
    expect(tooEarly.status).toBe(3);
    expect(tooEarly.stderr).toContain('schema "dbmail" does not exist');
    psqlInstall(url, [1, 2]);
    const before = await fingerprint(url);
    const skipped = psql(url, fileOf(migrationsDir, 4));
    expect(skipped.status).toBe(3);
    expect(skipped.stderr).toContain(
      "ERROR:  000004_callers needs 000003_helpers first; this database is at version 2",
    );
    expect(await fingerprint(url)).toEqual(before);
    // A database whose version 2 is another file than the one 000003 follows.
    await withClient(url, (c) => c.query("UPDATE dbmail.migrations SET name = 'other' WHERE version = 2"));
    const mismatched = psql(url, fileOf(migrationsDir, 3));
    expect(mismatched.status).toBe(3);
    expect(mismatched.stderr).toContain(
      "ERROR:  000003_helpers follows 000002_tables, but this database's version 2 is 000002_other",
    );
    await withClient(url, (c) => c.query("UPDATE dbmail.migrations SET name = 'tables' WHERE version = 2"));
    // The rest, in order, then completes the install.
    psqlInstall(url, allVersions.slice(2));
    expect(await appliedVersions(url)).toEqual(allVersions);
  });

  it("waits for dbmail migrate's lock, and migrate() waits for a psql transaction's", async (ctx) => {
    if (!psqlAvailable()) return ctx.skip();
    const url = await emptyDatabase();
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      // A migrator's session lock: psql's guard waits for it (here until its lock_timeout).
      await holder.query(`SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY})`);
      const blocked = psql(url, fileOf(migrationsDir, 1), { PGOPTIONS: "-c lock_timeout=300" });
      expect(blocked.status).toBe(3);
      expect(blocked.stderr).toContain("lock timeout");
      await holder.query(`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY})`);
      // A file's transaction under psql, between its guard and its end: migrate() waits for it.
      await holder.query(`BEGIN; SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
      const error = await errorOf(migrate(url, { migrationsDir, lockTimeoutMs: 300 }));
      expect((error as MigrationError).code).toBe("LOCK_TIMEOUT");
      await holder.query("ROLLBACK");
    } finally {
      await holder.end();
    }
    expect((await migrate(url, { migrationsDir })).applied.map((m) => m.version)).toEqual(allVersions);
  });
});
