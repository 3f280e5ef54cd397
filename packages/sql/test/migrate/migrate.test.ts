// dbmail's migrate() (SPEC.md sections 2 and 10): every migration applied once, in its own transaction
// with its version row and checksum, safely twice or from ten migrators at once, a dry run, two databases
// of one cluster; a database ahead of the code, an applied file that changed, or a schema installed by
// other means is refused.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { errorOf, withClient } from "../../../../test/support/database.js";
import {
  addMigration,
  allVersions,
  appliedVersions,
  copyOfMigrations,
  dbmailSchema,
  editAndReseal,
  emptyDatabase,
  migrationsDir,
  removeDatabasesAndCopies,
} from "../../../../test/support/migrations.js";
import { MigrationError, migrate, readMigrationFiles } from "../../src/index.js";

afterAll(removeDatabasesAndCopies);

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
    expect(await dbmailSchema(url)).toBeNull();
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
