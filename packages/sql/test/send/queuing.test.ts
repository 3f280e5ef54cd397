// sp_send_dbmail with a valid message: what it returns and queues, how it normalises and stores each field,
// the Message-ID, the parsed envelope, and who may see and send it (SPEC.md sections 3 and 5).
import { describe, expect, it } from "vitest";
import { type MailItem, message, useSendDatabase } from "../support/send.js";

const t = useSendDatabase();
const { send, refused, sendAndRead, item, queued } = t;

describe("a valid message", () => {
  it("returns the new mailitem_id and queues one unsent item owned by the caller", async () => {
    const before = await queued();
    const id = await send({
      profile_name: "Main",
      recipients: "to@example.org",
      copy_recipients: "cc@example.org",
      blind_copy_recipients: "bcc@example.org",
      subject: "Backup done",
      body: "All good.",
    });
    expect(id).toMatch(/^[1-9][0-9]*$/);
    expect(await queued()).toBe(before + 1);

    const { rows } = await t.alice.query("SELECT * FROM dbmail.sysmail_allitems WHERE mailitem_id = $1", [
      id,
    ]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      mailitem_id: id,
      profile_id: t.mainProfileId,
      recipients: "to@example.org",
      copy_recipients: "cc@example.org",
      blind_copy_recipients: "bcc@example.org",
      subject: "Backup done",
      body: "All good.",
      body_format: "TEXT",
      importance: "NORMAL",
      sensitivity: "NORMAL",
      sent_status: "unsent",
      send_request_user: t.aliceRole.name,
      last_mod_user: t.aliceRole.name,
      send_attempts: 0,
      query_result_format: "TEXT",
      from_address: null,
      reply_to: null,
      headers: null,
      send_at: null,
      idempotency_key: null,
    });
  });

  it("stores body_format, importance and sensitivity upper-case, whatever case they were given in", async () => {
    const stored = await sendAndRead(
      message({ body_format: "html", importance: "high", sensitivity: "Confidential" }),
    );
    expect(stored.body_format).toBe("HTML");
    expect(stored.importance).toBe("HIGH");
    expect(stored.sensitivity).toBe("CONFIDENTIAL");
  });

  it.each([
    ["body_format", "Text", "TEXT"],
    ["body_format", " HTML ", "HTML"],
    ["importance", "low", "LOW"],
    ["importance", "Normal", "NORMAL"],
    ["sensitivity", "personal", "PERSONAL"],
    ["sensitivity", "PRIVATE", "PRIVATE"],
    ["query_result_format", "csv", "CSV"],
    ["query_result_format", "Html", "HTML"],
    ["query_result_format", "json", "JSON"],
  ])("accepts %s %j and stores %j", async (parameter, given, stored) => {
    const row = await sendAndRead(message({ [parameter]: given }));
    expect(row[parameter as keyof MailItem]).toBe(stored);
  });

  it("treats body_format NULL as TEXT", async () => {
    expect((await sendAndRead(message({ body_format: null }))).body_format).toBe("TEXT");
  });

  it.each([
    ["NULL", null],
    ["empty", ""],
  ])("replaces a %s subject with 'PostgreSQL Message'", async (_label, subject) => {
    const stored = await sendAndRead(message({ subject }));
    expect(stored.subject).toBe("PostgreSQL Message");
    expect(stored.body).toBe("Body");
  });

  it("fixes the item's Message-ID at its first claim: the item id, the time it was queued, the installation id and the account's domain", async () => {
    const id = await send(message());
    expect((await item(id)).message_id).toBeNull();
    const { rows } = await t.db.query<{ queued: string }>(
      "SELECT to_hex((date_part('epoch', send_request_date) * 1000000)::bigint) AS queued FROM dbmail.mailitems WHERE mailitem_id = $1",
      [id],
    );
    expect(await t.messageId(id)).toBe(`<dbmail.${id}.${rows[0]?.queued}.${t.installationHex}@example.com>`);
    expect(t.installationHex).toMatch(/^[0-9a-f]{32}$/);
  });

  it("gives a Message-ID of its own to an item that gets an id a lost item had (a standby promoted before replaying it)", async () => {
    const lost = await send(message());
    const lostMessageId = await t.messageId(lost);
    await t.db.query("DELETE FROM dbmail.mailitems WHERE mailitem_id = $1", [lost]);
    await t.db.query("SELECT setval(pg_get_serial_sequence('dbmail.mailitems', 'mailitem_id'), $1, false)", [
      lost,
    ]);
    const again = await send(message());
    expect(again).toBe(lost);
    expect(await t.messageId(again)).not.toBe(lostMessageId);
  });

  it("takes the Message-ID's domain from from_address when one is given", async () => {
    const id = await send(message({ from_address: "Ops <ops@ops.example.net>" }));
    expect(await t.messageId(id)).toMatch(
      new RegExp(`^<dbmail\\.${id}\\.[0-9a-f]{13,}\\.${t.installationHex}@ops\\.example\\.net>$`),
    );
  });

  it("stores the parsed envelope with display names", async () => {
    const stored = await sendAndRead(
      message({
        recipients: '"Doe, Jane" <jane@x.org>; John Smith <john@x.org>',
        copy_recipients: "<bare@x.org>",
        blind_copy_recipients: '"Jane \\"JJ\\" Doe" <jj@x.org>;plain@y.org',
      }),
    );
    expect(stored.envelope).toEqual({
      to: [
        { name: "Doe, Jane", address: "jane@x.org" },
        { name: "John Smith", address: "john@x.org" },
      ],
      cc: [{ name: null, address: "bare@x.org" }],
      bcc: [
        { name: 'Jane "JJ" Doe', address: "jj@x.org" },
        { name: null, address: "plain@y.org" },
      ],
    });
    expect(stored.recipients).toBe('"Doe, Jane" <jane@x.org>; John Smith <john@x.org>');
  });

  it("accepts a message with a subject only", async () => {
    const stored = await sendAndRead(message({ subject: "Only a subject", body: undefined }));
    expect(stored.subject).toBe("Only a subject");
    expect(stored.body).toBeNull();
  });

  it("accepts a message with a body only", async () => {
    const stored = await sendAndRead(message({ subject: undefined, body: "Only a body" }));
    expect(stored.subject).toBe("PostgreSQL Message");
    expect(stored.body).toBe("Only a body");
  });

  it("accepts Bcc-only mail", async () => {
    const stored = await sendAndRead(
      message({ recipients: undefined, blind_copy_recipients: "hidden@x.org" }),
    );
    expect(stored.recipients).toBeNull();
    expect(stored.copy_recipients).toBeNull();
    expect(stored.blind_copy_recipients).toBe("hidden@x.org");
    expect(stored.envelope).toEqual({ to: [], cc: [], bcc: [{ name: null, address: "hidden@x.org" }] });
  });

  it("shows the item to its sender but not to another user", async () => {
    const id = await send(message());
    const mine = await t.alice.query(
      "SELECT mailitem_id FROM dbmail.sysmail_allitems WHERE mailitem_id = $1",
      [id],
    );
    const theirs = await t.bob.query(
      "SELECT mailitem_id FROM dbmail.sysmail_allitems WHERE mailitem_id = $1",
      [id],
    );
    expect(mine.rows).toEqual([{ mailitem_id: id }]);
    expect(theirs.rows).toEqual([]);
  });

  it("records the sending role of each user", async () => {
    const stored = await sendAndRead(message(), t.bob);
    expect(stored.send_request_user).toBe(t.bobRole.name);
    expect(stored.last_mod_user).toBe(t.bobRole.name);
  });

  it("refuses a role that is not a member of dbmail_user", async () => {
    const outsider = await t.db.connect(t.outsiderRole);
    const error = await refused(message(), outsider);
    expect(error.code).toBe("42501");
  });
});
