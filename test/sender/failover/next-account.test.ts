// Failover from one account of a profile to the next (SPEC sections 4 and 5), end to end: which account
// a mail moves on from and why, the sticky account that last succeeded, and accounts sharing a sequence
// number. A real PostgreSQL, the in-process sender and real SMTP servers scripted to refuse.
import { describe, expect, it } from "vitest";
import { sleep } from "../../support/mail.js";
import { closedPort, mailitemIds, refuse, useFailover } from "./support.js";

const { query, configure, smtp, startProfile, send, failover, waitForStatus, events } = useFailover();

describe("failover to the next account", () => {
  it("moves on when the first account answers 451 to RCPT TO", async () => {
    const first = await smtp({ onRcptTo: refuse(451, "4.3.0 mailbox busy, try later") });
    const second = await smtp();
    const { a1, a2, id } = await failover([first, second]);

    const row = await waitForStatus(id, "sent");
    expect(row.sent_account_id).toBe(a2);
    expect(row.send_attempts).toBe(1);
    expect(mailitemIds(second)).toEqual([id]);
    expect(first.received).toHaveLength(0);
    const log = await events(id);
    const warnings = log.filter((e) => e.event_type === "warning");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.account_id).toBe(a1);
    expect(warnings[0]?.description).toContain("451");
    expect(warnings[0]?.description).toContain("mailbox busy");
    expect(log.filter((e) => e.event_type === "error")).toHaveLength(0);
  });

  it("moves on when the first account answers 451 to MAIL FROM", async () => {
    const first = await smtp({ onMailFrom: refuse(451, "4.7.1 greylisted, come back later") });
    const second = await smtp();
    const { a1, a2, id } = await failover([first, second]);

    const row = await waitForStatus(id, "sent");
    expect(row.sent_account_id).toBe(a2);
    expect(mailitemIds(second)).toEqual([id]);
    expect(first.received).toHaveLength(0);
    const warnings = await events(id, "warning");
    expect(warnings.map((w) => w.account_id)).toEqual([a1]);
    expect(warnings[0]?.description).toContain("451");
    expect(warnings[0]?.description).toContain("greylisted");
  });

  it("moves on when nothing listens on the first account's port (connection refused)", async () => {
    const second = await smtp();
    const { a1, a2, id } = await failover([await closedPort(), second]);

    const row = await waitForStatus(id, "sent");
    expect(row.sent_account_id).toBe(a2);
    expect(mailitemIds(second)).toEqual([id]);
    const warnings = await events(id, "warning");
    expect(warnings.map((w) => w.account_id)).toEqual([a1]);
    expect(warnings[0]?.description).toMatch(/ECONNREFUSED|ECONNECTION|ESOCKET/);
  });

  it("moves on from a 550 on one account when the next account accepts", async () => {
    const first = await smtp({ onRcptTo: refuse(550, "5.1.1 no such user here") });
    const second = await smtp();
    const { a1, a2, id } = await failover([first, second]);

    const row = await waitForStatus(id, "sent");
    expect(row.sent_account_id).toBe(a2);
    expect(mailitemIds(second)).toEqual([id]);
    const log = await events(id);
    expect(log.filter((e) => e.event_type === "error")).toHaveLength(0);
    const warnings = log.filter((e) => e.event_type === "warning");
    expect(warnings.map((w) => w.account_id)).toEqual([a1]);
    expect(warnings[0]?.description).toContain("550");
  });
});

describe("the sticky account", () => {
  it("sends a new mail straight through the account that last succeeded", async () => {
    const first = await smtp({ onRcptTo: refuse(451, "try later") });
    const second = await smtp();
    const { a2, name, id: id1 } = await failover([first, second]);
    expect((await waitForStatus(id1, "sent")).sent_account_id).toBe(a2);

    // Account 1 is healthy again, but the profile sticks to account 2 (SPEC 5: "uses the account that
    // last sent successfully for that profile").
    first.behaviour = {};
    const id2 = await send(name);
    const row = await waitForStatus(id2, "sent");
    expect(row.sent_account_id).toBe(a2);
    expect(mailitemIds(second)).toEqual([id1, id2]);
    expect(first.received).toHaveLength(0);
    expect(await events(id2, "warning")).toHaveLength(0);
  });

  it("starts a retry round from the lowest sequence number, not from the sticky account", async () => {
    const first = await smtp({ onRcptTo: refuse(451, "try later") });
    const second = await smtp();
    const { a1, a2, name, id: id1 } = await failover([first, second]);
    expect((await waitForStatus(id1, "sent")).sent_account_id).toBe(a2);

    // Now account 2 (sticky) refuses and account 1 is healthy.
    first.behaviour = {};
    second.behaviour = { onRcptTo: refuse(451, "account 2 busy") };
    // A 2 s delay leaves time to look at the retrying item. The configuration change also makes the
    // sender reload the accounts, so this test does not depend on how fast it learns the sticky account.
    await configure("AccountRetryDelay", "2");
    await sleep(300);
    const id2 = await send(name);

    // Round 1 starts at the sticky account 2 and, it being the highest, ends there.
    const retrying = await waitForStatus(id2, "retrying");
    expect(retrying.send_attempts).toBe(1);
    expect(retrying.last_error).toContain(`account ${a2}`);
    expect(retrying.last_error).not.toContain(`account ${a1}:`);
    expect(first.received).toHaveLength(0);

    // Round 2 starts again from sequence 1.
    const row = await waitForStatus(id2, "sent");
    expect(row.sent_account_id).toBe(a1);
    expect(row.send_attempts).toBe(2);
    expect(mailitemIds(first)).toEqual([id2]);
    expect(mailitemIds(second)).toEqual([id1]);
  });
});

describe("accounts sharing a sequence number", () => {
  it("spreads a burst of 20 mails over both, and sends none twice", async () => {
    const left = await smtp();
    const right = await smtp();
    const { a1, a2, name } = await startProfile([left, right], { sequences: [1, 1] });
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await send(name, { subject: `mail ${i}` }));
    for (const id of ids) await waitForStatus(id, "sent");
    await sleep(300); // a duplicate would arrive by now

    const delivered = [...mailitemIds(left), ...mailitemIds(right)];
    expect(delivered).toHaveLength(20);
    expect(new Set(delivered)).toEqual(new Set(ids));
    expect(left.received.length).toBeGreaterThan(0);
    expect(right.received.length).toBeGreaterThan(0);
    const { rows } = await query<{ account: number; count: string }>(
      `SELECT sent_account_id AS account, count(*) FROM dbmail.sysmail_allitems
       WHERE mailitem_id = ANY ($1::bigint[]) GROUP BY 1 ORDER BY 1`,
      [ids],
    );
    expect(rows.map((r) => [r.account, Number(r.count)])).toEqual([
      [a1, left.received.length],
      [a2, right.received.length],
    ]);
  });

  it("keeps spreading mails sent one at a time, once the sender knows which account last succeeded", async () => {
    const left = await smtp();
    const right = await smtp();
    const { name } = await startProfile([left, right], { sequences: [1, 1] });
    for (let i = 0; i < 12; i++) {
      await waitForStatus(await send(name, { subject: `mail ${i}` }), "sent");
      // A configuration change makes the sender reload its accounts (and so the sticky account).
      await configure("LoggingLevel", "2");
      await sleep(150);
    }
    expect(left.received.length + right.received.length).toBe(12);
    expect(left.received.length).toBeGreaterThan(0);
    expect(right.received.length).toBeGreaterThan(0);
  });
});
