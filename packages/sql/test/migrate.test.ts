import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, inject, it } from "vitest";
import { errorOf, withClient } from "../../../test/support/database.js";
import { withDatabase } from "../../../test/support/global-setup.js";
import { MigrationError, migrate, readMigrationFiles } from "../src/index.js";

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

afterAll(async () => {
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
    const changedDir = mkdtempSync(join(tmpdir(), "dbmail-migrations-"));
    try {
      cpSync(migrationsDir, changedDir, { recursive: true });
      const file = join(changedDir, "000002_helpers.sql");
      writeFileSync(file, `${readFileSync(file, "utf8")}\n-- an edit after release\n`);
      const error = await errorOf(migrate(url, { migrationsDir: changedDir }));
      expect((error as MigrationError).code).toBe("CHECKSUM_MISMATCH");
      expect(error.message).toContain("migration 2 (helpers)");
    } finally {
      rmSync(changedDir, { recursive: true, force: true });
    }
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
      const next = String(allVersions.length + 1).padStart(6, "0");
      writeFileSync(
        join(brokenDir, `${next}_broken.sql`),
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
