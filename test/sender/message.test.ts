// What a recipient sees: the message the sender composes from a queued item, delivered over real SMTP and
// parsed with mailparser (SPEC sections 3 and 7).
import { createHash, randomBytes } from "node:crypto";
import type { Sender } from "@pg-dbmail/sender";
import type { AddressObject, EmailAddress } from "mailparser";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole } from "../support/database.js";
import { addAccount, eventually, startSender } from "../support/sender.js";
import { type ReceivedMail, TestSmtpServer } from "../support/smtp.js";

let db: TestDatabase;
let smtp: TestSmtpServer;
let sender: Sender;
let senderRole: TestRole;
let appRole: TestRole;
let app: pg.Client;
let admin: pg.Client;
let accountId: number;

const SENDER_ID = "sender-x";

beforeAll(async () => {
  db = await TestDatabase.create();
  smtp = await TestSmtpServer.start();
  senderRole = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
  appRole = await db.createRole("app", { memberOf: ["dbmail_user"] });
  app = await db.connect(appRole);
  admin = await db.connect();
  accountId = await addAccount(db, "main", smtp, {
    display_name: "Database Mail",
    replyto_address: "replies@example.com",
  });
  await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'p')");
  await db.query(
    "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'p', account_name => 'main', sequence_number => 1)",
  );
  await db.query(
    "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'p', is_default => true)",
  );
  // A second profile whose account has neither a display name nor a reply-to address.
  await addAccount(db, "plain", smtp);
  await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'bare')");
  await db.query(
    "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'bare', account_name => 'plain', sequence_number => 1)",
  );
  await db.query(
    "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'bare', is_default => false)",
  );
  sender = await startSender(senderRole, { senderId: SENDER_ID });
});

afterAll(async () => {
  await sender?.stop();
  await smtp?.stop();
  await db?.drop();
});

let counter = 0;
/** A subject no other test uses, so a test finds its own message among all received. */
function uniqueSubject(label: string): string {
  counter += 1;
  return `${label} #${counter} ${randomBytes(3).toString("hex")}`;
}

/** Calls sp_send_dbmail with named arguments on `client` (the app role by default); returns mailitem_id. */
async function send(args: Record<string, unknown>, client: pg.Client = app): Promise<string> {
  const names = Object.keys(args);
  const call = names.map((n, i) => `${n} => $${i + 1}${n === "headers" ? "::jsonb" : ""}`).join(", ");
  const values = names.map((n) => (n === "headers" && args[n] !== null ? JSON.stringify(args[n]) : args[n]));
  const { rows } = await client.query<{ id: string }>(`SELECT dbmail.sp_send_dbmail(${call}) AS id`, values);
  return String(rows[0]?.id);
}

/** The first received message matching `match`, waiting for it. */
function receivedWhere(match: (m: ReceivedMail) => boolean): Promise<ReceivedMail> {
  return eventually(async () => smtp.received.find(match));
}

function receivedWithSubject(subject: string): Promise<ReceivedMail> {
  return receivedWhere((m) => m.parsed.subject === subject);
}

/** Sends as the app role and waits for the message at the SMTP server. */
async function sendAndReceive(args: Record<string, unknown>): Promise<{ id: string; mail: ReceivedMail }> {
  const subject = (args.subject as string | undefined) ?? uniqueSubject("message");
  const id = await send({ recipients: "to@example.org", ...args, subject });
  return { id, mail: await receivedWithSubject(subject) };
}

interface NewAttachment {
  filename: string;
  content: Buffer;
  contentType: string | null;
}

/**
 * Queues a message as superuser and adds attachment rows in the same transaction, so the sender cannot
 * claim the item before its attachments exist (sp_send_dbmail does not take attachments yet).
 */
async function sendWithAttachments(
  args: Record<string, unknown>,
  attachments: NewAttachment[],
): Promise<{ id: string; mail: ReceivedMail }> {
  const subject = uniqueSubject((args.subject as string | undefined) ?? "attachments");
  await admin.query("BEGIN");
  try {
    const id = await send({ recipients: "to@example.org", ...args, subject }, admin);
    for (const a of attachments) {
      await admin.query(
        `INSERT INTO dbmail.attachments (mailitem_id, filename, content_type, filesize, attachment, last_mod_user)
         VALUES ($1, $2, $3, $4, $5, current_user)`,
        [id, a.filename, a.contentType, a.content.length, a.content],
      );
    }
    await admin.query("COMMIT");
    return { id, mail: await receivedWithSubject(subject) };
  } catch (error) {
    await admin.query("ROLLBACK").catch(() => {});
    throw error;
  }
}

function addresses(field: AddressObject | AddressObject[] | undefined): EmailAddress[] {
  if (!field) return [];
  return (Array.isArray(field) ? field : [field]).flatMap((a) => a.value);
}

function header(mail: ReceivedMail, name: string): unknown {
  return mail.parsed.headers.get(name.toLowerCase());
}

/** The value of a header as it stands in the message (unfolded, not decoded); mailparser folds some away. */
function headerLine(mail: ReceivedMail, name: string): string | undefined {
  const line = mail.parsed.headerLines.find((h) => h.key === name.toLowerCase())?.line;
  return line
    ?.slice(line.indexOf(":") + 1)
    .replace(/\r?\n[ \t]+/g, " ")
    .trim();
}

/** Decodes RFC 2047 encoded words (UTF-8, B or Q), joining adjacent ones as RFC 2047 says. */
function decodeWords(value: string): string {
  return value
    .replace(/(=\?[^?]+\?[BbQq]\?[^?]*\?=)\s+(?==\?)/g, "$1")
    .replace(/=\?UTF-8\?([BbQq])\?([^?]*)\?=/gi, (_, encoding: string, text: string) =>
      encoding.toUpperCase() === "B"
        ? Buffer.from(text, "base64").toString("utf8")
        : Buffer.from(
            text
              .replace(/_/g, " ")
              .replace(/=([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))),
            "latin1",
          ).toString("utf8"),
    );
}

/** The raw header block (up to the first empty line), as text. */
function rawHeaders(mail: ReceivedMail): string {
  const raw = mail.raw.toString("latin1");
  const end = raw.search(/\r?\n\r?\n/);
  return end < 0 ? raw : raw.slice(0, end);
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

async function itemRow(id: string) {
  return eventually(async () => {
    const { rows } = await app.query(
      `SELECT mailitem_id::text, message_id, sent_status, sent_account_id, smtp_response, sent_by, send_attempts,
              sent_date, last_error
       FROM dbmail.sysmail_allitems WHERE mailitem_id = $1 AND sent_status = 'sent'`,
      [id],
    );
    return rows[0] as
      | {
          mailitem_id: string;
          message_id: string;
          sent_status: string;
          sent_account_id: number;
          smtp_response: string | null;
          sent_by: string | null;
          send_attempts: number;
          sent_date: Date | null;
          last_error: string | null;
        }
      | undefined;
  });
}

describe("From and Reply-To", () => {
  it("come from the account: display name and address, and its reply-to address", async () => {
    const { mail } = await sendAndReceive({ body: "from the account" });
    expect(addresses(mail.parsed.from)).toEqual([{ name: "Database Mail", address: "main@example.com" }]);
    expect(addresses(mail.parsed.replyTo).map((a) => a.address)).toEqual(["replies@example.com"]);
    expect(mail.envelope.from).toBe("main@example.com");
  });

  it("from_address overrides the account's From, display name included", async () => {
    const { mail } = await sendAndReceive({
      body: "from an override",
      from_address: '"Ops \\"Night\\" Shift, Team; 2" <ops@example.net>',
    });
    expect(addresses(mail.parsed.from)).toEqual([
      { name: 'Ops "Night" Shift, Team; 2', address: "ops@example.net" },
    ]);
    expect(rawHeaders(mail)).not.toContain("Database Mail");
  });

  it("an account without display name or reply-to: From is the bare address, no Reply-To", async () => {
    const { mail } = await sendAndReceive({ profile_name: "bare", body: "plain account" });
    expect(addresses(mail.parsed.from)).toEqual([{ name: "", address: "plain@example.com" }]);
    expect(headerLine(mail, "reply-to")).toBeUndefined();
    expect(mail.envelope.from).toBe("plain@example.com");
  });

  it("from_address without a display name is just that address", async () => {
    const { mail } = await sendAndReceive({ body: "bare from", from_address: "bare@example.net" });
    expect(addresses(mail.parsed.from)).toEqual([{ name: "", address: "bare@example.net" }]);
  });

  it("reply_to overrides the account's Reply-To", async () => {
    const { mail } = await sendAndReceive({
      body: "reply elsewhere",
      reply_to: '"Support Desk" <support@example.net>',
    });
    expect(addresses(mail.parsed.replyTo)).toEqual([
      { name: "Support Desk", address: "support@example.net" },
    ]);
    expect(rawHeaders(mail)).not.toContain("replies@example.com");
  });
});

describe("recipients", () => {
  it("To and Cc carry the display names, quoted ones with commas intact", async () => {
    const { mail } = await sendAndReceive({
      recipients: '"Doe, Jane" <jane@example.org>; bob@example.org',
      copy_recipients: 'Carol Smith <carol@example.org>;"Müller, Jürgen" <juergen@example.de>',
      body: "names",
    });
    expect(addresses(mail.parsed.to)).toEqual([
      { name: "Doe, Jane", address: "jane@example.org" },
      { name: "", address: "bob@example.org" },
    ]);
    expect(addresses(mail.parsed.cc)).toEqual([
      { name: "Carol Smith", address: "carol@example.org" },
      { name: "Müller, Jürgen", address: "juergen@example.de" },
    ]);
    expect([...mail.envelope.to].sort()).toEqual(
      ["bob@example.org", "carol@example.org", "jane@example.org", "juergen@example.de"].sort(),
    );
  });

  it("a display name with escaped quotes arrives unescaped", async () => {
    const { mail } = await sendAndReceive({
      recipients: '"Jane \\"JD\\" Doe" <jd@example.org>',
      body: "quotes",
    });
    expect(addresses(mail.parsed.to)).toEqual([{ name: 'Jane "JD" Doe', address: "jd@example.org" }]);
  });

  it("Bcc recipients get the message through the envelope but appear in no header", async () => {
    const hidden = `hidden-${randomBytes(4).toString("hex")}@bcc.example`;
    const { mail } = await sendAndReceive({
      recipients: "visible@example.org",
      copy_recipients: "copied@example.org",
      blind_copy_recipients: `"Secret Person" <${hidden}>`,
      body: "bcc",
    });
    expect(mail.envelope.to).toContain(hidden);
    expect(mail.envelope.to).toHaveLength(3);
    expect(mail.parsed.headers.has("bcc")).toBe(false);
    expect(mail.parsed.bcc).toBeUndefined();
    expect(addresses(mail.parsed.to).map((a) => a.address)).toEqual(["visible@example.org"]);
    expect(addresses(mail.parsed.cc).map((a) => a.address)).toEqual(["copied@example.org"]);
    expect(mail.raw.toString("latin1")).not.toContain(hidden);
    expect(mail.raw.toString("latin1")).not.toContain("Secret Person");
  });

  it("a message with only Bcc recipients is delivered without revealing them", async () => {
    const hidden = `only-${randomBytes(4).toString("hex")}@bcc.example`;
    const { mail } = await sendAndReceive({
      recipients: null,
      blind_copy_recipients: hidden,
      body: "only bcc",
    });
    expect(mail.envelope.to).toEqual([hidden]);
    expect(mail.raw.toString("latin1")).not.toContain(hidden);
    expect(mail.parsed.headers.has("bcc")).toBe(false);
  });
});

describe("subject and body", () => {
  const unicode = "Grüße aus Köln – Straße 🎉📬 日本語のテスト 中文 한국어";

  it("a UTF-8 subject arrives intact and is encoded in the header", async () => {
    // Long enough to be folded over several encoded words: no character may be split between them.
    const subject = uniqueSubject(`${unicode} `.repeat(8));
    const id = await send({ recipients: "to@example.org", subject, body: "x" });
    const mail = await receivedWithSubject(subject);
    expect(mail.parsed.subject).toBe(subject);
    expect(rawHeaders(mail)).toMatch(/=\?UTF-8\?/i);
    expect(header(mail, "x-dbmail-mailitem-id")).toBe(id);
  });

  it("headers are 7-bit: no raw UTF-8 bytes in the header block", async () => {
    const { mail } = await sendAndReceive({
      subject: uniqueSubject("Ümlaut 🎉"),
      recipients: '"Zoë Ærø" <zoe@example.org>',
      body: unicode,
    });
    const head = rawHeaders(mail);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the check is for bytes outside 7-bit ASCII
    expect(head).toMatch(/^[\x00-\x7f]*$/);
    expect(addresses(mail.parsed.to)).toEqual([{ name: "Zoë Ærø", address: "zoe@example.org" }]);
  });

  it("a UTF-8 text body arrives intact", async () => {
    const body = `${unicode}\nZweite Zeile: äöüÄÖÜß\n🙂 Ende`;
    const { mail } = await sendAndReceive({ body });
    expect(mail.parsed.text?.replace(/\r\n/g, "\n").trimEnd()).toBe(body);
  });

  it("a very long line and a lone dot line survive SMTP transport", async () => {
    const long = "x".repeat(3000);
    const body = `first\n.\n..\n${long}\nlast`;
    const { mail } = await sendAndReceive({ body });
    expect(mail.parsed.text?.replace(/\r\n/g, "\n").trimEnd()).toBe(body);
  });

  it("a NULL subject arrives as 'PostgreSQL Message'", async () => {
    const marker = `null-subject-${randomBytes(4).toString("hex")}`;
    const id = await send({ recipients: "to@example.org", subject: null, body: marker });
    const mail = await receivedWhere((m) => (m.parsed.text ?? "").includes(marker));
    expect(mail.parsed.subject).toBe("PostgreSQL Message");
    expect(header(mail, "x-dbmail-mailitem-id")).toBe(id);
  });

  it("an empty subject arrives as 'PostgreSQL Message'", async () => {
    const marker = `empty-subject-${randomBytes(4).toString("hex")}`;
    await send({ recipients: "to@example.org", subject: "", body: marker });
    const mail = await receivedWhere((m) => (m.parsed.text ?? "").includes(marker));
    expect(mail.parsed.subject).toBe("PostgreSQL Message");
  });

  it("a TEXT body is a single text/plain part, with no HTML", async () => {
    const { mail } = await sendAndReceive({ body: "plain <b>not bold</b>" });
    const contentType = header(mail, "content-type") as { value: string; params: Record<string, string> };
    expect(contentType.value).toBe("text/plain");
    expect(contentType.params.charset?.toLowerCase()).toBe("utf-8");
    expect(mail.parsed.html).toBe(false);
    expect(mail.parsed.text?.trimEnd()).toBe("plain <b>not bold</b>");
    expect(mail.raw.toString("latin1")).not.toMatch(/multipart\//i);
  });

  it("an HTML body is multipart/alternative: the HTML as given plus a derived plain-text part", async () => {
    const html =
      "<html><body><h1>Quarterly Report</h1><p>Revenue is <b>up</b> by <i>12%</i> — schön!</p>" +
      "<ul><li>Alpha</li><li>Beta</li></ul></body></html>";
    const { mail } = await sendAndReceive({ body: html, body_format: "HTML" });
    const contentType = header(mail, "content-type") as { value: string };
    expect(contentType.value).toBe("multipart/alternative");
    expect(mail.parsed.html).toBe(html);
    const raw = mail.raw.toString("latin1");
    expect(raw).toMatch(/Content-Type: text\/plain/i);
    expect(raw).toMatch(/Content-Type: text\/html/i);
    const text = mail.parsed.text ?? "";
    for (const word of ["Quarterly Report", "Revenue", "up", "12%", "schön", "Alpha", "Beta"]) {
      expect(text.toLowerCase()).toContain(word.toLowerCase());
    }
    expect(text).not.toMatch(/<\/?[a-z][^>]*>/i);
  });

  it("the plain-text part decodes entities and leaves out style and script", async () => {
    const { mail } = await sendAndReceive({
      body: "<style>p { color: red }</style><p>Tom &amp; Jerry &lt;3 &euro;5</p><script>var secret = 1;</script>",
      body_format: "HTML",
    });
    const text = (mail.parsed.text ?? "").trim();
    expect(text).toBe("Tom & Jerry <3 €5");
  });

  it("body_format is case-insensitive: 'html' sends HTML", async () => {
    const { mail } = await sendAndReceive({ body: "<p>lower-case <em>format</em></p>", body_format: "html" });
    expect(mail.parsed.html).toBe("<p>lower-case <em>format</em></p>");
    expect((mail.parsed.text ?? "").trim()).toBe("lower-case format");
  });
});

describe("importance and sensitivity", () => {
  it("HIGH importance: Importance high and X-Priority 1", async () => {
    const { mail } = await sendAndReceive({ body: "urgent", importance: "HIGH" });
    expect(headerLine(mail, "importance")?.toLowerCase()).toBe("high");
    expect(headerLine(mail, "x-priority")).toMatch(/^1\b/);
    expect(header(mail, "priority")).toBe("high");
  });

  it("LOW importance (given in lower case): Importance low and X-Priority 5", async () => {
    const { mail } = await sendAndReceive({ body: "whenever", importance: "low" });
    expect(headerLine(mail, "importance")?.toLowerCase()).toBe("low");
    expect(headerLine(mail, "x-priority")).toMatch(/^5\b/);
    expect(header(mail, "priority")).toBe("low");
  });

  it("NORMAL importance and sensitivity add neither header", async () => {
    const { mail } = await sendAndReceive({ body: "ordinary", importance: "NORMAL", sensitivity: "NORMAL" });
    expect(headerLine(mail, "importance")).toBeUndefined();
    expect(headerLine(mail, "x-priority")).toBeUndefined();
    expect(mail.parsed.headers.has("priority")).toBe(false);
    expect(mail.parsed.headers.has("sensitivity")).toBe(false);
  });

  it.each([
    ["PERSONAL", "Personal"],
    ["PRIVATE", "Private"],
    ["CONFIDENTIAL", "Company-Confidential"],
  ])("sensitivity %s arrives as Sensitivity: %s", async (sensitivity, expected) => {
    const { mail } = await sendAndReceive({ body: "sensitive", sensitivity });
    expect(header(mail, "sensitivity")).toBe(expected);
  });
});

describe("identity headers and extra headers", () => {
  it("Message-ID is the item's message_id and X-DBMail-Mailitem-Id its mailitem_id", async () => {
    const { id, mail } = await sendAndReceive({ body: "ids" });
    const row = await itemRow(id);
    expect(row.message_id).toMatch(/^<dbmail\.\d+\.[0-9a-f]+@example\.com>$/);
    expect(mail.parsed.messageId).toBe(row.message_id);
    const key = [...mail.parsed.headers.keys()].find((k) => k.toLowerCase() === "x-dbmail-mailitem-id");
    expect(key).toBeDefined();
    expect(String(mail.parsed.headers.get(key as string))).toBe(id);
    expect(rawHeaders(mail)).toMatch(new RegExp(`^X-DBMail-Mailitem-Id: ${id}\\r?$`, "im"));
  });

  it("with from_address, the Message-ID uses that address's domain", async () => {
    const { id, mail } = await sendAndReceive({ body: "domain", from_address: "ops@sender.example.net" });
    const row = await itemRow(id);
    expect(row.message_id).toMatch(/@sender\.example\.net>$/);
    expect(mail.parsed.messageId).toBe(row.message_id);
  });

  it("has a Date header close to the send time", async () => {
    const before = Date.now();
    const { mail } = await sendAndReceive({ body: "dated" });
    expect(mail.parsed.headers.has("date")).toBe(true);
    const date = mail.parsed.date?.getTime() ?? 0;
    expect(Math.abs(date - before)).toBeLessThan(60_000);
  });

  it("extra headers from the headers parameter arrive, threading headers included", async () => {
    const { mail } = await sendAndReceive({
      body: "threaded",
      headers: {
        "X-Tag": "nightly-report",
        "X-Unicode": "Grüße 🎉",
        "In-Reply-To": "<original.1@example.org>",
        References: "<root.0@example.org> <original.1@example.org>",
      },
    });
    expect(header(mail, "x-tag")).toBe("nightly-report");
    expect(decodeWords(headerLine(mail, "x-unicode") ?? "")).toBe("Grüße 🎉");
    expect(mail.parsed.inReplyTo).toBe("<original.1@example.org>");
    expect(mail.parsed.references).toEqual(["<root.0@example.org>", "<original.1@example.org>"]);
  });
});

describe("attachments", () => {
  it("a binary attachment with every byte value arrives byte-exact, with its name and type", async () => {
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const { mail } = await sendWithAttachments({ body: "see attached" }, [
      { filename: "all-bytes.bin", content: bytes, contentType: "application/octet-stream" },
    ]);
    expect(mail.parsed.attachments).toHaveLength(1);
    const [a] = mail.parsed.attachments;
    expect(a?.filename).toBe("all-bytes.bin");
    expect(a?.contentType).toBe("application/octet-stream");
    expect(Buffer.compare(a?.content ?? Buffer.alloc(0), bytes)).toBe(0);
    expect(mail.parsed.text?.trimEnd()).toBe("see attached");
  });

  it("a 1 MB random attachment arrives byte-exact", async () => {
    const bytes = randomBytes(1024 * 1024);
    const { mail } = await sendWithAttachments({ body: "big one" }, [
      { filename: "random.dat", content: bytes, contentType: "application/x-random" },
    ]);
    const [a] = mail.parsed.attachments;
    expect(a?.size).toBe(bytes.length);
    expect(sha256(a?.content ?? Buffer.alloc(0))).toBe(sha256(bytes));
    expect(a?.contentType).toBe("application/x-random");
  });

  it("a non-ASCII filename arrives decoded, and UTF-8 text content is kept exactly", async () => {
    const content = Buffer.from("Monat;Umsatz\nMärz;1.234,56 €\n", "utf8");
    const { mail } = await sendWithAttachments({ body: "Bericht" }, [
      { filename: "Bericht für März.csv", content, contentType: "text/csv" },
    ]);
    const [a] = mail.parsed.attachments;
    expect(a?.filename).toBe("Bericht für März.csv");
    expect(a?.contentType).toBe("text/csv");
    expect(Buffer.compare(a?.content ?? Buffer.alloc(0), content)).toBe(0);
  });

  it("several attachments arrive in the order they were added", async () => {
    const files: NewAttachment[] = [
      { filename: "c-first.txt", content: Buffer.from("one"), contentType: "text/plain" },
      { filename: "a-second.json", content: Buffer.from('{"n":2}'), contentType: "application/json" },
      { filename: "b-third.bin", content: randomBytes(100), contentType: "application/octet-stream" },
    ];
    const { mail } = await sendWithAttachments({ body: "three files" }, files);
    expect(mail.parsed.attachments.map((a) => a.filename)).toEqual(files.map((f) => f.filename));
    expect(mail.parsed.attachments.map((a) => a.contentType)).toEqual(files.map((f) => f.contentType));
    mail.parsed.attachments.forEach((a, i) => {
      expect(Buffer.compare(a.content, files[i]?.content ?? Buffer.alloc(0))).toBe(0);
    });
  });

  it("an empty attachment arrives empty; one without a content type gets one from its name", async () => {
    const { mail } = await sendWithAttachments({ body: "edge cases" }, [
      { filename: "empty.txt", content: Buffer.alloc(0), contentType: "text/plain" },
      { filename: "scan.pdf", content: Buffer.from("%PDF-1.4\n%%EOF\n"), contentType: null },
    ]);
    expect(mail.parsed.attachments.map((a) => [a.filename, a.contentType, a.size])).toEqual([
      ["empty.txt", "text/plain", 0],
      ["scan.pdf", "application/pdf", 15],
    ]);
  });

  it("an HTML body with an attachment keeps both the HTML and the plain-text alternative", async () => {
    const html = "<p>Report <strong>attached</strong></p>";
    const pdf = Buffer.concat([Buffer.from("%PDF-1.4\n"), randomBytes(2000)]);
    const { mail } = await sendWithAttachments({ body: html, body_format: "HTML" }, [
      { filename: "report.pdf", content: pdf, contentType: "application/pdf" },
    ]);
    expect(mail.parsed.html).toBe(html);
    expect((mail.parsed.text ?? "").trim()).toBe("Report attached");
    expect(mail.parsed.attachments.map((a) => a.filename)).toEqual(["report.pdf"]);
    expect(Buffer.compare(mail.parsed.attachments[0]?.content ?? Buffer.alloc(0), pdf)).toBe(0);
  });
});

describe("the item after delivery", () => {
  it("is sent, through the account, with the server's 250 reply, by this sender, in one attempt", async () => {
    const { id } = await sendAndReceive({ body: "status" });
    const row = await itemRow(id);
    expect(row.sent_status).toBe("sent");
    expect(row.sent_account_id).toBe(accountId);
    expect(row.smtp_response).toMatch(/^250/);
    expect(row.sent_by).toBe(SENDER_ID);
    expect(row.send_attempts).toBe(1);
    expect(row.sent_date).toBeInstanceOf(Date);
    expect(row.last_error).toBeNull();
  });

  it("each item is delivered exactly once", async () => {
    const subject = uniqueSubject("once");
    const id = await send({ recipients: "once@example.org", subject, body: "once" });
    await receivedWithSubject(subject);
    await itemRow(id);
    // Give a second delivery (a reclaim or a duplicate claim) the chance to happen.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(smtp.received.filter((m) => m.parsed.subject === subject)).toHaveLength(1);
  });
});
