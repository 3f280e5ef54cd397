// Sealed migration files (SPEC.md section 10): each shipped file opens with its guard and closes with the
// line that records it; a file without its closing line, edited after sealing, or with a wrong guard or
// closing line is refused before anything changes; the seal script seals only a new file.
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import {
  addMigration,
  allVersions,
  appliedVersions,
  copyOfMigrations,
  dbmailSchema,
  emptyDatabase,
  fileOf,
  migrationsDir,
  removeDatabasesAndCopies,
  unsealed,
} from "../../../../test/support/migrations.js";
import { checksumOf, MigrationError, migrate, readMigrationFiles } from "../../src/index.js";
import { MIGRATION_LOCK_KEY } from "../../src/migration-files.js";

const sealScript = new URL("../../scripts/seal-migrations.js", import.meta.url).pathname;

afterAll(removeDatabasesAndCopies);

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
    expect(await dbmailSchema(url)).toBeNull();
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
