// Seals new migration files: puts the guard (SELECT dbmail.begin_migration(...)) before the first
// statement of a file that lacks it, and appends the closing line (SELECT dbmail.record_migration(...))
// with the sha256 of the text above it. A file that has a closing line is never touched: once sealed (and
// released) a migration never changes. Then checks every file as `dbmail migrate` will.
//
//   npm run migrations:seal [-- DIR]     (DIR defaults to the repository's sql/migrations)
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { isSealed, readMigrationFiles, sealMigration } from "../dist/migration-files.js";

const dir = process.argv[2] ?? fileURLToPath(new URL("../../../sql/migrations", import.meta.url));
const FILE_NAME = /^(\d{6})_([a-z0-9_]+)\.sql$/;

try {
  let previousName;
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort()) {
    const match = FILE_NAME.exec(file);
    const path = join(dir, file);
    const sql = readFileSync(path, "utf8");
    if (match && !isSealed(sql)) {
      writeFileSync(path, sealMigration(sql, Number(match[1]), match[2], previousName));
      console.log(`sealed ${file}`);
    }
    previousName = match?.[2];
  }
  const files = readMigrationFiles(dir);
  console.log(`${files.length} migrations in ${dir}, all sealed`);
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
}
