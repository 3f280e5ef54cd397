// The command line of `dbmail` (SPEC.md section 8): --help for the CLI and each command, the exit codes
// it and docs/cli.md document, --version, the committed launcher before a build, and the one-line refusals
// (exit 2) of an unknown command or option, a bad value, an unusable config file or database URL.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { db, run, setUpCliTests, tmpDir, writeConfig } from "../support/cli.js";

const docsPath = new URL("../../docs/cli.md", import.meta.url).pathname;
const launcherPath = new URL("../../packages/sender/bin/dbmail.js", import.meta.url).pathname;
const senderPackagePath = new URL("../../packages/sender/package.json", import.meta.url).pathname;

/** Every exit code the CLI documents in --help (and must document in docs/cli.md). */
const exitCodes = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17];

/** Every option of `dbmail start` with its environment variable. */
const startOptions: [flag: string, env: string][] = [
  ["database-url", "DATABASE_URL"],
  ["sender-id", "DBMAIL_SENDER_ID"],
  ["batch-size", "DBMAIL_BATCH_SIZE"],
  ["concurrency", "DBMAIL_CONCURRENCY"],
  ["lease-seconds", "DBMAIL_LEASE_SECONDS"],
  ["poll-interval-ms", "DBMAIL_POLL_INTERVAL_MS"],
  ["heartbeat-interval-ms", "DBMAIL_HEARTBEAT_INTERVAL_MS"],
  ["shutdown-timeout-ms", "DBMAIL_SHUTDOWN_TIMEOUT_MS"],
  ["exit-when-idle", "DBMAIL_EXIT_WHEN_IDLE"],
  ["smtp-pool-size", "DBMAIL_SMTP_POOL_SIZE"],
  ["smtp-timeout-seconds", "DBMAIL_SMTP_TIMEOUT_SECONDS"],
  ["smtp-username", "DBMAIL_SMTP_USERNAME"],
  ["smtp-password", "DBMAIL_SMTP_PASSWORD"],
  ["log-level", "DBMAIL_LOG_LEVEL"],
  ["http", "DBMAIL_HTTP"],
];

setUpCliTests();

describe("dbmail --help and the command line", () => {
  it("--help lists every command and every exit code", async () => {
    const result = await run(["--help"]);
    expect(result.code).toBe(0);
    for (const command of ["migrate", "start", "status", "send-test", "dev", "console", "extension"]) {
      expect(result.stdout).toMatch(new RegExp(`^\\s+${command}\\s+\\S`, "m"));
    }
    const exitSection = result.stdout.slice(result.stdout.indexOf("Exit codes"));
    expect(exitSection.length).toBeGreaterThan(10);
    for (const code of exitCodes) expect(exitSection).toMatch(new RegExp(`\\b${code} [a-z]`));
    // With no command at all, the same help.
    const bare = await run([]);
    expect(bare.code).toBe(0);
    expect(bare.stdout).toBe(result.stdout);
  });

  it("docs/cli.md documents every exit code", () => {
    const docs = readFileSync(docsPath, "utf8");
    const documented = [...docs.matchAll(/^\|\s*(\d+)\s*\|/gm)].map((m) => Number(m[1]));
    expect(documented).toEqual(exitCodes);
  });

  it("every command has --help (exit 0, a usage line)", async () => {
    for (const command of ["migrate", "start", "status", "send-test", "dev", "console", "extension"]) {
      const result = await run([command, "--help"]);
      expect(result.code, command).toBe(0);
      expect(result.stdout, command).toMatch(new RegExp(`^Usage: dbmail ${command}\\b`));
    }
  });

  it("start --help lists every option with its environment variable", async () => {
    const result = await run(["start", "--help"]);
    expect(result.code).toBe(0);
    const lines = result.stdout.split("\n");
    for (const [flag, env] of startOptions) {
      const line = lines.find((l) => new RegExp(`^\\s+--${flag}\\b`).test(l));
      expect(line, `--${flag}`).toBeDefined();
      expect(line, `--${flag}`).toContain(env);
    }
    expect(result.stdout).toMatch(/^\s+--config\b/m);
  });

  it("an unknown command exits 2 and names it", async () => {
    const result = await run(["frobnicate"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("frobnicate");
    expect(result.stdout).toBe("");
  });

  it("an unknown option exits 2 and names it", async () => {
    const result = await run(["start", "--frobnicate"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--frobnicate");
  });

  it("a bad option value exits 2 naming the option and the value", async () => {
    const batch = await run(["start", "--batch-size", "0", "--database-url", db.url]);
    expect(batch.code).toBe(2);
    expect(batch.stderr).toContain("--batch-size");
    expect(batch.stderr).toContain('"0"');

    const level = await run(["start", "--log-level", "loud", "--database-url", db.url]);
    expect(level.code).toBe(2);
    expect(level.stderr).toContain("--log-level");
    expect(level.stderr).toContain("loud");

    // From the environment, the message names the variable.
    const fromEnv = await run(["start", "--database-url", db.url], { DBMAIL_CONCURRENCY: "many" });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toContain("DBMAIL_CONCURRENCY");
    expect(fromEnv.stderr).toContain("many");

    const port = await run(["dev", "--port", "abc"]);
    expect(port.code).toBe(2);
    expect(port.stderr).toContain("--port");
  });

  it("a config file that is not JSON, or is missing, exits 2 naming it", async () => {
    const file = writeConfig('databases: ["postgres://nope"]');
    const result = await run(["start", "--config", file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(file);
    expect(result.stderr).toMatch(/JSON/);

    const missing = join(tmpDir(), "missing.json");
    const absent = await run(["start", "--config", missing]);
    expect(absent.code).toBe(2);
    expect(absent.stderr).toContain(missing);
  });

  it("--version prints the package's version", async () => {
    const { version } = JSON.parse(readFileSync(senderPackagePath, "utf8")) as { version: string };
    const result = await run(["--version"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`dbmail ${version}\n`);
  });

  it("the committed launcher (the bin npm links at install) says to build when the CLI is not built", async () => {
    // A copy of the launcher in a package directory without dist/, as right after `npm ci`.
    const dir = tmpDir();
    mkdirSync(join(dir, "bin"));
    copyFileSync(launcherPath, join(dir, "bin", "dbmail.js"));
    writeFileSync(join(dir, "package.json"), '{"type": "module"}');
    const result = spawnSync(process.execPath, [join(dir, "bin", "dbmail.js"), "--version"], {
      encoding: "utf8",
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(
      "dbmail: the CLI is not built yet: run `npm run build` at the root of the pg-dbmail checkout, then try again\n",
    );
    // And in place, it runs the built CLI with the arguments given.
    const built = spawnSync(process.execPath, [launcherPath, "--version"], { encoding: "utf8" });
    expect(built.status).toBe(0);
    expect(built.stdout).toMatch(/^dbmail \d+\.\d+\.\d+/);
  });

  it("an unusable database URL exits 2 in one line naming where it came from, without the password", async () => {
    for (const command of ["migrate", "status", "start"]) {
      const flag = await run([command, "--database-url", "postgres://me:hunter2@db:99999/app"]);
      expect(flag.code, command).toBe(2);
      expect(flag.stderr, command).toBe(
        'dbmail: --database-url: "postgres://me:****@db:99999/app": not a usable PostgreSQL URL ' +
          '(port "99999": must be a number from 1 to 65535); the form is ' +
          "postgres://user:password@host:port/database\n",
      );
      const env = await run([command], { DATABASE_URL: "db.example.com/app" });
      expect(env.code, command).toBe(2);
      expect(env.stderr, command).toContain(
        'DATABASE_URL: "db.example.com/app": not a usable PostgreSQL URL',
      );
    }
  });

  it("send-test without --to exits 2", async () => {
    const result = await run(["send-test", "--profile", "p", "--database-url", db.url]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--to");
  });
});
