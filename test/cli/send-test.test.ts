// `dbmail send-test` (SPEC.md section 8, SSMS's "Send Test E-Mail"): exit 0 when the test mail went out,
// 10 with the error when it failed, 11 when no sender reported an outcome in time.
import type { Sender } from "@pg-dbmail/sender";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addProfile, cleanUpProcessesAndFiles, output, run } from "../support/cli.js";
import { TestDatabase } from "../support/database.js";
import { configure } from "../support/mail.js";
import { addAccount, startSender } from "../support/sender.js";
import { TestSmtpServer } from "../support/smtp.js";

cleanUpProcessesAndFiles();

describe("dbmail send-test", () => {
  let testDb: TestDatabase;
  let smtp: TestSmtpServer;
  let sender: Sender | undefined;

  beforeAll(async () => {
    testDb = await TestDatabase.create();
    smtp = await TestSmtpServer.start();
    await configure(testDb, "AccountRetryAttempts", "0");
    await addAccount(testDb, "p", smtp);
    await addProfile(testDb, "p", "p");
    const role = await testDb.createRole("cli_send_test", { memberOf: ["dbmail_sender"] });
    sender = await startSender(role);
  });
  afterAll(async () => {
    await sender?.stop();
    await smtp?.stop();
    await testDb?.drop();
  });

  const args = () => ["send-test", "--to", "x@example.org", "--profile", "p", "--database-url", testDb.url];

  it("exits 0 and prints 'sent' when the mail went out, and the mail arrived", async () => {
    const result = await run([...args(), "--timeout", "20"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("sent");
    // An admin (here the superuser) also sees how the account logs in, signs and is limited.
    expect(result.stdout).toMatch(/^account \d+ \(p\): no login; not DKIM-signed; no rate limit$/m);
    const [mail] = await smtp.waitFor(1);
    expect(mail?.envelope.to).toEqual(["x@example.org"]);
    expect(mail?.parsed.subject).toBe("Database Mail test");
  });

  it("exits 10 with the error when the mail failed", async () => {
    await smtp.stop();
    try {
      const result = await run([...args(), "--timeout", "20"]);
      expect(result.code, output(result)).toBe(10);
      expect(result.stderr).toContain("failed");
      expect(result.stderr).toMatch(/ECONNREFUSED|refused|connect/i);
    } finally {
      await smtp.restart();
    }
  });

  it("exits 11 mentioning dbmail status when no sender reports an outcome in time", async () => {
    await sender?.stop();
    sender = undefined;
    const started = Date.now();
    const result = await run([...args(), "--timeout", "2"]);
    expect(result.code, output(result)).toBe(11);
    expect(result.stderr).toContain("dbmail status");
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
