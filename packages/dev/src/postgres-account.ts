import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readlinkSync,
  renameSync,
  statSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, parse } from "node:path";

/**
 * PostgreSQL refuses to run as root, so as root the local server runs as the system user `postgres`
 * (created if missing). That user must be able to reach the binaries and the data directory: a
 * checkout in a 0700 directory (/root, mktemp -d) is not reachable, so the binaries are then copied
 * once to a cache under the system temp directory.
 */
export interface RunAs {
  uid: number;
  gid: number;
}

export function runAsForThisProcess(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  return postgresUser() ?? createPostgresUser();
}

function postgresUser(): RunAs | undefined {
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8", stdio: "pipe" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8", stdio: "pipe" }).trim());
    return { uid, gid };
  } catch {
    return undefined;
  }
}

function createPostgresUser(): RunAs {
  try {
    execFileSync("useradd", ["--system", "--user-group", "--no-create-home", "postgres"], { stdio: "pipe" });
  } catch (error) {
    throw new Error(
      "PostgreSQL may not run as root, and no 'postgres' user could be created to run it; " +
        "run as a normal user or create a 'postgres' user",
      { cause: error },
    );
  }
  return postgresUser() as RunAs;
}

/** Whether `user` may traverse every directory from / down to `path` (inclusive). */
export function reachable(user: RunAs, path: string): boolean {
  let current = path;
  for (;;) {
    if (existsSync(current)) {
      const { mode, uid, gid } = statSync(current);
      const searchable =
        uid === user.uid
          ? (mode & 0o100) !== 0
          : gid === user.gid
            ? (mode & 0o010) !== 0
            : (mode & 0o001) !== 0;
      if (!searchable) return false;
    }
    if (current === parse(current).root) return true;
    current = dirname(current);
  }
}

/** The binaries' directory as `user` can reach it: in place, or a copy in a world-readable cache. */
export function reachableNativeDir(user: RunAs, nativeDir: string, version: string): string {
  if (reachable(user, join(nativeDir, "bin"))) return nativeDir;
  const cache = join(tmpdir(), `pg-dbmail-postgres-${version}`);
  if (!existsSync(join(cache, "bin", "postgres"))) {
    // Copy under a temporary name and rename, so a concurrent run never sees half a copy.
    const partial = `${cache}.${process.pid}`;
    cpSync(nativeDir, partial, { recursive: true, verbatimSymlinks: true });
    try {
      renameSync(partial, cache);
    } catch {
      // Another process finished its copy first; ours is not needed.
    }
  }
  return cache;
}

/**
 * The data directory to use for `dir`, created and owned by `user`. When `user` cannot reach `dir` (a
 * checkout under /root, say), the data lives in a reachable place under /var/tmp and `dir` becomes a
 * symbolic link to it, so it is still found where it was asked for.
 */
export function prepareDataDir(user: RunAs | undefined, dir: string): string {
  mkdirSync(dirname(dir), { recursive: true });
  if (!user) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }
  let target = dir;
  if (!reachable(user, dirname(dir))) {
    const base = existsSync("/var/tmp") ? "/var/tmp" : tmpdir();
    target = join(base, `pg-dbmail-data-${createHash("sha256").update(dir).digest("hex").slice(0, 12)}`);
    if (!isLinkTo(dir, target)) {
      if (existsSync(dir)) {
        throw new Error(
          `PostgreSQL runs as user 'postgres' (not root) and cannot reach ${dir}; use --data-dir`,
        );
      }
      symlinkSync(target, dir);
    }
  }
  mkdirSync(target, { recursive: true, mode: 0o700 });
  chownSync(target, user.uid, user.gid);
  return target;
}

function isLinkTo(link: string, target: string): boolean {
  try {
    return lstatSync(link).isSymbolicLink() && readlinkSync(link) === target;
  } catch {
    return false;
  }
}
