// libpq's URL of several hosts (src/database-url.ts), which node-postgres does not parse: the hosts and
// ports, target_session_attrs, the one-host URL node-postgres is given for each host, what is refused
// and how; and that `dbmail start` takes it from --database-url, DATABASE_URL and a config file.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runConsoleCommand } from "../src/commands/console.js";
import { resolveOptions } from "../src/config/options.js";
import { parseDatabaseUrl } from "../src/database-url.js";
import { CliError, ExitCode } from "../src/exit-codes.js";

const hostsOf = (url: string) => parseDatabaseUrl(url).hosts;
const urlsOf = (url: string) => {
  const parsed = parseDatabaseUrl(url);
  return parsed.hosts.map((_, i) => parsed.urlFor(i));
};

describe("parseDatabaseUrl", () => {
  it("reads the hosts of libpq's multi-host form, each with its port or 5432", () => {
    const parsed = parseDatabaseUrl("postgres://mailer@h1:5432,h2:5433/app?target_session_attrs=read-write");
    expect(parsed.hosts).toEqual([
      { host: "h1", port: 5432 },
      { host: "h2", port: 5433 },
    ]);
    expect(parsed.targetSessionAttrs).toBe("read-write");
    expect(hostsOf("postgresql://u@a,b:6000,c/db")).toEqual([
      { host: "a", port: 5432 },
      { host: "b", port: 6000 },
      { host: "c", port: 5432 },
    ]);
  });

  it("gives node-postgres one URL per host, keeping the login, database and options", () => {
    expect(
      urlsOf("postgres://mailer:s%40cret@h1:5432,h2:5433/app?sslmode=require&target_session_attrs=primary"),
    ).toEqual([
      "postgres://mailer:s%40cret@h1:5432/app?sslmode=require",
      "postgres://mailer:s%40cret@h2:5433/app?sslmode=require",
    ]);
  });

  it("takes IPv6 addresses in brackets", () => {
    expect(hostsOf("postgres://u@[::1]:5433,[fe80::2]/db")).toEqual([
      { host: "::1", port: 5433 },
      { host: "fe80::2", port: 5432 },
    ]);
    expect(urlsOf("postgres://u@[::1]:5433,h/db")).toEqual([
      "postgres://u@[::1]:5433/db",
      "postgres://u@h:5432/db",
    ]);
  });

  it("takes libpq's host= and port= lists, one port for all or one per host, and socket directories", () => {
    expect(hostsOf("postgres:///db?host=a,b&port=5433")).toEqual([
      { host: "a", port: 5433 },
      { host: "b", port: 5433 },
    ]);
    expect(hostsOf("postgres://u@/db?host=a,b&port=5433,5434")).toEqual([
      { host: "a", port: 5433 },
      { host: "b", port: 5434 },
    ]);
    expect(urlsOf("postgres://u@/db?host=/run/pg,h2&port=5432")).toEqual([
      "postgres://u@/db?host=%2Frun%2Fpg&port=5432",
      "postgres://u@h2:5432/db",
    ]);
  });

  it("reads a URL of one host as one host, target_session_attrs any, connect_timeout in ms", () => {
    const parsed = parseDatabaseUrl("postgres://u:p@db.example/mail?connect_timeout=3");
    expect(parsed.hosts).toEqual([{ host: "db.example", port: 5432 }]);
    expect(parsed.targetSessionAttrs).toBe("any");
    expect(parsed.connectTimeoutMs).toBe(3000);
  });

  it("gives node-postgres a URL of one host as it was, so an empty host still means PGHOST", () => {
    expect(urlsOf("postgres:///app?target_session_attrs=read-write")).toEqual(["postgres:///app"]);
    expect(urlsOf("postgres://u:p@db/app?sslmode=require&target_session_attrs=primary")).toEqual([
      "postgres://u:p@db/app?sslmode=require",
    ]);
  });

  it.each([
    ["http://h/db", "must start with postgres:// or postgresql://"],
    [
      "postgres://h1,h2/db?target_session_attrs=master",
      "target_session_attrs=master: must be one of any, read-write, read-only, primary, standby, prefer-standby",
    ],
    ["postgres://h1:5432,h2:99999/db", 'port "99999": must be a number from 1 to 65535'],
    ["postgres://h1:x,h2/db", 'port "x": must be a number from 1 to 65535'],
    ["postgres:///db?host=a,b,c&port=1,2", "3 hosts and 2 ports: give one port, or one per host"],
    ["postgres://[::1,h2/db", 'host "[::1,h2": an IPv6 address needs its closing ]'],
    ["postgres://h1,h2/db?connect_timeout=soon", "connect_timeout=soon: must be a whole number of seconds"],
  ])("refuses %s: %s", (url, problem) => {
    expect(() => parseDatabaseUrl(url)).toThrow(problem);
  });
});

describe("dbmail start with several hosts", () => {
  const multi = "postgres://mailer:secret@h1:5432,h2:5433/app?target_session_attrs=read-write";
  const resolve = (sources: Parameters<typeof resolveOptions>[0]["env"], flags = {}) =>
    resolveOptions({ flags, env: sources ?? {} });

  it("takes them from --database-url and DATABASE_URL, naming the database after every host", () => {
    expect(resolve({}, { "database-url": multi }).databases).toEqual([{ name: "h1,h2/app", url: multi }]);
    expect(resolve({ DATABASE_URL: multi }).databases).toEqual([{ name: "h1,h2/app", url: multi }]);
  });

  it("takes them from a config file's databases", () => {
    const dir = mkdtempSync(join(tmpdir(), "dbmail-multi-host-"));
    try {
      const configFile = join(dir, "dbmail.config.json");
      writeFileSync(configFile, JSON.stringify({ databases: [{ name: "app", url: multi }] }));
      expect(resolveOptions({ flags: {}, env: {}, configFile }).databases).toEqual([
        { name: "app", url: multi },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses target_session_attrs that would hand the sender a read-only session (exit 2)", () => {
    const url = "postgres://mailer:secret@h1,h2/app?target_session_attrs=standby";
    let refused: unknown;
    try {
      resolve({}, { "database-url": url });
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(CliError);
    expect((refused as CliError).exitCode).toBe(ExitCode.usage);
    expect((refused as CliError).message).toBe(
      '--database-url: "postgres://mailer:****@h1,h2/app?target_session_attrs=standby": not a usable ' +
        "PostgreSQL URL (target_session_attrs=standby: this command writes to the database, so it needs " +
        "read-write or primary (or leave target_session_attrs out)); the form is " +
        "postgres://user:password@host:port/database",
    );
  });
});

describe("dbmail console", () => {
  it("refuses a URL of several hosts (exit 2): it signs people in on one server", async () => {
    const refused = await runConsoleCommand({
      "database-url": "postgres://u:secret@h1:5432,h2:5433/app",
    }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(CliError);
    expect((refused as CliError).exitCode).toBe(ExitCode.usage);
    expect((refused as CliError).message).toBe(
      "console: postgres://u:****@h1:5432,h2:5433/app: the console takes a URL of one host (connect it to the primary)",
    );
  });
});
