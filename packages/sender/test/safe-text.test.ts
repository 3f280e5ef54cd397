import { describe, expect, it } from "vitest";
import { safeText } from "../src/safe-text.js";
import { serverText } from "../src/smtp/classify.js";

describe("safeText", () => {
  it("makes control and format characters visible, keeps emoji, folds line breaks", () => {
    expect(safeText("a\u0000b\u001b[2Jc\u007f\u0085 \u202eevil\u200b 👨‍👩‍👧\r\n next\tline")).toBe(
      "a\\x00b\\x1b[2Jc\\x7f\\x85 \\u202eevil\\u200b 👨‍👩‍👧 next line",
    );
  });

  it("replaces unpaired surrogates and cuts long text, saying how much was cut", () => {
    expect(safeText("x\ud800y")).toBe("x\ufffdy");
    expect(safeText("a".repeat(30), 10)).toBe("aaaaaaaaaa… (20 more characters)");
  });
});

describe("serverText", () => {
  it("reads a reply nodemailer decoded byte for byte as UTF-8, invalid bytes as U+FFFD", () => {
    const bytes = Buffer.concat([Buffer.from("250 Grüße "), Buffer.from([0xff])]);
    expect(serverText(bytes.toString("latin1"))).toBe("250 Grüße \ufffd");
  });
});
