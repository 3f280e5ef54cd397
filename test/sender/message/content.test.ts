// What a message's content looks like to its recipient (SPEC sections 3 and 7) after real SMTP: the
// subject (UTF-8, encoded words, the default for none), text and HTML bodies (with the derived plain-text
// part), and the Importance, X-Priority and Sensitivity headers.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { uniqueSubject } from "../../support/mail.js";
import { addresses, header, headerLine, rawHeaders, useMessages } from "./support.js";

const { send, receivedWhere, receivedWithSubject, sendAndReceive } = useMessages();

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
