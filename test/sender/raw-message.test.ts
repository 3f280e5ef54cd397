// The direct composition of messages without attachments (packages/sender/src/smtp/raw-message.ts) against
// nodemailer's own (MailComposer): both delivered over real SMTP to smtp-server, then the bytes that arrived
// and mailparser's reading of them compared, for awkward inputs.
import nodemailer, { type SendMailOptions, type Transporter } from "nodemailer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Address, ClaimedItem, ProfileAccount } from "../../packages/sender/src/rows.js";
import { composeForSending, composeMessage, messageFields } from "../../packages/sender/src/smtp/compose.js";
import { composeRawMessage } from "../../packages/sender/src/smtp/raw-message.js";
import { ACCOUNT, claimedItem as item } from "../../packages/sender/test/fixtures.js";
import { type ReceivedMail, TestSmtpServer } from "../support/smtp.js";

let smtp: TestSmtpServer;
let transport: Transporter;

beforeAll(async () => {
  smtp = await TestSmtpServer.start();
  transport = nodemailer.createTransport({
    host: "127.0.0.1",
    port: smtp.port,
    secure: false,
    ignoreTLS: true,
  });
});

afterAll(async () => {
  transport?.close();
  await smtp?.stop();
});

const BASE_BOUNDARY = "0123456789abcdef";

async function deliver(options: SendMailOptions): Promise<ReceivedMail> {
  const before = smtp.received.length;
  await transport.sendMail(options);
  return (await smtp.waitFor(before + 1))[before] as ReceivedMail;
}

/** The message as it arrived, with the Date field's value (the moment of composition) left out. */
function withoutDate(raw: Buffer): string {
  return raw.toString("latin1").replace(/\r\nDate: [^\r\n]*/, "\r\nDate: -");
}

/** Sends the item both ways and checks that the same message arrived. */
async function compareBothWays(
  claimed: ClaimedItem,
  account: ProfileAccount = ACCOUNT,
): Promise<{ composed: ReceivedMail; direct: ReceivedMail }> {
  const composed = await deliver({ ...composeMessage(claimed, account, []), baseBoundary: BASE_BOUNDARY });
  const { raw, envelope, messageId } = composeRawMessage(messageFields(claimed, account), {
    baseBoundary: BASE_BOUNDARY,
  });
  const direct = await deliver({ raw, envelope, messageId });

  expect(direct.envelope).toEqual(composed.envelope);
  expect(withoutDate(direct.raw)).toBe(withoutDate(composed.raw));
  // And as a mail client reads them.
  const read = (m: ReceivedMail) => ({
    subject: m.parsed.subject,
    from: m.parsed.from?.value,
    to: m.parsed.to,
    cc: m.parsed.cc,
    bcc: m.parsed.bcc,
    replyTo: m.parsed.replyTo?.value,
    messageId: m.parsed.messageId,
    text: m.parsed.text,
    html: m.parsed.html,
    priority: m.parsed.priority,
    headers: [...m.parsed.headers].filter(([key]) => key !== "date"),
  });
  expect(read(direct)).toEqual(read(composed));
  // What every message must be on the wire, whichever way it was composed.
  const text = direct.raw.toString("latin1");
  expect(text).not.toMatch(/\r(?!\n)|(?<!\r)\n/);
  expect(text.split("\r\n").every((line) => line.length <= 998)).toBe(true);
  expect(text.split("\r\n\r\n")[0]).not.toMatch(/^Bcc:/im);
  return { composed, direct };
}

const addresses = (prefix: string, n: number, named = false): Address[] =>
  Array.from({ length: n }, (_, i) => ({
    name: named ? `Recipient ${i}, “${prefix}” ü` : null,
    address: `${prefix}${i}@example.org`,
  }));

describe("messages composed directly are the messages nodemailer composes", () => {
  it("a plain short text", async () => {
    const { direct } = await compareBothWays(item());
    expect(direct.parsed.text).toBe("Hello,\n\na short body.\n");
    expect(direct.parsed.headers.get("x-dbmail-mailitem-id")).toBeDefined();
  });

  it("non-ASCII subject and display names, names that need quoting", async () => {
    const { direct } = await compareBothWays(
      item({
        subject: "Rapport trimestriel – données 😀 日本語",
        envelope: {
          to: [
            { name: "Jürgen Groß", address: "juergen@example.org" },
            { name: 'O\'Brien, "Pat"', address: "pat@example.org" },
          ],
          cc: [{ name: "山田太郎", address: "yamada@example.org" }],
          bcc: [],
        },
        from_address: '"Équipe Données" <data@example.com>',
      }),
      { ...ACCOUNT, display_name: "Base de données" },
    );
    expect(direct.parsed.subject).toBe("Rapport trimestriel – données 😀 日本語");
  });

  it("a very long subject, with and without spaces, ASCII and not", async () => {
    await compareBothWays(item({ subject: "word ".repeat(80).trim() }));
    await compareBothWays(item({ subject: "x".repeat(400) }));
    await compareBothWays(item({ subject: "données ".repeat(60).trim() }));
  });

  it("long body lines (quoted-printable) and a line longer than 998 characters", async () => {
    await compareBothWays(item({ body: `${"a".repeat(200)}\nshort\n${"word ".repeat(60)}\n` }));
    await compareBothWays(item({ body: "y".repeat(5000) }));
  });

  it("lines starting with a dot, a lone dot line, trailing whitespace", async () => {
    const { direct } = await compareBothWays(
      item({ body: ".leading dot\n..two dots\n.\nend \t\n\r\n.\r\nlast line  " }),
    );
    expect(direct.parsed.text).toContain(".leading dot");
  });

  it("lone LF and lone CR in the body, ASCII and not", async () => {
    await compareBothWays(item({ body: "one\ntwo\rthree\r\nfour\n\rfive\r" }));
    await compareBothWays(item({ body: "é\rü\nö\r\n" }));
  });

  it("an empty body and a NULL body", async () => {
    await compareBothWays(item({ body: "" }));
    await compareBothWays(item({ body: null }));
    await compareBothWays(item({ body: null, body_format: "HTML" }));
  });

  it("HTML bodies: multipart/alternative with the text part, and an HTML part alone", async () => {
    const { direct } = await compareBothWays(
      item({ body_format: "HTML", body: "<h1>Titre</h1><p>Données <b>importantes</b> 😀</p>" }),
    );
    expect(direct.parsed.html).toContain("<b>importantes</b>");
    expect(direct.parsed.text).toContain("TITRE");
    // No text to convert: the HTML part alone.
    await compareBothWays(item({ body_format: "HTML", body: "<p></p>" }));
  });

  it("bodies mostly outside Latin script (base64) and longer than the encoder's 64 KiB slices", async () => {
    await compareBothWays(item({ body: "日本語のテキスト。\n".repeat(20) }));
    await compareBothWays(item({ body: `${"données, ligne après ligne \n".repeat(3000)}fin` }));
  });

  it("every importance and sensitivity", async () => {
    for (const importance of ["LOW", "NORMAL", "HIGH"] as const) {
      for (const sensitivity of ["NORMAL", "PERSONAL", "PRIVATE", "CONFIDENTIAL"] as const) {
        await compareBothWays(item({ importance, sensitivity }));
      }
    }
  });

  it("custom headers, threading headers, reply_to and the account's reply-to address", async () => {
    await compareBothWays(
      item({
        headers: {
          "In-Reply-To": "<parent@example.com>",
          references: "<a@example.com> <b@example.com>",
          "x-custom-id": "café ☕",
          "X-Ticket": "T-1",
        },
        reply_to: '"Support" <support@example.com>',
      }),
    );
    await compareBothWays(item(), { ...ACCOUNT, replyto_address: "replies@example.com", display_name: null });
  });

  it("many To, Cc and Bcc recipients, repeated across the lists", async () => {
    const { direct } = await compareBothWays(
      item({
        envelope: {
          to: addresses("to", 40, true),
          cc: [...addresses("cc", 30), ...addresses("to", 3)],
          bcc: [...addresses("bcc", 30, true), ...addresses("cc", 2)],
        },
      }),
    );
    expect(direct.envelope.to).toHaveLength(100);
  });
});

describe("composeForSending", () => {
  it("composes a message without attachments directly, and one with attachments through nodemailer", () => {
    const plain = composeForSending(item(), ACCOUNT, []);
    expect(Buffer.isBuffer(plain.raw)).toBe(true);
    expect(plain.disableFileAccess && plain.disableUrlAccess).toBe(true);
    const attached = composeForSending(item(), ACCOUNT, [
      { filename: "a.txt", contentType: null, content: Buffer.from("x") },
    ]);
    expect(attached.raw).toBeUndefined();
    expect(attached.attachments).toHaveLength(1);
  });
});
