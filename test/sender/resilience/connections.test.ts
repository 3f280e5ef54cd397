// Several senders sharing one queue, lost notifications and dropped connections (SPEC section 7): every
// mail delivered exactly once when two senders drain together, when no sender ran while it was queued,
// when the LISTEN connection or every connection of a sender is terminated, and when the connection
// recording a batch of outcomes is killed mid-write.
import { describe, expect, it } from "vitest";
import { sleep } from "../../support/mail.js";
import { eventually } from "../../support/sender.js";
import { shortId } from "../support.js";
import { LISTENING, useResilience } from "./support.js";

const env = useResilience();
const { query, sender, queue, arrivals, statusCounts, expectDeliveredOnce, backendsOf } = env;

describe("several senders", () => {
  it("two senders drain 2,000 mails: each exactly once, the work shared", { timeout: 60_000 }, async () => {
    const a = shortId("a");
    const b = shortId("b");
    await sender({ senderId: a });
    await sender({ senderId: b });
    const ids = await queue(2000);
    expect(ids).toHaveLength(2000);
    await expectDeliveredOnce(ids, 45_000);
    const { rows } = await query<{ sent_by: string; n: string }>(
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
    const { rows: killed } = await query<{ ok: boolean }>("SELECT pg_terminate_backend($1) AS ok", [
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
      const { rows } = await query<{ pid: number }>(
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
    await query("UPDATE dbmail.profiles SET last_success_account_id = NULL WHERE name = 'p'");
    const holder = await env.db.connect();
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
      const { rows } = await query<{ ok: boolean }>("SELECT pg_terminate_backend($1) AS ok", [
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
