// Retry rounds over a profile's accounts, permanent rejections, and account changes picked up between
// rounds (SPEC sections 5 and 7), end to end: AccountRetryAttempts and AccountRetryDelay, which refusals
// end a mail at once and which are worth another round, and a changed port used without a restart.
import { describe, expect, it } from "vitest";
import { sleep } from "../../support/mail.js";
import { closedPort, mailitemIds, refuse, useFailover } from "./support.js";

const { query, smtp, downServer, accountName, startProfile, send, failover, waitForStatus, events } =
  useFailover();

describe("all accounts failing with transient errors", () => {
  it("retries after AccountRetryDelay and delivers once a server is back", async () => {
    const first = await downServer();
    const { a1, a2, id } = await failover([first, await closedPort()], {
      settings: { AccountRetryDelay: "2" },
    });

    const retrying = await waitForStatus(id, "retrying");
    expect(retrying.send_attempts).toBe(1);
    expect(retrying.due_later).toBe(true);
    expect(retrying.last_error).toContain(`account ${a1}`);
    expect(retrying.last_error).toContain(`account ${a2}`);
    const warnings = await events(id, "warning");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.description).toMatch(/round 1 of 2/);

    await first.restart();
    const row = await waitForStatus(id, "sent");
    expect(row.sent_account_id).toBe(a1);
    expect(row.send_attempts).toBe(2);
    expect(mailitemIds(first)).toEqual([id]);
    expect(await events(id, "error")).toHaveLength(0);
  });

  it("fails after 2 rounds with AccountRetryAttempts 1, with one error event", async () => {
    const { a1, a2, id } = await failover([await closedPort(), await closedPort()]);

    const row = await waitForStatus(id, "failed");
    expect(row.send_attempts).toBe(2);
    expect(row.last_error).toContain(`account ${a1}`);
    expect(row.last_error).toContain(`account ${a2}`);
    const log = await events(id);
    expect(log.map((e) => e.event_type)).toEqual(["warning", "error"]);
    expect(log[1]?.description).toContain("after 2 rounds");
  });

  it("fails after 1 round with AccountRetryAttempts 0", async () => {
    const { a1, a2, id } = await failover([await closedPort(), await closedPort()], {
      settings: { AccountRetryAttempts: "0" },
    });

    const row = await waitForStatus(id, "failed");
    expect(row.send_attempts).toBe(1);
    expect(row.next_attempt_at).toBeNull();
    const log = await events(id);
    expect(log.map((e) => e.event_type)).toEqual(["error"]);
    expect(log[0]?.description).toContain(`account ${a1}`);
    expect(log[0]?.description).toContain(`account ${a2}`);
  });
});

describe("permanent rejections", () => {
  it("fails at once when every account answers 550 to the recipient", async () => {
    const first = await smtp({ onRcptTo: refuse(550, "5.1.1 user unknown") });
    const second = await smtp({ onRcptTo: refuse(550, "5.1.1 user unknown") });
    const { id } = await failover([first, second], { settings: { AccountRetryAttempts: "3" } });

    const row = await waitForStatus(id, "failed");
    expect(row.send_attempts).toBe(1);
    expect(row.last_error).toContain("550");
    const log = await events(id);
    expect(log.map((e) => e.event_type)).toEqual(["error"]);
    expect(log[0]?.description).toContain("550");
    expect(log[0]?.description).toContain("user unknown");
    expect(first.received).toHaveLength(0);
    expect(second.received).toHaveLength(0);
  });

  it("fails at once when every account refuses the message with 554 after DATA", async () => {
    const first = await smtp({ onData: refuse(554, "5.6.0 message content rejected") });
    const second = await smtp({ onData: refuse(554, "5.6.0 message content rejected") });
    const { id } = await failover([first, second], { settings: { AccountRetryAttempts: "3" } });

    const row = await waitForStatus(id, "failed");
    expect(row.send_attempts).toBe(1);
    expect(row.last_error).toContain("554");
    expect((await events(id)).map((e) => e.event_type)).toEqual(["error"]);
  });

  it("retries when one account answers 550 but another is merely down", async () => {
    const first = await smtp({ onRcptTo: refuse(550, "5.1.1 user unknown") });
    const { id } = await failover([first, await closedPort()], { settings: { AccountRetryDelay: "60" } });

    const row = await waitForStatus(id, "retrying");
    expect(row.send_attempts).toBe(1);
    expect(row.due_later).toBe(true);
    expect(row.last_error).toContain("550");
  });

  it("retries when every account refuses the sender (5xx to MAIL FROM): an account problem, not the recipient's", async () => {
    // classify.ts: "a 5xx to MAIL FROM is a problem of this account or this moment, worth another
    // account or another round"; SPEC 5 makes only rejections of a recipient (RCPT/DATA) permanent.
    const first = await smtp({ onMailFrom: refuse(553, "5.7.1 sender address not permitted") });
    const second = await smtp({ onMailFrom: refuse(550, "5.7.1 relaying denied for this sender") });
    const { id } = await failover([first, second], { settings: { AccountRetryDelay: "60" } });

    const row = await waitForStatus(id, "retrying");
    expect(row.send_attempts).toBe(1);
    expect(row.last_error).toContain("553");
  });

  it("delivers to the accepted recipient when one of two is refused with 550, and says so", async () => {
    const server = await smtp({
      onRcptTo: (address) =>
        address.startsWith("bad@") ? { code: 550, message: "5.1.1 bad: no such mailbox" } : undefined,
    });
    const second = await smtp();
    const { a1, name } = await startProfile([server, second]);
    const id = await send(name, { recipients: "good@example.org;bad@example.org" });

    const row = await waitForStatus(id, "sent");
    expect(row.sent_account_id).toBe(a1);
    expect(row.send_attempts).toBe(1);
    expect(row.smtp_response).toContain("bad@example.org");
    expect(row.smtp_response).toContain("550");
    expect(server.received).toHaveLength(1);
    expect(server.received[0]?.envelope.to).toEqual(["good@example.org"]);
    expect(second.received).toHaveLength(0);
  });
});

describe("configuration", () => {
  it("keeps a mail of a profile without accounts retrying, saying why", async () => {
    const { id } = await failover([], { settings: { AccountRetryDelay: "60" } });

    const row = await waitForStatus(id, "retrying");
    expect(row.send_attempts).toBe(1);
    expect(row.due_later).toBe(true);
    expect(row.last_error).toMatch(/no accounts/);
  });

  it("applies a changed account port to the next mail without restarting the sender", async () => {
    const before = await smtp();
    const after = await smtp();
    const { a1, name, id: id1 } = await failover([before]);
    await waitForStatus(id1, "sent");

    await query("SELECT dbmail.sysmail_update_account_sp(account_name => $1, port => $2)", [
      accountName("a1"),
      after.port,
    ]);
    await sleep(500);
    const id2 = await send(name);
    const row = await waitForStatus(id2, "sent");
    expect(row.sent_account_id).toBe(a1);
    expect(mailitemIds(before)).toEqual([id1]);
    expect(mailitemIds(after)).toEqual([id2]);
  });

  it("applies a changed account port to a mail that is waiting to retry", async () => {
    const working = await smtp();
    const { a1, id } = await failover([await closedPort()], { settings: { AccountRetryAttempts: "3" } });
    await waitForStatus(id, "retrying");

    await query("SELECT dbmail.sysmail_update_account_sp(account_name => $1, port => $2)", [
      accountName("a1"),
      working.port,
    ]);
    const row = await waitForStatus(id, "sent");
    expect(row.sent_account_id).toBe(a1);
    expect(row.send_attempts).toBeGreaterThanOrEqual(2);
    expect(mailitemIds(working)).toEqual([id]);
  });
});
