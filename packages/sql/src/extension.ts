import { fileURLToPath } from "node:url";
import type { MigrationFile } from "./migration-files.js";

/**
 * The PostgreSQL extension pg_dbmail, derived from the migrations (still the single source): the control
 * file, the install script of the current version, an update script from each released version to the
 * next, and a PGXS Makefile that installs them. Each script is the migration files verbatim, so each
 * file's guard and closing line run inside CREATE EXTENSION / ALTER EXTENSION UPDATE too: an extension
 * install records itself in dbmail.migrations exactly as `dbmail migrate` does, and the sender and `dbmail
 * migrate` accept it.
 */

export const EXTENSION_NAME = "pg_dbmail";

/** The extension's files for this package's version, written by the build (scripts/build-extension.js). */
export const bundledExtensionDir = fileURLToPath(new URL("../extension", import.meta.url));

/** A released version of pg-dbmail and the last migration it shipped. */
export interface ExtensionRelease {
  version: string;
  lastMigration: number;
}

/**
 * The versions released before the current one (the @pg-dbmail/sql package version), oldest first. The
 * current version holds every migration file there is; each release here gets an update script to the
 * version after it. 0.1.0 is the first version and not released yet, so there is none. Releasing 0.1.0
 * and starting 0.2.0 means adding `{ version: "0.1.0", lastMigration: N }` here (N: the number of the
 * last migration 0.1.0 shipped) when bumping the package version: the build then writes
 * pg_dbmail--0.1.0--0.2.0.sql from the migrations after N.
 */
export const extensionReleases: ExtensionRelease[] = [];

/** One file of the extension: its name in the extension directory and its text. */
export interface ExtensionFile {
  name: string;
  text: string;
}

const HEADER = (what: string) =>
  `-- ${what}\n` +
  "-- Generated from sql/migrations by @pg-dbmail/sql's build: do not edit, edit the migrations.\n";

// psql users loading the file by mistake get told what to do; CREATE EXTENSION drops this line.
const PSQL_GUARD = `\\echo Use "CREATE EXTENSION ${EXTENSION_NAME}" to load this file. \\quit\n`;

/**
 * The tail of every script: pg_dump keeps the rows of every table (configuration, profiles, grants,
 * settings, mail items, attachments, the event log, ...) and the positions of the identity sequences,
 * which it would otherwise leave out as the extension's own; dbmail.migrations is the scripts' own record,
 * which CREATE EXTENSION writes again on restore. A table a later version adds is marked by its update
 * script, as this runs at the end of each.
 */
const CONFIG_DUMP = `
-- pg_dump keeps the rows of every table but dbmail.migrations (which these scripts write themselves) and
-- the positions of their identity sequences, so that pg_dump and pg_restore keep configuration and mail.
-- One call per statement: each updates the extension's catalog row.
DO $$
DECLARE
  relation pg_catalog.regclass;
BEGIN
  FOR relation IN
    SELECT c.oid FROM pg_catalog.pg_class c
    WHERE c.relnamespace = 'dbmail'::pg_catalog.regnamespace AND c.relkind IN ('r', 'p', 'S')
      AND c.relname <> 'migrations' AND NOT c.relispartition
    ORDER BY c.relname
  LOOP
    PERFORM pg_catalog.pg_extension_config_dump(relation, '');
  END LOOP;
END
$$;
`;

function fileLabel(file: MigrationFile): string {
  return `${String(file.version).padStart(6, "0")}_${file.name}.sql`;
}

function script(what: string, files: MigrationFile[]): string {
  const body = files.map(
    (file) => `\n-- ${fileLabel(file)}\n\n${file.sql.replace(/\r\n/g, "\n").trimEnd()}\n`,
  );
  return `${HEADER(what)}\n${PSQL_GUARD}${body.join("")}${CONFIG_DUMP}`;
}

const VERSION = /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/;

/**
 * The extension's files for `currentVersion` (which holds every migration given) and `releases` (the
 * versions before it, oldest first). Refuses releases out of order, or claiming migrations that are not
 * there, so a wrong table cannot ship an update script that skips or repeats a migration.
 */
export function extensionFiles(
  migrations: MigrationFile[],
  currentVersion: string,
  releases: ExtensionRelease[] = extensionReleases,
): ExtensionFile[] {
  const versions = [...releases, { version: currentVersion, lastMigration: migrations.length }];
  versions.forEach((release, i) => {
    const previous = versions[i - 1];
    if (!VERSION.test(release.version)) {
      throw new Error(`extension version "${release.version}": not a version like 1.2.3`);
    }
    if (previous && release.lastMigration <= previous.lastMigration) {
      throw new Error(
        `extension version ${release.version}: its last migration (${release.lastMigration}) must come ` +
          `after ${previous.version}'s (${previous.lastMigration}); a version without migrations needs no release`,
      );
    }
    if (release.lastMigration > migrations.length || release.lastMigration < 1) {
      throw new Error(
        `extension version ${release.version}: last migration ${release.lastMigration}, but there are ` +
          `${migrations.length} migration files`,
      );
    }
  });
  const files: ExtensionFile[] = [
    { name: `${EXTENSION_NAME}.control`, text: control(currentVersion) },
    {
      name: `${EXTENSION_NAME}--${currentVersion}.sql`,
      text: script(
        `pg_dbmail ${currentVersion}: installs schema dbmail (CREATE EXTENSION pg_dbmail).`,
        migrations,
      ),
    },
  ];
  for (let i = 1; i < versions.length; i++) {
    const from = versions[i - 1] as ExtensionRelease;
    const to = versions[i] as ExtensionRelease;
    files.push({
      name: `${EXTENSION_NAME}--${from.version}--${to.version}.sql`,
      text: script(
        `pg_dbmail ${from.version} to ${to.version} (ALTER EXTENSION pg_dbmail UPDATE).`,
        migrations.slice(from.lastMigration, to.lastMigration),
      ),
    });
  }
  files.push({ name: "Makefile", text: makefile(files.filter((f) => f.name.endsWith(".sql"))) });
  return files;
}

function control(version: string): string {
  return `${HEADER("pg_dbmail: SQL Server's Database Mail for PostgreSQL, in schema dbmail.").replace(/^--/gm, "#")}
comment = 'pg-dbmail: Database Mail for PostgreSQL (schema dbmail)'
default_version = '${version}'
# The scripts create schema dbmail themselves (a member of the extension, so DROP EXTENSION removes it)
# and the cluster-wide roles dbmail_user, dbmail_admin and dbmail_sender when missing: a superuser's job.
relocatable = false
superuser = true
trusted = false
`;
}

function makefile(scripts: ExtensionFile[]): string {
  return `${HEADER("pg_dbmail: installs the extension into a PostgreSQL's extension directory.").replace(/^--/gm, "#")}
# make install [PG_CONFIG=/path/to/pg_config]   (the PostgreSQL whose pg_config is named; default: on PATH)

EXTENSION = ${EXTENSION_NAME}
DATA = ${scripts.map((s) => s.name).join(" ")}

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
`;
}
