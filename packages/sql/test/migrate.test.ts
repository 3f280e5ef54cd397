import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, inject, it } from "vitest";
import { errorOf, withClient } from "../../../test/support/database.js";
import { withDatabase } from "../../../test/support/global-setup.js";
import { toolMajorVersion } from "../../../test/support/schema-dump.js";
import { checksumOf, MigrationError, migrate, readMigrationFiles } from "../src/index.js";
import { MIGRATION_LOCK_KEY, sealMigration } from "../src/migration-files.js";

const migrationsDir = new URL("../../../sql/migrations", import.meta.url).pathname;
const adminUrl = inject("adminUrl");
const created: string[] = [];

/** An empty database (not the migrated template): these tests install from scratch. */
async function emptyDatabase(): Promise<string> {
  const name = `dbmail_test_mig_${randomBytes(4).toString("hex")}`;
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  created.push(name);
  return withDatabase(adminUrl, name);
}

async function appliedVersions(url: string): Promise<number[]> {
  return withClient(url, async (c) => {
    const { rows } = await c.query<{ version: number }>(
      "SELECT version FROM dbmail.migrations ORDER BY version",
    );
    return rows.map((r) => r.version);
  });
}

const allVersions = readMigrationFiles(migrationsDir).map((f) => f.version);
const sealScript = new URL("../scripts/seal-migrations.js", import.meta.url).pathname;

const temporaryDirs: string[] = [];

/** A copy of the migrations in a temporary directory, for a test to change; removed after the run. */
function copyOfMigrations(): string {
  const dir = mkdtempSync(join(tmpdir(), "dbmail-migrations-"));
  cpSync(migrationsDir, dir, { recursive: true });
  temporaryDirs.push(dir);
  return dir;
}

function fileOf(dir: string, version: number): string {
  const file = readdirSync(dir).find((f) => f.startsWith(`${String(version).padStart(6, "0")}_`));
  if (!file) throw new Error(`no migration ${version} in ${dir}`);
  return join(dir, file);
}

/** A migration's text without its closing line (and the comment above it): as a developer writes it. */
function unsealed(sql: string): string {
  const lines = sql.trimEnd().split("\n");
  while (lines.length > 0 && /^(--|SELECT dbmail\.record_migration\(|\s*$)/.test(lines.at(-1) as string)) {
    lines.pop();
  }
  return `${lines.join("\n")}\n`;
}

/** The slug of a migration file's name. */
function nameOf(path: string): string {
  return (/\d{6}_([a-z0-9_]+)\.sql$/.exec(path) as RegExpExecArray)[1] as string;
}

/** Adds migration `version` (the next one) to `dir`, sealed as `npm run migrations:seal` would. */
function addMigration(dir: string, version: number, name: string, sql: string): void {
  const file = join(dir, `${String(version).padStart(6, "0")}_${name}.sql`);
  writeFileSync(file, sealMigration(sql, version, name, nameOf(fileOf(dir, version - 1))));
}

/** Changes the text of an applied file in `dir` and seals it again (what must never happen to a release). */
function editAndReseal(dir: string, version: number, edit: (body: string) => string): void {
  const path = fileOf(dir, version);
  const body = unsealed(readFileSync(path, "utf8"));
  const previous = version > 1 ? nameOf(fileOf(dir, version - 1)) : undefined;
  writeFileSync(path, sealMigration(edit(body), version, nameOf(path), previous));
}

afterAll(async () => {
  for (const dir of temporaryDirs) rmSync(dir, { recursive: true, force: true });
  await withClient(adminUrl, async (c) => {
    for (const name of created) await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });
});

describe("migrate", () => {
  it("installs every migration once; a second run applies nothing", async () => {
    const url = await emptyDatabase();
    const first = await migrate(url, { migrationsDir });
    expect(first.applied.map((m) => m.version)).toEqual(allVersions);
    expect(first.version).toBe(allVersions.length);
    const second = await migrate(url, { migrationsDir });
    expect(second.applied).toEqual([]);
    expect(await appliedVersions(url)).toEqual(allVersions);
  });

  it("records each file's sha256 checksum and who applied it", async () => {
    const url = await emptyDatabase();
    await migrate(url, { migrationsDir });
    const rows = await withClient(
      url,
      async (c) =>
        (await c.query("SELECT version, checksum, applied_by FROM dbmail.migrations ORDER BY version")).rows,
    );
    const files = readMigrationFiles(migrationsDir);
    expect(rows.map((r) => r.checksum)).toEqual(files.map((f) => f.checksum));
    expect(rows[0].checksum).toMatch(/^[0-9a-f]{64}$/);
  });

  it("lets 10 concurrent migrators succeed, applying each file exactly once", async () => {
    const url = await emptyDatabase();
    const results = await Promise.all(Array.from({ length: 10 }, () => migrate(url, { migrationsDir })));
    const appliedCounts = results.map((r) => r.applied.length);
    expect(appliedCounts.filter((n) => n === allVersions.length)).toHaveLength(1);
    expect(appliedCounts.filter((n) => n === 0)).toHaveLength(9);
    expect(await appliedVersions(url)).toEqual(allVersions);
  });

  it("dry run lists what would be applied and changes nothing", async () => {
    const url = await emptyDatabase();
    const result = await migrate(url, { migrationsDir, dryRun: true });
    expect(result.applied.map((m) => m.version)).toEqual(allVersions);
    expect(result.version).toBe(0);
    const schema = await withClient(
      url,
      async (c) => (await c.query("SELECT to_regnamespace('dbmail') AS s")).rows[0].s,
    );
    expect(schema).toBeNull();
  });

  it("refuses a database that is ahead of the code", async () => {
    const url = await emptyDatabase();
    await migrate(url, { migrationsDir });
    await withClient(url, (c) =>
      c.query("INSERT INTO dbmail.migrations (version, name, checksum) VALUES (999, 'from_the_future', 'x')"),
    );
    const error = await errorOf(migrate(url, { migrationsDir }));
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as MigrationError).code).toBe("DATABASE_AHEAD");
    expect(error.message).toContain("migration 999 (from_the_future)");
    expect(error.message).toContain(`only knows up to ${allVersions.length}`);
  });

  it("refuses a database whose applied migration file has changed", async () => {
    const url = await emptyDatabase();
    await migrate(url, { migrationsDir });
    const changedDir = copyOfMigrations();
    // Sealed again after the edit, so the file itself is consistent: only the database knows better.
    editAndReseal(changedDir, 2, (body) => `${body}\n-- an edit after release\n`);
    const error = await errorOf(migrate(url, { migrationsDir: changedDir }));
    expect((error as MigrationError).code).toBe("CHECKSUM_MISMATCH");
    expect(error.message).toContain("migration 2 (tables)");
  });

  it("treats CRLF line endings as the same file", async () => {
    const url = await emptyDatabase();
    await migrate(url, { migrationsDir });
    const crlfDir = mkdtempSync(join(tmpdir(), "dbmail-migrations-"));
    try {
      for (const f of readMigrationFiles(migrationsDir)) {
        const name = `${String(f.version).padStart(6, "0")}_${f.name}.sql`;
        writeFileSync(join(crlfDir, name), f.sql.replace(/\n/g, "\r\n"));
      }
      expect((await migrate(url, { migrationsDir: crlfDir })).applied).toEqual([]);
    } finally {
      rmSync(crlfDir, { recursive: true, force: true });
    }
  });

  it("refuses a schema installed by other means instead of failing half-way", async () => {
    const url = await emptyDatabase();
    await migrate(url, { migrationsDir });
    await withClient(url, (c) => c.query("DELETE FROM dbmail.migrations"));
    const error = await errorOf(migrate(url, { migrationsDir }));
    expect((error as MigrationError).code).toBe("UNTRACKED_SCHEMA");
  });

  it("rolls back a failing migration whole, with its version row", async () => {
    const url = await emptyDatabase();
    const brokenDir = mkdtempSync(join(tmpdir(), "dbmail-migrations-"));
    try {
      cpSync(migrationsDir, brokenDir, { recursive: true });
      addMigration(
        brokenDir,
        allVersions.length + 1,
        "broken",
        "CREATE TABLE dbmail.half_done (id int);\nSELECT 1/0;\n",
      );
      const error = await errorOf(migrate(url, { migrationsDir: brokenDir }));
      expect((error as MigrationError).code).toBe("MIGRATION_FAILED");
      expect(error.message).toContain("division by zero");
      expect(await appliedVersions(url)).toEqual(allVersions);
      const table = await withClient(
        url,
        async (c) => (await c.query("SELECT to_regclass('dbmail.half_done') AS t")).rows[0].t,
      );
      expect(table).toBeNull();
    } finally {
      rmSync(brokenDir, { recursive: true, force: true });
    }
  });

  it("installs into two databases of one cluster independently (roles are shared)", async () => {
    const [a, b] = await Promise.all([emptyDatabase(), emptyDatabase()]);
    await Promise.all([migrate(a, { migrationsDir }), migrate(b, { migrationsDir })]);
    expect(await appliedVersions(a)).toEqual(allVersions);
    expect(await appliedVersions(b)).toEqual(allVersions);
    const roles = await withClient(a, async (c) =>
      (
        await c.query<{ rolname: string }>(
          "SELECT rolname FROM pg_roles WHERE rolname LIKE 'dbmail\\_%' ORDER BY rolname",
        )
      ).rows.map((r) => r.rolname),
    );
    expect(roles).toEqual(expect.arrayContaining(["dbmail_admin", "dbmail_sender", "dbmail_user"]));
  });

  it("works on a client the caller owns and leaves it open", async () => {
    const url = await emptyDatabase();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await migrate(client, { migrationsDir });
      const { rows } = await client.query("SELECT 1 AS ok");
      expect(rows[0].ok).toBe(1);
    } finally {
      await client.end();
    }
  });
});

describe("sealed migration files", () => {
  it("every shipped file starts with its guard and ends with the line that records it", () => {
    const files = readMigrationFiles(migrationsDir);
    for (const file of files) {
      const lines = file.sql.trimEnd().split("\n");
      expect(lines.at(-1)).toBe(
        `SELECT dbmail.record_migration(${file.version}, '${file.name}', '${file.checksum}');`,
      );
      const first = lines.find((line) => line.trim() !== "" && !line.startsWith("--"));
      const previous = files[file.version - 2]?.name;
      expect(first).toBe(
        file.version === 1
          ? "DO $$"
          : `SELECT dbmail.begin_migration(${file.version}, '${file.name}', '${previous}');`,
      );
    }
    expect(readFileSync(fileOf(migrationsDir, 1), "utf8")).toContain(
      `pg_catalog.pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`,
    );
  });

  it("refuses a file without a closing line, naming it, before changing anything", async () => {
    const url = await emptyDatabase();
    const dir = copyOfMigrations();
    const path = fileOf(dir, 3);
    writeFileSync(path, unsealed(readFileSync(path, "utf8")));
    expect(() => readMigrationFiles(dir)).toThrow(/000003_helpers\.sql .*has no closing line/);
    await errorOf(migrate(url, { migrationsDir: dir }));
    const schema = await withClient(
      url,
      async (c) => (await c.query("SELECT to_regnamespace('dbmail') AS s")).rows[0].s,
    );
    expect(schema).toBeNull();
  });

  it("refuses a file edited after it was sealed (its closing line's checksum no longer matches)", async () => {
    const dir = copyOfMigrations();
    const path = fileOf(dir, 4);
    writeFileSync(
      path,
      readFileSync(path, "utf8").replace(
        "CREATE FUNCTION dbmail.caller_role",
        "CREATE FUNCTION dbmail.caller_rol",
      ),
    );
    const error = await errorOf(Promise.resolve().then(() => readMigrationFiles(dir)));
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as MigrationError).code).toBe("CHECKSUM_MISMATCH");
    expect(error.message).toContain("000004_callers.sql");
    expect(error.message).toContain("edited after it was sealed");
  });

  it("refuses a closing line for another file, text after the closing line, and a missing guard", () => {
    const dir = copyOfMigrations();
    const path = fileOf(dir, 5);
    const original = readFileSync(path, "utf8");
    writeFileSync(
      path,
      original.replace("record_migration(5, 'addresses'", "record_migration(6, 'addresses'"),
    );
    expect(() => readMigrationFiles(dir)).toThrow(/000005_addresses\.sql .*closing line must be/);
    writeFileSync(path, `${original}SELECT 1;\n`);
    expect(() => readMigrationFiles(dir)).toThrow(
      /000005_addresses\.sql .*nothing may follow its closing line/,
    );
    const withoutGuard = unsealed(original).replace(/^SELECT dbmail\.begin_migration\(.*\n/m, "");
    writeFileSync(
      path,
      `${withoutGuard}SELECT dbmail.record_migration(5, 'addresses', '${checksumOf(withoutGuard)}');\n`,
    );
    expect(() => readMigrationFiles(dir)).toThrow(
      "000005_addresses.sql in " +
        dir +
        ": its first statement must be `SELECT dbmail.begin_migration(5, 'addresses', 'callers');`",
    );
  });

  it("the seal script seals a new file (guard and closing line) and never touches a sealed one", () => {
    const dir = copyOfMigrations();
    const before = readdirSync(dir).map((f) => readFileSync(join(dir, f), "utf8"));
    const next = allVersions.length + 1;
    const newFile = join(dir, `${String(next).padStart(6, "0")}_later.sql`);
    writeFileSync(newFile, "-- pg-dbmail: a later change.\n\nCREATE TABLE dbmail.later (id int);\n");
    const run = () => spawnSync(process.execPath, [sealScript, dir], { encoding: "utf8" });
    const first = run();
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toContain(`sealed ${String(next).padStart(6, "0")}_later.sql`);
    const sealed = readFileSync(newFile, "utf8");
    expect(sealed).toContain(
      `\nSELECT dbmail.begin_migration(${next}, 'later', '${readMigrationFiles(migrationsDir).at(-1)?.name}');\n`,
    );
    expect(sealed.trimEnd().split("\n").at(-1)).toMatch(
      new RegExp(`^SELECT dbmail\\.record_migration\\(${next}, 'later', '[0-9a-f]{64}'\\);$`),
    );
    expect(
      readdirSync(dir)
        .slice(0, -1)
        .map((f) => readFileSync(join(dir, f), "utf8")),
    ).toEqual(before);
    const second = run();
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout).not.toContain("sealed 0");
    expect(readFileSync(newFile, "utf8")).toBe(sealed);
    expect(readMigrationFiles(dir).at(-1)).toMatchObject({ version: next, name: "later" });
  });

  it("refuses a database where a file did not record itself as expected", async () => {
    const url = await emptyDatabase();
    const dir = copyOfMigrations();
    addMigration(
      dir,
      allVersions.length + 1,
      "forgetful",
      `CREATE OR REPLACE FUNCTION dbmail.record_migration(version integer, name text, checksum text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$BEGIN END$$;\n`,
    );
    const error = await errorOf(migrate(url, { migrationsDir: dir }));
    expect((error as MigrationError).code).toBe("MIGRATION_FAILED");
    expect(error.message).toContain("did not record itself in dbmail.migrations");
    expect(await appliedVersions(url)).toEqual(allVersions);
  });
});

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
