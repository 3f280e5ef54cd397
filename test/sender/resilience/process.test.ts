// The process lifecycle of `dbmail start` (SPEC section 7), spawned as a real process: --exit-when-idle,
// SIGTERM mid-drain and with messages that cannot finish within --shutdown-timeout-ms, a second signal,
// and SIGKILL, whose items another sender reclaims only once their lease has expired.
import { describe, expect, it } from "vitest";
import { sleep, withSettings } from "../../support/mail.js";
import { eventually } from "../../support/sender.js";
import { shortId } from "../support.js";
import { exitWithin, serving, useResilience } from "./support.js";

const env = useResilience();
const { query, sender, spawnSender, queue, arrivals, statusOf, statusCounts, expectDeliveredOnce } = env;

/** Waits until `senderId` holds every one of `ids` under lease ('sending'). */
const holding = (ids: string[], senderId: string, timeoutMs?: number) =>
  eventually(async () => {
    const { rows } = await query(
      "SELECT 1 FROM dbmail.mailitems WHERE mailitem_id = ANY($1::bigint[]) AND sent_status = 'sending' AND lease_owner = $2",
      [ids, senderId],
    );
    return rows.length === ids.length;
  }, timeoutMs);

describe("the dbmail start process", () => {
  it("exits 0 on its own when idle for DatabaseMailExeMinimumLifeTime (--exit-when-idle)", async () => {
    const id = shortId("idle");
    await withSettings(env.db, { DatabaseMailExeMinimumLifeTime: "1" }, async () => {
      const started = Date.now();
      const proc = spawnSender(["--exit-when-idle", "--sender-id", id]);
      const { code, signal } = await exitWithin(proc, 10_000);
      expect({ code, signal }).toEqual({ code: 0, signal: null });
      expect(Date.now() - started).toBeLessThan(8000);
      expect(proc.output()).toContain("idle for DatabaseMailExeMinimumLifeTime");
      expect(await env.stoppedAt(id)).not.toBeNull();
    });
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
    env.smtp.behaviour = { stallGreeting: true };
    const proc = spawnSender(["--sender-id", id, "--shutdown-timeout-ms", "500"]);
    const ids = await queue(5, "release");
    await holding(ids, id, 10_000);
    const signalled = Date.now();
    proc.child.kill("SIGTERM");
    const { code, signal } = await exitWithin(proc, 5000);
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalled).toBeLessThan(3000);
    // Released: claimable at once, not left to a lease that only expires in 5 minutes.
    const { rows } = await query<{ sent_status: string; lease_owner: string | null; due: boolean }>(
      `SELECT sent_status, lease_owner, next_attempt_at <= now() AS due FROM dbmail.mailitems
        WHERE mailitem_id = ANY($1::bigint[])`,
      [ids],
    );
    expect(rows).toHaveLength(ids.length);
    for (const row of rows) expect(row).toEqual({ sent_status: "unsent", lease_owner: null, due: true });
    expect(arrivals(ids).arrived).toBe(0);

    env.smtp.behaviour = {};
    await sender();
    await expectDeliveredOnce(ids, 10_000);
  });

  it("a second signal exits at once with code 1", async () => {
    const id = shortId("int");
    // A server that never greets keeps the message in flight, so the first SIGINT has to wait for it.
    env.smtp.behaviour = { stallGreeting: true };
    const proc = spawnSender(["--sender-id", id]);
    await serving(proc);
    const ids = await queue(1, "sigint");
    await holding(ids, id);
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
    await query("SELECT dbmail.sysmail_delete_mailitems_sp(sent_status => 'sending')");
  });

  it("reclaims the items of a SIGKILLed sender after its lease expires", { timeout: 30_000 }, async () => {
    const dead = shortId("dead");
    env.smtp.behaviour = { stallGreeting: true };
    const proc = spawnSender(["--sender-id", dead, "--lease-seconds", "10"]);
    const ids = await queue(5, "sigkill");
    await holding(ids, dead, 10_000);
    const { rows: leases } = await query<{ expires: Date }>(
      "SELECT max(lease_expires_at) AS expires FROM dbmail.mailitems WHERE mailitem_id = ANY($1::bigint[])",
      [ids],
    );
    proc.child.kill("SIGKILL");
    expect((await exitWithin(proc, 5000)).signal).toBe("SIGKILL");
    env.smtp.behaviour = {};

    const heir = shortId("heir");
    await sender({ senderId: heir });
    // The lease holds until it expires: nobody takes the items from a sender that may still be sending.
    const expires = new Date(leases[0]?.expires ?? 0).getTime();
    expect(expires).toBeGreaterThan(Date.now());
    await sleep(Math.max(0, expires - Date.now() - 1500));
    expect(arrivals(ids).arrived).toBe(0);
    expect(await statusCounts(ids)).toEqual({ sending: ids.length });

    await expectDeliveredOnce(ids, 15_000);
    const { rows: sentBy } = await query<{ sent_by: string }>(
      "SELECT DISTINCT sent_by FROM dbmail.sysmail_allitems WHERE mailitem_id = ANY($1::bigint[])",
      [ids],
    );
    expect(sentBy.map((r) => r.sent_by)).toEqual([heir]);
    const { rows: events } = await query<{ mailitem_id: string; description: string; sender_id: string }>(
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
