// The wake-up protocol (000017) under concurrency: sp_send_dbmail sends NOTIFY only when a sender listens
// and none is awake, so a lost wake-up would leave mail waiting for the poll. Every sender here polls once
// a minute: any mail that arrives more than a second after its commit was woken by nobody. Many callers,
// in READ COMMITTED and REPEATABLE READ (whose snapshot is taken before the call), hold their
// transactions open for a while after the call, in bursts with pauses between them long enough for the
// senders to go idle (give the watch back and settle) and be woken again; real senders, real SMTP.
import type { Sender } from "@pg-dbmail/sender";
import type pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { TestDatabase, TestRole } from "../support/database.js";
import { sleep } from "../support/mail.js";
import { eventually, startSender } from "../support/sender.js";
import type { TestSmtpServer } from "../support/smtp.js";
import { mailitemIdOf, singleAccountFixture } from "./support.js";

const POLL_MS = 60_000;
const LIMIT_MS = 1000;

let db: TestDatabase;
let role: TestRole;
let smtp: TestSmtpServer;
const senders: Sender[] = [];
const clients: pg.Client[] = [];

beforeAll(async () => {
  ({ db, role, smtp } = await singleAccountFixture());
});

afterEach(async () => {
  await Promise.all(senders.splice(0).map((s) => s.stop(2000)));
  await Promise.all(clients.splice(0).map((c) => c.end()));
});

afterAll(async () => {
  await smtp?.stop();
  await db?.drop();
});

const start = async () => {
  const sender = await startSender(role, { pollIntervalMs: POLL_MS });
  senders.push(sender);
  return sender;
};

async function connect(): Promise<pg.Client> {
  const client = await db.connect();
  clients.push(client);
  return client;
}

/** When each item's transaction committed, by mailitem_id. */
type Commits = Map<string, number>;

/** One call in a transaction of `isolation`, held open `holdMs` after the call; records the commit. */
async function sendOne(
  client: pg.Client,
  isolation: string,
  holdMs: number,
  commits: Commits,
): Promise<void> {
  await client.query(`BEGIN ISOLATION LEVEL ${isolation}`);
  // REPEATABLE READ: the snapshot is the caller's from here, before the call.
  await client.query("SELECT count(*) FROM dbmail.sysmail_help_status_sp()");
  const { rows } = await client.query<{ id: string }>(
    "SELECT dbmail.sp_send_dbmail(profile_name => 'p', recipients => 'r@example.org', subject => 'w', body => 'b', exclude_query_output => true) AS id",
  );
  if (holdMs > 0) await sleep(holdMs);
  await client.query("COMMIT");
  commits.set(String(rows[0]?.id), Date.now());
}

/**
 * `callers` connections queue mail in `bursts` bursts of `perBurst` calls each, with random holds and
 * random pauses; between bursts a pause of 1.2-1.5 s lets the senders go idle. While it runs,
 * `during(burst)` may act.
 */
async function workload(
  callers: number,
  bursts: number,
  perBurst: number,
  during: (burst: number) => Promise<void> = async () => {},
): Promise<Commits> {
  const commits: Commits = new Map();
  const connections = await Promise.all(Array.from({ length: callers }, connect));
  for (let burst = 0; burst < bursts; burst++) {
    await Promise.all([
      during(burst),
      ...connections.map(async (client, c) => {
        for (let i = 0; i < perBurst; i++) {
          const isolation = (c + i) % 2 === 0 ? "READ COMMITTED" : "REPEATABLE READ";
          // The last call of a burst holds its transaction longest: its commit comes as the senders run
          // out of work and go idle, the moment a wake-up can be lost.
          const hold =
            i === perBurst - 1 ? Math.random() * 150 : Math.random() < 0.3 ? Math.random() * 40 : 0;
          await sendOne(client, isolation, hold, commits);
          // About 60 calls a second in all: what one sender delivers here with room to spare, so a late
          // mail is a missed wake-up, not a queue.
          await sleep(Math.random() * callers * 30);
        }
      }),
    ]);
    // Longer than LIMIT_MS: mail that waited for the next burst's NOTIFY is late.
    await sleep(LIMIT_MS + 200 + Math.random() * 300);
  }
  return commits;
}

/** Waits for every committed item, then returns the worst commit-to-arrival delay and the late ones. */
async function delays(commits: Commits): Promise<{ worstMs: number; late: string[] }> {
  const arrivedAt = () => {
    const at = new Map<string, number>();
    for (const mail of smtp.received) at.set(mailitemIdOf(mail), mail.at);
    return at;
  };
  await eventually(async () => [...commits.keys()].every((id) => arrivedAt().has(id)), 20_000).catch(
    (error: Error) => {
      const at = arrivedAt();
      const missing = [...commits.keys()].filter((id) => !at.has(id));
      throw new Error(`${error.message}: ${missing.length} of ${commits.size} never woke a sender`);
    },
  );
  const at = arrivedAt();
  const late: string[] = [];
  let worstMs = 0;
  for (const [id, committed] of commits) {
    const delay = (at.get(id) as number) - committed;
    worstMs = Math.max(worstMs, delay);
    if (delay > LIMIT_MS) late.push(`${id}: ${delay} ms`);
  }
  return { worstMs, late };
}

describe("wake-ups under concurrency (senders poll once a minute)", () => {
  it("one sender: mail from 12 callers, RC and RR, in bursts with idle gaps, each within a second of its commit", {
    timeout: 90_000,
  }, async () => {
    await start();
    const commits = await workload(12, 8, 8);
    const { worstMs, late } = await delays(commits);
    expect(late).toEqual([]);
    expect(commits.size).toBe(12 * 8 * 8);
    expect(worstMs).toBeLessThanOrEqual(LIMIT_MS);
    // Idle again, it holds no watch (else the next call would send no NOTIFY and wait for its next look),
    // and it still listens: every sample for half a second, once it has settled.
    const locks = async () => {
      const { rows } = await db.query<{ objid: number; mode: string }>(
        `SELECT objid::integer, mode FROM pg_locks
         WHERE locktype = 'advisory' AND classid = 1684172140
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
         ORDER BY 1`,
      );
      return JSON.stringify(rows);
    };
    const listening = JSON.stringify([{ objid: 1, mode: "ShareLock" }]);
    await sleep(1000);
    for (let i = 0; i < 10; i++) {
      expect(await locks()).toBe(listening);
      await sleep(50);
    }
  });

  it("three senders, one stopping and another starting midway: each mail within a second of its commit", {
    timeout: 90_000,
  }, async () => {
    await start();
    const second = await start();
    await start();
    const commits = await workload(10, 6, 8, async (burst) => {
      await sleep(50);
      // Whoever watches, the watch changes hands: a clean stop hands it over, a start settles first.
      if (burst === 2) await second.stop(2000);
      if (burst === 4) await start();
    });
    const { late } = await delays(commits);
    expect(late).toEqual([]);
  });

  it("a sender that starts while calls are open finds their mail when they commit", {
    timeout: 60_000,
  }, async () => {
    const commits: Commits = new Map();
    // Nobody listens: these calls send no NOTIFY, and commit only once the sender is serving.
    const callers = await Promise.all(Array.from({ length: 4 }, connect));
    const ids: string[] = [];
    for (const [i, client] of callers.entries()) {
      await client.query(`BEGIN ISOLATION LEVEL ${i % 2 ? "REPEATABLE READ" : "READ COMMITTED"}`);
      const { rows } = await client.query<{ id: string }>(
        "SELECT dbmail.sp_send_dbmail(profile_name => 'p', recipients => 'r@example.org', subject => 'open', body => 'b') AS id",
      );
      ids.push(String(rows[0]?.id));
    }
    await start();
    await sleep(500);
    for (const [i, client] of callers.entries()) {
      await client.query("COMMIT");
      commits.set(ids[i] as string, Date.now());
      await sleep(300);
    }
    const { late } = await delays(commits);
    expect(late).toEqual([]);
  });
});
