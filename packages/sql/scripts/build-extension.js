// Writes the PostgreSQL extension pg_dbmail (control file, scripts, PGXS Makefile) into extension/, from
// the migrations: part of the package's build, so the files are never stale and never committed.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { extensionFiles } from "../dist/extension.js";
import { readMigrationFiles } from "../dist/migration-files.js";

const dir = fileURLToPath(new URL("../extension", import.meta.url));
const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
const files = extensionFiles(readMigrationFiles(), version);
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir);
for (const file of files) writeFileSync(`${dir}/${file.name}`, file.text);
