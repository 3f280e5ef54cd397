// Pausing and watching the sender (SPEC section 7): sysmail_stop_sp stops claiming within a second while
// what is in flight finishes and sysmail_start_sp resumes, a NOTIFY from a role without dbmail rights is
// only a hint that changes nothing, and the heartbeat shows a live sender in sysmail_help_queue_sp and
// a queue nobody serves as stalled.
import { describe, expect, it } from "vitest";
import { sleep } from "../../support/mail.js";
import { eventually } from "../../support/sender.js";
import { shortId } from "../support.js";
import { useResilience } from "./support.js";

const env = useResilience();
const { query, sender, queue, arrivals, statusCounts, expectDeliveredOnce, helpQueue, stoppedAt } = env;

const mailStatus = async () =>
  (await query<{ status: string }>("SELECT dbmail.sysmail_help_status_sp() AS status")).rows[0]?.status;

describe("sysmail_stop_sp and sysmail_start_sp", () => {
  it("stop pauses claiming within a second (in-flight finish); start resumes", {
    timeout: 40_000,
  }, async () => {
    await sender();
    const ids = await queue(800, "stop");
    try {
      await eventually(async () => arrivals(ids).arrived >= 100, 15_000);
      await query("SELECT dbmail.sysmail_stop_sp()");
      expect(await mailStatus()).toBe("STOPPED");
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
      await query("SELECT dbmail.sysmail_start_sp()");
    }
    expect(await mailStatus()).toBe("STARTED");
    await expectDeliveredOnce(ids, 30_000);
  });
});

describe("notifications are hints", () => {
  it("a NOTIFY dbmail_control 'stopped' from a role without dbmail rights does not pause delivery", {
    timeout: 30_000,
  }, async () => {
    await sender();
    const nobody = await env.db.createRole("nobody_notify");
    const client = await env.db.connect(nobody);
    // Anyone who can connect can notify any channel, with any payload.
    await client.query("SELECT pg_notify('dbmail_control', 'stopped')");
    await client.query("NOTIFY dbmail_control, 'stopped'");
    await sleep(300);
    const ids = await queue(20, "spoofed");
    await expectDeliveredOnce(ids, 10_000);
    expect(await mailStatus()).toBe("STARTED");
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
    expect(await stoppedAt(id)).not.toBeNull();

    const ids = await queue(1, "stalled");
    const stalled = await helpQueue();
    expect(stalled.stalled).toBe(true);
    expect(Number(stalled.length)).toBeGreaterThanOrEqual(1);
    expect(arrivals(ids).arrived).toBe(0);
    await query("SELECT dbmail.sysmail_delete_mailitems_sp(sent_status => 'unsent')");
  });
});
