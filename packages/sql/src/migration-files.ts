import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** One numbered SQL file of sql/migrations. */
export interface MigrationFile {
  version: number;
  name: string;
  /** sha256 of the file with line endings normalised, so a checkout with CRLF endings still matches. */
  checksum: string;
  sql: string;
}

const FILE_NAME = /^(\d{6})_([a-z0-9_]+)\.sql$/;

/** The migrations shipped with this package (copied from the repository's sql/migrations at build). */
export const bundledMigrationsDir = fileURLToPath(new URL("../migrations", import.meta.url));

export function checksumOf(sql: string): string {
  return createHash("sha256").update(sql.replace(/\r\n/g, "\n")).digest("hex");
}

/** Reads the migration files in version order; refuses gaps and stray names so a typo cannot skip one. */
export function readMigrationFiles(dir: string = bundledMigrationsDir): MigrationFile[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort();
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
    const sql = readFileSync(`${dir}/${file}`, "utf8");
    return { version, name: match[2] as string, checksum: checksumOf(sql), sql };
  });
}
