// The options of `dbmail start` from their one table (src/config/options.ts): the defaults, the flag and
// environment variable of each option, which source wins, the databases to serve, the line a bad value
// is refused with, and the --help text derived from the same table.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { senderDefaults } from "@pg-dbmail/sender";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { startHelp } from "../src/commands/start.js";
import {
  envOf,
  flagOf,
  listenAddress,
  type OptionSources,
  optionFlags,
  optionsHelp,
  resolveOptions,
} from "../src/config/options.js";
// The same module resolveOptions throws from (the public entry is the built copy, another class).
import { CliError, ExitCode } from "../src/exit-codes.js";

const dir = mkdtempSync(join(tmpdir(), "dbmail-options-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.unstubAllEnvs());

let files = 0;
/** A config file with this content (JSON unless a string is given); returns its path. */
function configFile(content: unknown): string {
  const path = join(dir, `config-${++files}.json`);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

const resolve = (sources: Partial<OptionSources>) => resolveOptions({ flags: {}, env: {}, ...sources });

/** The usage error `resolve` refuses these sources with. */
function refusal(sources: Partial<OptionSources>): CliError {
  try {
    resolve(sources);
  } catch (error) {
    expect(error).toBeInstanceOf(CliError);
    expect((error as CliError).exitCode).toBe(ExitCode.usage);
    return error as CliError;
  }
  throw new Error("expected the options to be refused");
}

describe("the defaults", () => {
  it("are the documented ones, exported as senderDefaults", () => {
    expect(senderDefaults).toEqual({
      batchSize: 20,
      concurrency: 20,
      leaseSeconds: 300,
      pollIntervalMs: 5000,
      heartbeatIntervalMs: 5000,
      shutdownTimeoutMs: 30_000,
      exitWhenIdle: false,
      smtpPoolSize: 5,
      smtpTimeoutSeconds: 60,
      logLevel: "info",
    });
  });

  it("apply when no flag, variable or config file says otherwise; the sender id is host:pid:random", () => {
    const options = resolve({ flags: { "database-url": "postgres://u:p@db.example:5432/mail" } });
    expect(options).toMatchObject(senderDefaults);
    expect(options.smtpUsername).toBeUndefined();
    expect(options.senderId).toMatch(new RegExp(`^${hostname()}:${process.pid}:[0-9a-f]{6}$`));
    expect(resolve({}).senderId).not.toBe(options.senderId);
  });
});

describe("flags and environment variables", () => {
  it("are derived from each option's name", () => {
    expect(flagOf("batchSize")).toBe("batch-size");
    expect(flagOf("smtpTimeoutSeconds")).toBe("smtp-timeout-seconds");
    expect(envOf("batchSize")).toBe("DBMAIL_BATCH_SIZE");
    expect(envOf("heartbeatIntervalMs")).toBe("DBMAIL_HEARTBEAT_INTERVAL_MS");
  });

  it("give the command-line parser every option, only --exit-when-idle a switch", () => {
    expect(optionFlags.map((o) => o.flag)).toEqual([
      "sender-id",
      "batch-size",
      "concurrency",
      "lease-seconds",
      "poll-interval-ms",
      "heartbeat-interval-ms",
      "shutdown-timeout-ms",
      "exit-when-idle",
      "smtp-pool-size",
      "smtp-timeout-seconds",
      "smtp-username",
      "smtp-password",
      "log-level",
      "http",
    ]);
    expect(optionFlags.filter((o) => o.boolean).map((o) => o.flag)).toEqual(["exit-when-idle"]);
  });

  it("win in the order flag, environment, config file, default", () => {
    const config = configFile({ batchSize: 7, concurrency: 8, leaseSeconds: 90 });
    const options = resolve({
      flags: { "batch-size": "5" },
      env: { DBMAIL_BATCH_SIZE: "6", DBMAIL_CONCURRENCY: "9" },
      configFile: config,
    });
    expect(options).toMatchObject({ batchSize: 5, concurrency: 9, leaseSeconds: 90, pollIntervalMs: 5000 });
  });

  it("skip an empty environment variable", () => {
    const options = resolve({ env: { DBMAIL_BATCH_SIZE: "" }, configFile: configFile({ batchSize: 7 }) });
    expect(options.batchSize).toBe(7);
  });

  it("read switches as true/false, 1/0, yes/no and on/off, in any case", () => {
    expect(resolve({ flags: { "exit-when-idle": true } }).exitWhenIdle).toBe(true);
    for (const yes of ["1", "true", "YES", "On"])
      expect(resolve({ env: { DBMAIL_EXIT_WHEN_IDLE: yes } }).exitWhenIdle).toBe(true);
    for (const no of ["0", "False", "no", "OFF"])
      expect(resolve({ env: { DBMAIL_EXIT_WHEN_IDLE: no } }).exitWhenIdle).toBe(false);
    expect(resolve({ configFile: configFile({ exitWhenIdle: true }) }).exitWhenIdle).toBe(true);
  });

  it("take --http as HOST:PORT, an IPv6 host in brackets; off when not given", () => {
    expect(resolve({}).http).toBeUndefined();
    expect(resolve({ flags: { http: "0.0.0.0:9465" } }).http).toBe("0.0.0.0:9465");
    expect(resolve({ env: { DBMAIL_HTTP: "[::1]:9465" } }).http).toBe("[::1]:9465");
    expect(resolve({ configFile: configFile({ http: "localhost:0" }) }).http).toBe("localhost:0");
    expect(listenAddress("[::1]:9465")).toEqual({ host: "::1", port: 9465 });
    expect(listenAddress("metrics.internal:80")).toEqual({ host: "metrics.internal", port: 80 });
  });

  it("keep strings as given and levels by name", () => {
    const options = resolve({
      flags: { "sender-id": "mailer-1", "log-level": "debug" },
      env: { DBMAIL_SMTP_USERNAME: "svc", DBMAIL_SMTP_PASSWORD: "p@ss word" },
    });
    expect(options).toMatchObject({
      senderId: "mailer-1",
      logLevel: "debug",
      smtpUsername: "svc",
      smtpPassword: "p@ss word",
    });
  });
});

describe("a bad value", () => {
  it.each([
    [{ flags: { "batch-size": "0" } }, '--batch-size: "0": must be a whole number from 1 to 1000'],
    [{ flags: { concurrency: "1001" } }, '--concurrency: "1001": must be a whole number from 1 to 1000'],
    [{ flags: { "lease-seconds": "9" } }, '--lease-seconds: "9": must be a whole number from 10 to 86400'],
    [
      { env: { DBMAIL_POLL_INTERVAL_MS: "1.5" } },
      'DBMAIL_POLL_INTERVAL_MS: "1.5": must be a whole number from 50 to 3600000',
    ],
    [
      { env: { DBMAIL_SMTP_POOL_SIZE: "-1" } },
      'DBMAIL_SMTP_POOL_SIZE: "-1": must be a whole number from 1 to 100',
    ],
    [
      { env: { DBMAIL_BATCH_SIZE: "ten" } },
      'DBMAIL_BATCH_SIZE: "ten": must be a whole number from 1 to 1000',
    ],
    [{ env: { DBMAIL_EXIT_WHEN_IDLE: "maybe" } }, 'DBMAIL_EXIT_WHEN_IDLE: "maybe": must be true or false'],
    [{ flags: { "log-level": "verbose" } }, '--log-level: "verbose": must be debug, info, warn or error'],
    [{ env: { DBMAIL_LOG_LEVEL: "INFO" } }, 'DBMAIL_LOG_LEVEL: "INFO": must be debug, info, warn or error'],
    [
      { flags: { http: "9465" } },
      '--http: "9465": must be HOST:PORT, e.g. 127.0.0.1:9465, 0.0.0.0:9465 or [::1]:9465',
    ],
    [
      { env: { DBMAIL_HTTP: "localhost:65536" } },
      'DBMAIL_HTTP: "localhost:65536": must be HOST:PORT, e.g. 127.0.0.1:9465, 0.0.0.0:9465 or [::1]:9465',
    ],
  ] as const)("is refused with one line naming where it came from (%j)", (sources, message) => {
    expect(refusal(sources).message).toBe(message);
  });

  it("in the config file names the file and the key", () => {
    const config = configFile({ heartbeatIntervalMs: 30_000, logLevel: "info" });
    expect(refusal({ configFile: config }).message).toBe(
      `${config}: heartbeatIntervalMs: "30000": must be a whole number from 100 to 25000`,
    );
  });

  it("in the config file goes unread when a flag gives that option", () => {
    const config = configFile({ batchSize: 0 });
    expect(resolve({ flags: { "batch-size": "3" }, configFile: config }).batchSize).toBe(3);
  });

  it("accepts the bounds themselves", () => {
    expect(resolve({ flags: { "batch-size": "1", "lease-seconds": "86400" } })).toMatchObject({
      batchSize: 1,
      leaseSeconds: 86_400,
    });
  });
});

describe("the config file", () => {
  it("that cannot be read, or is not a JSON object, is refused saying so", () => {
    const missing = join(dir, "no-such.json");
    expect(refusal({ configFile: missing }).message).toMatch(
      new RegExp(`^--config: "${missing}": cannot be read \\(ENOENT`),
    );
    const broken = configFile("{ not json");
    expect(refusal({ configFile: broken }).message).toMatch(
      new RegExp(`^--config: "${broken}": not valid JSON \\(`),
    );
    const list = configFile([1, 2]);
    expect(refusal({ configFile: list }).message).toBe(
      `--config: "${list}": not valid JSON (not a JSON object)`,
    );
  });
});

describe("the databases to serve", () => {
  it("come from --database-url, else DATABASE_URL, named host/database", () => {
    const flagged = resolve({
      flags: { "database-url": "postgres://u:p@db.example:5432/mail" },
      env: { DATABASE_URL: "postgres://u:p@other.example/app" },
    });
    expect(flagged.databases).toEqual([
      { name: "db.example/mail", url: "postgres://u:p@db.example:5432/mail" },
    ]);
    const fromEnv = resolve({ env: { DATABASE_URL: "postgresql://u:p@other.example/app" } });
    expect(fromEnv.databases).toEqual([
      { name: "other.example/app", url: "postgresql://u:p@other.example/app" },
    ]);
  });

  it("without a URL, are libpq's PG* variables' database", () => {
    vi.stubEnv("PGDATABASE", "from_pg_env");
    expect(resolve({}).databases).toEqual([{ name: "from_pg_env" }]);
    vi.stubEnv("PGDATABASE", undefined);
    expect(resolve({}).databases).toEqual([{ name: "default" }]);
  });

  it("can be several, listed in the config file as URLs or {name, url}", () => {
    const config = configFile({
      databases: ["postgres://u:p@a.example/one", { name: "billing", url: "postgres://u:p@b.example/two" }],
    });
    expect(resolve({ configFile: config }).databases).toEqual([
      { name: "a.example/one", url: "postgres://u:p@a.example/one" },
      { name: "billing", url: "postgres://u:p@b.example/two" },
    ]);
  });

  it("are refused from both a URL and the config file's list", () => {
    const config = configFile({ databases: ["postgres://u:p@a.example/one"] });
    expect(refusal({ flags: { "database-url": "postgres://u:p@x/y" }, configFile: config }).message).toBe(
      `--database-url and the "databases" of ${config}: give one or the other ` +
        "(--database-url serves one database; the config file's list serves several)",
    );
    expect(refusal({ env: { DATABASE_URL: "postgres://u:p@x/y" }, configFile: config }).message).toMatch(
      /^DATABASE_URL and the "databases" of /,
    );
  });

  it.each([
    [[], 'databases: must be a non-empty list of database URLs or {"name", "url"} objects'],
    [
      "postgres://u:p@a.example/one",
      'databases: must be a non-empty list of database URLs or {"name", "url"} objects',
    ],
    [[{ name: "x" }], 'databases[0]: needs a "url"'],
    [["postgres://u:p@a/one", 42], 'databases[1]: needs a "url"'],
    [[{ name: " ", url: "postgres://u:p@a/one" }], "databases[0].name: must be a non-empty string"],
    [
      ["postgres://u:p@a/one", { name: "a/one", url: "postgres://u:p@b/two" }],
      'databases[1]: the name "a/one" as databases[0]; each database once',
    ],
    [
      [
        { name: "x", url: "postgres://u:p@a/one" },
        { name: "y", url: "postgres://u:p@a/one" },
      ],
      "databases[1]: the same URL as databases[0]; each database once",
    ],
  ])("refuses a config file's list %j, saying what is wrong with which entry", (databases, problem) => {
    const config = configFile({ databases });
    expect(refusal({ configFile: config }).message).toBe(`${config}: ${problem}`);
  });

  it("refuses a URL that is not PostgreSQL's, without showing its password", () => {
    expect(refusal({ flags: { "database-url": "http://u:secret@h/db" } }).message).toBe(
      '--database-url: "http://u:****@h/db": not a usable PostgreSQL URL (must start with postgres:// or ' +
        "postgresql://); the form is postgres://user:password@host:port/database",
    );
    const config = configFile({ databases: ["mysql://u:secret@h/db"] });
    const message = refusal({ configFile: config }).message;
    expect(message).toMatch(
      new RegExp(`^${config}: databases\\[0\\]\\.url: "mysql://u:\\*\\*\\*\\*@h/db": `),
    );
    expect(message).not.toContain("secret");
  });
});

describe("--help", () => {
  it("has one line per option: its flag, its variable, what it does and its default", () => {
    const lines = optionsHelp().split("\n");
    expect(lines).toHaveLength(optionFlags.length);
    expect(lines).toContain(
      "  --batch-size             DBMAIL_BATCH_SIZE              items claimed per query (default 20)",
    );
    expect(lines).toContain(
      "  --exit-when-idle         DBMAIL_EXIT_WHEN_IDLE          exit after DatabaseMailExeMinimumLifeTime seconds without mail (default false)",
    );
    expect(lines).toContain(
      "  --smtp-password          DBMAIL_SMTP_PASSWORD           password for accounts with use_default_credentials",
    );
    for (const [i, { flag }] of optionFlags.entries()) {
      expect(lines[i]).toMatch(
        new RegExp(`^  --${flag} +DBMAIL_${flag.replace(/-/g, "_").toUpperCase()} +\\S`),
      );
    }
  });

  it("of dbmail start lists them between --config and --help", () => {
    const options = startHelp.slice(startHelp.indexOf("Options:\n"), startHelp.indexOf("  -h, --help"));
    expect(options).toBe(
      "Options:\n" +
        "  --database-url URL       DATABASE_URL                   the database to serve\n" +
        "  --config FILE                                           a JSON config file\n" +
        `${optionsHelp()}\n`,
    );
  });
});
