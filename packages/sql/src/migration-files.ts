import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { MigrationError } from "./errors.js";

/** One numbered SQL file of sql/migrations. */
export interface MigrationFile {
  version: number;
  name: string;
  /**
   * sha256 of the file's text above its closing line, line endings normalised (a checkout with CRLF
   * endings still matches). The closing line carries it and records it in dbmail.migrations.
   */
  checksum: string;
  /** The whole file, run as it is: its first statement guards it, its last records it. */
  sql: string;
}

const FILE_NAME = /^(\d{6})_([a-z0-9_]+)\.sql$/;

/**
 * The advisory lock every migrator of one database takes: `dbmail migrate` for its whole run (session
 * level), each file's guard for its transaction. Advisory locks are per database.
 */
export const MIGRATION_LOCK_KEY = "pg_catalog.hashtextextended('pg-dbmail migrations', 0)";

// A file's last line records it; nothing but whitespace may follow (it would not be checksummed).
const CLOSING_PREFIX = "SELECT dbmail.record_migration(";
const CLOSING = /^SELECT dbmail\.record_migration\((\d+), '([a-z0-9_]+)', '([0-9a-f]{64})'\);$/;
const CLOSING_COMMENT =
  "-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line\n" +
  "-- (written by `npm run migrations:seal`).\n";
const GUARD_PREFIX = "SELECT dbmail.begin_migration(";
const GUARD_COMMENT =
  "-- The guard: waits for any other migrator; refuses this file if applied already or out of order.";

/** The migrations shipped with this package (copied from the repository's sql/migrations at build). */
export const bundledMigrationsDir = fileURLToPath(new URL("../migrations", import.meta.url));

export function checksumOf(sql: string): string {
  return createHash("sha256").update(sql.replace(/\r\n/g, "\n")).digest("hex");
}

/** A file's last statement: records version, name and checksum in dbmail.migrations. */
export function closingStatement(version: number, name: string, checksum: string): string {
  return `${CLOSING_PREFIX}${version}, '${name}', '${checksum}');`;
}

/**
 * The first statement of every file after the first (which has a DO block of its own, since nothing
 * exists yet): takes the migrators' lock, then refuses a file already applied or applied out of order.
 */
export function guardStatement(version: number, name: string, previousName: string): string {
  return `${GUARD_PREFIX}${version}, '${name}', '${previousName}');`;
}

function fileName(version: number, name: string): string {
  return `${String(version).padStart(6, "0")}_${name}.sql`;
}

/** The file's text above its closing line (which the checksum covers) and the line, if it has one. */
function splitClosing(sql: string): { body: string; closing: string } | undefined {
  const text = sql.replace(/\r\n/g, "\n").trimEnd();
  const lastBreak = text.lastIndexOf("\n");
  const last = text.slice(lastBreak + 1);
  return last.startsWith(CLOSING_PREFIX) ? { body: text.slice(0, lastBreak + 1), closing: last } : undefined;
}

/** Whether a file carries a closing line anywhere (sealing never touches such a file). */
export function isSealed(sql: string): boolean {
  return sql.split(/\r?\n/).some((line) => line.startsWith(CLOSING_PREFIX));
}

/** The first line that is neither blank nor a comment. */
function firstStatementLine(body: string): { index: number; line: string } | undefined {
  const lines = body.split("\n");
  const index = lines.findIndex((line) => line.trim() !== "" && !line.trimStart().startsWith("--"));
  return index < 0 ? undefined : { index, line: lines[index] as string };
}

/** Why a file's guard is not what its version needs, or undefined when it is. */
function guardProblem(
  body: string,
  version: number,
  name: string,
  previousName?: string,
): string | undefined {
  const first = firstStatementLine(body);
  if (version === 1) {
    // File 1 cannot call a function (nothing exists yet): it starts with a DO block taking the lock.
    const block = first?.line === "DO $$" ? body.split("\n").slice(first.index).join("\n") : "";
    const end = block.indexOf("\n$$;");
    if (end < 0 || !block.slice(0, end).includes(MIGRATION_LOCK_KEY)) {
      return `its first statement must be a DO block taking pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`;
    }
    return undefined;
  }
  const expected = guardStatement(version, name, previousName as string);
  return first?.line === expected ? undefined : `its first statement must be \`${expected}\``;
}

/**
 * Seals a new migration: puts the guard before its first statement (files after the first) unless it
 * has it, and appends the closing line with the checksum of everything above it. Refuses a file that
 * has a closing line already: a sealed file never changes.
 */
export function sealMigration(sql: string, version: number, name: string, previousName?: string): string {
  const file = fileName(version, name);
  if (isSealed(sql)) throw new Error(`${file} is sealed already: a sealed migration never changes`);
  if (version > 1 && previousName === undefined) {
    throw new Error(`${file}: the previous file's name is needed`);
  }
  const eol = sql.includes("\r\n") ? "\r\n" : "\n";
  let body = `${sql.replace(/\r\n/g, "\n").trimEnd()}\n`;
  const first = firstStatementLine(body);
  if (version > 1 && !first?.line.startsWith(GUARD_PREFIX)) {
    // After the file's header comment, when a blank line ends it; else before the first statement.
    const lines = body.split("\n");
    const header = lines.findIndex((line) => !line.startsWith("--"));
    const at = first && header >= 0 && header < first.index ? header + 1 : (first?.index ?? 0);
    lines.splice(at, 0, GUARD_COMMENT, guardStatement(version, name, previousName as string), "");
    body = lines.join("\n");
  }
  const problem = guardProblem(body, version, name, previousName);
  if (problem) throw new Error(`${file}: ${problem}`);
  body = `${body}\n${CLOSING_COMMENT}`;
  return `${body}${closingStatement(version, name, checksumOf(body))}\n`.replace(/\n/g, eol);
}

/**
 * Reads the migration files in version order. Refuses gaps and stray names so a typo cannot skip one,
 * and a file whose guard or closing line is missing or wrong, or whose text changed after it was sealed.
 */
export function readMigrationFiles(dir: string = bundledMigrationsDir): MigrationFile[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort();
  let previousName: string | undefined;
  return files.map((file, index) => {
    const match = FILE_NAME.exec(file);
    if (!match) {
      throw new Error(`migration file ${file} in ${dir} is not named NNNNNN_slug.sql`);
    }
    const version = Number(match[1]);
    if (version !== index + 1) {
      throw new Error(
        `migration file ${file} in ${dir}: expected version ${index + 1} (versions have no gaps)`,
      );
    }
    const name = match[2] as string;
    const sql = readFileSync(`${dir}/${file}`, "utf8");
    const checksum = checkSealed(sql, version, name, previousName, `migration file ${file} in ${dir}`);
    previousName = name;
    return { version, name, checksum, sql };
  });
}

/** The checksum a sealed file records, after checking its guard, its closing line and its text. */
function checkSealed(
  sql: string,
  version: number,
  name: string,
  previousName: string | undefined,
  what: string,
): string {
  const split = splitClosing(sql);
  if (!split) {
    throw new Error(
      isSealed(sql)
        ? `${what}: nothing may follow its closing line (${CLOSING_PREFIX}...)`
        : `${what} has no closing line ${CLOSING_PREFIX}...): run \`npm run migrations:seal\``,
    );
  }
  const { body, closing } = split;
  const parts = CLOSING.exec(closing);
  const expected = `${CLOSING_PREFIX}${version}, '${name}', '<sha256, 64 hex digits>');`;
  if (!parts || Number(parts[1]) !== version || parts[2] !== name) {
    throw new Error(`${what}: its closing line must be \`${expected}\`, not \`${closing}\``);
  }
  const recorded = parts[3] as string;
  const actual = checksumOf(body);
  if (recorded !== actual) {
    throw new MigrationError(
      "CHECKSUM_MISMATCH",
      `${what} was edited after it was sealed: its closing line records checksum ${recorded.slice(0, 12)}… ` +
        `but the text above it has ${actual.slice(0, 12)}…; a released migration never changes (put the ` +
        "change in a new migration; an unreleased one: delete its closing line and run `npm run migrations:seal`)",
    );
  }
  const problem = guardProblem(body, version, name, previousName);
  if (problem) throw new Error(`${what}: ${problem}`);
  return actual;
}
