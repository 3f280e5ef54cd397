// The PostgreSQL extension (SPEC.md section 10), on a PostgreSQL of this file's own whose extension
// directory it may write: `dbmail extension install --pg-config` and the PGXS Makefile put the files
// there; CREATE EXTENSION pg_dbmail, and ALTER EXTENSION pg_dbmail UPDATE from an older version, give the
// schema that `dbmail migrate` and `psql -1 -f` give (the committed snapshot, too), with the same
// dbmail.migrations rows; a non-superuser is refused; the CLI refuses a missing pg_config or a directory
// it cannot write, with exit code 16.
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { extensionFiles, readMigrationFiles } from "@pg-dbmail/sql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, withClient } from "../support/database.js";
import { withDatabase } from "../support/global-setup.js";
import {
  cliEnv,
  createDatabase,
  dumpExtensionSchema,
  extensionBuildDir,
  installWithCli,
  installWithExtension,
  installWithPsql,
  migrationRows,
  migrationsDir,
  runCli,
  snapshotPath,
} from "../support/install-paths.js";
import { type OwnPostgres, ownPostgresAvailable, startOwnPostgres } from "../support/own-postgres.js";
import { dumpSchema } from "../support/schema-dump.js";

const cli = new URL("../../packages/sender/dist/cli.js", import.meta.url).pathname;
const available = ownPostgresAvailable();
let pg: OwnPostgres;

beforeAll(async () => {
  if (available) pg = await startOwnPostgres();
});
afterAll(async () => {
  await pg?.stop();
});

const builtFiles = () =>
  readdirSync(extensionBuildDir)
    .filter((f) => f !== "Makefile")
    .sort();

describe.skipIf(!available)("the extension pg_dbmail", () => {
  it("`make install PG_CONFIG=...` (PGXS) and `dbmail extension install` (pg_config on PATH) put the built files into that server's extension directory", () => {
    const build = mkdtempSync(join(tmpdir(), "pg-dbmail-pgxs-"));
    try {
      cpSync(extensionBuildDir, build, { recursive: true });
      execFileSync("make", ["install", `PG_CONFIG=${pg.pgConfig}`], {
        cwd: build,
        encoding: "utf8",
        stdio: "pipe",
      });
    } finally {
      rmSync(build, { recursive: true, force: true });
    }
    for (const file of builtFiles()) {
      expect(readFileSync(join(pg.extensionDir, file), "utf8"), file).toBe(
        readFileSync(join(extensionBuildDir, file), "utf8"),
      );
      rmSync(join(pg.extensionDir, file));
    }

    // Without --pg-config: the pg_config found on PATH (here the copied one, first on PATH).
    const out = execFileSync(process.execPath, [cli, "extension", "install"], {
      encoding: "utf8",
      env: { ...cliEnv, PATH: `${dirname(pg.pgConfig)}:${process.env.PATH}` },
    });
    expect(out).toContain(`installed pg_dbmail 0.1.0 into ${pg.extensionDir}: ${builtFiles().join(", ")}`);
    expect(out).toContain("CREATE EXTENSION pg_dbmail");
    for (const file of builtFiles()) {
      expect(readFileSync(join(pg.extensionDir, file), "utf8"), file).toBe(
        readFileSync(join(extensionBuildDir, file), "utf8"),
      );
    }
  });

  it("CREATE EXTENSION gives the schema, and the dbmail.migrations rows, of `dbmail migrate` and of psql; the roles it created", {
    timeout: 120_000,
  }, async () => {
    runCli(["extension", "install", "--pg-config", pg.pgConfig]);
    const roles = async () =>
      withClient(pg.url, async (c) => {
        const { rows } = await c.query(
          "SELECT rolname FROM pg_roles WHERE rolname LIKE 'dbmail\\_%' ORDER BY 1",
        );
        return rows.map((r) => r.rolname);
      });
    expect(await roles(), "a new cluster has none of the roles").toEqual([]);
    const viaExtension = await createDatabase(pg.url, "via_extension");
    await installWithExtension(viaExtension);
    expect(await roles()).toEqual(["dbmail_admin", "dbmail_sender", "dbmail_user"]);
    // pg_dump keeps every table's rows but the scripts' own dbmail.migrations, and every sequence's position.
    const marked = await withClient(viaExtension, async (c) => {
      const { rows } = await c.query(
        `SELECT c.relname, c.oid = ANY (e.extconfig) AS marked, e.extcondition[array_position(e.extconfig, c.oid)] AS condition
         FROM pg_class c, pg_extension e
         WHERE e.extname = 'pg_dbmail' AND c.relnamespace = 'dbmail'::regnamespace AND c.relkind IN ('r', 'S')
         ORDER BY 1`,
      );
      return rows;
    });
    expect(marked.length).toBeGreaterThan(20);
    for (const row of marked) {
      expect(row, row.relname).toEqual(
        row.relname === "migrations"
          ? { relname: "migrations", marked: false, condition: null }
          : { relname: row.relname, marked: true, condition: "" },
      );
    }
    expect(marked.map((r) => r.relname)).toEqual(
      expect.arrayContaining(["mailitems_mailitem_id_seq", "settings"]),
    );

    const viaCli = await createDatabase(pg.url, "via_cli");
    const viaPsql = await createDatabase(pg.url, "via_psql");
    installWithCli(viaCli);
    installWithPsql(viaPsql, join(pg.clientBin, "psql"));
    const schema = dumpSchema(viaCli);
    expect(dumpSchema(viaPsql)).toBe(schema);
    expect(await dumpExtensionSchema(pg.url, "via_extension")).toBe(schema);
    expect(schema).toBe(readFileSync(snapshotPath, "utf8"));
    const rows = await migrationRows(viaCli);
    expect(await migrationRows(viaExtension)).toEqual(rows);

    // `dbmail migrate` and the sender's version check accept it: nothing to do.
    expect(runCli(["migrate", "--database-url", viaExtension])).toMatch(/is up to date \(version \d+\)/);
    // A migrations install does not become an extension one.
    const refused = await errorOf(installWithExtension(viaCli));
    expect(refused.message).toBe("000001_schema is already applied to this database");
    // A second database of the cluster finds the roles there already.
    await installWithExtension(await createDatabase(pg.url, "second_extension"));
  });

  it("ALTER EXTENSION pg_dbmail UPDATE from an older version gives the same schema (made-up versions 0.0.1 and 0.0.2)", {
    timeout: 60_000,
  }, async () => {
    // Versions made up for this test: 0.0.1 shipped the migrations but the last, 0.0.2 adds that one.
    const migrations = readMigrationFiles(migrationsDir);
    const older = extensionFiles(migrations.slice(0, -1), "0.0.1");
    const newer = extensionFiles(migrations, "0.0.2", [
      { version: "0.0.1", lastMigration: migrations.length - 1 },
    ]);
    const wanted = [...older, ...newer].filter(
      (f) => /^pg_dbmail--.*\.sql$/.test(f.name) && f.name !== "pg_dbmail--0.0.2.sql",
    );
    expect(wanted.map((f) => f.name).sort()).toEqual(["pg_dbmail--0.0.1--0.0.2.sql", "pg_dbmail--0.0.1.sql"]);
    for (const file of wanted) writeFileSync(join(pg.extensionDir, file.name), file.text);
    try {
      const url = await createDatabase(pg.url, "via_update");
      await installWithExtension(url, "0.0.1");
      expect((await migrationRows(url)).length).toBe(migrations.length - 1);
      // The pending migration belongs to the extension's next version: `dbmail migrate` leaves it alone.
      const migrate = spawnSync(process.execPath, [cli, "migrate", "--database-url", url], {
        encoding: "utf8",
        env: cliEnv,
      });
      expect(migrate.status).toBe(17);
      expect(migrate.stderr).toBe(
        "dbmail: schema dbmail is the extension pg_dbmail 0.0.1: upgrade it as an extension (`dbmail extension " +
          "install` of this version's files, then ALTER EXTENSION pg_dbmail UPDATE), not with dbmail migrate\n",
      );
      // The sender refuses the older schema, saying how an extension install is brought up to date.
      const start = spawnSync(process.execPath, [cli, "start", "--database-url", url], {
        encoding: "utf8",
        env: cliEnv,
        timeout: 30_000,
      });
      expect(start.status).toBe(9);
      expect(start.stderr).toContain(
        `older than this sender (${migrations.length}): run dbmail migrate (a CREATE EXTENSION install: ALTER EXTENSION pg_dbmail UPDATE)`,
      );
      await withClient(url, (c) => c.query("ALTER EXTENSION pg_dbmail UPDATE TO '0.0.2'"));
      const { rows } = await withClient(url, (c) =>
        c.query("SELECT extversion FROM pg_extension WHERE extname = 'pg_dbmail'"),
      );
      expect(rows[0]?.extversion).toBe("0.0.2");
      expect(await dumpExtensionSchema(pg.url, "via_update")).toBe(readFileSync(snapshotPath, "utf8"));
      expect(await migrationRows(url)).toEqual(await migrationRows(withDatabase(pg.url, "via_cli")));
    } finally {
      for (const file of wanted) rmSync(join(pg.extensionDir, file.name), { force: true });
    }
  });

  it("refuses a role that is not a superuser, saying so", async () => {
    const url = await createDatabase(pg.url, "not_super");
    await withClient(url, async (c) => {
      await c.query("CREATE ROLE app_owner LOGIN");
      await c.query("GRANT CREATE ON DATABASE not_super TO app_owner");
    });
    const asOwner = new URL(url);
    asOwner.username = "app_owner";
    const error = (await errorOf(installWithExtension(asOwner.toString()))) as {
      message: string;
      hint?: string;
    };
    expect(error.message).toBe('permission denied to create extension "pg_dbmail"');
    expect(error.hint).toBe("Must be superuser to create this extension.");
    const psql = spawnSync(
      join(pg.clientBin, "psql"),
      ["-X", "-d", asOwner.toString(), "-c", "CREATE EXTENSION pg_dbmail"],
      {
        encoding: "utf8",
      },
    );
    expect(psql.stderr).toContain('ERROR:  permission denied to create extension "pg_dbmail"');
    expect(psql.stderr).toContain("HINT:  Must be superuser to create this extension.");
  });

  it("`dbmail extension install` refuses, with exit code 16, a pg_config that is not there, one without an extension directory, or a directory it may not write", () => {
    const missing = spawnSync(
      process.execPath,
      [cli, "extension", "install", "--pg-config", "/nonexistent/pg_config"],
      {
        encoding: "utf8",
        env: cliEnv,
      },
    );
    expect(missing.status).toBe(16);
    expect(missing.stderr).toBe(
      'dbmail: --pg-config: "/nonexistent/pg_config": not found (install PostgreSQL\'s server development package, or name it with --pg-config PATH)\n',
    );

    // A pg_config whose share directory has no extension directory (not a server's pg_config).
    const fake = mkdtempSync(join(tmpdir(), "dbmail-fake-pg-config-"));
    try {
      const fakePgConfig = join(fake, "pg_config");
      writeFileSync(fakePgConfig, `#!/bin/sh\necho ${fake}/share\n`, { mode: 0o755 });
      const noDir = spawnSync(process.execPath, [cli, "extension", "install", "--pg-config", fakePgConfig], {
        encoding: "utf8",
        env: cliEnv,
      });
      expect(noDir.status).toBe(16);
      expect(noDir.stderr).toBe(
        `dbmail: ${fake}/share/extension (pg_config --sharedir of "${fakePgConfig}", /extension): does not exist ` +
          `(ENOENT: no such file or directory, stat '${fake}/share/extension'); is that PostgreSQL's pg_config?\n`,
      );
    } finally {
      rmSync(fake, { recursive: true, force: true });
    }

    // A directory this user may not write. Root may write any, so only a test run by another user can
    // show this refusal (running the CLI as the server's user instead fails on a checkout it may not read).
    if (process.getuid?.() === 0) return;
    execFileSync("chmod", ["a-w", pg.extensionDir]);
    try {
      const refused = spawnSync(process.execPath, [cli, "extension", "install", "--pg-config", pg.pgConfig], {
        encoding: "utf8",
        env: cliEnv,
      });
      expect(refused.status).toBe(16);
      expect(refused.stderr).toMatch(
        new RegExp(
          `^dbmail: ${pg.extensionDir} \\(pg_config --sharedir of ".*", /extension\\): cannot be written by this user \\(.*\\); run as a user that may, usually root \\(sudo\\)\\n$`,
        ),
      );
    } finally {
      execFileSync("chmod", ["u+w", pg.extensionDir]);
    }
  });

  it("`dbmail extension` without a subcommand, or with an unknown one, is a usage error", () => {
    for (const args of [["extension"], ["extension", "uninstall"]]) {
      const result = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", env: cliEnv });
      expect(result.status).toBe(2);
      expect(result.stderr).toMatch(
        /^dbmail: extension: (needs a subcommand|unknown subcommand 'uninstall') \(install\)/,
      );
    }
  });
});
