// `dbmail status` (SPEC.md sections 7 and 8): the status, the queue, the live senders and the latest
// failures, as text and as --json, a stalled queue when no sender is alive, and text from users and SMTP
// servers shown escaped so that it cannot drive the terminal.
import { freePort } from "@pg-dbmail/dev/local-postgres";
import type { Sender } from "@pg-dbmail/sender";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addProfile, cleanUpProcessesAndFiles, run, sendMail } from "../support/cli.js";
import { TestDatabase, type TestRole } from "../support/database.js";
import { configure, unique } from "../support/mail.js";
import { addAccount, eventually, startSender } from "../support/sender.js";

cleanUpProcessesAndFiles();

describe("dbmail status", () => {
  let statusDb: TestDatabase;
  let sender: Sender | undefined;
  let senderRole: TestRole;

  beforeAll(async () => {
    statusDb = await TestDatabase.create();
    senderRole = await statusDb.createRole("cli_status_sender", { memberOf: ["dbmail_sender"] });
    await configure(statusDb, "AccountRetryAttempts", "0");
    await addAccount(statusDb, "broken", { port: await freePort() });
    await addProfile(statusDb, "broken", "broken");
  });
  afterAll(async () => {
    await sender?.stop();
    await statusDb?.drop();
  });

  it("prints the status, the queue, the live senders and the latest failures; --json the same facts", async () => {
    const senderId = unique("status");
    sender = await startSender(senderRole, { senderId });
    const failedId = await sendMail(statusDb, "broken", "this one fails");
    await eventually(async () => {
      const { rows } = await statusDb.query(
        "SELECT 1 FROM dbmail.sysmail_faileditems WHERE mailitem_id = $1",
        [failedId],
      );
      return rows.length === 1;
    });

    const text = await run(["status", "--database-url", statusDb.url]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain("STARTED");
    expect(text.stdout).toMatch(/queue: 0\b/);
    expect(text.stdout).toMatch(/live senders: 1\b/);
    expect(text.stdout).toContain(senderId);
    expect(text.stdout).toContain("latest failures");
    expect(text.stdout).toContain(failedId);
    expect(text.stdout).toContain("this one fails");

    const json = await run(["status", "--json", "--database-url", statusDb.url]);
    expect(json.code, json.stderr).toBe(0);
    const parsed = JSON.parse(json.stdout) as {
      status: string;
      queue: { length: number; live_senders: number; senders: { sender_id: string }[] };
      failures: { mailitem_id: number; subject: string; last_error: string | null }[];
    };
    expect(parsed.status).toBe("STARTED");
    // Numbers as numbers, not as the strings node-postgres gives for bigint.
    expect(parsed.queue.length).toBe(0);
    expect(parsed.queue.live_senders).toBe(1);
    expect(parsed.queue.senders.map((s) => s.sender_id)).toEqual([senderId]);
    const failure = parsed.failures.find((f) => f.mailitem_id === Number(failedId));
    expect(failure?.subject).toBe("this one fails");
    expect(failure?.last_error).toBeTruthy();
    expect(text.stdout).toContain(failure?.last_error as string);

    // With no sender alive and mail waiting: the queue length, no live senders, and a stall.
    await sender.stop();
    sender = undefined;
    await sendMail(statusDb, "broken", "waiting 1");
    await sendMail(statusDb, "broken", "waiting 2");
    const stalled = await run(["status", "--database-url", statusDb.url]);
    expect(stalled.code, stalled.stderr).toBe(0);
    expect(stalled.stdout).toMatch(/queue: 2\b/);
    expect(stalled.stdout).toMatch(/live senders: 0\b/);
    expect(stalled.stdout).toContain("STALLED");
    const stalledJson = JSON.parse((await run(["status", "--json", "--database-url", statusDb.url])).stdout);
    expect(stalledJson.queue.length).toBe(2);
    expect(stalledJson.queue.live_senders).toBe(0);
    expect(stalledJson.queue.stalled).toBe(true);
  });

  it("shows what came from users and SMTP servers without letting it drive the terminal", async () => {
    const id = await sendMail(statusDb, "broken", "will be replaced");
    // Written directly: sp_send_dbmail refuses control characters in a subject; a server's reply is
    // stored made safe; this is what an older sender, or a hand-made row, might have left.
    await statusDb.query(
      `UPDATE dbmail.mailitems SET sent_status = 'failed', sent_date = now(),
         subject = E'subject \\u001b]0;pwned\\u0007 \\u202eevil',
         last_error = E'550 \\u001b[2J\\u001b[31mcleared your screen' WHERE mailitem_id = $1`,
      [id],
    );
    const result = await run(["status", "--database-url", statusDb.url]);
    expect(result.code, result.stderr).toBe(0);
    for (const control of ["\u001b", "\u0007", "\u202e"]) expect(result.stdout).not.toContain(control);
    expect(result.stdout).toContain(
      '"subject \\x1b]0;pwned\\x07 \\u202eevil": 550 \\x1b[2J\\x1b[31mcleared your screen',
    );
  });
});
