// Shared machinery of the fault-injection suite: the fixture of a scenario file, spawned `dbmail start`
// processes known by their sender id, waiting for a drain, and the results file that report-setup.ts turns
// into REPORT.md. Queuing mails and counting what the SMTP servers received are test/sender/support.ts's.
import { appendFileSync, mkdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, afterEach, beforeAll } from "vitest";
import {
  killSpawned,
  type Spawned,
  singleAccountFixture,
  spawnStart,
  statusCounts,
  tally,
} from "../sender/support.js";
import type { TestDatabase, TestRole } from "../support/database.js";
import { type Queryable, sleep } from "../support/mail.js";
import type { TestSmtpServer } from "../support/smtp.js";

/** FAULTS_LONG=1: larger counts, more kills. */
export const LONG = process.env.FAULTS_LONG === "1";

export const resultsDir = fileURLToPath(new URL("./results/", import.meta.url));
export const resultsFile = `${resultsDir}results.jsonl`;

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

export interface FaultFixture {
  /** The scenario's database, as superuser, through a pool of its own. */
  db: pg.Pool;
  role: TestRole;
  smtp: TestSmtpServer;
}

/**
 * Registers the hooks of a scenario file on singleAccountFixture (profile "p" on one SMTP server) and
 * returns the fixture, filled in before the first test (`setup` runs then too); every spawned sender is
 * killed after each test. Queries go through a pg.Pool: a scenario polls in the background while its
 * main flow queries too, and one pg.Client runs one query at a time (pg warns when a second one is queued
 * on it).
 */
export function singleAccountSuite(setup?: (fixture: FaultFixture) => Promise<void>): FaultFixture {
  let database: TestDatabase | undefined;
  const fixture = {} as FaultFixture;
  beforeAll(async () => {
    const made = await singleAccountFixture();
    database = made.db;
    const pool = new pg.Pool({ connectionString: made.db.url, max: 4 });
    pool.on("error", () => {});
    Object.assign(fixture, { db: pool, role: made.role, smtp: made.smtp });
    await setup?.(fixture);
  });
  afterEach(killSpawned);
  afterAll(async () => {
    await fixture.smtp?.stop();
    await fixture.db?.end();
    await database?.drop();
  });
  return fixture;
}

/** A spawned `dbmail start` with a known sender id. */
export interface SpawnedSender extends Spawned {
  id: string;
}

/** Spawns `dbmail start` against `url` as sender `id`, logging warnings and errors only. */
export function spawnSender(url: string, id: string, args: string[] = []): SpawnedSender {
  return { ...spawnStart(url, ["--sender-id", id, "--log-level", "warn", ...args]), id };
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
