// The end of a lease (SPEC.md section 7): release_mailitems gives claimed items back to the queue, and
// the lease token a claim returns is the only proof of the lease, new at every claim, shown nowhere else.
import { describe, expect, it } from "vitest";
import { first, withSettings } from "../../../../test/support/mail.js";
import {
  A,
  B,
  claim,
  claimIds,
  db,
  expireLease,
  extendLeases,
  item,
  makeDue,
  primaryId,
  recordOutcome,
  release,
  s1,
  s2,
  send,
  tokenOf,
  useSenderProtocol,
} from "../support/sender-protocol.js";

useSenderProtocol();

describe("release_mailitems", () => {
  it("gives claimed items back as unsent, claimable at once, and returns the count", async () => {
    const ids = [await send(), await send(), await send()];
    await claim(s1, A);
    expect(await release(s1, A, ids.slice(0, 2))).toBe(2);
    for (const id of ids.slice(0, 2)) {
      expect(await item(id)).toMatchObject({
        sent_status: "unsent",
        lease_owner: null,
        lease_expires_at: null,
      });
    }
    expect((await item(first(ids.slice(2)))).sent_status).toBe("sending");
    expect((await claimIds(s2, B)).sort()).toEqual(ids.slice(0, 2).sort());
  });

  it("gives an item that has had attempts back as retrying, claimable at once", async () => {
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "retrying", { error: "timeout" });
    await makeDue(id);
    await claim(s1, A);
    expect(await release(s1, A, [id])).toBe(1);
    expect(await item(id)).toMatchObject({
      sent_status: "retrying",
      send_attempts: 1,
      last_error: "timeout",
    });
    const [again] = await claim(s2, B);
    expect(again?.mailitem_id).toBe(id);
    expect(again?.send_attempts).toBe(1);
  });

  it("notifies dbmail_queue so waiting senders pick the items up", async () => {
    const id = await send();
    await claim(s1, A);
    const listener = await db.connect();
    await listener.query("LISTEN dbmail_queue");
    const notified = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no notification on dbmail_queue")), 5_000);
      listener.on("notification", (n) => {
        clearTimeout(timer);
        resolve(n.channel);
      });
    });
    expect(await release(s1, A, [id])).toBe(1);
    expect(await notified).toBe("dbmail_queue");
    await listener.end();
  });

  it("does not release another sender's items", async () => {
    const ids = [await send(), await send()];
    await claim(s1, A);
    expect(await release(s2, B, ids)).toBe(0);
    for (const id of ids) expect(await item(id)).toMatchObject({ sent_status: "sending", lease_owner: A });
  });

  it("does not touch items that are not sending", async () => {
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "sent", { accountId: primaryId });
    const unsent = await send();
    expect(await release(s1, A, [id, unsent])).toBe(0);
    expect((await item(id)).sent_status).toBe("sent");
    expect(await release(s1, A, [])).toBe(0);
  });
});

describe("lease tokens", () => {
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  const storedToken = async (id: string) =>
    first(
      (
        await db.query<{ t: string | null }>(
          "SELECT lease_token AS t FROM dbmail.mailitems WHERE mailitem_id = $1",
          [id],
        )
      ).rows,
    ).t;

  it("gives the items of one claim one random token, and every claim a new one", async () => {
    const ids = [await send(), await send(), await send()];
    const firstClaim = await claim(s1, A, 2);
    const second = await claim(s1, A, 2);
    expect(firstClaim.map((r) => r.mailitem_id)).toEqual(ids.slice(0, 2));
    expect(firstClaim[0]?.lease_token).toMatch(UUID);
    expect(firstClaim[1]?.lease_token).toBe(firstClaim[0]?.lease_token);
    expect(second.map((r) => r.mailitem_id)).toEqual(ids.slice(2));
    expect(second[0]?.lease_token).toMatch(UUID);
    expect(second[0]?.lease_token).not.toBe(firstClaim[0]?.lease_token);
    expect(await storedToken(first(second).mailitem_id)).toBe(first(second).lease_token);
  });

  it("drops the token when the lease ends: outcome recorded, released, failed as outcome unknown", async () => {
    const [sent, released, unknown] = [await send(), await send(), await send()];
    await claim(s1, A);
    expect(await recordOutcome(s1, sent, A, "sent", { accountId: primaryId })).toBe("sent");
    expect(await release(s1, A, [released])).toBe(1);
    await expireLease(unknown);
    await withSettings(db, { UnknownOutcomePolicy: "fail" }, async () => {
      expect(await claimIds(s2, B)).toEqual([released]);
      expect((await item(unknown)).sent_status).toBe("failed");
    });
    expect(await storedToken(sent)).toBeNull();
    expect(await storedToken(unknown)).toBeNull();
    expect(await storedToken(released)).toBe(tokenOf(B, released));
  });

  it("gives an item taken over a new token, even when its own sender takes it back: the old one is worthless", async () => {
    const id = await send();
    const [firstClaim] = await claim(s1, A);
    await expireLease(id);
    const [again] = await claim(s1, A);
    expect(again?.mailitem_id).toBe(id);
    expect(again?.lease_token).not.toBe(firstClaim?.lease_token);
    expect(await extendLeases(s1, A, [id], [firstClaim?.lease_token ?? null])).toEqual([]);
    expect(
      await recordOutcome(s1, id, A, "sent", { accountId: primaryId, leaseToken: firstClaim?.lease_token }),
    ).toBe("lease_lost");
    expect(await recordOutcome(s1, id, A, "sent", { accountId: primaryId })).toBe("sent");
  });

  it("shows the token in no view, and returns it from no function but claim_mailitems", async () => {
    const { rows: columns } = await db.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.columns
       WHERE table_schema = 'dbmail' AND column_name LIKE '%lease_token%' ORDER BY 1`,
    );
    expect(columns.map((c) => c.table_name)).toEqual(["mailitems"]);
    const { rows: views } = await db.query(
      "SELECT viewname FROM pg_views WHERE schemaname = 'dbmail' AND definition LIKE '%lease_token%'",
    );
    expect(views).toEqual([]);
    const { rows: returning } = await db.query<{ proname: string }>(
      `SELECT DISTINCT p.proname FROM pg_proc p, unnest(p.proargnames, p.proargmodes) AS a(name, mode)
       WHERE p.pronamespace = 'dbmail'::regnamespace AND a.name LIKE '%lease_token%' AND a.mode IN ('o', 'b', 't')`,
    );
    expect(returning.map((r) => r.proname)).toEqual(["claim_mailitems"]);
  });
});
