// The denial-of-service limits of dbmail.queue_mail (issue 5; SPEC.md sections 3 and 4): the settings
// MaxRecipientsPerMail, MaxMailSize and MaxMailsPerUserPerDay themselves, then MaxRecipientsPerMail at, just
// under and just over its boundary; a refusal is 54000, reads `<parameter>: <value>: <problem>`, and queues
// nothing.
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import { configure, expectError, setting, withSettings } from "../../../../test/support/mail.js";
import { message, useSendDatabase } from "../support/send.js";

const t = useSendDatabase();
const { send, refused } = t;

/** `n` distinct addresses, `;`-separated. */
function addresses(n: number, prefix = "r"): string {
  return Array.from({ length: n }, (_, i) => `${prefix}${i}@example.org`).join(";");
}

describe("the settings", () => {
  it("have safe defaults: 100 recipients, 10 MiB per mail, no daily limit", async () => {
    expect(await setting(t.db, "MaxRecipientsPerMail")).toBe("100");
    expect(await setting(t.db, "MaxMailSize")).toBe("10485760");
    expect(await setting(t.db, "MaxMailsPerUserPerDay")).toBe("0");
    const { rows } = await t.db.query<{ description: string }>(
      "SELECT description FROM dbmail.sysmail_help_configure_sp() WHERE paramname LIKE 'MaxMail%' OR paramname = 'MaxRecipientsPerMail'",
    );
    expect(rows).toHaveLength(3);
    for (const row of rows) expect(row.description).toMatch(/0 = unlimited/);
  });

  it.each([
    { name: "MaxRecipientsPerMail", high: "1000000" },
    { name: "MaxMailSize", high: "1073741823" },
    { name: "MaxMailsPerUserPerDay", high: "100000000" },
  ])("$name accepts 0 to $high, normalised", async ({ name, high }) => {
    await withSettings(t.db, { [name]: "0" }, async () => {
      expect(await setting(t.db, name)).toBe("0");
      await configure(t.db, name, ` 0${high} `);
      expect(await setting(t.db, name)).toBe(high);
      await configure(t.db, name, "1");
      expect(await setting(t.db, name)).toBe("1");
    });
  });

  it.each([
    { name: "MaxRecipientsPerMail", high: "1000000", value: "-1" },
    { name: "MaxRecipientsPerMail", high: "1000000", value: "abc" },
    { name: "MaxRecipientsPerMail", high: "1000000", value: "1000001" },
    { name: "MaxMailSize", high: "1073741823", value: "-1" },
    { name: "MaxMailSize", high: "1073741823", value: "10MB" },
    { name: "MaxMailSize", high: "1073741823", value: "1.5" },
    { name: "MaxMailSize", high: "1073741823", value: "1073741824" },
    { name: "MaxMailsPerUserPerDay", high: "100000000", value: "-5" },
    { name: "MaxMailsPerUserPerDay", high: "100000000", value: "" },
    { name: "MaxMailsPerUserPerDay", high: "100000000", value: "ten" },
    { name: "MaxMailsPerUserPerDay", high: "100000000", value: "100000001" },
  ])("$name refuses $value with 22023 and keeps its value", async ({ name, high, value }) => {
    const before = await setting(t.db, name);
    const error = await errorOf(configure(t.db, name, value));
    expectError(error, "22023", "parameter_value", value, `${name} must be a whole number from 0 to ${high}`);
    expect(await setting(t.db, name)).toBe(before);
  });

  it("are matched case-insensitively, like every setting", async () => {
    await withSettings(t.db, { maxrecipientspermail: "7" }, async () => {
      expect(await setting(t.db, "MaxRecipientsPerMail")).toBe("7");
    });
    expect(await setting(t.db, "MaxRecipientsPerMail")).toBe("100");
  });
});

describe("MaxRecipientsPerMail", () => {
  // Counted as the lists are parsed: the refusal comes at the first address over the limit.
  const problem = (_n: number, max: number) =>
    `more than MaxRecipientsPerMail (${max}) recipients, to, cc and bcc together`;

  it("accepts exactly the limit and one under, to, cc and bcc together", async () => {
    await withSettings(t.db, { MaxRecipientsPerMail: "5" }, async () => {
      await send(
        message({
          recipients: addresses(2),
          copy_recipients: addresses(2, "c"),
          blind_copy_recipients: "b@example.org",
        }),
      );
      await send(message({ recipients: addresses(4) }));
      await send(message({ recipients: addresses(5) }));
    });
  });

  it("refuses one over, naming the list that went over, and queues nothing", async () => {
    await withSettings(t.db, { MaxRecipientsPerMail: "5" }, async () => {
      const to = addresses(6);
      expectError(await refused(message({ recipients: to })), "54000", "recipients", to, problem(6, 5));
      const cc = addresses(3, "c");
      expectError(
        await refused(message({ recipients: addresses(3), copy_recipients: cc })),
        "54000",
        "copy_recipients",
        cc,
        problem(6, 5),
      );
      const bcc = "b1@example.org; b2@example.org";
      expectError(
        await refused(
          message({
            recipients: addresses(2),
            copy_recipients: addresses(2, "c"),
            blind_copy_recipients: bcc,
          }),
        ),
        "54000",
        "blind_copy_recipients",
        bcc,
        problem(6, 5),
      );
      // Only bcc: the count still covers it.
      const onlyBcc = addresses(6, "b");
      expectError(
        await refused(message({ recipients: undefined, blind_copy_recipients: onlyBcc })),
        "54000",
        "blind_copy_recipients",
        onlyBcc,
        problem(6, 5),
      );
    });
  });

  it("counts every address as given, duplicates included", async () => {
    await withSettings(t.db, { MaxRecipientsPerMail: "2" }, async () => {
      const to = "same@example.org;same@example.org;Same <same@example.org>";
      expectError(await refused(message({ recipients: to })), "54000", "recipients", to, problem(3, 2));
    });
  });

  it("by default allows 100 recipients and refuses 101", async () => {
    await send(message({ recipients: addresses(100) }));
    await send(message({ recipients: addresses(60), copy_recipients: addresses(40, "c") }));
    const error = await refused(message({ recipients: addresses(101) }));
    expect(error.code).toBe("54000");
    expect(error.message).toMatch(
      /^recipients: ".*": more than MaxRecipientsPerMail \(100\) recipients, to, cc and bcc together$/,
    );
  });

  it("0 means unlimited", async () => {
    await withSettings(t.db, { MaxRecipientsPerMail: "0" }, async () => {
      await send(message({ recipients: addresses(300) }));
    });
  });

  it("applies to admins too", async () => {
    await withSettings(t.db, { MaxRecipientsPerMail: "1" }, async () => {
      const to = addresses(2);
      expectError(
        await refused(message({ recipients: to }), t.boss),
        "54000",
        "recipients",
        to,
        problem(2, 1),
      );
    });
  });

  // sp_send_dbmail reads the limits from a copy that triggers keep (system_state): a change made around
  // sysmail_configure_sp, by an admin's UPDATE or a DELETE of the row, applies as well.
  it("follows a setting changed directly in dbmail.settings, and one deleted (unlimited)", async () => {
    const to = addresses(3);
    try {
      await t.db.query(
        "UPDATE dbmail.settings SET paramvalue = '2' WHERE paramname = 'MaxRecipientsPerMail'",
      );
      expectError(await refused(message({ recipients: to })), "54000", "recipients", to, problem(3, 2));
      await t.db.query("DELETE FROM dbmail.settings WHERE paramname = 'MaxRecipientsPerMail'");
      await send(message({ recipients: addresses(300) }));
    } finally {
      await t.db.query(
        `INSERT INTO dbmail.settings (paramname, paramvalue) VALUES ('MaxRecipientsPerMail', '100')
         ON CONFLICT (paramname) DO UPDATE SET paramvalue = '100'`,
      );
    }
    const error = await refused(message({ recipients: addresses(101) }));
    expect(error.message).toMatch(/more than MaxRecipientsPerMail \(100\) recipients/);
  });
});
