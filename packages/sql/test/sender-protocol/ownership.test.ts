// What a sender login cannot do (SPEC.md sections 5 and 7): act on an item another sender holds, use a
// sender_id another login registered, or reach the tables, settings and procedures it is not granted.
import { randomUUID } from "node:crypto";
import type pg from "pg";
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
  extendLeases,
  heartbeat,
  item,
  o1,
  o2,
  primaryId,
  queue,
  recordOutcome,
  recordOutcomes,
  release,
  s1,
  s2,
  s3,
  s4,
  send,
  useSenderProtocol,
} from "../support/sender-protocol.js";

useSenderProtocol();

/**
 * Issue 13: a sender login used another sender's id (shown in sent_by) to act on items it did not hold.
 * Sender A (login s1) holds an item with two attachments; each attacker tries every call on it, and the
 * item is left exactly as it was; then A does all of it.
 */
describe("a sender cannot act on an item another sender holds", () => {
  const C = "sender-c";

  interface Held {
    id: string;
    token: string;
    /** The token of another claim of A's (another item). */
    otherToken: string;
    attachmentId: string;
  }

  async function held(): Promise<Held> {
    const id = await send();
    await db.query(
      `INSERT INTO dbmail.attachments (mailitem_id, filename, content_type, filesize, attachment, last_mod_user)
       VALUES ($1, 'secret.txt', 'text/plain', 6, convert_to('secret', 'UTF8'), 'postgres'),
              ($1, 'more.txt', 'text/plain', 4, convert_to('more', 'UTF8'), 'postgres')`,
      [id],
    );
    await send();
    await heartbeat(s1, A);
    await heartbeat(o1, C);
    const [mine] = await claim(s1, A, 1);
    const [other] = await claim(s1, A, 1);
    const attachment = await db.query<{ id: string }>(
      "SELECT min(attachment_id) AS id FROM dbmail.attachments WHERE mailitem_id = $1",
      [id],
    );
    return {
      id,
      token: mine?.lease_token as string,
      otherToken: other?.lease_token as string,
      attachmentId: first(attachment.rows).id,
    };
  }

  /** Everything about the item a call could change, and its events. */
  async function state(id: string) {
    const { rows } = await db.query(
      `SELECT sent_status, sent_date, sent_account_id, smtp_response, sent_by, send_attempts, last_error,
              next_attempt_at, lease_owner, lease_token, lease_expires_at, last_mod_date, last_mod_user
       FROM dbmail.mailitems WHERE mailitem_id = $1`,
      [id],
    );
    return { item: first(rows), events: await events(id) };
  }

  type Attacker = [string, () => pg.Client, string, (h: Held) => string | null];
  const attackers: Attacker[] = [
    ["another login, under A's sender_id, with a made-up token", () => o1, A, () => randomUUID()],
    ["another login, under A's sender_id, without a token", () => o1, A, () => null],
    ["another login, under its own sender_id, with A's token", () => o1, C, (h) => h.token],
    ["A's login, under another sender_id, with A's token", () => s2, B, (h) => h.token],
    ["A's sender_id without the token", () => s2, A, () => null],
    ["A's sender_id with a made-up token", () => s2, A, () => randomUUID()],
    ["A's sender_id with the token of another of A's claims", () => s2, A, (h) => h.otherToken],
  ];

  it.each(attackers)(
    "%s: every call is lease_lost, empty or NULL, and changes nothing",
    async (_who, client, senderId, tokenFor) => {
      const h = await held();
      const c = client();
      const token = tokenFor(h);
      // Let the lease have run a while, so a renewal would show.
      await db.query(
        "UPDATE dbmail.mailitems SET lease_expires_at = lease_expires_at - interval '1 minute' WHERE mailitem_id = $1",
        [h.id],
      );
      const before = await state(h.id);

      for (const outcome of ["sent", "retrying", "failed"]) {
        expect(
          await recordOutcome(c, h.id, senderId, outcome, {
            accountId: primaryId,
            smtpResponse: "250 forged",
            error: "forged",
            leaseToken: token,
          }),
        ).toBe("lease_lost");
      }
      expect(
        await recordOutcomes(c, senderId, [
          { mailitem_id: h.id, lease_token: token, outcome: "sent", account_id: primaryId },
        ]),
      ).toEqual([[h.id, "lease_lost"]]);
      // An entry without lease_token (not through the helper, which would add this sender_id's).
      const { rows: untokened } = await c.query("SELECT * FROM dbmail.record_outcomes($1, $2::jsonb)", [
        senderId,
        JSON.stringify([{ mailitem_id: h.id, outcome: "failed", error: "forged" }]),
      ]);
      expect(untokened).toEqual([{ mailitem_id: h.id, status: "lease_lost" }]);
      expect(await extendLeases(c, senderId, [h.id], [token], 86400)).toEqual([]);
      expect(await release(c, senderId, [h.id], [token])).toBe(0);
      const { rows: attachments } = await c.query("SELECT * FROM dbmail.sender_attachments($1, $2, $3)", [
        senderId,
        h.id,
        token,
      ]);
      expect(attachments).toEqual([]);
      const { rows: chunk } = await c.query<{ chunk: Buffer | null }>(
        "SELECT dbmail.sender_attachment_chunk($1, $2, $3, 0, 100) AS chunk",
        [senderId, h.attachmentId, token],
      );
      expect(first(chunk).chunk).toBeNull();

      expect(await state(h.id)).toEqual(before);

      // The holder still does all of it.
      const { rows: mine } = await s1.query<{ filename: string }>(
        "SELECT filename FROM dbmail.sender_attachments($1, $2, $3)",
        [A, h.id, h.token],
      );
      expect(mine.map((a) => a.filename)).toEqual(["secret.txt", "more.txt"]);
      const { rows: piece } = await s1.query<{ chunk: Buffer | null }>(
        "SELECT dbmail.sender_attachment_chunk($1, $2, $3, 0, 100) AS chunk",
        [A, h.attachmentId, h.token],
      );
      expect(first(piece).chunk?.toString("utf8")).toBe("secret");
      expect(await extendLeases(s1, A, [h.id], [h.token])).toEqual([h.id]);
      expect(await recordOutcome(s1, h.id, A, "sent", { accountId: primaryId, leaseToken: h.token })).toBe(
        "sent",
      );
      expect(await item(h.id)).toMatchObject({ sent_status: "sent", sent_by: A, lease_owner: null });
    },
  );

  it("cannot release another sender's item, which A then releases", async () => {
    const h = await held();
    expect(await release(o1, A, [h.id], [randomUUID()])).toBe(0);
    expect(await release(s2, A, [h.id], [null])).toBe(0);
    expect((await item(h.id)).lease_owner).toBe(A);
    expect(await release(s1, A, [h.id], [h.token])).toBe(1);
    expect(await item(h.id)).toMatchObject({ sent_status: "unsent", lease_owner: null });
  });
});

describe("a sender_id belongs to the login that registered it", () => {
  const senderRow = async (id: string) =>
    first(
      (
        await db.query<{ hostname: string; stopped_at: Date | null; age: number }>(
          `SELECT hostname, stopped_at, extract(epoch FROM now() - last_heartbeat)::float8 AS age
           FROM dbmail.senders WHERE sender_id = $1`,
          [id],
        )
      ).rows,
    );
  const refusal = { code: "42501", message: `sender_id: "${A}": registered by another login` };

  it("refuses another login's heartbeat under the id (42501), changing nothing", async () => {
    await heartbeat(s1, A, "mine");
    expect(await errorOf(heartbeat(o1, A, "evil"))).toMatchObject(refusal);
    expect((await senderRow(A)).hostname).toBe("mine");
  });

  it("refuses another login's sender_stopped under the id, which stays live", async () => {
    await heartbeat(s1, A);
    expect(await errorOf(o1.query("SELECT dbmail.sender_stopped($1)", [A]))).toMatchObject(refusal);
    expect((await senderRow(A)).stopped_at).toBeNull();
    expect((await queue()).live_senders).toBe(1);
  });

  it("refuses another login's claim under the id, claiming nothing", async () => {
    const id = await send();
    await heartbeat(s1, A);
    expect(await errorOf(claim(o1, A))).toMatchObject(refusal);
    expect(await item(id)).toMatchObject({ sent_status: "unsent", lease_owner: null });
    expect(await claimIds(s1, A)).toEqual([id]);
  });

  it("does not count another login's extend_leases under the id as its heartbeat", async () => {
    await heartbeat(s1, A);
    await db.query("UPDATE dbmail.senders SET last_heartbeat = now() - interval '20 seconds'");
    expect(await extendLeases(o1, A, [], [])).toEqual([]);
    expect((await senderRow(A)).age).toBeGreaterThan(19);
    expect(await extendLeases(s2, A, [], [])).toEqual([]);
    expect((await senderRow(A)).age).toBeLessThan(5);
  });

  it("lets the registering login use the id on every connection, and any login an id nobody registered", async () => {
    await heartbeat(s1, A);
    await heartbeat(s2, A);
    await s3.query("SELECT dbmail.sender_stopped($1)", [A]);
    await heartbeat(s4, A);
    expect(await claim(o1, "nobody-registered-this")).toEqual([]);
    await heartbeat(o2, "nobody-registered-this");
    expect(await errorOf(heartbeat(s1, "nobody-registered-this"))).toMatchObject({ code: "42501" });
  });

  it("lets a superuser heartbeat and stop any id without taking it from its login", async () => {
    await heartbeat(s1, A);
    await heartbeat(await db.connect(), A);
    await db.query("SELECT dbmail.sender_stopped($1)", [A]);
    expect(await errorOf(heartbeat(o1, A))).toMatchObject(refusal);
    await heartbeat(s1, A);
    expect((await senderRow(A)).stopped_at).toBeNull();
  });

  it("frees the ids of a login that was dropped: the next login to heartbeat takes them", async () => {
    const gone = await db.createRole("gone_sender", { memberOf: ["dbmail_sender"] });
    const client = await db.connect(gone);
    await heartbeat(client, "sender-gone");
    expect(await errorOf(heartbeat(o1, "sender-gone"))).toMatchObject({ code: "42501" });
    await client.end();
    await db.query(`DROP ROLE ${gone.name}`);
    await heartbeat(o1, "sender-gone");
    expect(await errorOf(heartbeat(s1, "sender-gone"))).toMatchObject({ code: "42501" });
    await heartbeat(o2, "sender-gone");
  });
});

describe("what dbmail_sender may not do", () => {
  it.each([
    ["read the queue table", "SELECT * FROM dbmail.mailitems"],
    ["read account secrets", "SELECT * FROM dbmail.account_secrets"],
    ["change settings", "SELECT dbmail.sysmail_configure_sp('LoggingLevel', '3')"],
    [
      "queue mail",
      "SELECT dbmail.sp_send_dbmail(profile_name => 'p', recipients => 'a@x.org', subject => 's')",
    ],
    ["delete items", "SELECT dbmail.sysmail_delete_mailitems_sp(sent_status => 'sent')"],
  ])("cannot %s", async (_what, sql) => {
    const error = await errorOf(s1.query(sql));
    expect(error.code).toBe("42501");
  });
});
