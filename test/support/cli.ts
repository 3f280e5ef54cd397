// Running `dbmail` as a user would, in a child process, for the tests of the CLI and of the README. Every
// child leads a process group of its own, so that a hard kill also ends what it started (npx's node
// child, dbmail dev's PostgreSQL): killing only the leader would leave them running after the tests.
import { type ChildProcess, spawn } from "node:child_process";
import { lstatSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, inject } from "vitest";
import { TestDatabase, withClient } from "./database.js";
import { withDatabase } from "./global-setup.js";
import { addProfile as addPlainProfile, call, send, sleep, unique } from "./mail.js";
import { eventually } from "./sender.js";

export const cliPath = new URL("../../packages/sender/dist/cli.js", import.meta.url).pathname;

export type Env = Record<string, string | undefined>;

/** The test process's environment without anything that would choose a database or an option for the CLI. */
export const cleanEnv: Env = Object.fromEntries(
  Object.entries(process.env).filter(([key]) => !/^(DATABASE_URL$|PG[A-Z]+$|DBMAIL_)/.test(key)),
);

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A running child process whose output is collected. */
export interface Running {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<Result>;
  /** Resolves with stdout once it matches `pattern`; rejects if the process exits first or on timeout. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGKILL to the child's whole process group. */
  killGroup(): void;
}

const running = new Set<Running>();

/** Starts `command args` in a process group of its own, collecting its output until it exits. */
export function spawnCollecting(
  command: string,
  args: string[],
  options: { env: Env; cwd?: string; label?: string },
): Running {
  const label = options.label ?? `${command} ${args.join(" ")}`;
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env as NodeJS.ProcessEnv,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  let done = false;
  const exited = new Promise<Result>((resolve) => {
    child.once("close", (code, signal) => {
      done = true;
      resolve({ code, signal, stdout, stderr });
    });
  });
  const proc: Running = {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    waitForOutput: async (pattern, timeoutMs = 20_000) => {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(stdout)) {
        if (done)
          throw new Error(
            `${label} exited before printing ${pattern}:\nstdout: ${stdout}\nstderr: ${stderr}`,
          );
        if (Date.now() > deadline) {
          throw new Error(`${label} did not print ${pattern}:\nstdout: ${stdout}\nstderr: ${stderr}`);
        }
        await sleep(50);
      }
      return stdout;
    },
    killGroup: () => {
      if (child.pid === undefined || done) return;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch (error) {
        // The group is already gone.
        if ((error as NodeJS.ErrnoException).code !== "ESRCH") throw error;
      }
    },
  };
  running.add(proc);
  void exited.then(() => running.delete(proc));
  return proc;
}

/** Starts the built `dbmail args`, with a clean environment plus `env`. */
export function launch(args: string[], env: Env = {}): Running {
  return spawnCollecting(process.execPath, [cliPath, ...args], {
    env: { ...cleanEnv, ...env },
    label: `dbmail ${args.join(" ")}`,
  });
}

/** Runs `dbmail args` to completion (killed after timeoutMs). */
export async function run(args: string[], env: Env = {}, timeoutMs = 25_000): Promise<Result> {
  const proc = launch(args, env);
  const timer = setTimeout(() => proc.killGroup(), timeoutMs);
  try {
    return await proc.exited;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Sends `signal` to the process itself (it stops what it started) and waits for it to exit; after
 * timeoutMs, SIGKILL to its whole group.
 */
export async function stop(
  proc: Running,
  signal: NodeJS.Signals = "SIGTERM",
  timeoutMs = 15_000,
): Promise<Result> {
  proc.child.kill(signal);
  const timer = setTimeout(() => proc.killGroup(), timeoutMs);
  try {
    return await proc.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Stops every process still running, for an afterEach: a failed test may leave one behind. */
export async function stopAll(signal: NodeJS.Signals = "SIGINT", timeoutMs = 10_000): Promise<void> {
  for (const proc of [...running]) await stop(proc, signal, timeoutMs);
}

/** Kills every process still running with its group, and waits until each has exited. */
export async function killAll(): Promise<void> {
  const all = [...running];
  for (const proc of all) proc.killGroup();
  await Promise.all(all.map((proc) => proc.exited));
}

export function output(result: Result): string {
  return `${result.stdout}${result.stderr}`;
}

const tmpDirs: string[] = [];

/** A new private (0700) temporary directory, removed by removeTmpDirs. */
export function tmpDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "dbmail-cli-test-"));
  tmpDirs.push(dir);
  return dir;
}

export function removeTmpDirs(): void {
  for (const dir of tmpDirs.splice(0)) {
    // As root, dev may keep the PostgreSQL data elsewhere behind a symbolic link: remove that too.
    const data = join(dir, "postgres");
    if (lstatSync(data, { throwIfNoEntry: false })?.isSymbolicLink()) {
      rmSync(readlinkSync(data), { recursive: true, force: true });
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A config file with `content` (JSON unless a string), in a temporary directory; returns its path. */
export function writeConfig(content: unknown): string {
  const file = join(tmpDir(), "dbmail.json");
  writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content));
  return file;
}

/** Runs `fn` with the URL of a new database without schema dbmail, dropped afterwards. */
export async function withEmptyDatabase<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const adminUrl = inject("adminUrl");
  // Named like the test databases, so that the global teardown drops it should this process die.
  const name = unique(`${inject("templateDatabase").replace(/_template$/, "")}_empty`);
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  try {
    return await fn(withDatabase(adminUrl, name));
  } finally {
    await withClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  }
}

/** This file's hooks: every process stopped after each test, the temporary directories removed at the end. */
export function cleanUpProcessesAndFiles(): void {
  afterEach(() => stopAll());
  afterAll(() => removeTmpDirs());
}

/** The database of a file that called setUpCliTests (a live binding, set before its tests). */
export let db: TestDatabase;

/** cleanUpProcessesAndFiles, and a database of the file's own in `db`. */
export function setUpCliTests(): void {
  cleanUpProcessesAndFiles();
  beforeAll(async () => {
    db = await TestDatabase.create();
  });
  afterAll(() => db?.drop());
}

/** A public (non-default) profile using one account. */
export async function addProfile(db: TestDatabase, profile: string, account: string): Promise<void> {
  await addPlainProfile(db, { profile_name: profile });
  await call(db, "sysmail_add_profileaccount_sp", {
    profile_name: profile,
    account_name: account,
    sequence_number: 1,
  });
  await call(db, "sysmail_add_principalprofile_sp", {
    principal_name: "public",
    profile_name: profile,
    is_default: false,
  });
}

/** Queues a short mail to someone@example.org through `profile`; returns its mailitem_id. */
export function sendMail(db: TestDatabase, profile: string, subject: string): Promise<string> {
  return send(db, { profile_name: profile, recipients: "someone@example.org", subject, body: "hello" });
}

/** Waits until one of `ids` is a live sender in `db`, and returns which. */
export async function liveSender(db: TestDatabase, ids: string[]): Promise<string> {
  return eventually(async () => {
    const { rows } = await db.query<{ sender_id: string }>(
      "SELECT sender_id FROM dbmail.senders WHERE sender_id = ANY($1) AND stopped_at IS NULL",
      [ids],
    );
    return rows.length === 1 ? rows[0]?.sender_id : undefined;
  }, 20_000);
}
