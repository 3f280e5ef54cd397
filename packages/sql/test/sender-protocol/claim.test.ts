// claim_mailitems (SPEC.md section 7): which items a claim returns and in what order, leases given to
// one sender at a time under FOR UPDATE SKIP LOCKED, send_at and sysmail_stop_sp respected, bad
// arguments refused, and empty claims recorded. Taking over expired leases: takeover.test.ts.
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import { first } from "../../../../test/support/mail.js";
import {
  A,
  B,
  claim,
  claimIds,
  db,
  events,
  expireLease,
  heartbeat,
  item,
  makeDue,
  profileId,
  queue,
  recordOutcome,
  s1,
  s2,
  s3,
  s4,
  send,
  useSenderProtocol,
} from "../support/sender-protocol.js";

useSenderProtocol();

describe("claim_mailitems", () => {
  it("returns due items with what the sender needs to build the message", async () => {
    const id = await send({ subject: "hello" });
    const [claimed, ...rest] = await claim(s1, A);
    expect(rest).toEqual([]);
    expect(claimed).toMatchObject({
      mailitem_id: id,
      profile_id: profileId,
      subject: "hello",
      body: "b",
      body_format: "TEXT",
      importance: "NORMAL",
      sensitivity: "NORMAL",
      send_attempts: 0,
      attachment_count: 0,
    });
    expect(claimed?.envelope.to).toEqual([{ name: null, address: "a@x.org" }]);
    expect(claimed?.envelope.cc).toEqual([]);
    expect(claimed?.message_id).toMatch(
      new RegExp(`^<dbmail\\.${id}\\.[0-9a-f]{13,}\\.[0-9a-f]{32}@example\\.org>$`),
    );
    expect(claimed?.lease_expires_at).toBeInstanceOf(Date);
  });

  it("marks claimed items sending, leased to the sender for lease_seconds", async () => {
    const id = await send();
    await claim(s1, A, 20, 120);
    const row = await item(id);
    expect(row.sent_status).toBe("sending");
    expect(row.lease_owner).toBe(A);
    expect(row.lease_seconds).toBe(120);
    const { rows } = await db.query<{ n: string }>(
      "SELECT count(*) AS n FROM dbmail.sysmail_unsentitems WHERE sent_status = 'sending'",
    );
    expect(first(rows).n).toBe("1");
  });

  it("claims at most batch_size items, oldest first", async () => {
    const ids = [await send(), await send(), await send()];
    expect(await claimIds(s1, A, 2)).toEqual(ids.slice(0, 2));
    expect(await claimIds(s1, A, 2)).toEqual(ids.slice(2));
    expect(await claimIds(s1, A, 2)).toEqual([]);
  });

  it("claims the item that has waited longest first", async () => {
    const sentFirst = await send();
    const second = await send();
    await db.query(
      "UPDATE dbmail.mailitems SET next_attempt_at = now() - interval '1 hour' WHERE mailitem_id = $1",
      [second],
    );
    expect(await claimIds(s1, A, 1)).toEqual([second]);
    expect(await claimIds(s1, A, 1)).toEqual([sentFirst]);
  });

  it("gives a second sender different items", async () => {
    const ids = [await send(), await send(), await send(), await send()];
    const a = await claimIds(s1, A, 2);
    const b = await claimIds(s2, B, 10);
    expect(a).toHaveLength(2);
    expect(b).toHaveLength(2);
    expect([...a, ...b].sort()).toEqual([...ids].sort());
    expect((await item(first(b))).lease_owner).toBe(B);
  });

  it("skips items locked by a concurrent, uncommitted claim (SKIP LOCKED) without waiting", async () => {
    const ids = [await send(), await send(), await send(), await send(), await send()];
    await s1.query("BEGIN");
    await s2.query("BEGIN");
    try {
      const a = await claimIds(s1, A, 3);
      await s2.query("SET LOCAL lock_timeout = '3s'");
      const b = await claimIds(s2, B, 10);
      expect(a).toHaveLength(3);
      expect(b).toHaveLength(2);
      expect(a.filter((x) => b.includes(x))).toEqual([]);
      expect([...a, ...b].sort()).toEqual([...ids].sort());
    } finally {
      await s2.query("COMMIT");
      await s1.query("COMMIT");
    }
  });

  it("never hands one item to two of four senders claiming at the same time", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 24; i++) ids.push(await send());
    const clients = [s1, s2, s3, s4];
    const claimed: string[] = [];
    for (let round = 0; round < 3; round++) {
      const batches = await Promise.all(clients.map((c, i) => claimIds(c, `sender-${i}`, 3)));
      claimed.push(...batches.flat());
    }
    expect(new Set(claimed).size).toBe(claimed.length);
    expect([...claimed].sort()).toEqual([...ids].sort());
  });

  it("leaves the items in the queue when the claiming transaction rolls back", async () => {
    const id = await send();
    await s1.query("BEGIN");
    expect(await claimIds(s1, A)).toEqual([id]);
    await s1.query("ROLLBACK");
    expect((await item(id)).sent_status).toBe("unsent");
    expect(await claimIds(s2, B)).toEqual([id]);
  });

  it("does not claim mail scheduled with send_at until it is due", async () => {
    const later = await send({ send_at: new Date(Date.now() + 3_600_000).toISOString() });
    const now = await send();
    expect(await claimIds(s1, A)).toEqual([now]);
    expect(await claimIds(s1, A)).toEqual([]);
    await makeDue(later);
    expect(await claimIds(s1, A)).toEqual([later]);
  });

  it("claims nothing while Database Mail is stopped, and resumes after sysmail_start_sp", async () => {
    const id = await send();
    await db.query("SELECT dbmail.sysmail_stop_sp()");
    expect(await claimIds(s1, A)).toEqual([]);
    expect((await item(id)).sent_status).toBe("unsent");
    await db.query("SELECT dbmail.sysmail_start_sp()");
    expect(await claimIds(s1, A)).toEqual([id]);
  });

  it("does not reclaim an expired lease while stopped", async () => {
    const id = await send();
    await claim(s1, A);
    await expireLease(id);
    await db.query("SELECT dbmail.sysmail_stop_sp()");
    expect(await claimIds(s2, B)).toEqual([]);
    expect((await item(id)).lease_owner).toBe(A);
  });

  it("claims a retrying item only after its next_attempt_at", async () => {
    const id = await send();
    await claim(s1, A);
    expect(await recordOutcome(s1, id, A, "retrying", { error: "timeout" })).toBe("retrying");
    expect(await claimIds(s1, A)).toEqual([]);
    expect(await claimIds(s2, B)).toEqual([]);
    await makeDue(id);
    const [again] = await claim(s2, B);
    expect(again?.mailitem_id).toBe(id);
    expect(again?.send_attempts).toBe(1);
  });

  it("does not take another sender's item while its lease is live", async () => {
    const id = await send();
    await claim(s1, A);
    expect(await claimIds(s2, B)).toEqual([]);
    expect((await item(id)).lease_owner).toBe(A);
    expect(await events(id)).toEqual([]);
  });

  it("returns only what this call claimed when one sender claims twice in one transaction", async () => {
    const ids = [await send(), await send(), await send()];
    await s1.query("BEGIN");
    try {
      const firstClaim = await claimIds(s1, A, 1);
      const second = await claimIds(s1, A, 1);
      expect(firstClaim).toEqual([ids[0]]);
      expect(second).toEqual([ids[1]]);
    } finally {
      await s1.query("COMMIT");
    }
  });

  it.each([
    ["sender_id", null, 20, 300, "22004"],
    ["sender_id", "  ", 20, 300, "22004"],
    ["batch_size", A, 0, 300, "22023"],
    ["batch_size", A, null, 300, "22023"],
    ["batch_size", A, 10001, 300, "22023"],
    ["lease_seconds", A, 20, 0, "22023"],
    ["lease_seconds", A, 20, null, "22023"],
  ] as const)(
    "refuses a bad %s (%s, %s, %s) with %s",
    async (parameter, senderId, batchSize, leaseSeconds, code) => {
      const id = await send();
      const error = await errorOf(
        s1.query("SELECT * FROM dbmail.claim_mailitems($1, $2, $3)", [senderId, batchSize, leaseSeconds]),
      );
      expect(error.code).toBe(code);
      expect(error.message).toMatch(new RegExp(`^${parameter}: `));
      expect((await item(id)).sent_status).toBe("unsent");
    },
  );

  it("records an empty claim in senders.last_empty_claim_at for a registered sender", async () => {
    await heartbeat(s1, A);
    await send();
    await claim(s1, A);
    const before = await db.query<{ t: Date | null }>(
      "SELECT last_empty_claim_at AS t FROM dbmail.senders WHERE sender_id = $1",
      [A],
    );
    expect(first(before.rows).t).toBeNull();
    expect(await claim(s1, A)).toEqual([]);
    const after = await db.query<{ t: Date | null }>(
      "SELECT last_empty_claim_at AS t FROM dbmail.senders WHERE sender_id = $1",
      [A],
    );
    expect(first(after.rows).t).toBeInstanceOf(Date);
    expect((await queue()).last_empty_rowset_time).toBeInstanceOf(Date);
  });

  it("accepts an empty claim from an unregistered sender without registering it", async () => {
    expect(await claim(s1, "never-heartbeated")).toEqual([]);
    const { rows } = await db.query("SELECT * FROM dbmail.senders");
    expect(rows).toEqual([]);
  });
});
