// Attachments as their recipient gets them (SPEC sections 3 and 7) after real SMTP: byte-exact whatever
// their bytes and size, with their names (non-ASCII too) and content types (derived from the name when
// none is stored), in the order they were added, beside a text or an HTML body.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { type StoredAttachment, sha256, useMessages } from "./support.js";

const { sendWithAttachments } = useMessages();

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
    const files: StoredAttachment[] = [
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
