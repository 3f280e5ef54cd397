// The address parameters of sp_send_dbmail: recipients, copy_recipients and blind_copy_recipients (the ';'
// lists, display names, what is an e-mail address), and the single from_address and reply_to with the
// Message-ID domain they give (SPEC.md section 3).
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import { addAccount, expectError } from "../../../../test/support/mail.js";
import { addSendingProfile, message, useSendDatabase } from "../support/send.js";

const t = useSendDatabase();
const { refused, sendAndRead } = t;

describe("recipients", () => {
  it("splits on ';', ignoring spaces and a trailing ';'", async () => {
    const stored = await sendAndRead(message({ recipients: " a@x.org ;b@y.org;  ;c@z.org ; " }));
    expect(stored.envelope.to).toEqual([
      { name: null, address: "a@x.org" },
      { name: null, address: "b@y.org" },
      { name: null, address: "c@z.org" },
    ]);
  });

  it("refuses a comma outside quotes with SQL Server's advice", async () => {
    const error = await refused(message({ recipients: "a@x.org, b@y.org" }));
    expect(error.code).toBe("22023");
    expect(error.message).toBe(`recipients: "a@x.org, b@y.org": use ';' to separate addresses`);
  });

  it("refuses an unquoted display name with a comma", async () => {
    const recipients = '"Ann" <ann@x.org>; Doe, Jane <jane@x.org>';
    const error = await refused(message({ recipients }));
    expectError(error, "22023", "recipients", recipients, "use ';' to separate addresses");
  });

  it("accepts a comma and a ';' inside a quoted display name", async () => {
    const stored = await sendAndRead(
      message({ recipients: '"Doe, Jane" <jane@x.org>;"Smith; John" <john@x.org>' }),
    );
    expect(stored.envelope.to).toEqual([
      { name: "Doe, Jane", address: "jane@x.org" },
      { name: "Smith; John", address: "john@x.org" },
    ]);
  });

  it("refuses a double quote that is not closed", async () => {
    const recipients = 'ok@x.org; "Doe, Jane <jane@x.org>';
    const error = await refused(message({ recipients }));
    expectError(error, "22023", "recipients", recipients, "a double quote is not closed");
  });

  const domain243 = ["b", "c", "d", "e"].map((c) => c.repeat(60)).join(".");
  const tooLongLocal = `${"a".repeat(65)}@x.org`;
  const tooLongAddress = `${"f".repeat(11)}@${domain243}`;

  it.each([
    ["no @", "plainaddress", "not an e-mail address (no @)"],
    ["an empty local part", "@x.org", "not an e-mail address (nothing before the @)"],
    ["an empty domain", "jane@", "not an e-mail address (nothing after the @)"],
    ["two unquoted @", "a@b@x.org", "not a valid e-mail address (the part before the @)"],
    ["a space in the local part", "jane doe@x.org", "not a valid e-mail address (the part before the @)"],
    ["a space in the domain", "jane@x .org", "not a valid e-mail address (the domain)"],
    ["two dots in a row", "a..b@x.org", "not a valid e-mail address (the part before the @)"],
    ["a leading dot", ".a@x.org", "not a valid e-mail address (the part before the @)"],
    ["a trailing dot before the @", "a.@x.org", "not a valid e-mail address (the part before the @)"],
    ["a domain label starting with a hyphen", "a@-x.org", "not a valid e-mail address (the domain)"],
    ["a domain label ending with a hyphen", "a@x-.org", "not a valid e-mail address (the domain)"],
    ["an empty domain label", "a@x..org", "not a valid e-mail address (the domain)"],
    ["a domain starting with a dot", "a@.x.org", "not a valid e-mail address (the domain)"],
    ["an unclosed domain literal", "a@[192.168.0.1", "not a valid e-mail address (the domain)"],
    ["a local part over 64 characters", tooLongLocal, "the part before the @ is longer than 64 characters"],
    ["an address over 254 characters", tooLongAddress, "the address is longer than 254 characters"],
    [
      "a domain label over 63 characters",
      `a@${"d".repeat(64)}.org`,
      "a part of the domain is longer than 63 characters",
    ],
    ["a > without <", "jane@x.org>", "not a valid e-mail address (a > without <)"],
    ["a < without >", "Jane <jane@x.org", "not a valid e-mail address (the part before the @)"],
    ["empty angle brackets", "Jane <>", "an address is missing"],
    [
      "quotes inside an unquoted display name",
      'Jane "JJ" Doe <jj@x.org>',
      "a display name with special characters must be in double quotes",
    ],
  ])("refuses %s, naming the entry", async (_label, entry, problem) => {
    const error = await refused(message({ recipients: `ok@example.org; ${entry}` }));
    expectError(error, "22023", "recipients", entry, problem);
  });

  it.each([
    ["plus-addressing", "first.last+tag@example.org"],
    ["a quoted local part with a space", '"john doe"@example.org'],
    ["a quoted local part with , ; and @", '"a,b;c@d"@example.org'],
    ["a quoted local part with an escaped quote", '"say \\"hi\\""@example.org'],
    ["a domain literal", "user@[192.168.0.1]"],
    ["an IPv6 domain literal", "user@[IPv6:2001:db8::1]"],
    ["a single-label domain", "user@localhost"],
    ["unicode in both parts", "jöran@exämple.org"],
    ["an apostrophe", "o'brien@example.org"],
    ["every atext symbol", "!#$%&'*+/=?^_`{|}~-@example.org"],
    ["hyphens and digits in the domain", "x@a-b.3com.example"],
    ["a 64-character local part", `${"a".repeat(64)}@x.org`],
    ["a 254-character address", `${"f".repeat(10)}@${domain243}`],
  ])("accepts %s", async (_label, address) => {
    const stored = await sendAndRead(message({ recipients: address }));
    expect(stored.envelope.to).toEqual([{ name: null, address }]);
  });

  it("accepts tabs around entries, as in a list pasted from a spreadsheet", async () => {
    const stored = await sendAndRead(message({ recipients: "a@x.org;\tb@y.org\t" }));
    expect(stored.envelope.to).toEqual([
      { name: null, address: "a@x.org" },
      { name: null, address: "b@y.org" },
    ]);
  });

  it("accepts a valid address with a unicode display name", async () => {
    const stored = await sendAndRead(message({ recipients: "Jöran Ström <joran@example.se>" }));
    expect(stored.envelope.to).toEqual([{ name: "Jöran Ström", address: "joran@example.se" }]);
  });

  describe.each(["copy_recipients", "blind_copy_recipients"])("%s", (parameter) => {
    it("is parsed like recipients", async () => {
      const stored = await sendAndRead(
        message({ recipients: undefined, [parameter]: '"Doe, Jane" <jane@x.org>; b@y.org;' }),
      );
      const list = parameter === "copy_recipients" ? stored.envelope.cc : stored.envelope.bcc;
      expect(list).toEqual([
        { name: "Doe, Jane", address: "jane@x.org" },
        { name: null, address: "b@y.org" },
      ]);
    });

    it("refuses a comma outside quotes, naming the parameter", async () => {
      const error = await refused(message({ [parameter]: "a@x.org, b@y.org" }));
      expectError(error, "22023", parameter, "a@x.org, b@y.org", "use ';' to separate addresses");
    });

    it("refuses an invalid address, naming the parameter and the entry", async () => {
      const error = await refused(message({ [parameter]: "good@x.org;nobody" }));
      expectError(error, "22023", parameter, "nobody", "not an e-mail address (no @)");
    });

    it("refuses a double quote that is not closed", async () => {
      const error = await refused(message({ [parameter]: '"Jane <jane@x.org>' }));
      expectError(error, "22023", parameter, '"Jane <jane@x.org>', "a double quote is not closed");
    });

    it("refuses a line break (header injection)", async () => {
      const value = "a@x.org\r\nBcc: evil@attacker.example";
      const error = await refused(message({ [parameter]: value }));
      expectError(
        error,
        "22023",
        parameter,
        value,
        "line breaks and control characters are not allowed here",
      );
    });
  });

  it.each([
    ["all NULL", {}],
    ["empty and blank", { recipients: "", copy_recipients: "   ", blind_copy_recipients: "" }],
    ["only separators", { recipients: ";", copy_recipients: " ; ; " }],
  ])("refuses a message without recipients (%s)", async (_label, lists) => {
    const error = await refused({ profile_name: "Main", subject: "s", body: "b", ...lists });
    expectError(
      error,
      "22004",
      "recipients, copy_recipients, blind_copy_recipients",
      null,
      "a message needs at least one recipient",
    );
  });
});

describe("from_address and reply_to", () => {
  it("stores a single valid from_address and reply_to", async () => {
    const stored = await sendAndRead(
      message({ from_address: '"Ops, Night" <ops@ops.example>', reply_to: "help@desk.example" }),
    );
    expect(stored.from_address).toBe('"Ops, Night" <ops@ops.example>');
    expect(stored.reply_to).toBe("help@desk.example");
    expect(await t.messageId(stored.mailitem_id)).toMatch(
      new RegExp(`^<dbmail\\.${stored.mailitem_id}\\.[0-9a-f]{13,}\\.${t.installationHex}@ops\\.example>$`),
    );
  });

  it.each(["from_address", "reply_to"])("refuses two addresses in %s", async (parameter) => {
    const error = await refused(message({ [parameter]: "a@x.org;b@y.org" }));
    expectError(error, "22023", parameter, "a@x.org;b@y.org", "only one address is allowed here");
  });

  it.each(["from_address", "reply_to"])("refuses an invalid address in %s", async (parameter) => {
    const error = await refused(message({ [parameter]: "not-an-address" }));
    expectError(error, "22023", parameter, "not-an-address", "not an e-mail address (no @)");
  });

  it.each(["from_address", "reply_to"])("refuses a comma in %s", async (parameter) => {
    const error = await refused(message({ [parameter]: "a@x.org, b@y.org" }));
    expectError(error, "22023", parameter, "a@x.org, b@y.org", "use ';' to separate addresses");
  });

  // ';' parses to no address at all, yet would be stored and used as the From/Reply-To of the message.
  it.each(["from_address", "reply_to"])("refuses %s ';' that holds no address", async (parameter) => {
    const error = await refused(message({ [parameter]: ";" }));
    expect(error.code).toBe("22023");
    expect(error.message.startsWith(`${parameter}: ";": `)).toBe(true);
  });

  it("treats an empty from_address as none", async () => {
    const stored = await sendAndRead(message({ from_address: "" }));
    expect(stored.from_address).toBeNull();
    expect(await t.messageId(stored.mailitem_id)).toMatch(
      new RegExp(`^<dbmail\\.${stored.mailitem_id}\\.[0-9a-f]{13,}\\.${t.installationHex}@example\\.com>$`),
    );
  });

  it("takes the Message-ID's domain after the last @ of a quoted local part in from_address", async () => {
    const stored = await sendAndRead(message({ from_address: '"ops@desk"@from.example' }));
    expect(await t.messageId(stored.mailitem_id)).toMatch(
      new RegExp(`^<dbmail\\.${stored.mailitem_id}\\.[0-9a-f]{13,}\\.${t.installationHex}@from\\.example>$`),
    );
  });

  it("takes the Message-ID's domain after the last @ of a quoted local part in the account's address", async () => {
    await addAccount(t.db, {
      account_name: "quoted_acct",
      email_address: '"ops@desk"@acct.example',
      mailserver_name: "localhost",
    });
    await addSendingProfile(t.db, "QuotedAccount", "quoted_acct", "public");
    const stored = await sendAndRead(message({ profile_name: "QuotedAccount" }));
    expect(await t.messageId(stored.mailitem_id)).toMatch(
      new RegExp(`^<dbmail\\.${stored.mailitem_id}\\.[0-9a-f]{13,}\\.${t.installationHex}@acct\\.example>$`),
    );
  });

  // sysmail_add_account_sp accepts `Name <address>` as email_address; if it ever refuses that form, there is no
  // such account to send with and nothing to check here.
  it("never meets an account address given as `Name <address>`: add_account refuses it (the Message-ID domain is always a bare address's)", async () => {
    const error = await errorOf(
      addAccount(t.db, {
        account_name: "display_acct",
        email_address: "Mailer <mailer@disp.example>",
        mailserver_name: "localhost",
      }),
    );
    expect(error.code).toBe("22023");
    expect(error.message).toMatch(/^email_address: "Mailer <mailer@disp\.example>": /);
  });
});
