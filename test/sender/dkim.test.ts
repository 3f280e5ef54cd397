// DKIM signing per account, end to end (SPEC.md section 13): a real sender signs what it sends with the
// account's key, and mailauth (what receivers run) verifies each received message against the public
// key, published through a resolver of the test's own. Text, HTML, UTF-8, attachments (a large one
// streamed from the database), and a tampered copy that must fail.
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dkimVerify } from "mailauth/lib/dkim/verify.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase } from "../support/database.js";
import { call, send, uniqueSubject, withSettings } from "../support/mail.js";
import { addAccount, startSender } from "../support/sender.js";
import { type ReceivedMail, TestSmtpServer } from "../support/smtp.js";

interface DkimResult {
  signingDomain: string;
  selector: string;
  algo: string;
  format: string;
  signingHeaders: { keys: string };
  status: { result: string; comment?: string };
}

const DOMAIN = "mail.example.org";
const SELECTOR = "dbmail2026";
const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const privatePem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const publicDer = publicKey.export({ type: "spki", format: "der" }).toString("base64");

let db: TestDatabase;
let smtp: TestSmtpServer;
let sender: Awaited<ReturnType<typeof startSender>>;
let keyDir: string;

beforeAll(async () => {
  db = await TestDatabase.create();
  const role = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
  smtp = await TestSmtpServer.start();
  // The key from a file, as a DBA would keep it out of the database.
  keyDir = mkdtempSync(join(tmpdir(), "dbmail-dkim-"));
  writeFileSync(join(keyDir, "dkim.pem"), privatePem, { mode: 0o600 });
  await addAccount(db, "signed", smtp, {
    dkim_domain: DOMAIN,
    dkim_selector: SELECTOR,
    dkim_private_key: `file:${join(keyDir, "dkim.pem")}`,
  });
  await call(db, "sysmail_add_profile_sp", { profile_name: "signed" });
  await call(db, "sysmail_add_profileaccount_sp", {
    profile_name: "signed",
    account_name: "signed",
    sequence_number: 1,
  });
  sender = await startSender(role);
});

afterAll(async () => {
  await sender?.stop();
  await smtp?.stop();
  await db?.drop();
  rmSync(keyDir, { recursive: true, force: true });
});

/** What a receiver does: looks up <selector>._domainkey.<domain> and checks every signature. */
async function verify(raw: Buffer): Promise<DkimResult[]> {
  const resolver = async (name: string, type: string) => {
    if (type === "TXT" && name === `${SELECTOR}._domainkey.${DOMAIN}`) {
      return [[`v=DKIM1; k=rsa; p=${publicDer}`]];
    }
    throw Object.assign(new Error(`no ${type} record for ${name}`), { code: "ENOTFOUND" });
  };
  const { results } = (await dkimVerify(raw, { resolver })) as unknown as { results: DkimResult[] };
  return results;
}

async function sendAndReceive(args: Record<string, unknown>): Promise<ReceivedMail> {
  const subject = (args.subject as string | undefined) ?? uniqueSubject("dkim");
  await send(db, { profile_name: "signed", recipients: "to@example.net", subject, ...args });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const mail = smtp.received.find((m) => m.parsed.subject === subject);
    if (mail) return mail;
    if (Date.now() > deadline) throw new Error(`no message "${subject}" arrived`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function expectPass(results: DkimResult[]): void {
  expect(results).toHaveLength(1);
  const [result] = results;
  expect(result?.status.result, result?.status.comment).toBe("pass");
  expect(result).toMatchObject({ signingDomain: DOMAIN, selector: SELECTOR, algo: "rsa-sha256" });
  expect(result?.format).toBe("relaxed/relaxed");
  const signed = (result?.signingHeaders.keys ?? "").toLowerCase().split(": ");
  for (const header of ["from", "to", "subject", "date", "message-id"]) expect(signed).toContain(header);
}

describe("DKIM-signed mail verifies at the receiver", () => {
  it("a plain text message", async () => {
    const mail = await sendAndReceive({ body: "Nightly backup finished.\nAll 12 databases OK." });
    expect(mail.raw.toString("latin1")).toMatch(/^DKIM-Signature: /);
    expectPass(await verify(mail.raw));
  });

  it("an HTML message (with its text part)", async () => {
    const mail = await sendAndReceive({
      body: "<h1>Report</h1><table><tr><td>rows</td><td>42</td></tr></table>",
      body_format: "HTML",
    });
    expectPass(await verify(mail.raw));
  });

  it("UTF-8 in the subject, the display names and the body", async () => {
    const subject = uniqueSubject("Prüfbericht – 東京 ✓");
    const mail = await sendAndReceive({
      subject,
      recipients: '"Zoë Åström" <zoe@example.net>',
      body: "Grüße aus Köln — 日本語のテキスト — emoji 🚀",
    });
    expect(mail.parsed.subject).toBe(subject);
    expectPass(await verify(mail.raw));
  });

  it("attachments, one large enough to be streamed from the database", async () => {
    const large = Buffer.alloc(2_000_000, "0123456789abcdef\r\n");
    const mail = await withSettings(db, { MaxFileSize: "3000000" }, () =>
      sendAndReceive({
        body: "two files",
        attachments: [
          { filename: "small.csv", content: Buffer.from("id,name\n1,Zoë\n"), contentType: "text/csv" },
          { filename: "large.bin", content: large, contentType: "application/octet-stream" },
        ],
      }),
    );
    expect(mail.parsed.attachments.map((a) => a.size)).toEqual([15, large.length]);
    expectPass(await verify(mail.raw));
  });

  it("a message changed on the way fails", async () => {
    const mail = await sendAndReceive({ body: "Transfer 100 EUR to account 1234." });
    expectPass(await verify(mail.raw));
    const changed = (from: string, to: string) =>
      Buffer.from(mail.raw.toString("latin1").replace(from, to), "latin1");
    // mailauth's verdict for a body that no longer matches the signed body hash is "neutral"
    // (RFC 6376 6.1.3: the signature does not verify), never "pass".
    const [body] = await verify(changed("100 EUR", "900 EUR"));
    expect(body?.status).toMatchObject({ result: "neutral", comment: "body hash did not verify" });
    const [header] = await verify(changed(`Subject: ${mail.parsed.subject}`, "Subject: Urgent"));
    expect(header?.status.result).toBe("fail");
  });
});
