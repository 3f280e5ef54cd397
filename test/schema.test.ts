import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { migrate } from "@pg-dbmail/sql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, withClient } from "./support/database.js";
import { withDatabase } from "./support/global-setup.js";
import { dumpSchema, toolMajorVersion } from "./support/schema-dump.js";

const snapshotPath = new URL("../sql/schema.sql", import.meta.url).pathname;
const migrationsDir = new URL("../sql/migrations", import.meta.url).pathname;
const cli = new URL("../packages/sender/dist/cli.js", import.meta.url).pathname;

let db: TestDatabase;
let serverMajor = 0;

beforeAll(async () => {
  db = await TestDatabase.create();
  const { rows } = await db.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
  serverMajor = Math.floor(Number(rows[0]?.v) / 10000);
});
afterAll(async () => {
  await db.drop();
});

// pg_dump must match the server's major version. Off CI a machine with only Node has neither psql nor
// pg_dump, so these comparisons are skipped there; CI has both and must run them.
function clientToolsMatch(): boolean {
  const usable = toolMajorVersion("pg_dump") === serverMajor && toolMajorVersion("psql") !== undefined;
  if (!usable && process.env.CI) {
    throw new Error(`CI needs psql and pg_dump ${serverMajor} on PATH to check the schema`);
  }
  return usable;
}

async function emptyDatabase(suffix: string): Promise<string> {
  const name = `${db.name}_${suffix}`;
  await withClient(db.adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  return withDatabase(db.adminUrl, name);
}

async function dropDatabase(url: string): Promise<void> {
  const name = new URL(url).pathname.slice(1);
  await withClient(db.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}

describe("schema", () => {
  it("matches the committed snapshot sql/schema.sql (npm run schema:snapshot rewrites it)", (ctx) => {
    if (!clientToolsMatch()) return ctx.skip();
    const dump = dumpSchema(db.url);
    if (process.env.UPDATE_SCHEMA_SNAPSHOT) writeFileSync(snapshotPath, dump);
    expect(dump, "sql/schema.sql is stale: run `npm run schema:snapshot` and commit it").toBe(
      readFileSync(snapshotPath, "utf8"),
    );
  });

  it("is the same, with the same dbmail.migrations rows, installed by `dbmail migrate`, by `psql -1 -f` on each file in order, or by migrate(url)", async (ctx) => {
    if (!clientToolsMatch()) return ctx.skip();
    const viaCli = await emptyDatabase("cli");
    const viaPsql = await emptyDatabase("psql");
    const viaApi = await emptyDatabase("api");
    try {
      execFileSync("node", [cli, "migrate", "--database-url", viaCli], { encoding: "utf8" });
      for (const file of readdirSync(migrationsDir)
        .filter((f) => f.endsWith(".sql"))
        .sort()) {
        execFileSync(
          "psql",
          ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", viaPsql, "-f", `${migrationsDir}/${file}`],
          {
            encoding: "utf8",
          },
        );
      }
      await migrate(viaApi, { migrationsDir });
      const cliSchema = dumpSchema(viaCli);
      expect(dumpSchema(viaPsql)).toBe(cliSchema);
      expect(dumpSchema(viaApi)).toBe(cliSchema);
      const cliRows = await migrationRows(viaCli);
      expect(cliRows.map((r) => r.version)).toEqual(
        readdirSync(migrationsDir)
          .filter((f) => f.endsWith(".sql"))
          .map((_, i) => i + 1),
      );
      expect(await migrationRows(viaPsql)).toEqual(cliRows);
      expect(await migrationRows(viaApi)).toEqual(cliRows);
    } finally {
      await dropDatabase(viaCli);
      await dropDatabase(viaPsql);
      await dropDatabase(viaApi);
    }
  });
});

async function migrationRows(url: string) {
  return withClient(
    url,
    async (c) =>
      (await c.query("SELECT version, name, checksum FROM dbmail.migrations ORDER BY version")).rows,
  );
}
