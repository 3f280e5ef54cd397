// What the tests of installing schema dbmail share: empty databases to install into (not the migrated
// template), copies of sql/migrations to change, and the sealing of a migration file as a developer does it.
import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inject } from "vitest";
import { readMigrationFiles } from "../../packages/sql/src/index.js";
import { sealMigration } from "../../packages/sql/src/migration-files.js";
import { withClient } from "./database.js";
import { migrationsDir, withDatabase } from "./global-setup.js";

export { migrationsDir };

export const allVersions = readMigrationFiles(migrationsDir).map((f) => f.version);

const createdDatabases: string[] = [];
const temporaryDirs: string[] = [];

/** An empty database (not the migrated template): these tests install from scratch. */
export async function emptyDatabase(): Promise<string> {
  const adminUrl = inject("adminUrl");
  const name = `dbmail_test_mig_${randomBytes(4).toString("hex")}`;
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  createdDatabases.push(name);
  return withDatabase(adminUrl, name);
}

/** Drops the databases of emptyDatabase and removes the directories of copyOfMigrations, for an afterAll. */
export async function removeDatabasesAndCopies(): Promise<void> {
  for (const dir of temporaryDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  const names = createdDatabases.splice(0);
  await withClient(inject("adminUrl"), async (c) => {
    for (const name of names) await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });
}

export async function appliedVersions(url: string): Promise<number[]> {
  return withClient(url, async (c) => {
    const { rows } = await c.query<{ version: number }>(
      "SELECT version FROM dbmail.migrations ORDER BY version",
    );
    return rows.map((r) => r.version);
  });
}

/** Schema dbmail's oid in the database at `url`, or null when it has none. */
export async function dbmailSchema(url: string): Promise<unknown> {
  return withClient(url, async (c) => (await c.query("SELECT to_regnamespace('dbmail') AS s")).rows[0].s);
}

/** A copy of the migrations in a temporary directory, for a test to change; removed after the run. */
export function copyOfMigrations(): string {
  const dir = mkdtempSync(join(tmpdir(), "dbmail-migrations-"));
  cpSync(migrationsDir, dir, { recursive: true });
  temporaryDirs.push(dir);
  return dir;
}

export function fileOf(dir: string, version: number): string {
  const file = readdirSync(dir).find((f) => f.startsWith(`${String(version).padStart(6, "0")}_`));
  if (!file) throw new Error(`no migration ${version} in ${dir}`);
  return join(dir, file);
}

/** A migration's text without its closing line (and the comment above it): as a developer writes it. */
export function unsealed(sql: string): string {
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
export function addMigration(dir: string, version: number, name: string, sql: string): void {
  const file = join(dir, `${String(version).padStart(6, "0")}_${name}.sql`);
  writeFileSync(file, sealMigration(sql, version, name, nameOf(fileOf(dir, version - 1))));
}

/** Changes the text of an applied file in `dir` and seals it again (what must never happen to a release). */
export function editAndReseal(dir: string, version: number, edit: (body: string) => string): void {
  const path = fileOf(dir, version);
  const body = unsealed(readFileSync(path, "utf8"));
  const previous = version > 1 ? nameOf(fileOf(dir, version - 1)) : undefined;
  writeFileSync(path, sealMigration(edit(body), version, nameOf(path), previous));
}
