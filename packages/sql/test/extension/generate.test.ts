// The extension's files as the build makes them from the migrations: the install script is every
// migration verbatim, in order, and nothing an extension script may not hold; an update script between
// two versions holds exactly the migrations added in between (shown with a made-up second version, as
// there is one release so far); a wrong table of releases is refused; the built files are these.
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  extensionFiles,
  extensionReleases,
  type MigrationFile,
  readMigrationFiles,
} from "../../src/index.js";

const migrationsDir = new URL("../../../../sql/migrations", import.meta.url).pathname;
const builtDir = new URL("../../extension", import.meta.url).pathname;
const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  version: string;
};
const migrations = readMigrationFiles(migrationsDir);

/** A made-up migration after the real ones; never applied, only generated from. */
const madeUp: MigrationFile = {
  version: migrations.length + 1,
  name: "made_up",
  checksum: "0".repeat(64),
  sql: `SELECT dbmail.begin_migration(${migrations.length + 1}, 'made_up', 'privileges');\nCREATE TABLE dbmail.made_up (id integer);\n`,
};

function byName(files: { name: string; text: string }[]): Record<string, string> {
  return Object.fromEntries(files.map((f) => [f.name, f.text]));
}

/** The migration files a script holds, by the marker line before each. */
function included(script: string): string[] {
  return [...script.matchAll(/^-- (\d{6}_[a-z0-9_]+\.sql)$/gm)].map((m) => m[1] as string);
}

describe("the extension pg_dbmail, generated from the migrations", () => {
  it("has a control file, one install script with every migration verbatim and in order, and a PGXS Makefile", () => {
    const files = byName(extensionFiles(migrations, version));
    expect(Object.keys(files).sort()).toEqual(["Makefile", `pg_dbmail--${version}.sql`, "pg_dbmail.control"]);
    const control = files["pg_dbmail.control"] as string;
    expect(control).toMatch(new RegExp(`^default_version = '${version.replace(/\./g, "\\.")}'$`, "m"));
    expect(control).toMatch(/^superuser = true$/m);
    expect(control).toMatch(/^relocatable = false$/m);
    expect(control).not.toMatch(/^schema/m);

    const script = files[`pg_dbmail--${version}.sql`] as string;
    expect(included(script)).toEqual(
      migrations.map((m) => `${String(m.version).padStart(6, "0")}_${m.name}.sql`),
    );
    let at = 0;
    for (const migration of migrations) {
      const found = script.indexOf(migration.sql.trimEnd(), at);
      expect(found, `${migration.name} verbatim, after the one before`).toBeGreaterThan(at);
      at = found;
    }
    // Extension scripts run as one statement list inside CREATE EXTENSION: no transaction control, and
    // no psql commands but the conventional first line, which CREATE EXTENSION drops.
    expect(script).not.toMatch(/^\s*(BEGIN|COMMIT|ROLLBACK|START TRANSACTION)\s*;/im);
    expect(script.split("\n").filter((line) => line.startsWith("\\"))).toEqual([
      '\\echo Use "CREATE EXTENSION pg_dbmail" to load this file. \\quit',
    ]);
    expect(script.trimEnd().endsWith("END\n$$;")).toBe(true);
    expect(script).toContain("PERFORM pg_catalog.pg_extension_config_dump(relation, '')");

    expect(files.Makefile).toMatch(/^EXTENSION = pg_dbmail$/m);
    expect(files.Makefile).toMatch(
      new RegExp(`^DATA = pg_dbmail--${version.replace(/\./g, "\\.")}\\.sql$`, "m"),
    );
    expect(files.Makefile).toMatch(/^include \$\(PGXS\)$/m);
  });

  it("writes an update script with the migrations added between two versions (made-up 0.2.0)", () => {
    const files = byName(
      extensionFiles([...migrations, madeUp], "0.2.0", [
        { version: "0.1.0", lastMigration: migrations.length },
      ]),
    );
    expect(Object.keys(files).sort()).toEqual([
      "Makefile",
      "pg_dbmail--0.1.0--0.2.0.sql",
      "pg_dbmail--0.2.0.sql",
      "pg_dbmail.control",
    ]);
    const update = files["pg_dbmail--0.1.0--0.2.0.sql"] as string;
    expect(included(update)).toEqual([`${String(madeUp.version).padStart(6, "0")}_made_up.sql`]);
    expect(update).toContain("CREATE TABLE dbmail.made_up (id integer);");
    // The new table is marked for pg_dump by the update script, which ends like the install script.
    expect(update).toContain("PERFORM pg_catalog.pg_extension_config_dump(relation, '')");
    expect(included(files["pg_dbmail--0.2.0.sql"] as string)).toHaveLength(migrations.length + 1);
    expect(files["pg_dbmail.control"]).toMatch(/^default_version = '0\.2\.0'$/m);
    expect(files.Makefile).toMatch(/^DATA = pg_dbmail--0\.2\.0\.sql pg_dbmail--0\.1\.0--0\.2\.0\.sql$/m);

    // Three versions chain: 0.1.0 -> 0.2.0 -> 0.3.0, each update script with its own migrations.
    const chained = byName(
      extensionFiles([...migrations, madeUp], "0.3.0", [
        { version: "0.1.0", lastMigration: migrations.length - 1 },
        { version: "0.2.0", lastMigration: migrations.length },
      ]),
    );
    expect(included(chained["pg_dbmail--0.1.0--0.2.0.sql"] as string)).toEqual(["000021_privileges.sql"]);
    expect(included(chained["pg_dbmail--0.2.0--0.3.0.sql"] as string)).toEqual(["000022_made_up.sql"]);
  });

  it("refuses a table of releases that would skip or repeat migrations", () => {
    const n = migrations.length;
    expect(() => extensionFiles(migrations, "0.2.0", [{ version: "0.1.0", lastMigration: n }])).toThrow(
      `extension version 0.2.0: its last migration (${n}) must come after 0.1.0's (${n}); a version without migrations needs no release`,
    );
    expect(() => extensionFiles(migrations, "0.2.0", [{ version: "0.1.0", lastMigration: n + 5 }])).toThrow(
      `extension version 0.1.0: last migration ${n + 5}, but there are ${n} migration files`,
    );
    expect(() => extensionFiles(migrations, "next", [])).toThrow(
      'extension version "next": not a version like 1.2.3',
    );
  });

  it("is what the build wrote into packages/sql/extension, for this package's version and releases", () => {
    const files = extensionFiles(readMigrationFiles(), version, extensionReleases);
    expect(readdirSync(builtDir).sort()).toEqual(files.map((f) => f.name).sort());
    for (const file of files)
      expect(readFileSync(`${builtDir}/${file.name}`, "utf8"), file.name).toBe(file.text);
  });
});
