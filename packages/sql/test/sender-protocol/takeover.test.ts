// claim_mailitems taking items over (SPEC.md section 7): an expired lease or a dead sender's items are
// claimed again with the same Message-ID and a warning, a live sender's never; UnknownOutcomePolicy fail
// gives such an item up instead.
import { describe, expect, it } from "vitest";
import { first, withSettings } from "../../../../test/support/mail.js";
import {
  A,
  B,
  claim,
  claimIds,
  db,
  events,
  expireLease,
  extendLeases,
  heartbeat,
  item,
  primaryId,
  queue,
  recordOutcome,
  s1,
  s2,
  send,
  untilServerUpFor30Seconds,
  useSenderProtocol,
} from "../support/sender-protocol.js";

useSenderProtocol();

describe("claim_mailitems", () => {
  it("reclaims a sending item whose lease expired, with the same Message-ID and a warning event", async () => {
    const id = await send();
    const [firstClaim] = await claim(s1, A);
    await expireLease(id);
    const [second, ...rest] = await claim(s2, B, 20, 60);
    expect(rest).toEqual([]);
    expect(second?.mailitem_id).toBe(id);
    expect(second?.message_id).toBe(firstClaim?.message_id);
    const row = await item(id);
    expect(row.sent_status).toBe("sending");
    expect(row.lease_owner).toBe(B);
    expect(row.lease_seconds).toBe(60);
    const logged = await events(id);
    expect(logged).toHaveLength(1);
    expect(first(logged)).toMatchObject({ event_type: "warning", mailitem_id: id, sender_id: B });
    expect(first(logged).description).toMatch(/unknown/i);
    expect(first(logged).description).toMatch(/same Message-ID/);
  });

  it("takes a dead sender's items over at once, though their leases run on", {
    timeout: 60_000,
  }, async () => {
    await untilServerUpFor30Seconds();
    const id = await send();
    await heartbeat(s1, A);
    const [firstClaim] = await claim(s1, A, 20, 300);
    await heartbeat(s2, B);
    // A still heartbeats: its lease holds.
    expect(await claimIds(s2, B)).toEqual([]);
    // A was killed: its last heartbeat is 31 s old, its lease has 269 s to run.
    await db.query(
      "UPDATE dbmail.senders SET last_heartbeat = now() - interval '31 seconds' WHERE sender_id = $1",
      [A],
    );
    const [second, ...rest] = await claim(s2, B);
    expect(rest).toEqual([]);
    expect(second?.mailitem_id).toBe(id);
    expect(second?.message_id).toBe(firstClaim?.message_id);
    expect((await item(id)).lease_owner).toBe(B);
    const logged = await events(id);
    expect(logged.map((e) => [e.event_type, e.sender_id])).toEqual([["warning", B]]);
    expect(first(logged).description).toMatch(/outcome unknown.*same Message-ID/);
    // A counts as stopped from the moment it was known dead (30 s after its last heartbeat).
    const { rows } = await db.query<{ dead_at: boolean }>(
      "SELECT stopped_at = last_heartbeat + interval '30 seconds' AS dead_at FROM dbmail.senders WHERE sender_id = $1",
      [A],
    );
    expect(first(rows).dead_at).toBe(true);
    // Should A come back after all, the item is no longer its own.
    expect(await extendLeases(s1, A, [id])).toEqual([]);
  });

  it("never takes the claimer's own items back, however old its heartbeat (after an outage, say)", {
    timeout: 60_000,
  }, async () => {
    await untilServerUpFor30Seconds();
    const id = await send();
    await heartbeat(s1, A);
    await claim(s1, A, 20, 300);
    await db.query(
      "UPDATE dbmail.senders SET last_heartbeat = now() - interval '31 seconds' WHERE sender_id = $1",
      [A],
    );
    expect(await claimIds(s1, A)).toEqual([]);
    expect((await item(id)).lease_seconds).toBe(300);
    const { rows } = await db.query("SELECT stopped_at FROM dbmail.senders WHERE sender_id = $1", [A]);
    expect(first(rows).stopped_at).toBeNull();
    expect(await events(id)).toEqual([]);
  });

  it("counts a sender that renews its leases as alive, however old its last heartbeat", async () => {
    const id = await send();
    await heartbeat(s1, A);
    await claim(s1, A);
    await db.query(
      "UPDATE dbmail.senders SET last_heartbeat = now() - interval '31 seconds' WHERE sender_id = $1",
      [A],
    );
    expect(await extendLeases(s1, A, [id])).toEqual([id]);
    await heartbeat(s2, B);
    expect(await claimIds(s2, B)).toEqual([]);
    expect((await item(id)).lease_owner).toBe(A);
    expect((await queue()).live_senders).toBe(2);
  });

  it("with UnknownOutcomePolicy fail, fails an item whose sender stopped reporting instead of sending it again", async () => {
    const id = await send();
    await claim(s1, A);
    await expireLease(id);
    await withSettings(db, { UnknownOutcomePolicy: "FAIL" }, async () => {
      expect(await claimIds(s2, B)).toEqual([]);
      const row = await item(id);
      expect(row.sent_status).toBe("failed");
      expect(row.lease_owner).toBeNull();
      expect(row.last_error).toMatch(/outcome unknown/);
      const logged = await events(id);
      expect(logged.map((e) => e.event_type)).toEqual(["error"]);
      expect(first(logged).description).toMatch(/UnknownOutcomePolicy is fail/);
      // The sender that held it finds out when it reports: the item is no longer its own.
      expect(await recordOutcome(s1, id, A, "sent", { accountId: primaryId })).toBe("lease_lost");
    });
  });

  it("counts reclaimed expired items against batch_size", async () => {
    const expired = [await send(), await send()];
    await claim(s1, A);
    for (const id of expired) await expireLease(id);
    await send();
    await send();
    const claimed = await claimIds(s2, B, 2);
    expect(claimed).toHaveLength(2);
    const rest = await claimIds(s2, B, 2);
    expect(rest).toHaveLength(2);
    expect(new Set([...claimed, ...rest]).size).toBe(4);
  });
});
