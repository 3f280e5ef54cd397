// What a message must hold (subject, body) and the header injection sp_send_dbmail refuses: line breaks
// in the subject and the addresses, and the extra headers of parameter headers (SPEC.md section 3).
import { describe, expect, it } from "vitest";
import { expectError } from "../../../../test/support/mail.js";
import { message, useSendDatabase } from "../support/send.js";

const t = useSendDatabase();
const { refused, sendAndRead } = t;

describe("content", () => {
  it.each([
    ["all NULL", {}],
    ["empty subject and body", { subject: "", body: "" }],
  ])("refuses a message with no body, query, attachments or subject (%s)", async (_label, content) => {
    const error = await refused({ profile_name: "Main", recipients: "to@example.org", ...content });
    expectError(
      error,
      "22004",
      "body, query, file_attachments, attachments, subject",
      null,
      "a message needs at least one of these",
    );
  });

  it("accepts a 998-character subject and refuses a 999-character one", async () => {
    expect((await sendAndRead(message({ subject: "s".repeat(998) }))).subject).toHaveLength(998);
    const long = "s".repeat(999);
    const error = await refused(message({ subject: long }));
    expectError(error, "22023", "subject", long, "is longer than 998 characters");
  });
});

describe("header injection", () => {
  it.each([
    ["CRLF", "Hi\r\nBcc: evil@attacker.example"],
    ["LF", "Hi\nBcc: evil@attacker.example"],
    ["CR", "Hi\rBcc: evil@attacker.example"],
    ["another control character", "Hi\u000bthere"],
  ])("refuses %s in the subject, showing it escaped", async (_label, subject) => {
    const error = await refused(message({ subject }));
    expectError(
      error,
      "22023",
      "subject",
      subject,
      "line breaks and control characters are not allowed here",
    );
    expect(error.message).not.toMatch(/[\r\n]/);
  });

  it("shows the escaped line break literally in the message", async () => {
    const error = await refused(message({ subject: "Hi\r\nBcc: evil@attacker.example" }));
    expect(error.message).toContain('subject: "Hi\\r\\nBcc: evil@attacker.example"');
  });

  it("accepts a tab in the subject", async () => {
    expect((await sendAndRead(message({ subject: "a\tb" }))).subject).toBe("a\tb");
  });

  it.each([
    ["recipients", "Jane\r\nBcc: evil@attacker.example <jane@x.org>"],
    ["recipients", '"Jane\nDoe" <jane@x.org>'],
    ["from_address", "ops@x.org\r\nBcc: evil@attacker.example"],
    ["from_address", "Ops\r\nBcc: evil@attacker.example <ops@x.org>"],
    ["reply_to", "help@x.org\nBcc: evil@attacker.example"],
    ["reply_to", '"Help\r\nDesk" <help@x.org>'],
  ])("refuses a line break in %s %j", async (parameter, value) => {
    const error = await refused(message({ [parameter]: value }));
    expectError(error, "22023", parameter, value, "line breaks and control characters are not allowed here");
  });

  describe("headers", () => {
    it("stores valid extra headers, including threading headers", async () => {
      const headers = {
        "X-Tag": "v",
        "List-Unsubscribe": "<mailto:unsubscribe@x.org>",
        "In-Reply-To": "<dbmail.1.abc@x.org>",
        References: "<dbmail.1.abc@x.org>",
      };
      expect((await sendAndRead(message({ headers }))).headers).toEqual(headers);
    });

    it.each([
      ["an array", '["X-Tag", "v"]', '["X-Tag", "v"]'],
      ["a string", '"X-Tag: v"', '"X-Tag: v"'],
      ["a number", "42", "42"],
      ["JSON null", "null", "null"],
    ])("refuses %s", async (_label, json, text) => {
      const error = await refused(message({ headers: json }));
      expectError(error, "22023", "headers", text, 'must be a JSON object {"X-Name": "value"}');
    });

    it.each([
      ["a space", "X Tag"],
      ["a colon", "X:Tag"],
      ["an empty name", ""],
      ["a non-ASCII letter", "X-Tëst"],
      ["a line break", "X-A\r\nBcc"],
      ["77 characters", `X-${"n".repeat(75)}`],
    ])("refuses a header name with %s", async (_label, name) => {
      const error = await refused(message({ headers: { [name]: "v" } }));
      expectError(
        error,
        "22023",
        "headers",
        name,
        "not a valid header name (printable ASCII without spaces or colons, at most 76 characters)",
      );
    });

    it("accepts a 76-character header name", async () => {
      const name = `X-${"n".repeat(74)}`;
      expect((await sendAndRead(message({ headers: { [name]: "v" } }))).headers).toEqual({ [name]: "v" });
    });

    it.each([
      "From",
      "to",
      "Cc",
      "BCC",
      "Subject",
      "Date",
      "Message-ID",
      "message-id",
      "Reply-To",
      "Sender",
      "Return-Path",
      "MIME-Version",
      "Content-Type",
      "content-transfer-encoding",
      "X-DBMail-Mailitem-Id",
      "Importance",
      "X-Priority",
      "Sensitivity",
    ])("refuses to override %s", async (name) => {
      const error = await refused(message({ headers: { [name]: "x" } }));
      expectError(
        error,
        "22023",
        "headers",
        name,
        "this header is set by Database Mail and cannot be overridden",
      );
    });

    it.each([
      ["a number", 1, "1"],
      ["a boolean", true, "true"],
      ["null", null, "null"],
      ["an object", { a: 1 }, '{"a": 1}'],
      ["an array", ["a"], '["a"]'],
    ])("refuses %s as a value", async (_label, value, text) => {
      const error = await refused(message({ headers: { "X-Tag": value } }));
      expectError(error, "22023", "headers", `X-Tag: ${text}`, "header values must be JSON strings");
    });

    it.each([
      ["CRLF", "a\r\nBcc: evil@attacker.example"],
      ["LF", "a\nBcc: evil@attacker.example"],
      ["CR", "a\rBcc: evil@attacker.example"],
    ])("refuses %s in a value", async (_label, value) => {
      const error = await refused(message({ headers: { "X-Tag": value } }));
      expectError(
        error,
        "22023",
        "headers",
        `X-Tag: ${value}`,
        "line breaks and control characters are not allowed here",
      );
    });

    it("refuses a value over 998 characters", async () => {
      const error = await refused(message({ headers: { "X-Long": "v".repeat(999) } }));
      expectError(error, "22023", "headers", "X-Long", "the value is longer than 998 characters");
    });
  });
});
