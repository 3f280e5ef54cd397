// Scenario 3: the database goes away during a drain. A PostgreSQL of this scenario's own (npm binaries,
// its own port and data directory; never the machine's server) is restarted with a fast and with an
// immediate shutdown, then every sender connection is killed with pg_terminate_backend. Senders must
// reconnect, LISTEN again and finish, losing nothing.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, type LocalPostgres, startLocalPostgres } from "@pg-dbmail/dev/local-postgres";
import { migrate } from "@pg-dbmail/sql";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { killSpawned, queue, shortId, tally } from "../sender/support.js";
import { migrationsDir } from "../support/global-setup.js";
import { profileWith, type Queryable, sleep } from "../support/mail.js";
import { addAccount } from "../support/sender.js";
import { TestSmtpServer } from "../support/smtp.js";
import { drained, LONG, recordResult, spawnSender, until } from "./support.js";

let dataDir: string;
let port: number;
let server: LocalPostgres | undefined;
let pool: pg.Pool;
let smtp: TestSmtpServer;
let senderUrl: string;

/** Runs SQL as superuser, retrying while the server is down or restarting (up to 30 s). */
const db: Queryable = {
  async query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        return await pool.query<R>(sql, params);
      } catch (error) {
        if ((error as { code?: string }).code?.startsWith("42") || Date.now() > deadline) throw error;
        await sleep(200);
      }
    }
  },
};

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "dbmail-faults-pg-"));
  port = await freePort();
  server = await startLocalPostgres({ dataDir, port });
  await migrate(server.url, { migrationsDir });
  pool = new pg.Pool({ connectionString: server.url, max: 2 });
  pool.on("error", () => {});
  await pool.query("CREATE ROLE fault_sender LOGIN PASSWORD 'test'");
  await pool.query("GRANT dbmail_sender TO fault_sender");
  senderUrl = `postgres://fault_sender:test@127.0.0.1:${port}/postgres`;
  smtp = await TestSmtpServer.start();
  await addAccount(db as never, "acct", smtp);
  await profileWith(db, "p", ["acct"]);
}, 180_000);

afterAll(async () => {
  await killSpawned();
  await pool?.end().catch(() => {});
  await server?.stop();
  await smtp?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** Stops PostgreSQL (fast or immediate), waits a moment, starts it again on the same data dir and port. */
async function restart(mode: "fast" | "immediate", downMs: number): Promise<void> {
  await server?.stop(mode);
  server = undefined;
  await sleep(downMs);
  server = await startLocalPostgres({ dataDir, port });
}

/** Seconds from now until `more` further mails have arrived (delivery has resumed). */
async function resumed(ids: string[], more: number): Promise<number> {
  const from = tally([smtp], ids).arrived;
  const started = Date.now();
  await until(() => tally([smtp], ids).arrived >= Math.min(ids.length, from + more), 60_000);
  return Math.round((Date.now() - started) / 100) / 10;
}

it("3. PostgreSQL restarted (fast, immediate) and connections terminated mid-drain: senders recover", {
  timeout: LONG ? 1_200_000 : 150_000,
}, async () => {
  const mails = LONG ? 20_000 : 3000;
  const ids = await queue(db, mails, "pg");
  const senders = [
    spawnSender(senderUrl, shortId("pg-a"), ["--lease-seconds", "10"]),
    spawnSender(senderUrl, shortId("pg-b"), ["--lease-seconds", "10"]),
  ];
  const recoveries: Record<string, number> = {};
  const arrivedAt = (fraction: number) =>
    until(
      () => tally([smtp], ids).arrived >= mails * fraction,
      60_000,
      () => `${tally([smtp], ids).arrived}`,
    );

  await arrivedAt(0.15);
  await restart("fast", 1000);
  recoveries.fast = await resumed(ids, 50);

  await arrivedAt(0.4);
  await restart("immediate", 1000);
  recoveries.immediate = await resumed(ids, 50);

  await arrivedAt(0.65);
  const { rows: terminated } = await db.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'dbmail sender%' AND pg_terminate_backend(pid)`,
  );
  // Each sender holds a LISTEN connection and at least one pool connection.
  expect(terminated.length).toBeGreaterThanOrEqual(4);
  recoveries.terminate = await resumed(ids, 50);

  await drained(db, [smtp], ids, LONG ? 600_000 : 60_000);
  for (const s of senders) expect(s.alive(), `${s.id} still runs`).toBe(true);
  // Both listen again: a sender's listening connection takes the "someone listens" advisory lock in
  // the same statement as its LISTEN (dbmail.sender_listening), and holds it while it listens.
  const listening = await until(
    async () => {
      const { rows } = await db.query<{ n: string }>(
        `SELECT count(DISTINCT a.application_name) AS n
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.classid = 1684172140::oid AND l.objid = 1::oid AND l.granted
           AND a.application_name LIKE 'dbmail sender%'`,
      );
      return Number(rows[0]?.n) === senders.length;
    },
    20_000,
    () => "not every sender LISTENs again",
  );
  expect(listening).toBe(true);
  const t = tally([smtp], ids);
  expect(t.missing).toEqual([]);
  expect(t.messageIdMismatch).toEqual([]);
  recordResult({
    scenario: "3. PostgreSQL restart (fast, immediate) + pg_terminate_backend",
    mails,
    lost: t.missing.length,
    duplicates: t.extraCopies,
    maxRecoverySeconds: Math.max(...Object.values(recoveries)),
    notes: `2 senders, lease 10 s, own PostgreSQL on port ${port}, down 1 s each restart; delivery resumed (50 more mails) after fast ${recoveries.fast} s, immediate ${recoveries.immediate} s, ${terminated.length} backends terminated ${recoveries.terminate} s; both LISTEN again`,
  });
  // A database restart must not cause a resend (docs/sender.md, Delivery guarantee).
  expect(t.extraCopies).toBe(0);
});
