// The setup of the resilience tests: one database with profile "p" on one SMTP server, senders in process
// or spawned as `dbmail start`, and what to look at: which mails arrived how often (by their
// X-DBMail-Mailitem-Id, so missing and duplicated deliveries are counted exactly), their statuses, the
// queue as sysmail_help_queue_sp shows it, and the backends a sender holds.
import type { Sender, SenderOptions } from "@pg-dbmail/sender";
import type pg from "pg";
import { afterAll, afterEach, beforeAll, expect } from "vitest";
import type { TestDatabase, TestRole } from "../../support/database.js";
import { first } from "../../support/mail.js";
import { eventually, startSender } from "../../support/sender.js";
import type { TestSmtpServer } from "../../support/smtp.js";
import {
  killSpawned,
  queue,
  type Spawned,
  singleAccountFixture,
  spawnStart,
  statusCounts,
  tally,
} from "../support.js";

export interface QueueRow {
  length: string;
  state: string;
  live_senders: number;
  senders: { sender_id: string; last_heartbeat: string }[];
  stalled: boolean;
}

/**
 * Where a backend is a sender's LISTEN connection: its last statement was the LISTEN or, after the
 * listener's periodic check, the check.
 */
export const LISTENING =
  "(query LIKE 'LISTEN%' OR query LIKE 'SELECT pg_listening_channels()%' OR query LIKE 'SELECT dbmail.sender_%watch()%')";

/** Registers the hooks of a resilience test file and returns its fixture and helpers. */
export function useResilience() {
  let db: TestDatabase;
  let role: TestRole;
  let smtp: TestSmtpServer;
  const running: Sender[] = [];

  beforeAll(async () => {
    ({ db, role, smtp } = await singleAccountFixture());
  });

  afterEach(async () => {
    smtp.behaviour = {};
    await killSpawned();
    await Promise.all(running.splice(0).map((s) => s.stop(2000)));
  });

  afterAll(async () => {
    await smtp?.stop();
    await db?.drop();
  });

  const query = <R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]) =>
    db.query<R>(sql, params);

  /** How often each of `ids` arrived at the SMTP server, with the missing and duplicated ones. */
  const arrivals = (ids: string[]) => tally([smtp], ids);

  /** Waits until every item arrived and is recorded 'sent'; then checks none is missing or duplicated. */
  async function expectDeliveredOnce(ids: string[], timeoutMs = 20_000): Promise<void> {
    await eventually(async () => arrivals(ids).arrived === ids.length, timeoutMs).catch((error: Error) => {
      const { missing } = arrivals(ids);
      throw new Error(
        `${error.message}; ${missing.length} of ${ids.length} missing (e.g. ${missing.slice(0, 5)})`,
      );
    });
    await eventually(async () => (await statusCounts(db, ids)).sent === ids.length, 5000).catch(
      async (error: Error) => {
        throw new Error(`${error.message}; statuses ${JSON.stringify(await statusCounts(db, ids))}`);
      },
    );
    const { missing, duplicates } = arrivals(ids);
    expect({ missing: missing.length, duplicates: duplicates.length }).toEqual({ missing: 0, duplicates: 0 });
  }

  return {
    get db() {
      return db;
    },
    get smtp() {
      return smtp;
    },
    query,
    /** An in-process sender, stopped after the test. */
    async sender(overrides: Partial<SenderOptions> = {}): Promise<Sender> {
      const started = await startSender(role, overrides);
      running.push(started);
      return started;
    },
    /** Spawns `dbmail start` as the sender role, killed after the test. */
    spawnSender: (args: string[]): Spawned => spawnStart(role.url, args),
    /** Queues `count` mails through profile 'p' in one statement; returns their mailitem_ids. */
    queue: (count: number, tag = "m") => queue(db, count, tag),
    arrivals,
    /** sent_status of each item. */
    async statusOf(ids: string[]): Promise<Map<string, string>> {
      const { rows } = await query<{ mailitem_id: string; sent_status: string }>(
        "SELECT mailitem_id, sent_status FROM dbmail.sysmail_allitems WHERE mailitem_id = ANY($1::bigint[])",
        [ids],
      );
      return new Map(rows.map((r) => [String(r.mailitem_id), r.sent_status]));
    },
    /** Counts per sent_status. */
    statusCounts: (ids: string[]) => statusCounts(db, ids),
    expectDeliveredOnce,
    async helpQueue(): Promise<QueueRow> {
      return first((await query<QueueRow>("SELECT * FROM dbmail.sysmail_help_queue_sp()")).rows);
    },
    /** The backends a sender holds, by its application_name ('dbmail sender <id>'). */
    async backendsOf(senderId: string, where = "true") {
      const { rows } = await query<{ pid: number; query: string; state: string }>(
        `SELECT pid, query, state FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = $1 AND ${where}`,
        [`dbmail sender ${senderId}`],
      );
      return rows;
    },
    /** The sender's row in dbmail.senders: when it said it stopped. */
    async stoppedAt(senderId: string): Promise<Date | null | undefined> {
      const { rows } = await query<{ stopped_at: Date | null }>(
        "SELECT stopped_at FROM dbmail.senders WHERE sender_id = $1",
        [senderId],
      );
      return rows[0]?.stopped_at;
    },
  };
}

/** The process's exit, or an error after timeoutMs. */
export async function exitWithin(spawned: Spawned, timeoutMs: number) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no exit within ${timeoutMs} ms; output:\n${spawned.output().slice(-3000)}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([spawned.exit, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until a spawned sender says it is serving; fails if it exits first. */
export async function serving(spawned: Spawned): Promise<void> {
  await eventually(async () => {
    if (spawned.child.exitCode !== null) throw new Error(`sender exited early:\n${spawned.output()}`);
    return spawned.output().includes('"msg":"serving"');
  }, 10_000);
}
