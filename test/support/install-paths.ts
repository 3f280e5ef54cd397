// The three ways to install schema dbmail (SPEC.md section 10), for the tests that compare them: `dbmail
// migrate`, `psql -1 -f` on each migration file, and CREATE EXTENSION pg_dbmail; and a schema dump of an
// extension install that can be compared with the others.
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { withClient } from "./database.js";
import { withDatabase } from "./global-setup.js";
import { dumpSchema } from "./schema-dump.js";

export const migrationsDir = new URL("../../sql/migrations", import.meta.url).pathname;
export const extensionBuildDir = new URL("../../packages/sql/extension", import.meta.url).pathname;
export const snapshotPath = new URL("../../sql/schema.sql", import.meta.url).pathname;
const cli = new URL("../../packages/sender/dist/cli.js", import.meta.url).pathname;

/** The CLI's environment: nothing that would choose a database for it but --database-url. */
export const cliEnv = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => name !== "DATABASE_URL" && !name.startsWith("PG")),
);

export function runCli(args: string[], options: { uid?: number; gid?: number } = {}) {
  return execFileSync(process.execPath, [cli, ...args], { encoding: "utf8", env: cliEnv, ...options });
}

export async function createDatabase(serverUrl: string, name: string): Promise<string> {
  await withClient(serverUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  return withDatabase(serverUrl, name);
}

export function installWithCli(url: string): void {
  runCli(["migrate", "--database-url", url]);
}

export function installWithPsql(url: string, psql = "psql"): void {
  for (const file of readdirSync(migrationsDir)
    .filter((f) => f.endsWith(".sql"))
    .sort()) {
    execFileSync(
      psql,
      ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", url, "-f", join(migrationsDir, file)],
      {
        encoding: "utf8",
      },
    );
  }
}

export async function installWithExtension(url: string, version?: string): Promise<void> {
  await withClient(url, (c) =>
    c.query(`CREATE EXTENSION pg_dbmail${version ? ` VERSION '${version}'` : ""}`),
  );
}

export async function migrationRows(url: string) {
  return withClient(
    url,
    async (c) =>
      (await c.query("SELECT version, name, checksum FROM dbmail.migrations ORDER BY version")).rows,
  );
}

/**
 * Schema dbmail of an extension install as `pg_dump --schema-only` prints it. pg_dump leaves an
 * extension's members out by design (CREATE EXTENSION makes them), so the dump is taken of a throwaway
 * copy of the database in which the extension's catalog entries are removed: its member objects, their
 * initial privileges and the extension itself, leaving every object and grant as CREATE EXTENSION made it.
 */
export async function dumpExtensionSchema(serverUrl: string, database: string): Promise<string> {
  const copy = `${database}_unpackaged`;
  await withClient(serverUrl, (c) => c.query(`CREATE DATABASE ${copy} TEMPLATE ${database}`));
  const copyUrl = withDatabase(serverUrl, copy);
  try {
    await withClient(copyUrl, async (c) => {
      const { rows } = await c.query<{ oid: number }>(
        "SELECT oid FROM pg_extension WHERE extname = 'pg_dbmail'",
      );
      const oid = rows[0]?.oid;
      if (oid === undefined) throw new Error(`${database} has no extension pg_dbmail`);
      await c.query(
        `DELETE FROM pg_init_privs i USING pg_depend d
         WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = $1 AND d.deptype = 'e'
           AND i.classoid = d.classid AND i.objoid = d.objid`,
        [oid],
      );
      // Privileges of the columns and sub-objects of member tables are recorded with the table's oid.
      await c.query(
        `DELETE FROM pg_init_privs i WHERE i.privtype = 'e' AND i.classoid = 'pg_class'::regclass
           AND i.objoid IN (SELECT oid FROM pg_class WHERE relnamespace = 'dbmail'::regnamespace)`,
      );
      await c.query("DELETE FROM pg_depend WHERE refclassid = 'pg_extension'::regclass AND refobjid = $1", [
        oid,
      ]);
      await c.query("DELETE FROM pg_extension WHERE oid = $1", [oid]);
    });
    return dumpSchema(copyUrl);
  } finally {
    await withClient(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${copy} WITH (FORCE)`));
  }
}
