import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, portIsFree } from "@pg-dbmail/dev/local-postgres";
import type { Sender } from "@pg-dbmail/sender";
import { describeDatabaseUrl as withoutPassword } from "@pg-dbmail/sender";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole, withClient } from "./support/database.js";
import { withDatabase } from "./support/global-setup.js";
import { addAccount, eventually, startSender } from "./support/sender.js";
import { TestSmtpServer } from "./support/smtp.js";

const cli = new URL("../packages/sender/dist/cli.js", import.meta.url).pathname;
const docsPath = new URL("../docs/cli.md", import.meta.url).pathname;
const launcherPath = new URL("../packages/sender/bin/dbmail.js", import.meta.url).pathname;
const senderPackagePath = new URL("../packages/sender/package.json", import.meta.url).pathname;

/** Every exit code the CLI documents in --help (and must document in docs/cli.md). */
const exitCodes = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];

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
];

// ---------------------------------------------------------------------------------------------------
// Running the CLI
// ---------------------------------------------------------------------------------------------------

type Env = Record<string, string | undefined>;

/** The test process's environment without anything that would choose a database or an option for the CLI. */
const cleanEnv: Env = Object.fromEntries(
  Object.entries(process.env).filter(([key]) => !/^(DATABASE_URL$|PG[A-Z]+$|DBMAIL_)/.test(key)),
);

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running `dbmail` process. */
interface Running {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<Result>;
  /** Resolves with stdout once it matches `pattern`; rejects if the process exits first or on timeout. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<string>;
}

const running = new Set<Running>();

function launch(args: string[], env: Env = {}): Running {
  const child = spawn(process.execPath, [cli, ...args], {
    env: { ...cleanEnv, ...env } as NodeJS.ProcessEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<Result>((resolve) => {
    child.once("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  const proc: Running = {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    waitForOutput: async (pattern, timeoutMs = 20_000) => {
      const deadline = Date.now() + timeoutMs;
      let done = false;
      void exited.then(() => {
        done = true;
      });
      while (!pattern.test(stdout)) {
        if (done) {
          throw new Error(
            `dbmail ${args.join(" ")} exited before printing ${pattern}:\nstdout: ${stdout}\nstderr: ${stderr}`,
          );
        }
        if (Date.now() > deadline) {
          throw new Error(
            `dbmail ${args.join(" ")} did not print ${pattern}:\nstdout: ${stdout}\nstderr: ${stderr}`,
          );
        }
        await sleep(50);
      }
      return stdout;
    },
  };
  running.add(proc);
  void exited.then(() => running.delete(proc));
  return proc;
}

/** Runs `dbmail args` to completion (killed after timeoutMs). */
async function run(args: string[], env: Env = {}, timeoutMs = 25_000): Promise<Result> {
  const proc = launch(args, env);
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), timeoutMs);
  try {
    return await proc.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Sends `signal` and waits for the process to exit (SIGKILL after timeoutMs). */
async function stop(proc: Running, signal: NodeJS.Signals = "SIGTERM", timeoutMs = 15_000): Promise<Result> {
  proc.child.kill(signal);
  const timer = setTimeout(() => proc.child.kill("SIGKILL"), timeoutMs);
  try {
    return await proc.exited;
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function output(result: Result): string {
  return `${result.stdout}${result.stderr}`;
}

const suffix = () => randomBytes(3).toString("hex");

const tmpDirs: string[] = [];
function tmpDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "dbmail-cli-test-"));
  tmpDirs.push(dir);
  return dir;
}

function writeConfig(content: unknown): string {
  const file = join(tmpDir(), "dbmail.json");
  writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content));
  return file;
}

/** A public (non-default) profile using one account. */
async function addProfile(db: TestDatabase, profile: string, account: string): Promise<void> {
  await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => $1)", [profile]);
  await db.query(
    "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => $1, account_name => $2, sequence_number => 1)",
    [profile, account],
  );
  await db.query(
    "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => $1, is_default => false)",
    [profile],
  );
}

async function sendMail(db: TestDatabase, profile: string, subject: string): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    "SELECT dbmail.sp_send_dbmail(profile_name => $1, recipients => 'someone@example.org', subject => $2, body => 'hello') AS id",
    [profile, subject],
  );
  return rows[0]?.id as string;
}

/** Waits until one of `ids` is a live sender in `db`, and returns which. */
async function liveSender(db: TestDatabase, ids: string[]): Promise<string> {
  return eventually(async () => {
    const { rows } = await db.query<{ sender_id: string }>(
      "SELECT sender_id FROM dbmail.senders WHERE sender_id = ANY($1) AND stopped_at IS NULL",
      [ids],
    );
    return rows.length === 1 ? rows[0]?.sender_id : undefined;
  }, 20_000);
}

let db: TestDatabase;

beforeAll(async () => {
  db = await TestDatabase.create();
});

afterEach(async () => {
  // A failed test may leave a process running: stop it politely (dev must stop its PostgreSQL), then hard.
  for (const proc of [...running]) await stop(proc, "SIGINT", 10_000);
});

afterAll(async () => {
  await db?.drop();
  for (const dir of tmpDirs) {
    // As root, dev may keep the PostgreSQL data elsewhere behind a symbolic link: remove that too.
    const data = join(dir, "postgres");
    if (lstatSync(data, { throwIfNoEntry: false })?.isSymbolicLink()) {
      rmSync(readlinkSync(data), { recursive: true, force: true });
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------------

describe("dbmail --help and the command line", () => {
  it("--help lists every command and every exit code", async () => {
    const result = await run(["--help"]);
    expect(result.code).toBe(0);
    for (const command of ["migrate", "start", "status", "send-test", "dev"]) {
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
    for (const command of ["migrate", "start", "status", "send-test", "dev"]) {
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
          "(Invalid URL); the form is postgres://user:password@host:port/database\n",
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

// ---------------------------------------------------------------------------------------------------

describe("connecting", () => {
  const password = "s3cret-Pa55word";

  it("migrate against a port nobody listens on exits 3 without printing the password", async () => {
    const url = `postgres://dbmail:${password}@127.0.0.1:${await freePort()}/nowhere`;
    const result = await run(["migrate", "--database-url", url]);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain("127.0.0.1");
    expect(output(result)).not.toContain(password);
  });

  it("start against a database that is not up yet keeps retrying (logging why, never the password), and SIGTERM exits 0", async () => {
    // A sender may start before its database (compose, boot order): it waits instead of exiting.
    const url = `postgres://dbmail:${password}@127.0.0.1:${await freePort()}/nowhere`;
    const proc = launch(["start", "--database-url", url]);
    await proc.waitForOutput(/database unreachable; retrying/);
    await sleep(1000);
    expect(proc.child.exitCode).toBeNull();
    const result = await stop(proc);
    expect(result.code, output(result)).toBe(0);
    expect(output(result)).toContain("ECONNREFUSED");
    expect(output(result)).not.toContain(password);
  });

  it("start against a host name that does not resolve keeps retrying, naming it, and SIGTERM exits 0", async () => {
    const proc = launch([
      "start",
      "--database-url",
      `postgres://dbmail:${password}@no-such-host.invalid/app`,
    ]);
    await proc.waitForOutput(/ENOTFOUND no-such-host\.invalid.*database unreachable; retrying/);
    await sleep(500);
    expect(proc.child.exitCode).toBeNull();
    const result = await stop(proc);
    expect(result.code, output(result)).toBe(0);
    expect(output(result)).not.toContain(password);
  });

  it("start against a database without schema dbmail exits 9 and says to run dbmail migrate", async () => {
    const name = `${db.name}_empty`;
    await withClient(db.adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
    try {
      const result = await run(["start", "--database-url", withDatabase(db.adminUrl, name)]);
      expect(result.code).toBe(9);
      expect(result.stderr).toContain("dbmail migrate");
    } finally {
      await withClient(db.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    }
  });

  it("status and send-test as a login without the dbmail role they need exit 3 in one line naming it", async () => {
    const plain = await db.createRole("cli_norole");
    const user = await db.createRole("cli_user", { memberOf: ["dbmail_user"] });
    for (const role of [plain, user]) {
      const status = await run(["status", "--database-url", role.url]);
      expect(status.code).toBe(3);
      expect(status.stdout).toBe("");
      expect(status.stderr).toBe(
        `dbmail: status needs dbmail_admin: the login "${role.name}" is not a member; ` +
          `GRANT dbmail_admin TO "${role.name}", or connect as a login that is\n`,
      );
    }
    const sendTest = await run(["send-test", "--to", "a@example.org", "--database-url", plain.url]);
    expect(sendTest.code).toBe(3);
    expect(sendTest.stderr).toBe(
      `dbmail: send-test needs dbmail_user: the login "${plain.name}" is not a member; ` +
        `GRANT dbmail_user TO "${plain.name}", or connect as a login that is\n`,
    );
  });

  it("status in a database without schema dbmail exits 9 saying to migrate", async () => {
    const name = `dbmail_test_bare_${suffix()}`;
    await withClient(db.adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
    try {
      const result = await run(["status", "--database-url", withDatabase(db.adminUrl, name)]);
      expect(result.code).toBe(9);
      expect(result.stderr).toMatch(/has no schema dbmail: install it with dbmail migrate\n$/);
    } finally {
      await withClient(db.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    }
  });

  it("start with a login that is not in dbmail_sender exits 3 naming dbmail_sender", async () => {
    const plain = await db.createRole("cli_plain");
    const result = await run(["start", "--database-url", plain.url]);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/dbmail_sender|permission/);
  });

  it("start with a role that does not exist exits 3", async () => {
    const url = new URL(db.url);
    url.username = `nobody_${suffix()}`;
    url.password = password;
    const result = await run(["start", "--database-url", url.toString()]);
    expect(result.code).toBe(3);
    expect(output(result)).not.toContain(password);
  });

  it("start with a wrong password exits 3 without printing it", async (ctx) => {
    const role = await db.createRole("cli_pw", { memberOf: ["dbmail_sender"] });
    const url = new URL(role.url);
    url.password = password;
    // A server that trusts 127.0.0.1 accepts any password; the dev test below checks one that does not.
    const accepted = await withClient(url.toString(), async () => true).catch(() => false);
    if (accepted) return ctx.skip();
    const result = await run(["start", "--database-url", url.toString()]);
    expect(result.code).toBe(3);
    expect(output(result)).not.toContain(password);
  });
});

// ---------------------------------------------------------------------------------------------------

describe("dbmail start: flag > environment > config file > default", () => {
  async function senderIdOf(args: string[], env: Env, ids: string[]): Promise<string> {
    const proc = launch(["start", ...args], env);
    const id = await liveSender(db, ids).catch(async (error: Error) => {
      await stop(proc);
      throw new Error(`${error.message}\nstdout: ${proc.stdout()}\nstderr: ${proc.stderr()}`);
    });
    const result = await stop(proc, "SIGTERM");
    expect(result.code, result.stderr).toBe(0);
    const { rows } = await db.query("SELECT stopped_at FROM dbmail.senders WHERE sender_id = $1", [id]);
    expect(rows[0]?.stopped_at, "the sender marks itself stopped").not.toBeNull();
    return id;
  }

  function ids() {
    const s = suffix();
    return { file: `from-file-${s}`, env: `from-env-${s}`, flag: `from-flag-${s}` };
  }

  it("only the config file: the file's value", async () => {
    const id = ids();
    const config = writeConfig({ databases: [{ url: db.url }], senderId: id.file });
    expect(await senderIdOf(["--config", config], {}, Object.values(id))).toBe(id.file);
  });

  it("environment over config file", async () => {
    const id = ids();
    const config = writeConfig({ databases: [{ url: db.url }], senderId: id.file });
    expect(await senderIdOf(["--config", config], { DBMAIL_SENDER_ID: id.env }, Object.values(id))).toBe(
      id.env,
    );
  });

  it("flag over environment over config file", async () => {
    const id = ids();
    const config = writeConfig({ databases: [{ url: db.url }], senderId: id.file });
    expect(
      await senderIdOf(
        ["--config", config, "--sender-id", id.flag],
        { DBMAIL_SENDER_ID: id.env },
        Object.values(id),
      ),
    ).toBe(id.flag);
  });

  it("an environment value over a bad file value", async () => {
    const id = ids();
    const config = writeConfig({ senderId: id.file, batchSize: 0 });
    expect(
      await senderIdOf(
        ["--config", config],
        { DATABASE_URL: db.url, DBMAIL_SENDER_ID: id.env, DBMAIL_BATCH_SIZE: "5" },
        Object.values(id),
      ),
    ).toBe(id.env);
  });

  it("a database URL together with a config file that lists databases exits 2 naming both", async () => {
    const config = writeConfig({ databases: [{ name: "one", url: db.url }] });
    const fromEnv = await run(["start", "--config", config], { DATABASE_URL: db.url });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toBe(
      `dbmail: DATABASE_URL and the "databases" of ${config}: give one or the other ` +
        "(DATABASE_URL serves one database; the config file's list serves several)\n",
    );
    const fromFlag = await run(["start", "--config", config, "--database-url", db.url]);
    expect(fromFlag.code).toBe(2);
    expect(fromFlag.stderr).toContain(`--database-url and the "databases" of ${config}`);
  });

  it("a config file's databases must be a list of distinct databases with URLs", async () => {
    const cases: [unknown, string][] = [
      [[], "databases: must be a non-empty list"],
      [[{ name: "a" }], 'databases[0]: needs a "url"'],
      [[{ name: "a", url: "mysql://x/y" }], "databases[0].url"],
      [
        [
          { name: "a", url: db.url },
          { name: "a", url: `${db.url}_other` },
        ],
        'databases[1]: the name "a" as databases[0]',
      ],
      [
        [
          { name: "a", url: db.url },
          { name: "b", url: db.url },
        ],
        "databases[1]: the same URL as databases[0]",
      ],
    ];
    for (const [databases, message] of cases) {
      const config = writeConfig({ databases });
      const result = await run(["start", "--config", config]);
      expect(result.code, message).toBe(2);
      expect(result.stderr, message).toContain(`${config}: ${message}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------------

describe("dbmail start --config with two databases", () => {
  let db2: TestDatabase;
  let smtp: TestSmtpServer;

  beforeAll(async () => {
    db2 = await TestDatabase.create();
    smtp = await TestSmtpServer.start();
  });
  afterAll(async () => {
    await smtp?.stop();
    await db2?.drop();
  });

  it("one process serves both", async () => {
    for (const [target, label] of [
      [db, "one"],
      [db2, "two"],
    ] as const) {
      await addAccount(target, `two_${label}`, smtp);
      await addProfile(target, `two_${label}`, `two_${label}`);
      await sendMail(target, `two_${label}`, `from database ${label}`);
    }
    const senderId = `two-dbs-${suffix()}`;
    const config = writeConfig({
      databases: [
        { name: "one", url: db.url },
        { name: "two", url: db2.url },
      ],
      senderId,
      pollIntervalMs: 200,
    });
    const proc = launch(["start", "--config", config]);
    const received = await smtp.waitFor(2, 20_000).catch((error: Error) => {
      throw new Error(`${error.message}\nstdout: ${proc.stdout()}\nstderr: ${proc.stderr()}`);
    });
    expect(received.map((m) => m.parsed.subject).sort()).toEqual(["from database one", "from database two"]);
    for (const target of [db, db2]) {
      const { rows } = await target.query("SELECT 1 FROM dbmail.senders WHERE sender_id = $1", [senderId]);
      expect(rows).toHaveLength(1);
    }
    const result = await stop(proc);
    expect(result.code, result.stderr).toBe(0);
  });
  it("names a database it cannot serve and serves the others; SIGHUP re-reads the databases", {
    timeout: 60_000,
  }, async () => {
    for (const target of [db, db2]) {
      await addAccount(target, "hup", smtp);
      await addProfile(target, "hup", "hup");
    }
    const arrived = (subject: string) => smtp.received.some((m) => m.parsed.subject === subject);
    const senderId = `hup-${suffix()}`;
    const missing = withDatabase(db.adminUrl, `dbmail_missing_${suffix()}`);
    const settings = { senderId, pollIntervalMs: 200 };
    const config = writeConfig({
      databases: [
        { name: "one", url: db.url },
        { name: "missing", url: missing },
      ],
      ...settings,
    });
    const proc = launch(["start", "--config", config]);
    // The database that does not exist is named in the log and retried; the other is served.
    await proc.waitForOutput(/"database":"missing".*the database does not exist/);
    await liveSender(db, [senderId]);
    await sendMail(db, "hup", "served while another database is missing");
    await eventually(async () => arrived("served while another database is missing"));

    // Database two is added, database one removed.
    await sendMail(db2, "hup", "waiting for the reload");
    await sleep(600);
    expect(arrived("waiting for the reload")).toBe(false);
    writeFileSync(config, JSON.stringify({ databases: [{ name: "two", url: db2.url }], ...settings }));
    proc.child.kill("SIGHUP");
    await eventually(async () => arrived("waiting for the reload"));
    // One was given back cleanly: its sender row says stopped, and its mail is no longer sent.
    await eventually(async () => {
      const { rows } = await db.query("SELECT stopped_at FROM dbmail.senders WHERE sender_id = $1", [
        senderId,
      ]);
      return rows[0]?.stopped_at !== null;
    });
    await sendMail(db, "hup", "after one was removed");
    await sleep(800);
    expect(arrived("after one was removed")).toBe(false);

    // A config file that cannot be used on SIGHUP changes nothing.
    writeFileSync(config, "{ not json");
    proc.child.kill("SIGHUP");
    await proc.waitForOutput(/the config file cannot be used; still serving the same databases/);
    await sendMail(db2, "hup", "still served");
    await eventually(async () => arrived("still served"));

    const result = await stop(proc);
    expect(result.code, result.stderr).toBe(0);
    expect(output(result)).not.toMatch(/"level":(50|60).*"database":"two"/);
  });
});

// ---------------------------------------------------------------------------------------------------

describe("dbmail status", () => {
  let statusDb: TestDatabase;
  let sender: Sender | undefined;
  let senderRole: TestRole;

  beforeAll(async () => {
    statusDb = await TestDatabase.create();
    senderRole = await statusDb.createRole("cli_status_sender", { memberOf: ["dbmail_sender"] });
    await statusDb.query("SELECT dbmail.sysmail_configure_sp('AccountRetryAttempts', '0')");
    await addAccount(statusDb, "broken", { port: await freePort() });
    await addProfile(statusDb, "broken", "broken");
  });
  afterAll(async () => {
    await sender?.stop();
    await statusDb?.drop();
  });

  it("prints the status, the queue, the live senders and the latest failures; --json the same facts", async () => {
    const senderId = `status-${suffix()}`;
    sender = await startSender(senderRole, { senderId });
    const failedId = await sendMail(statusDb, "broken", "this one fails");
    await eventually(async () => {
      const { rows } = await statusDb.query(
        "SELECT 1 FROM dbmail.sysmail_faileditems WHERE mailitem_id = $1",
        [failedId],
      );
      return rows.length === 1;
    });

    const text = await run(["status", "--database-url", statusDb.url]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain("STARTED");
    expect(text.stdout).toMatch(/queue: 0\b/);
    expect(text.stdout).toMatch(/live senders: 1\b/);
    expect(text.stdout).toContain(senderId);
    expect(text.stdout).toContain("latest failures");
    expect(text.stdout).toContain(failedId);
    expect(text.stdout).toContain("this one fails");

    const json = await run(["status", "--json", "--database-url", statusDb.url]);
    expect(json.code, json.stderr).toBe(0);
    const parsed = JSON.parse(json.stdout) as {
      status: string;
      queue: { length: number; live_senders: number; senders: { sender_id: string }[] };
      failures: { mailitem_id: number; subject: string; last_error: string | null }[];
    };
    expect(parsed.status).toBe("STARTED");
    // Numbers as numbers, not as the strings node-postgres gives for bigint.
    expect(parsed.queue.length).toBe(0);
    expect(parsed.queue.live_senders).toBe(1);
    expect(parsed.queue.senders.map((s) => s.sender_id)).toEqual([senderId]);
    const failure = parsed.failures.find((f) => f.mailitem_id === Number(failedId));
    expect(failure?.subject).toBe("this one fails");
    expect(failure?.last_error).toBeTruthy();
    expect(text.stdout).toContain(failure?.last_error as string);

    // With no sender alive and mail waiting: the queue length, no live senders, and a stall.
    await sender.stop();
    sender = undefined;
    await sendMail(statusDb, "broken", "waiting 1");
    await sendMail(statusDb, "broken", "waiting 2");
    const stalled = await run(["status", "--database-url", statusDb.url]);
    expect(stalled.code, stalled.stderr).toBe(0);
    expect(stalled.stdout).toMatch(/queue: 2\b/);
    expect(stalled.stdout).toMatch(/live senders: 0\b/);
    expect(stalled.stdout).toContain("STALLED");
    const stalledJson = JSON.parse((await run(["status", "--json", "--database-url", statusDb.url])).stdout);
    expect(stalledJson.queue.length).toBe(2);
    expect(stalledJson.queue.live_senders).toBe(0);
    expect(stalledJson.queue.stalled).toBe(true);
  });

  it("shows what came from users and SMTP servers without letting it drive the terminal", async () => {
    const id = await sendMail(statusDb, "broken", "will be replaced");
    // Written directly: sp_send_dbmail refuses control characters in a subject; a server's reply is
    // stored made safe; this is what an older sender, or a hand-made row, might have left.
    await statusDb.query(
      `UPDATE dbmail.mailitems SET sent_status = 'failed', sent_date = now(),
         subject = E'subject \\u001b]0;pwned\\u0007 \\u202eevil',
         last_error = E'550 \\u001b[2J\\u001b[31mcleared your screen' WHERE mailitem_id = $1`,
      [id],
    );
    const result = await run(["status", "--database-url", statusDb.url]);
    expect(result.code, result.stderr).toBe(0);
    for (const control of ["\u001b", "\u0007", "\u202e"]) expect(result.stdout).not.toContain(control);
    expect(result.stdout).toContain(
      '"subject \\x1b]0;pwned\\x07 \\u202eevil": 550 \\x1b[2J\\x1b[31mcleared your screen',
    );
  });
});

// ---------------------------------------------------------------------------------------------------

describe("dbmail send-test", () => {
  let testDb: TestDatabase;
  let smtp: TestSmtpServer;
  let sender: Sender | undefined;

  beforeAll(async () => {
    testDb = await TestDatabase.create();
    smtp = await TestSmtpServer.start();
    await testDb.query("SELECT dbmail.sysmail_configure_sp('AccountRetryAttempts', '0')");
    await addAccount(testDb, "p", smtp);
    await addProfile(testDb, "p", "p");
    const role = await testDb.createRole("cli_send_test", { memberOf: ["dbmail_sender"] });
    sender = await startSender(role);
  });
  afterAll(async () => {
    await sender?.stop();
    await smtp?.stop();
    await testDb?.drop();
  });

  const args = () => ["send-test", "--to", "x@example.org", "--profile", "p", "--database-url", testDb.url];

  it("exits 0 and prints 'sent' when the mail went out, and the mail arrived", async () => {
    const result = await run([...args(), "--timeout", "20"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("sent");
    const [mail] = await smtp.waitFor(1);
    expect(mail?.envelope.to).toEqual(["x@example.org"]);
    expect(mail?.parsed.subject).toBe("Database Mail test");
  });

  it("exits 10 with the error when the mail failed", async () => {
    await smtp.stop();
    try {
      const result = await run([...args(), "--timeout", "20"]);
      expect(result.code, output(result)).toBe(10);
      expect(result.stderr).toContain("failed");
      expect(result.stderr).toMatch(/ECONNREFUSED|refused|connect/i);
    } finally {
      await smtp.restart();
    }
  });

  it("exits 11 mentioning dbmail status when no sender reports an outcome in time", async () => {
    await sender?.stop();
    sender = undefined;
    const started = Date.now();
    const result = await run([...args(), "--timeout", "2"]);
    expect(result.code, output(result)).toBe(11);
    expect(result.stderr).toContain("dbmail status");
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

// ---------------------------------------------------------------------------------------------------

describe("dbmail dev", () => {
  function caughtFiles(dataDir: string): string[] {
    try {
      return readdirSync(join(dataDir, "mail")).filter((f) => f.endsWith(".eml"));
    } catch {
      return [];
    }
  }

  function sendLine(stdout: string): string {
    const line = stdout.match(/^\s*(SELECT dbmail\.sp_send_dbmail\(.*\);)\s*$/m)?.[1];
    expect(line, stdout).toBeDefined();
    return line as string;
  }

  it("with a database URL: installs, prints psql and a SELECT that delivers to the catcher; --list; SIGINT exits 0", async () => {
    const name = `${db.name}_dev`;
    await withClient(db.adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
    const url = withDatabase(db.adminUrl, name);
    const dataDir = tmpDir();
    try {
      const proc = launch(["dev", "--database-url", url, "--data-dir", dataDir]);
      const stdout = await proc.waitForOutput(/Ctrl-C to stop/, 30_000);
      expect(stdout).toMatch(/^\s*psql '[^']+'/m);
      // A URL the user gave is shown without its password (the tests' own URL may carry one).
      expect(stdout).toContain(`psql '${withoutPassword(url)}'`);
      expect(stdout).toContain(`export DATABASE_URL='${withoutPassword(url)}'`);
      const select = sendLine(stdout);

      await withClient(url, (c) => c.query(select));
      const [file] = await eventually(async () => {
        const files = caughtFiles(dataDir);
        return files.length > 0 ? files : undefined;
      });
      const raw = readFileSync(join(dataDir, "mail", file as string), "utf8");
      expect(raw).toContain("you@example.com");
      await proc.waitForOutput(/caught mail/);

      const list = await run(["dev", "--list", "--data-dir", dataDir]);
      expect(list.code, list.stderr).toBe(0);
      expect(list.stdout).toContain(file);
      expect(list.stdout).toContain("Hello from PostgreSQL");
      expect(list.stdout).toContain("you@example.com");

      const result = await stop(proc, "SIGINT");
      expect(result.code, result.stderr).toBe(0);
    } finally {
      await withClient(db.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    }
  }, 60_000);

  it("--list with nothing caught says so", async () => {
    const result = await run(["dev", "--list", "--data-dir", tmpDir()]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/no mail caught/);
  });

  async function devWithOwnPostgres(dataDir: string) {
    const port = await freePort();
    const proc = launch(["dev", "--data-dir", dataDir, "--port", String(port)]);
    const stdout = await proc.waitForOutput(/Ctrl-C to stop/, 45_000);
    const psqlUrl = stdout.match(/^\s*psql '([^']+)'/m)?.[1];
    expect(psqlUrl, stdout).toBeDefined();
    expect(new URL(psqlUrl as string).port).toBe(String(port));
    return { port, proc, stdout, psqlUrl: psqlUrl as string };
  }

  async function stopAndCheckPort(proc: Running, port: number): Promise<void> {
    const result = await stop(proc, "SIGINT", 20_000);
    expect(result.code, result.stderr).toBe(0);
    expect(await portIsFree(port), `a server is still listening on ${port}`).toBe(true);
    await expect(
      withClient(`postgres://postgres:postgres@127.0.0.1:${port}/postgres`, async () => true),
    ).rejects.toThrow();
  }

  it("without a database URL: starts its own PostgreSQL, mail sent through it is caught, SIGINT stops it all", async () => {
    const dataDir = tmpDir();
    // A directory anyone may traverse, so this test does not depend on how a private one is handled.
    chmodSync(dataDir, 0o755);
    const { port, proc, stdout, psqlUrl } = await devWithOwnPostgres(dataDir);
    try {
      // What to paste in another terminal: DATABASE_URL (its own server's password is a fixed dev one),
      // with which the other commands reach the dev database (cleanEnv has no DATABASE_URL or PG*).
      const exported = stdout.match(/^\s*export DATABASE_URL='([^']+)'\s*$/m)?.[1];
      expect(exported, stdout).toBe(psqlUrl);
      const status = await run(["status"], { DATABASE_URL: exported });
      expect(status.code, output(status)).toBe(0);
      expect(status.stdout).toContain("/dbmail_dev: Database Mail is STARTED");
      expect(status.stdout).toMatch(/live senders: 1\b/);
      for (const command of ["npx dbmail status", "npx dbmail send-test --to you@example.com"]) {
        expect(stdout).toMatch(new RegExp(`^\\s+${command}\\s`, "m"));
      }
      expect(stdout).toContain(`npx dbmail dev --list --data-dir '${dataDir}'`);

      // A second dbmail dev on the same data directory: one line, exit 13, and the first goes on.
      const second = await run(["dev", "--data-dir", dataDir, "--port", String(await freePort())]);
      expect(second.code, output(second)).toBe(13);
      expect(second.stdout).toBe("");
      expect(second.stderr).toBe(
        `dbmail: ${dataDir} is in use by another dbmail dev (pid ${proc.child.pid}): stop it, or use another --data-dir\n`,
      );
      expect(proc.child.exitCode).toBeNull();

      const client = new pg.Client({ connectionString: psqlUrl });
      await client.connect();
      try {
        const { rows } = await client.query<{ d: string }>("SELECT current_database() AS d");
        expect(rows[0]?.d).toBe("dbmail_dev");
        await client.query(sendLine(stdout));
      } finally {
        await client.end();
      }
      await eventually(async () => caughtFiles(dataDir).length === 1);
      await proc.waitForOutput(/caught mail .*"Hello from PostgreSQL"/);

      // This server checks passwords: a wrong one is exit 3, and is not printed.
      const wrong = new URL(psqlUrl);
      wrong.password = "Wr0ng-Passw0rd";
      const refused = await run(["start", "--database-url", wrong.toString()]);
      expect(refused.code, output(refused)).toBe(3);
      expect(output(refused)).not.toContain("Wr0ng-Passw0rd");
    } finally {
      await stopAndCheckPort(proc, port);
    }
  }, 60_000);

  it("without a database URL, with --data-dir in a private (0700) temporary directory", async () => {
    const dataDir = tmpDir(); // mkdtemp makes it 0700
    const { port, proc } = await devWithOwnPostgres(dataDir);
    await stopAndCheckPort(proc, port);
  }, 60_000);
});
