import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CliError, ExitCode } from "@pg-dbmail/sender";

/**
 * One dbmail dev per data directory: a second one would start a second PostgreSQL on the same data
 * (refused by PostgreSQL, after a wait and with its log) and move the demo account to its own catcher.
 * The lock is a file holding the owner's pid, created exclusively; one whose process is gone (a dbmail
 * dev that was killed) is taken over.
 */
export interface DataDirLock {
  release(): void;
}

const lockFileName = "dev.pid";

/** Takes `dir` for this process, or refuses in one line (exit 13) naming the dbmail dev that has it. */
export function lockDataDir(dir: string, shownDir: string): DataDirLock {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, lockFileName);
  for (let attempt = 0; ; attempt++) {
    if (createWithPid(file)) break;
    const owner = pidIn(file);
    if (owner !== undefined && isAlive(owner)) {
      throw new CliError(
        `${shownDir} is in use by another dbmail dev (pid ${owner}): stop it, or use another --data-dir`,
        ExitCode.devDataDirInUse,
      );
    }
    // Left by a dbmail dev that is gone: take it over (once; then whoever else did is the owner).
    if (attempt > 0) throw new CliError(`${file}: cannot take this lock file over`, ExitCode.devDataDirInUse);
    rmSync(file, { force: true });
  }
  const release = () => {
    if (pidIn(file) === process.pid) rmSync(file, { force: true });
    process.off("exit", release);
  };
  process.on("exit", release);
  return { release };
}

/**
 * Creates `file` holding this process's pid, unless it exists. Written aside and linked into place, so
 * that nobody ever reads the file without its pid (and takes it for one left behind).
 */
function createWithPid(file: string): boolean {
  const aside = `${file}.${process.pid}`;
  writeFileSync(aside, `${process.pid}\n`, { mode: 0o644 });
  try {
    linkSync(aside, file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw error;
  } finally {
    rmSync(aside, { force: true });
  }
}

/**
 * Refuses a PostgreSQL data directory whose server still runs although no dbmail dev holds the lock: one
 * left behind by a dbmail dev killed with SIGKILL (PostgreSQL itself would refuse it, less clearly).
 */
export function refuseLivePostgres(postgresDir: string, shownDir: string): void {
  const pid = pidIn(join(postgresDir, "postmaster.pid"));
  if (pid !== undefined && isAlive(pid)) {
    throw new CliError(
      `${shownDir} is in use by a PostgreSQL (pid ${pid}) that no dbmail dev runs: ` +
        `stop it (kill ${pid}), or use another --data-dir`,
      ExitCode.devDataDirInUse,
    );
  }
}

/** The pid on the first line of `file`, if it exists and has one. */
function pidIn(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, "utf8").split("\n")[0]?.trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  // Our own pid in the file: left by an earlier process of a container that restarted.
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists, run by another user (the postgres user, when this runs as root).
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  return !isZombie(pid);
}

/** A process that has exited but not been reaped yet (Linux; elsewhere assumed not). */
function isZombie(pid: number): boolean {
  try {
    // /proc/PID/stat: "pid (command) state ...": the command may contain spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
  } catch {
    return false;
  }
}
