// Shared machinery of the fault-injection suite: spawned `dbmail start` processes, queuing known sets of
// mails, counting what the SMTP servers received per X-DBMail-Mailitem-Id, and the results file that
// report-setup.ts turns into REPORT.md.
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type pg from "pg";
import { TestDatabase, type TestRole } from "../support/database.js";
import { addAccount } from "../support/sender.js";
import { type ReceivedMail, TestSmtpServer } from "../support/smtp.js";

/** FAULTS_LONG=1: larger counts, more kills. */
export const LONG = process.env.FAULTS_LONG === "1";

export const cli = fileURLToPath(new URL("../../packages/sender/dist/cli.js", import.meta.url));
export const resultsDir = fileURLToPath(new URL("./results/", import.meta.url));
export const resultsFile = `${resultsDir}results.jsonl`;

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
export const shortId = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

/** Anything that runs SQL: a pg.Client, pg.Pool or TestDatabase. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params?: unknown[],
  ): Promise<pg.QueryResult<R>>;
}

export interface ScenarioResult {
  scenario: string;
  mails: number;
  lost: number;
  duplicates: number;
  maxRecoverySeconds: number | null;
  notes: string;
}

/** Appends one scenario's numbers to the results file (REPORT.md is written from it at the end). */
export function recordResult(result: ScenarioResult): void {
  mkdirSync(resultsDir, { recursive: true });
  appendFileSync(resultsFile, `${JSON.stringify(result)}\n`);
}

export function readResults(): ScenarioResult[] {
  try {
    return readFileSync(resultsFile, "utf8")
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => JSON.parse(line) as ScenarioResult);
  } catch {
    return [];
  }
}

export interface Spawned {
  id: string;
  child: ChildProcess;
  pid: number;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output: () => string;
  alive: () => boolean;
}

const spawned: Spawned[] = [];

/** Spawns `dbmail start` against `url` with a known sender id; killed by killAll(). */
export function spawnSender(url: string, id: string, args: string[] = []): Spawned {
  const child = spawn(
    process.execPath,
    [
      cli,
      "start",
      "--database-url",
      url,
      "--sender-id",
      id,
      "--poll-interval-ms",
      "200",
      "--heartbeat-interval-ms",
      "500",
      "--log-level",
      "warn",
      ...args,
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, DATABASE_URL: "" } },
  );
  let output = "";
  const keep = (chunk: Buffer) => {
    // Enough for every warning of a run at --log-level warn (the SIGSTOP scenario reads them).
    output = (output + chunk.toString()).slice(-2_000_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const s: Spawned = {
    id,
    child,
    pid: child.pid as number,
    exit,
    output: () => output,
    alive: () => child.exitCode === null && child.signalCode === null,
  };
  spawned.push(s);
  return s;
}

/** The JSON log lines a sender wrote (pino), parsed; other lines are skipped. */
export function logLines(s: Spawned): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  for (const line of s.output().split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line cut off at the start of the kept output
    }
  }
  return lines;
}

/** SIGKILLs every sender this file spawned that still runs (SIGCONT first, in case one is stopped). */
export async function killAll(): Promise<void> {
  for (const s of spawned.splice(0)) {
    if (!s.alive()) continue;
    s.child.kill("SIGCONT");
    s.child.kill("SIGKILL");
    await s.exit;
  }
}

/** SIGKILLs one sender and waits for it to be gone. */
export async function kill9(s: Spawned): Promise<void> {
  s.child.kill("SIGKILL");
  await s.exit;
}

/** Peak resident set size (VmHWM) of a running process, in MiB. */
export function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmHWM:\s+(\d+)\s+kB/.exec(status)?.[1] ?? 0);
  return Math.round((kb / 1024) * 10) / 10;
}

/** Queues `count` mails through `profile` in one statement; returns their mailitem_ids. */
export async function queue(db: Queryable, count: number, tag: string, profile = "p"): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT dbmail.sp_send_dbmail(profile_name => $3, recipients => 'r' || i || '@example.org',
              subject => $1 || ' ' || i, body => 'b') AS id
       FROM generate_series(1, $2::integer) i`,
    [tag, count, profile],
  );
  return rows.map((r) => String(r.id));
}

const idOf = new WeakMap<ReceivedMail, { id: string; messageId: string }>();
function identify(mail: ReceivedMail): { id: string; messageId: string } {
  let known = idOf.get(mail);
  if (!known) {
    known = {
      id: String(mail.parsed.headers.get("x-dbmail-mailitem-id") ?? ""),
      messageId: String(mail.parsed.messageId ?? ""),
    };
    idOf.set(mail, known);
  }
  return known;
}

export interface Tally {
  /** How many copies of each wanted id arrived, over all servers. */
  times: Map<string, number>;
  arrived: number;
  missing: string[];
  /** Ids that arrived more than once. */
  duplicates: string[];
  /** Extra copies (sum of times - 1 over duplicated ids). */
  extraCopies: number;
  /** Ids whose copies did not all carry the same Message-ID. */
  messageIdMismatch: string[];
}

/** What the servers received of `ids`, counted by X-DBMail-Mailitem-Id. */
export function tally(servers: TestSmtpServer[], ids: string[]): Tally {
  const wanted = new Set(ids);
  const times = new Map<string, number>();
  const messageIds = new Map<string, Set<string>>();
  for (const server of servers) {
    for (const mail of server.received) {
      const { id, messageId } = identify(mail);
      if (!wanted.has(id)) continue;
      times.set(id, (times.get(id) ?? 0) + 1);
      const set = messageIds.get(id) ?? new Set<string>();
      set.add(messageId);
      messageIds.set(id, set);
    }
  }
  const duplicates = [...times].filter(([, n]) => n > 1).map(([id]) => id);
  return {
    times,
    arrived: times.size,
    missing: ids.filter((id) => !times.has(id)),
    duplicates,
    extraCopies: duplicates.reduce((sum, id) => sum + (times.get(id) ?? 1) - 1, 0),
    messageIdMismatch: [...messageIds].filter(([, set]) => set.size !== 1).map(([id]) => id),
  };
}

/** Counts per sent_status of `ids`. */
export async function statusCounts(db: Queryable, ids: string[]): Promise<Record<string, number>> {
  const { rows } = await db.query<{ sent_status: string; n: string }>(
    `SELECT sent_status, count(*) AS n FROM dbmail.mailitems WHERE mailitem_id = ANY($1::bigint[])
      GROUP BY sent_status`,
    [ids],
  );
  return Object.fromEntries(rows.map((r) => [r.sent_status, Number(r.n)]));
}

/** The items a sender holds under lease right now. */
export async function leasedBy(db: Queryable, senderId: string): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    "SELECT mailitem_id AS id FROM dbmail.mailitems WHERE sent_status = 'sending' AND lease_owner = $1",
    [senderId],
  );
  return rows.map((r) => String(r.id));
}

/** Waits until `check` is truthy (polling every `everyMs`), or throws with `describe()` after timeoutMs. */
export async function until<T>(
  check: () => Promise<T> | T,
  timeoutMs: number,
  describe: () => Promise<string> | string = () => "",
  everyMs = 100,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${await describe()}`);
    await sleep(everyMs);
  }
}

/**
 * Waits until every id arrived and every item is recorded 'sent'. Throws (naming the missing ones and
 * the statuses) when that does not happen within timeoutMs.
 */
export async function drained(
  db: Queryable,
  servers: TestSmtpServer[],
  ids: string[],
  timeoutMs: number,
): Promise<void> {
  const explain = async () => {
    const { missing } = tally(servers, ids);
    return `${missing.length} of ${ids.length} not delivered (e.g. ${missing.slice(0, 5).join(",")}); statuses ${JSON.stringify(await statusCounts(db, ids).catch(() => ({})))}`;
  };
  await until(() => tally(servers, ids).arrived === ids.length, timeoutMs, explain, 200);
  await until(async () => (await statusCounts(db, ids)).sent === ids.length, 15_000, explain, 200);
}

/** Sets a Database Mail setting (as superuser). */
export async function configure(db: Queryable, name: string, value: string): Promise<void> {
  await db.query("SELECT dbmail.sysmail_configure_sp($1, $2)", [name, value]);
}

/** Creates profile `profile` with the given accounts (names) in sequence order. */
export async function addProfile(db: Queryable, profile: string, accounts: string[]): Promise<void> {
  await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => $1)", [profile]);
  for (const [i, account] of accounts.entries()) {
    await db.query(
      "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => $1, account_name => $2, sequence_number => $3)",
      [profile, account, i + 1],
    );
  }
}

/** Seconds between a moment and the latest sent_date among `ids` (how long recovery took). */
export async function secondsUntilSent(db: Queryable, ids: string[], since: Date): Promise<number> {
  if (ids.length === 0) return 0;
  const { rows } = await db.query<{ s: number | null }>(
    `SELECT extract(epoch FROM max(sent_date) - $2::timestamptz)::float8 AS s
       FROM dbmail.mailitems WHERE mailitem_id = ANY($1::bigint[])`,
    [ids, since.toISOString()],
  );
  return Math.max(0, Math.round((rows[0]?.s ?? 0) * 10) / 10);
}

/** A test database with a dbmail_sender login and a profile "p" whose one account sends to a new SMTP server. */
export async function singleAccountFixture(): Promise<{
  db: TestDatabase;
  role: TestRole;
  smtp: TestSmtpServer;
}> {
  const db = await TestDatabase.create();
  const role = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
  const smtp = await TestSmtpServer.start();
  await addAccount(db, "acct", smtp);
  await addProfile(db, "p", ["acct"]);
  return { db, role, smtp };
}
