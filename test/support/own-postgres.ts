import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@pg-dbmail/dev/local-postgres";

/**
 * A PostgreSQL of a test's own whose extension directory the test may write. The machine's PostgreSQL
 * server binaries (Debian's /usr/lib/postgresql/<major>/bin) are copied under a temporary prefix, in
 * the same layout: PostgreSQL finds its share directory relative to its own binary, so that server and
 * that pg_config both name the prefix's share directory, and `pg_config --sharedir`/extension is the
 * test's to write. The machine's own server and directories are never touched.
 */
export interface OwnPostgres {
  /** A superuser URL (user postgres, trust authentication on 127.0.0.1) to database postgres. */
  url: string;
  /** The copied pg_config, which reports the prefix's directories. */
  pgConfig: string;
  /** `pg_config --sharedir`/extension: where CREATE EXTENSION looks. */
  extensionDir: string;
  /** The machine's client tools of the same major version (pg_dump, pg_restore, psql). */
  clientBin: string;
  /** The user the server runs as when this process is root (uid, gid), else undefined. */
  runAs: { uid: number; gid: number } | undefined;
  stop(): Promise<void>;
}

const SERVER_TOOLS = ["postgres", "initdb", "pg_config"];
const CLIENT_TOOLS = ["pg_dump", "pg_restore", "psql"];

/** The machine's PostgreSQL binaries (server and client tools, one major version), or undefined. */
export function machinePostgresBin(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const majors = readdirSync(root)
    .filter((major) => /^\d+$/.test(major))
    .sort((a, b) => Number(b) - Number(a));
  return majors
    .map((major) => join(root, major, "bin"))
    .find((bin) => [...SERVER_TOOLS, ...CLIENT_TOOLS].every((tool) => existsSync(join(bin, tool))));
}

/** Whether a test can have a PostgreSQL of its own; under CI it must (CI installs postgresql-15). */
export function ownPostgresAvailable(): boolean {
  const available = machinePostgresBin() !== undefined && existsSync("/usr/bin/make");
  if (!available && process.env.CI) {
    throw new Error("CI needs PostgreSQL's server binaries in /usr/lib/postgresql/<major>/bin, and make");
  }
  return available;
}

function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  return { uid: id("-u"), gid: id("-g") };
}

export async function startOwnPostgres(): Promise<OwnPostgres> {
  const bin = machinePostgresBin();
  if (!bin) throw new Error("no PostgreSQL server binaries in /usr/lib/postgresql/<major>/bin");
  const prefix = mkdtempSync(join(tmpdir(), "pg-dbmail-own-postgres-"));
  chmodSync(prefix, 0o755);
  // The layout of the original, /usr/lib/postgresql/15/{bin,lib} and /usr/share/postgresql/15, under
  // the prefix: binaries copied (a symlink would lead them home), libraries shared, share copied.
  const original = execFileSync(join(bin, "pg_config"), ["--bindir", "--pkglibdir", "--sharedir"], {
    encoding: "utf8",
  })
    .trim()
    .split("\n");
  const [bindir, pkglibdir, sharedir] = original.map((dir) => join(prefix, dir)) as [string, string, string];
  mkdirSync(bindir, { recursive: true });
  for (const tool of SERVER_TOOLS) copyFileSync(join(bin, tool), join(bindir, tool));
  for (const tool of SERVER_TOOLS) chmodSync(join(bindir, tool), 0o755);
  mkdirSync(join(pkglibdir, ".."), { recursive: true });
  symlinkSync(original[1] as string, pkglibdir);
  cpSync(original[2] as string, sharedir, { recursive: true });
  const pgConfig = join(bindir, "pg_config");
  const extensionDir = join(execFileSync(pgConfig, ["--sharedir"], { encoding: "utf8" }).trim(), "extension");

  const runAs = postgresUser();
  const dataDir = join(prefix, "data");
  mkdirSync(dataDir, { mode: 0o700 });
  if (runAs) chownSync(dataDir, runAs.uid, runAs.gid);
  execFileSync(
    join(bindir, "initdb"),
    ["-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--lc-messages=C"],
    { ...runAs, stdio: "pipe", env: { ...process.env, LC_ALL: "C" } },
  );
  const port = await freePort();
  const server = spawn(
    join(bindir, "postgres"),
    ["-D", dataDir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    { ...runAs, stdio: ["ignore", "pipe", "pipe"] },
  );
  const killOnExit = () => server.kill("SIGINT");
  process.once("exit", killOnExit);
  await untilReady(server);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    pgConfig,
    extensionDir,
    clientBin: bin,
    runAs,
    stop: async () => {
      process.off("exit", killOnExit);
      if (server.exitCode === null && server.signalCode === null) {
        const exited = new Promise((resolve) => server.once("exit", resolve));
        server.kill("SIGINT");
        await exited;
      }
      rmSync(prefix, { recursive: true, force: true });
    },
  };
}

function untilReady(server: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`PostgreSQL did not start in 60 s:\n${output}`)), 60_000);
    server.stdout?.resume();
    server.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes("database system is ready to accept connections")) {
        clearTimeout(timer);
        resolve();
      }
    });
    server.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`PostgreSQL exited with code ${code} while starting:\n${output}`));
    });
  });
}
