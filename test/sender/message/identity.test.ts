// The identity of a delivered message and of its item (SPEC sections 3 and 7): Message-ID and
// X-DBMail-Mailitem-Id, the Date header, extra and threading headers from the headers parameter, and the
// item as recorded after delivery (sent once, through its account, with the server's reply).
import { describe, expect, it } from "vitest";
import { sleep, uniqueSubject } from "../../support/mail.js";
import { decodeWords, header, headerLine, rawHeaders, SENDER_ID, useMessages } from "./support.js";

const messages = useMessages();
const { send, receivedWithSubject, sendAndReceive, itemRow } = messages;

describe("identity headers and extra headers", () => {
  it("Message-ID is the item's message_id and X-DBMail-Mailitem-Id its mailitem_id", async () => {
    const { id, mail } = await sendAndReceive({ body: "ids" });
    const row = await itemRow(id);
    expect(row.message_id).toMatch(/^<dbmail\.\d+\.[0-9a-f]{13,}\.[0-9a-f]{32}@example\.com>$/);
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

describe("the item after delivery", () => {
  it("is sent, through the account, with the server's 250 reply, by this sender, in one attempt", async () => {
    const { id } = await sendAndReceive({ body: "status" });
    const row = await itemRow(id);
    expect(row.sent_status).toBe("sent");
    expect(row.sent_account_id).toBe(messages.accountId);
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
    await sleep(1000);
    expect(messages.smtp.received.filter((m) => m.parsed.subject === subject)).toHaveLength(1);
  });
});
