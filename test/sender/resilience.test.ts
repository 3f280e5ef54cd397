// The sender under stress and failure (SPEC section 7): several senders sharing one queue, lost
// notifications and dropped connections, sysmail_stop_sp/sysmail_start_sp, heartbeats and `stalled`, and
// the process lifecycle of `dbmail start` (SIGTERM, a second signal, --exit-when-idle, SIGKILL and lease
// expiry). Every message is identified by its X-DBMail-Mailitem-Id header, so missing and duplicated
// deliveries are counted exactly.
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Sender, SenderOptions } from "@pg-dbmail/sender";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole } from "../support/database.js";
import { addAccount, eventually, startSender } from "../support/sender.js";
import { TestSmtpServer } from "../support/smtp.js";

const cli = fileURLToPath(new URL("../../packages/sender/dist/cli.js", import.meta.url));

let db: TestDatabase;
let role: TestRole;
let smtp: TestSmtpServer;
const running: Sender[] = [];
const children: ChildProcess[] = [];

interface QueueRow {
  length: string;
  state: string;
  live_senders: number;
  senders: { sender_id: string; last_heartbeat: string }[];
  stalled: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const shortId = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

/** An in-process sender, stopped after the test. */
async function sender(overrides: Partial<SenderOptions> = {}): Promise<Sender> {
  const started = await startSender(role, overrides);
  running.push(started);
  return started;
}

/** Queues `count` mails through profile 'p' in one statement; returns their mailitem_ids. */
async function queue(count: number, tag = "m"): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT dbmail.sp_send_dbmail(profile_name => 'p', recipients => 'r' || i || '@example.org',
              subject => $1 || i, body => 'b') AS id
       FROM generate_series(1, $2::integer) i`,
    [tag, count],
  );
  return rows.map((r) => String(r.id));
}

/** How often each of `ids` arrived at the SMTP server, with the missing and duplicated ones. */
function arrivals(ids: string[]) {
  const wanted = new Set(ids);
  const times = new Map<string, number>();
  for (const mail of smtp.received) {
    const id = String(mail.parsed.headers.get("x-dbmail-mailitem-id") ?? "");
    if (wanted.has(id)) times.set(id, (times.get(id) ?? 0) + 1);
  }
  const missing = ids.filter((id) => !times.has(id));
  const duplicates = [...times].filter(([, n]) => n > 1).map(([id]) => id);
  return { times, arrived: times.size, missing, duplicates };
}

/** sent_status of each item. */
async function statusOf(ids: string[]): Promise<Map<string, string>> {
  const { rows } = await db.query<{ mailitem_id: string; sent_status: string }>(
    "SELECT mailitem_id, sent_status FROM dbmail.sysmail_allitems WHERE mailitem_id = ANY($1::bigint[])",
    [ids],
  );
  return new Map(rows.map((r) => [String(r.mailitem_id), r.sent_status]));
}

/** Counts per sent_status. */
async function statusCounts(ids: string[]): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const status of (await statusOf(ids)).values()) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}

/** Waits until every item arrived and is recorded 'sent'; then checks none is missing or duplicated. */
async function expectDeliveredOnce(ids: string[], timeoutMs = 20_000): Promise<void> {
  await eventually(async () => arrivals(ids).arrived === ids.length, timeoutMs).catch((error: Error) => {
    const { missing } = arrivals(ids);
    throw new Error(
      `${error.message}; ${missing.length} of ${ids.length} missing (e.g. ${missing.slice(0, 5)})`,
    );
  });
  await eventually(async () => (await statusCounts(ids)).sent === ids.length, 5000).catch(
    async (error: Error) => {
      throw new Error(`${error.message}; statuses ${JSON.stringify(await statusCounts(ids))}`);
    },
  );
  const { missing, duplicates } = arrivals(ids);
  expect({ missing: missing.length, duplicates: duplicates.length }).toEqual({ missing: 0, duplicates: 0 });
}

async function helpQueue(): Promise<QueueRow> {
  const { rows } = await db.query<QueueRow>("SELECT * FROM dbmail.sysmail_help_queue_sp()");
  return rows[0] as QueueRow;
}

/**
 * Where a backend is a sender's LISTEN connection: its last statement was the LISTEN or, after the
 * listener's periodic check, the check.
 */
const LISTENING = "(query LIKE 'LISTEN%' OR query LIKE 'SELECT pg_listening_channels()%')";

/** The backends a sender holds, by its application_name ('dbmail sender <id>'). */
async function backendsOf(senderId: string, where = "true") {
  const { rows } = await db.query<{ pid: number; query: string; state: string }>(
    `SELECT pid, query, state FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = $1 AND ${where}`,
    [`dbmail sender ${senderId}`],
  );
  return rows;
}

interface Spawned {
  child: ChildProcess;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output: () => string;
}

/** Spawns `dbmail start` against the test database as the sender role. */
function spawnSender(args: string[]): Spawned {
  const child = spawn(
    process.execPath,
    [
      cli,
      "start",
      "--database-url",
      role.url,
      "--poll-interval-ms",
      "200",
      "--heartbeat-interval-ms",
      "500",
      ...args,
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, DATABASE_URL: "" } },
  );
  children.push(child);
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, exit, output: () => output };
}

/** The process's exit, or an error after timeoutMs. */
async function exitWithin(spawned: Spawned, timeoutMs: number) {
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

async function serving(spawned: Spawned): Promise<void> {
  await eventually(async () => {
    if (spawned.child.exitCode !== null) throw new Error(`sender exited early:\n${spawned.output()}`);
    return spawned.output().includes('"msg":"serving"');
  }, 10_000);
}

beforeAll(async () => {
  db = await TestDatabase.create();
  role = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
  smtp = await TestSmtpServer.start();
  await addAccount(db, "acct", smtp);
  await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'p')");
  await db.query(
    "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'p', account_name => 'acct', sequence_number => 1)",
  );
});

afterEach(async () => {
  smtp.behaviour = {};
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  await Promise.all(running.splice(0).map((s) => s.stop(2000)));
});

afterAll(async () => {
  await smtp?.stop();
  await db?.drop();
});

describe("several senders", () => {
  it("two senders drain 2,000 mails: each exactly once, the work shared", { timeout: 60_000 }, async () => {
    const a = shortId("a");
    const b = shortId("b");
    await sender({ senderId: a });
    await sender({ senderId: b });
    const ids = await queue(2000);
    expect(ids).toHaveLength(2000);
    await expectDeliveredOnce(ids, 45_000);
    const { rows } = await db.query<{ sent_by: string; n: string }>(
      `SELECT sent_by, count(*) AS n FROM dbmail.sysmail_allitems
        WHERE mailitem_id = ANY($1::bigint[]) GROUP BY sent_by`,
      [ids],
    );
    const by = Object.fromEntries(rows.map((r) => [r.sent_by, Number(r.n)]));
    expect(Object.keys(by).sort()).toEqual([a, b].sort());
    expect((by[a] ?? 0) + (by[b] ?? 0)).toBe(2000);
  });
});

describe("waking up", () => {
  it("delivers mail queued while no sender ran as soon as one starts", async () => {
    const ids = await queue(20, "drain");
    await sleep(300);
    expect(arrivals(ids).arrived).toBe(0);
    expect(await statusCounts(ids)).toEqual({ unsent: 20 });
    await sender();
    await expectDeliveredOnce(ids, 10_000);
  });

  it("polls while its LISTEN connection is gone, and hears notifications again after reconnecting", async () => {
    const id = shortId("ln");
    // A slow poll, so a delivery much faster than it can only have been woken by a notification.
    await sender({ senderId: id, pollIntervalMs: 3000 });
    const listening = await eventually(async () => {
      const rows = await backendsOf(id, `${LISTENING} AND state = 'idle'`);
      return rows.length === 1 ? rows[0] : undefined;
    });
    const { rows: killed } = await db.query<{ ok: boolean }>("SELECT pg_terminate_backend($1) AS ok", [
      listening.pid,
    ]);
    expect(killed[0]?.ok).toBe(true);

    // No notification can be heard right now: the poll (or the catch-up after reconnecting) finds it.
    const lost = await queue(1, "nolisten");
    await expectDeliveredOnce(lost, 6000);

    // The LISTEN connection comes back on a new backend...
    await eventually(async () => {
      const rows = await backendsOf(id, `${LISTENING} AND state = 'idle'`);
      return rows.length === 1 && rows[0]?.pid !== listening.pid;
    }, 10_000);
    await sleep(300);
    // ...and notifications wake the sender again: each mail is queued just after the sender went back to
    // sleep for 3 s, so only a notification gets it out in well under that.
    for (let round = 0; round < 3; round++) {
      const queuedAt = Date.now();
      const ids = await queue(1, `renotify${round}`);
      await expectDeliveredOnce(ids, 6000);
      const took = Date.now() - queuedAt;
      expect(took, `round ${round}: delivered after ${took} ms`).toBeLessThan(1500);
      await sleep(300);
    }
  }, 30_000);

  it("recovers when every connection of the sender is terminated while mail flows", {
    timeout: 60_000,
  }, async () => {
    const id = shortId("tk");
    // A short lease bounds the wait should a claim's reply be lost with its connection.
    await sender({ senderId: id, leaseSeconds: 10 });
    const ids = await queue(1000, "terminate");
    let terminations = 0;
    for (const after of [100, 400]) {
      await eventually(async () => arrivals(ids).arrived >= after, 20_000);
      const { rows } = await db.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity
          WHERE datname = current_database() AND application_name LIKE 'dbmail sender%'
            AND pg_terminate_backend(pid)`,
      );
      terminations += rows.length;
      // Each round cuts at least the LISTEN connection and one pool connection.
      expect(rows.length).toBeGreaterThanOrEqual(2);
    }
    expect(arrivals(ids).arrived).toBeLessThan(ids.length);
    await expectDeliveredOnce(ids, 40_000);
    expect(terminations).toBeGreaterThanOrEqual(4);
    // It is still listening afterwards.
    await eventually(async () => (await backendsOf(id, LISTENING)).length === 1, 10_000);
  });
});

describe("recording outcomes", () => {
  it("records every outcome of a batch whose connection is killed mid-write: nothing lost, nothing resent", {
    timeout: 60_000,
  }, async () => {
    const id = shortId("ob");
    const ids = await queue(60, "outcomes");
    // Hold the profile's row: the first batch of outcomes makes the account sticky for it, so its
    // record_outcomes waits on this lock, in the middle of its transaction, while the SMTP server has
    // accepted the messages and more outcomes queue up behind it.
    await db.query("UPDATE dbmail.profiles SET last_success_account_id = NULL WHERE name = 'p'");
    const holder = await db.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT 1 FROM dbmail.profiles WHERE name = 'p' FOR UPDATE");
      await sender({ senderId: id });
      const blocked = await eventually(async () => {
        const rows = await backendsOf(id, "query LIKE '%record_outcomes%' AND wait_event_type = 'Lock'");
        return rows.length === 1 ? rows : undefined;
      }, 15_000);
      await eventually(async () => arrivals(ids).arrived === ids.length, 15_000);
      // Delivered, and none recorded yet.
      expect((await statusCounts(ids)).sending).toBe(ids.length);
      const { rows } = await db.query<{ ok: boolean }>("SELECT pg_terminate_backend($1) AS ok", [
        blocked[0]?.pid,
      ]);
      expect(rows[0]?.ok).toBe(true);
    } finally {
      await holder.query("ROLLBACK");
      await holder.end();
    }
    // The killed batch is written again, with the outcomes that queued behind it.
    await expectDeliveredOnce(ids, 20_000);
  });
});

describe("sysmail_stop_sp and sysmail_start_sp", () => {
  it("stop pauses claiming within a second (in-flight finish); start resumes", {
    timeout: 40_000,
  }, async () => {
    await sender();
    const ids = await queue(800, "stop");
    try {
      await eventually(async () => arrivals(ids).arrived >= 100, 15_000);
      await db.query("SELECT dbmail.sysmail_stop_sp()");
      const { rows } = await db.query<{ status: string }>("SELECT dbmail.sysmail_help_status_sp() AS status");
      expect(rows[0]?.status).toBe("STOPPED");
      const later = await queue(5, "whilestopped");
      await sleep(1000);
      // Within a second: nothing in flight any more, nothing new claimed.
      const atPause = await statusCounts(ids);
      expect(atPause.sending ?? 0).toBe(0);
      const arrivedAtPause = arrivals(ids).arrived;
      expect(arrivedAtPause).toBeLessThan(ids.length);
      await sleep(1000);
      expect(arrivals(ids).arrived).toBe(arrivedAtPause);
      expect(await statusCounts(ids)).toEqual(atPause);
      expect(arrivals(later).arrived).toBe(0);
      expect(await statusCounts(later)).toEqual({ unsent: 5 });
    } finally {
      await db.query("SELECT dbmail.sysmail_start_sp()");
    }
    const { rows } = await db.query<{ status: string }>("SELECT dbmail.sysmail_help_status_sp() AS status");
    expect(rows[0]?.status).toBe("STARTED");
    await expectDeliveredOnce(ids, 30_000);
  });
});

describe("notifications are hints", () => {
  it("a NOTIFY dbmail_control 'stopped' from a role without dbmail rights does not pause delivery", {
    timeout: 30_000,
  }, async () => {
    await sender();
    const nobody = await db.createRole("nobody_notify");
    const client = await db.connect(nobody);
    // Anyone who can connect can notify any channel, with any payload.
    await client.query("SELECT pg_notify('dbmail_control', 'stopped')");
    await client.query("NOTIFY dbmail_control, 'stopped'");
    await sleep(300);
    const ids = await queue(20, "spoofed");
    await expectDeliveredOnce(ids, 10_000);
    const { rows } = await db.query<{ status: string }>("SELECT dbmail.sysmail_help_status_sp() AS status");
    expect(rows[0]?.status).toBe("STARTED");
  });
});

describe("heartbeat", () => {
  it("shows the live sender while it runs; none, and stalled, after it stopped", async () => {
    const id = shortId("hb");
    const s = await sender({ senderId: id });
    const first = await helpQueue();
    expect(first.live_senders).toBe(1);
    expect(first.senders.map((x) => x.sender_id)).toEqual([id]);
    expect(first.state).toBe("RECEIVES_OCCURRING");
    expect(first.stalled).toBe(false);
    // It keeps beating (every 500 ms here).
    await eventually(async () => {
      const now = await helpQueue();
      return new Date(now.senders[0]?.last_heartbeat ?? 0) > new Date(first.senders[0]?.last_heartbeat ?? 0);
    }, 3000);

    await s.stop();
    const after = await helpQueue();
    expect(after.live_senders).toBe(0);
    expect(after.senders).toEqual([]);
    expect(after.state).toBe("INACTIVE");
    expect(after.stalled).toBe(false);
    const { rows } = await db.query<{ stopped_at: Date | null }>(
      "SELECT stopped_at FROM dbmail.senders WHERE sender_id = $1",
      [id],
    );
    expect(rows[0]?.stopped_at).not.toBeNull();

    const ids = await queue(1, "stalled");
    const stalled = await helpQueue();
    expect(stalled.stalled).toBe(true);
    expect(Number(stalled.length)).toBeGreaterThanOrEqual(1);
    expect(arrivals(ids).arrived).toBe(0);
    await db.query("SELECT dbmail.sysmail_delete_mailitems_sp(sent_status => 'unsent')");
  });
});

describe("the dbmail start process", () => {
  it("exits 0 on its own when idle for DatabaseMailExeMinimumLifeTime (--exit-when-idle)", async () => {
    const id = shortId("idle");
    await db.query(
      "SELECT dbmail.sysmail_configure_sp(parameter_name => 'DatabaseMailExeMinimumLifeTime', parameter_value => '1')",
    );
    try {
      const started = Date.now();
      const proc = spawnSender(["--exit-when-idle", "--sender-id", id]);
      const { code, signal } = await exitWithin(proc, 10_000);
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      expect(Date.now() - started).toBeLessThan(8000);
      expect(proc.output()).toContain("idle for DatabaseMailExeMinimumLifeTime");
      const { rows } = await db.query<{ stopped_at: Date | null }>(
        "SELECT stopped_at FROM dbmail.senders WHERE sender_id = $1",
        [id],
      );
      expect(rows[0]?.stopped_at).not.toBeNull();
    } finally {
      await db.query(
        "SELECT dbmail.sysmail_configure_sp(parameter_name => 'DatabaseMailExeMinimumLifeTime', parameter_value => '600')",
      );
    }
  });

  it("SIGTERM mid-drain: exits 0, nothing left 'sending', a second sender delivers the rest", {
    timeout: 60_000,
  }, async () => {
    const ids = await queue(600, "sigterm");
    const proc = spawnSender(["--sender-id", shortId("term")]);
    await eventually(async () => arrivals(ids).arrived >= 50, 15_000);
    proc.child.kill("SIGTERM");
    const { code, signal } = await exitWithin(proc, 15_000);
    expect({ code, signal }).toEqual({ code: 0, signal: null });

    const status = await statusOf(ids);
    const { times } = arrivals(ids);
    const counts = await statusCounts(ids);
    expect(counts.sending ?? 0).toBe(0);
    expect(counts.sent ?? 0).toBeLessThan(ids.length);
    for (const id of ids) {
      const s = status.get(id);
      if (s === "sent") expect(times.get(id), `item ${id}`).toBe(1);
      else {
        expect(["unsent", "retrying"], `item ${id}`).toContain(s);
        expect(times.get(id) ?? 0, `item ${id} (${s})`).toBe(0);
      }
    }

    await sender();
    await expectDeliveredOnce(ids, 30_000);
  });

  it("SIGTERM releases what cannot finish within --shutdown-timeout-ms, and exits 0", async () => {
    const id = shortId("rel");
    // A server that never greets: the claimed messages cannot finish.
    smtp.behaviour = { stallGreeting: true };
    const proc = spawnSender(["--sender-id", id, "--shutdown-timeout-ms", "500"]);
    const ids = await queue(5, "release");
    await eventually(async () => {
      const { rows } = await db.query(
        "SELECT 1 FROM dbmail.mailitems WHERE mailitem_id = ANY($1::bigint[]) AND sent_status = 'sending' AND lease_owner = $2",
        [ids, id],
      );
      return rows.length === ids.length;
    }, 10_000);
    const signalled = Date.now();
    proc.child.kill("SIGTERM");
    const { code, signal } = await exitWithin(proc, 5000);
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalled).toBeLessThan(3000);
    // Released: claimable at once, not left to a lease that only expires in 5 minutes.
    const { rows } = await db.query<{ sent_status: string; lease_owner: string | null; due: boolean }>(
      `SELECT sent_status, lease_owner, next_attempt_at <= now() AS due FROM dbmail.mailitems
        WHERE mailitem_id = ANY($1::bigint[])`,
      [ids],
    );
    expect(rows).toHaveLength(ids.length);
    for (const row of rows) expect(row).toEqual({ sent_status: "unsent", lease_owner: null, due: true });
    expect(arrivals(ids).arrived).toBe(0);

    smtp.behaviour = {};
    await sender();
    await expectDeliveredOnce(ids, 10_000);
  });

  it("a second signal exits at once with code 1", async () => {
    const id = shortId("int");
    // A server that never greets keeps the message in flight, so the first SIGINT has to wait for it.
    smtp.behaviour = { stallGreeting: true };
    const proc = spawnSender(["--sender-id", id]);
    await serving(proc);
    const ids = await queue(1, "sigint");
    await eventually(async () => {
      const { rows } = await db.query(
        "SELECT 1 FROM dbmail.mailitems WHERE mailitem_id = $1 AND sent_status = 'sending' AND lease_owner = $2",
        [ids[0], id],
      );
      return rows.length === 1;
    });
    await sleep(200);
    proc.child.kill("SIGINT");
    await sleep(500);
    expect(proc.child.exitCode, "the first signal waits for the message in flight").toBeNull();
    const signalled = Date.now();
    proc.child.kill("SIGINT");
    const { code } = await exitWithin(proc, 3000);
    expect(code).toBe(1);
    expect(Date.now() - signalled).toBeLessThan(2000);
    expect(proc.output()).toContain("second signal");
    await db.query("SELECT dbmail.sysmail_delete_mailitems_sp(sent_status => 'sending')");
  });

  it("reclaims the items of a SIGKILLed sender after its lease expires", { timeout: 30_000 }, async () => {
    const dead = shortId("dead");
    smtp.behaviour = { stallGreeting: true };
    const proc = spawnSender(["--sender-id", dead, "--lease-seconds", "10"]);
    const ids = await queue(5, "sigkill");
    await eventually(async () => {
      const { rows } = await db.query(
        "SELECT 1 FROM dbmail.mailitems WHERE mailitem_id = ANY($1::bigint[]) AND sent_status = 'sending' AND lease_owner = $2",
        [ids, dead],
      );
      return rows.length === ids.length;
    }, 10_000);
    const { rows: leases } = await db.query<{ expires: Date }>(
      "SELECT max(lease_expires_at) AS expires FROM dbmail.mailitems WHERE mailitem_id = ANY($1::bigint[])",
      [ids],
    );
    proc.child.kill("SIGKILL");
    expect((await exitWithin(proc, 5000)).signal).toBe("SIGKILL");
    smtp.behaviour = {};

    const heir = shortId("heir");
    await sender({ senderId: heir });
    // The lease holds until it expires: nobody takes the items from a sender that may still be sending.
    const expires = new Date(leases[0]?.expires ?? 0).getTime();
    expect(expires).toBeGreaterThan(Date.now());
    await sleep(Math.max(0, expires - Date.now() - 1500));
    expect(arrivals(ids).arrived).toBe(0);
    expect(await statusCounts(ids)).toEqual({ sending: ids.length });

    await expectDeliveredOnce(ids, 15_000);
    const { rows: sentBy } = await db.query<{ sent_by: string }>(
      "SELECT DISTINCT sent_by FROM dbmail.sysmail_allitems WHERE mailitem_id = ANY($1::bigint[])",
      [ids],
    );
    expect(sentBy.map((r) => r.sent_by)).toEqual([heir]);
    const { rows: events } = await db.query<{ mailitem_id: string; description: string; sender_id: string }>(
      `SELECT mailitem_id, description, sender_id FROM dbmail.sysmail_event_log
        WHERE event_type = 'warning' AND mailitem_id = ANY($1::bigint[]) ORDER BY mailitem_id`,
      [ids],
    );
    expect(events.map((e) => String(e.mailitem_id)).sort()).toEqual([...ids].sort());
    for (const event of events) {
      expect(event.description).toMatch(/unknown/);
      expect(event.sender_id).toBe(heir);
    }
  });
});
