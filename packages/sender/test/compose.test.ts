// The message the sender composes for an item sent through an account (src/smtp/compose.ts and
// src/smtp/raw-message.ts), read from its bytes without sending it: the header fields a recipient sees,
// the body's parts and transfer encodings, and what goes to nodemailer with and without attachments.
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import type { ClaimedItem, ProfileAccount } from "../src/rows.js";
import { composeForSending, composeMessage, messageFields } from "../src/smtp/compose.js";
import { composeRawMessage } from "../src/smtp/raw-message.js";
import { ACCOUNT, claimedItem, decodeWords } from "./fixtures.js";

const DATE = new Date(Date.UTC(2026, 11, 1, 10, 0, 0));
const BOUNDARY = "0123456789abcdef";

interface Composed {
  /** The header fields in order, folded lines joined. */
  headers: [name: string, value: string][];
  body: string;
  raw: string;
}

function compose(overrides: Partial<ClaimedItem> = {}, account: ProfileAccount = ACCOUNT): Composed {
  const { raw } = composeRawMessage(messageFields(claimedItem(overrides), account), {
    date: DATE,
    baseBoundary: BOUNDARY,
  });
  const text = raw.toString("utf8");
  const end = text.indexOf("\r\n\r\n");
  const headers = text
    .slice(0, end)
    .replace(/\r\n[ \t]+/g, " ")
    .split("\r\n")
    .map((line): [string, string] => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 2)]);
  return { headers, body: text.slice(end + 4), raw: text };
}

/** The value of the one field called `name` (case-insensitive), undefined when there is none. */
function field(message: Composed, name: string): string | undefined {
  const found = message.headers.filter(([key]) => key.toLowerCase() === name.toLowerCase());
  expect(found.length, `${name} fields`).toBeLessThanOrEqual(1);
  return found[0]?.[1];
}

describe("the header fields", () => {
  it("come in nodemailer's order, Content-Type last, with the item's identity and the given date", () => {
    const message = compose({ mailitem_id: "42", message_id: "<42.abc@example.com>", subject: "Report" });
    expect(message.headers).toEqual([
      ["X-Dbmail-Mailitem-ID", "42"],
      ["From", "Database Mail <dbmail@example.com>"],
      ["To", "to@example.org"],
      ["Subject", "Report"],
      ["Message-ID", "<42.abc@example.com>"],
      ["Content-Transfer-Encoding", "7bit"],
      ["Date", "Tue, 01 Dec 2026 10:00:00 +0000"],
      ["MIME-Version", "1.0"],
      ["Content-Type", "text/plain; charset=utf-8"],
    ]);
  });

  it("From is the account's display name and address, or from_address; Reply-To the item's or the account's", () => {
    const account = { ...ACCOUNT, replyto_address: "replies@example.com" };
    const plain = compose({}, account);
    expect(field(plain, "From")).toBe("Database Mail <dbmail@example.com>");
    expect(field(plain, "Reply-To")).toBe("replies@example.com");
    const overridden = compose(
      { from_address: "ops@example.net", reply_to: '"Support" <help@example.net>' },
      account,
    );
    expect(field(overridden, "From")).toBe("ops@example.net");
    expect(field(overridden, "Reply-To")).toBe("Support <help@example.net>");
    const bare = compose({}, { ...ACCOUNT, display_name: null });
    expect(field(bare, "From")).toBe("dbmail@example.com");
    expect(field(bare, "Reply-To")).toBeUndefined();
  });

  it("To and Cc carry the display names, quoted where they must be; Bcc is only in the envelope", () => {
    const item = claimedItem({
      envelope: {
        to: [
          { name: "Doe, Jane", address: "jane@example.org" },
          { name: null, address: "bob@example.org" },
        ],
        cc: [{ name: "Carol", address: "carol@example.org" }],
        bcc: [{ name: "Secret Person", address: "hidden@example.org" }],
      },
    });
    const { raw, envelope } = composeRawMessage(messageFields(item, ACCOUNT), { date: DATE });
    const text = raw.toString("utf8");
    expect(text).toContain('\r\nTo: "Doe, Jane" <jane@example.org>, bob@example.org\r\n');
    expect(text).toContain("\r\nCc: Carol <carol@example.org>\r\n");
    expect(text).not.toMatch(/^Bcc:/im);
    expect(text).not.toContain("hidden@example.org");
    expect(text).not.toContain("Secret Person");
    expect(envelope.bcc).toEqual([{ name: "Secret Person", address: "hidden@example.org" }]);
    expect(envelope.from).toEqual({ name: "Database Mail", address: "dbmail@example.com" });
  });

  it("are 7-bit and folded: non-ASCII subjects, names and header values become encoded words", () => {
    const subject = "Grüße aus Köln – 😀 日本語 ".repeat(6).trim();
    const message = compose({
      subject,
      envelope: { to: [{ name: "Zoë Ærø", address: "zoe@example.org" }], cc: [], bcc: [] },
      headers: { "X-Note": "café ☕" },
    });
    const head = message.raw.slice(0, message.raw.indexOf("\r\n\r\n"));
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the check is for bytes outside 7-bit ASCII
    expect(head).toMatch(/^[\x00-\x7f]*$/);
    expect(head.split("\r\n").every((line) => line.length <= 78)).toBe(true);
    expect(decodeWords(field(message, "Subject") ?? "")).toBe(subject);
    expect(decodeWords(field(message, "To") ?? "")).toBe("Zoë Ærø <zoe@example.org>");
    expect(decodeWords(field(message, "X-Note") ?? "")).toBe("café ☕");
  });

  it("include the headers parameter's, first and in the usual casing, threading headers as given", () => {
    const message = compose({
      headers: { "x-custom-id": "T-1", "In-Reply-To": "<parent@example.com>", references: "<a@x> <b@x>" },
    });
    expect(message.headers.slice(0, 4)).toEqual([
      ["X-Custom-ID", "T-1"],
      ["In-Reply-To", "<parent@example.com>"],
      ["References", "<a@x> <b@x>"],
      ["X-Dbmail-Mailitem-ID", message.headers[3]?.[1] as string],
    ]);
  });

  it.each([
    [
      "HIGH",
      [
        ["X-Priority", "1 (Highest)"],
        ["X-Msmail-Priority", "High"],
        ["Importance", "High"],
      ],
    ],
    [
      "LOW",
      [
        ["X-Priority", "5 (Lowest)"],
        ["X-Msmail-Priority", "Low"],
        ["Importance", "Low"],
      ],
    ],
    ["NORMAL", []],
  ] as const)("importance %s adds %j", (importance, expected) => {
    const priority = compose({ importance }).headers.filter(([key]) => /priority|importance/i.test(key));
    expect(priority).toEqual(expected);
  });

  it.each([
    ["PERSONAL", "Personal"],
    ["PRIVATE", "Private"],
    ["CONFIDENTIAL", "Company-Confidential"],
    ["NORMAL", undefined],
  ] as const)("sensitivity %s is Sensitivity: %s", (sensitivity, expected) => {
    expect(field(compose({ sensitivity }), "Sensitivity")).toBe(expected);
  });
});

describe("the body", () => {
  it("short ASCII text is sent as it is, 7bit", () => {
    const message = compose({ body: "Hello,\r\n\r\nall fine.\r\n" });
    expect(field(message, "Content-Transfer-Encoding")).toBe("7bit");
    expect(message.body).toBe("Hello,\r\n\r\nall fine.\r\n");
  });

  it("mostly Latin text with accents, or a line over 76 characters, is quoted-printable", () => {
    const accents = compose({ body: "données à côté" });
    expect(field(accents, "Content-Transfer-Encoding")).toBe("quoted-printable");
    expect(accents.body).toBe("donn=C3=A9es =C3=A0 c=C3=B4t=C3=A9\r\n");
    const long = compose({ body: "x".repeat(100) });
    expect(field(long, "Content-Transfer-Encoding")).toBe("quoted-printable");
    expect(long.body).toBe(`${"x".repeat(75)}=\r\n${"x".repeat(25)}\r\n`);
  });

  it("text mostly outside Latin script is base64", () => {
    const body = "日本語のテキスト。\n".repeat(10);
    const message = compose({ body });
    expect(field(message, "Content-Transfer-Encoding")).toBe("base64");
    expect(message.body.split("\r\n").every((line) => line.length <= 76)).toBe(true);
    expect(Buffer.from(message.body, "base64").toString("utf8")).toBe(body);
  });

  it.each([
    ["empty", ""],
    ["NULL", null],
  ])("an %s body is an empty text/plain part without a charset or an encoding", (_what, body) => {
    const message = compose({ body });
    expect(field(message, "Content-Type")).toBe("text/plain");
    expect(field(message, "Content-Transfer-Encoding")).toBeUndefined();
    expect(message.body).toBe("");
  });

  it("HTML is multipart/alternative: a plain-text part derived from it, then the HTML as given", () => {
    const html =
      "<h1>Title</h1><p>Hi <b>there</b> &amp; welcome</p>" +
      "<table><tr><th>name</th><th>count</th></tr><tr><td>alpha</td><td>1</td></tr></table>";
    const message = compose({ body_format: "HTML", body: html });
    const boundary = `--_NmP-${BOUNDARY}-Part_1`;
    expect(field(message, "Content-Type")).toBe(`multipart/alternative; boundary="${boundary}"`);
    expect(field(message, "Content-Transfer-Encoding")).toBeUndefined();
    const parts = message.body.split(`--${boundary}`);
    expect(parts).toHaveLength(4);
    expect(parts[0]).toBe("");
    expect(parts[3]).toBe("--\r\n");
    expect(parts[1]).toBe(
      "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" +
        "TITLE\n\nHi there & welcome\n\nname    count\nalpha   1\r\n",
    );
    expect(parts[2]).toMatch(
      /^\r\nContent-Type: text\/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n/,
    );
    const qp = (parts[2] as string).slice((parts[2] as string).indexOf("\r\n\r\n") + 4);
    expect(qp.replace(/=\r\n/g, "").replace(/\r\n$/, "")).toBe(html);
  });

  it("HTML without any text keeps only the HTML part", () => {
    const message = compose({ body_format: "HTML", body: "<p></p>" });
    expect(field(message, "Content-Type")).toBe("text/html; charset=utf-8");
    expect(message.body).toBe("<p></p>\r\n");
  });

  it("every message ends with a line break", () => {
    for (const body of ["no line break", "ends with CR\r", "ends with LF\n", "日本語"]) {
      expect(compose({ body }).raw.endsWith("\n"), body).toBe(true);
    }
  });
});

describe("what goes to nodemailer", () => {
  it("without attachments: the finished message, its envelope and Message-ID, no file or URL access", () => {
    const item = claimedItem({ message_id: "<m.1@example.com>" });
    const options = composeForSending(item, ACCOUNT, []);
    expect(Buffer.isBuffer(options.raw)).toBe(true);
    expect(options.raw?.toString()).toMatch(/\r\nMessage-ID: <m\.1@example\.com>\r\n/);
    expect(options.messageId).toBe("<m.1@example.com>");
    expect(options.envelope).toEqual({
      from: { name: "Database Mail", address: "dbmail@example.com" },
      to: [{ name: "", address: "to@example.org" }],
      cc: [],
      bcc: [],
    });
    expect(options).toMatchObject({ disableFileAccess: true, disableUrlAccess: true });
  });

  it("with attachments: the fields for nodemailer to compose, each attachment's type only when stored", () => {
    const stream = Readable.from([Buffer.from("streamed")]);
    const options = composeForSending(claimedItem({ subject: "files" }), ACCOUNT, [
      { filename: "a.txt", contentType: "text/plain", content: Buffer.from("x") },
      { filename: "scan.pdf", contentType: null, content: stream },
    ]);
    expect(options.raw).toBeUndefined();
    expect(options.subject).toBe("files");
    expect(options.attachments).toEqual([
      { filename: "a.txt", contentType: "text/plain", content: Buffer.from("x") },
      { filename: "scan.pdf", content: stream },
    ]);
    expect(options).toMatchObject({ disableFileAccess: true, disableUrlAccess: true });
    expect(composeMessage(claimedItem(), ACCOUNT, []).attachments).toEqual([]);
  });
});
