// Scenario 9: PostgreSQL failover (SPEC.md section 11, Beyond). A primary and a streaming hot standby
// of this scenario's own (npm binaries, pg_basebackup -R; never the machine's server); one `dbmail
// start` given both in libpq's multi-host form, target_session_attrs=read-write. Mail is queued
// continuously; the primary is killed (immediate shutdown: no checkpoint, as a crash) and the standby
// promoted; the queuing goes on against the new primary. The sender must find the new primary within
// seconds and go on. With synchronous replication every commit the application was told of is
// delivered; with asynchronous replication the report says what the last unreplicated commits did.
import pg from "pg";
import { afterEach, expect, it } from "vitest";
import { killSpawned, mailitemIdOf, shortId } from "../sender/support.js";
import { profileWith, type Queryable, sleep } from "../support/mail.js";
import { type ReplicatedPair, startReplicatedPair } from "../support/replicated-postgres.js";
import { addAccount } from "../support/sender.js";
import { TestSmtpServer } from "../support/smtp.js";
import { LONG, logLines, recordResult, spawnSender, until } from "./support.js";

/** Seconds of queuing before the kill, and after the promotion. */
const QUEUE_SECONDS = LONG ? 30 : 4;
/**
 * How long the primary stays dead before the standby is promoted (the failure detection of Patroni and
 * the like takes seconds; the sender meanwhile retries against both hosts).
 */
const PROMOTE_AFTER_MS = LONG ? 10_000 : 2_000;
const LEASE_SECONDS = 10;
/** Mails per sp_send_dbmail batch (one transaction), one batch every 50 ms or so. */
const BATCH = 5;

let pair: ReplicatedPair | undefined;
let smtp: TestSmtpServer | undefined;

afterEach(async () => {
  await killSpawned();
  await smtp?.stop();
  await pair?.stop();
  pair = undefined;
  smtp = undefined;
});

/**
 * Queues mail in a loop through whichever server is the primary now; keeps the commits it was told of
 * as `id|subject`: after an asynchronous failover the new primary may hand out again the ids of commits
 * it never received, so an id alone does not name one mail.
 */
class Enqueuer {
  readonly committed: string[] = [];
  private batches = 0;
  /** Batches whose commit failed or whose answer was lost (the primary died): not counted as queued. */
  failedBatches = 0;
  private pool: pg.Pool;
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(url: string) {
    this.pool = poolFor(url);
    this.done = this.run();
  }

  /** From now on queue through `url` (the promoted standby). */
  switchTo(url: string): void {
    const old = this.pool;
    this.pool = poolFor(url);
    void old.end().catch(() => {});
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
    await this.pool.end().catch(() => {});
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const { rows } = await this.pool.query<{ id: string; subject: string }>(
          `SELECT dbmail.sp_send_dbmail(profile_name => 'p', recipients => 'r' || i || '@example.org',
                    subject => $1 || ' ' || i, body => 'b')::text AS id, $1 || ' ' || i AS subject
             FROM generate_series(1, $2::integer) i`,
          [`failover ${++this.batches}`, BATCH],
        );
        this.committed.push(...rows.map((r) => `${r.id}|${r.subject}`));
        await sleep(50);
      } catch {
        this.failedBatches++;
        await sleep(100);
      }
    }
  }
}

async function poolQuery(url: string, sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

function poolFor(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 2, connectionTimeoutMillis: 2000 });
  pool.on("error", () => {});
  return pool;
}

/** What the SMTP server received, as `id|subject` keys, and how often each. */
function received(server: TestSmtpServer): Map<string, number> {
  const times = new Map<string, number>();
  for (const mail of server.received) {
    const key = `${mailitemIdOf(mail)}|${mail.parsed.subject ?? ""}`;
    times.set(key, (times.get(key) ?? 0) + 1);
  }
  return times;
}

/**
 * One failover: queue, kill the primary, promote the standby, queue on. `lagMs`: the primary's WAL
 * sender is paused (SIGSTOP) that long before the kill, so that the last commits of an asynchronous
 * primary never reach the standby (a replication lag of that much at the moment of the crash).
 */
async function failover({ synchronous, lagMs = 0 }: { synchronous: boolean; lagMs?: number }) {
  pair = await startReplicatedPair(synchronous ? { synchronous: "on" } : {});
  const { primary, standby } = pair;
  smtp = await TestSmtpServer.start();
  const admin = poolFor(pair.adminUrl(primary));
  await addAccount(admin as never, "acct", smtp);
  await profileWith(admin as Queryable, "p", ["acct"]);
  await admin.end();

  const sender = spawnSender(pair.mailerUrl([primary, standby]), shortId("failover"), [
    "--lease-seconds",
    String(LEASE_SECONDS),
    // A production sender's defaults (the suite's senders poll and beat faster): how soon it finds the
    // new primary depends on them.
    "--poll-interval-ms",
    "5000",
    "--heartbeat-interval-ms",
    "5000",
  ]);
  const enqueuer = new Enqueuer(pair.adminUrl(primary));
  await sleep(QUEUE_SECONDS * 1000 - lagMs);
  // The primary's WAL sender, paused: what it has not written to the socket yet the standby never gets.
  const { rows: senders } = await poolQuery(pair.adminUrl(primary), "SELECT pid FROM pg_stat_replication");
  const walSender = senders[0]?.pid as number | undefined;
  if (lagMs > 0 && walSender) process.kill(walSender, "SIGSTOP");
  await sleep(lagMs);
  const beforeKill = enqueuer.committed.length;
  const deliveredBeforeKill = smtp.received.length;

  if (lagMs > 0 && walSender) process.kill(walSender, "SIGKILL");
  await primary.stop("immediate");
  const killedAt = Date.now();
  await sleep(PROMOTE_AFTER_MS);
  await standby.promote();
  const promotedAt = Date.now();
  enqueuer.switchTo(pair.adminUrl(standby));
  const standbyAdmin = poolFor(pair.adminUrl(standby));
  // The first outcome recorded on the new primary: the sender has found it.
  const firstSent = await until(
    async () => {
      const { rows } = await standbyAdmin.query<{ at: Date | null }>(
        "SELECT min(sent_date) AS at FROM dbmail.mailitems WHERE sent_date >= $1",
        [new Date(killedAt).toISOString()],
      );
      return rows[0]?.at ?? undefined;
    },
    60_000,
    () => "no outcome recorded on the promoted standby",
    200,
  );
  await sleep(QUEUE_SECONDS * 1000);
  await enqueuer.stop();

  // What the new primary knows of: with asynchronous replication the last commits may be missing.
  const { rows: known } = await standbyAdmin.query<{ key: string }>(
    "SELECT mailitem_id || '|' || subject AS key FROM dbmail.mailitems",
  );
  const present = new Set(known.map((r) => r.key));
  const committed = enqueuer.committed;
  const unreplicated = committed.filter((key) => !present.has(key));
  const survivors = committed.filter((key) => present.has(key));
  const idsReused = unreplicated.filter((key) =>
    [...present].some((p) => p.startsWith(`${key.split("|")[0]}|`)),
  );
  await until(
    () => survivors.every((key) => received(smtp as TestSmtpServer).has(key)),
    LONG ? 300_000 : 60_000,
    () =>
      `${survivors.filter((key) => !received(smtp as TestSmtpServer).has(key)).length} of ${survivors.length} not delivered`,
    200,
  );
  // Items whose claim reached the standby but whose 'sent' outcome did not come back after their lease
  // (asynchronous replication): wait for those too.
  const unsettledCount = async () =>
    (
      await standbyAdmin.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM dbmail.mailitems WHERE sent_status <> 'sent'",
      )
    ).rows[0]?.n ?? 0;
  const unsettledAtDrain = await unsettledCount();
  const settledAt = Date.now();
  await until(
    async () => (await unsettledCount()) === 0,
    LONG ? 300_000 : 40_000,
    async () => `${await unsettledCount()} items not 'sent' on the new primary`,
    200,
  );
  const settleSeconds = round((Date.now() - settledAt) / 1000);
  await standbyAdmin.end();
  const times = received(smtp);
  const duplicates = committed.filter((key) => (times.get(key) ?? 0) > 1);
  return {
    committed: committed.length,
    beforeKill,
    deliveredBeforeKill,
    failedBatches: enqueuer.failedBatches,
    unreplicated: unreplicated.length,
    // Lost with the old primary but delivered all the same: sent from it before the crash.
    unreplicatedDelivered: unreplicated.filter((key) => times.has(key)).length,
    idsReused: idsReused.length,
    lost: committed.filter((key) => !times.has(key)).length,
    duplicates: duplicates.reduce((sum, key) => sum + (times.get(key) ?? 1) - 1, 0),
    unsettledAtDrain,
    settleSeconds,
    promoteSeconds: round((promotedAt - killedAt) / 1000),
    findSeconds: round((firstSent.getTime() - promotedAt) / 1000),
    outageSeconds: round((firstSent.getTime() - killedAt) / 1000),
    senderAlive: sender.alive(),
    warnings: logLines(sender).filter((l) => Number(l.level) >= 40).length,
  };
}

const round = (s: number) => Math.max(0, Math.round(s * 10) / 10);

it("9a. primary killed, synchronous standby promoted: every committed mail delivered", {
  timeout: LONG ? 900_000 : 90_000,
}, async () => {
  const r = await failover({ synchronous: true });
  expect(r.senderAlive).toBe(true);
  // Synchronous replication: whatever the application was told is committed, the new primary has.
  expect(r.unreplicated).toBe(0);
  expect(r.lost).toBe(0);
  expect(r.findSeconds).toBeLessThan(15);
  // The crash window: an outcome is kept for up to the lease (10 s here) while the database is away; an
  // outage shorter than that resends nothing.
  const outlastedLease = r.outageSeconds >= LEASE_SECONDS - 1;
  if (!outlastedLease) expect(r.duplicates).toBe(0);
  recordResult({
    scenario: "9a. PostgreSQL failover, synchronous standby promoted",
    mails: r.committed,
    lost: r.lost,
    duplicates: r.duplicates,
    maxRecoverySeconds: r.outageSeconds,
    notes:
      "1 sender, multi-host URL (primary, standby) target_session_attrs=read-write, lease 10 s, poll and " +
      "heartbeat every 5 s (the defaults); " +
      `${r.beforeKill} queued before the kill (${r.deliveredBeforeKill} delivered by then), primary killed ` +
      `(immediate shutdown), standby promoted ${r.promoteSeconds} s later (failure detection), first outcome recorded on ` +
      `it ${r.findSeconds} s after the promotion; ${r.failedBatches} batches of ${BATCH} refused during ` +
      "the outage (never committed); every committed mail delivered; " +
      (outlastedLease
        ? `the outage outlasted the ${LEASE_SECONDS} s lease, for which the sender keeps outcomes it cannot ` +
          "record: the duplicates are mails sent just before the kill whose outcome was given up (the documented window); "
        : "") +
      `${r.warnings} warnings logged; recovery = kill to first outcome on the new primary`,
  });
});

it("9b. primary killed 1 s behind, asynchronous standby promoted: what the unreplicated commits did", {
  timeout: LONG ? 900_000 : 90_000,
}, async () => {
  const r = await failover({ synchronous: false, lagMs: 1000 });
  expect(r.senderAlive).toBe(true);
  // Every mail the new primary knows of is delivered; a commit it never received only if it was sent
  // from the old primary before the crash.
  expect(r.lost).toBe(r.unreplicated - r.unreplicatedDelivered);
  recordResult({
    scenario: "9b. PostgreSQL failover, asynchronous standby 1 s behind promoted",
    mails: r.committed,
    lost: r.lost,
    duplicates: r.duplicates,
    maxRecoverySeconds: r.outageSeconds,
    notes:
      "as 9a without synchronous replication, the primary's WAL sender paused for the last 1 s " +
      `before the kill: ${r.unreplicated} commits acknowledged by the old primary never reached the ` +
      `standby (sp_send_dbmail had returned their ids): ${r.unreplicatedDelivered} of them were sent ` +
      `from the old primary before the crash, the other ${r.lost} are the lost mails; ${r.idsReused} of ` +
      "their mailitem_ids were handed out again by the new primary (with Message-IDs of their own: the " +
      "queueing time is part of it); " +
      `${r.duplicates} extra copies (same Message-ID): mails whose claim or 'sent' outcome was among the ` +
      "lost commits, so the new primary had them still to send and they went out again (claimed at once " +
      `when the claim was lost, after the lease when only the outcome was: ${r.unsettledAtDrain} items ` +
      `still 'sending' or 'unsent' when every other mail had arrived, all 'sent' ${r.settleSeconds} s ` +
      `later); first outcome on the new primary ${r.findSeconds} s after the promotion`,
  });
});
