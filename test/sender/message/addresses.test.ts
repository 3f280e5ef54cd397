// Who a delivered message is from and to (SPEC sections 3 and 7), as a recipient's mail client reads it
// (mailparser) after real SMTP: From and Reply-To from the account or the call, To and Cc with their
// display names, and Bcc recipients only in the envelope.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { addresses, headerLine, rawHeaders, useMessages } from "./support.js";

const { sendAndReceive } = useMessages();

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
