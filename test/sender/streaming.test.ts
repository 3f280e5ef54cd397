// Large attachments are streamed from the database a piece at a time (dbmail.sender_attachment_chunk),
// and every message passes a final check right before its end of DATA (the lease, in the sender): a
// refused check aborts the message, and the SMTP server keeps nothing of it.
import { randomBytes } from "node:crypto";
import nodemailer from "nodemailer";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chunkedStream } from "../../packages/sender/src/sender/attachment-stream.js";
import {
  FinalCheckRefused,
  finalCheckPlugin,
  withFinalCheck,
} from "../../packages/sender/src/smtp/final-check.js";
import { errorOf, TestDatabase, type TestRole } from "../support/database.js";
import { configure, profileWith, sleep } from "../support/mail.js";
import { addAccount } from "../support/sender.js";
import { TestSmtpServer } from "../support/smtp.js";

let db: TestDatabase;
let senderRole: TestRole;
let sender: pg.Client;
let smtp: TestSmtpServer;

beforeAll(async () => {
  db = await TestDatabase.create();
  senderRole = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
  sender = await db.connect(senderRole);
  smtp = await TestSmtpServer.start();
  await addAccount(db, "a", smtp);
  await profileWith(db, "p", ["a"]);
  await configure(db, "MaxFileSize", String(4 * 2 ** 20));
});

afterAll(async () => {
  await smtp?.stop();
  await db?.drop();
});

describe("dbmail.sender_attachment_chunk", () => {
  it("stores attachments uncompressed and out of line, so a piece reads only its own TOAST chunks", async () => {
    const { rows } = await db.query<{ attstorage: string }>(
      `SELECT attstorage FROM pg_attribute WHERE attrelid = 'dbmail.attachments'::regclass
        AND attname = 'attachment'`,
    );
    expect(rows[0]?.attstorage).toBe("e");
  });

  it("returns pieces of an attachment to the sender holding its item, and NULL to any other", async () => {
    const content = randomBytes(200_000);
    const { rows } = await db.query<{ id: string }>(
      `SELECT dbmail.sp_send_dbmail(profile_name => 'p', recipients => 'to@example.org', subject => 's',
              attachments => ARRAY[dbmail.attachment('a.bin', $1::bytea)]) AS id`,
      [content],
    );
    const id = rows[0]?.id as string;
    const { rows: stored } = await db.query<{ attachment_id: string }>(
      "SELECT attachment_id FROM dbmail.attachments WHERE mailitem_id = $1",
      [id],
    );
    const attachmentId = stored[0]?.attachment_id as string;
    let token: string | null = null;
    const chunk = async (senderId: string, offset: number, length: number, leaseToken = token) =>
      (
        await sender.query<{ chunk: Buffer | null }>(
          "SELECT dbmail.sender_attachment_chunk($1, $2, $3, $4, $5) AS chunk",
          [senderId, attachmentId, leaseToken, offset, length],
        )
      ).rows[0]?.chunk ?? null;

    expect(await chunk("s1", 0, 10)).toBeNull(); // not claimed yet
    const claimed = await sender.query(
      "SELECT mailitem_id, lease_token FROM dbmail.claim_mailitems('s1', 100, 60)",
    );
    expect(claimed.rows.map((r) => String(r.mailitem_id))).toContain(id);
    token = claimed.rows[0]?.lease_token;
    expect(await chunk("s1", 0, 10, null)).toBeNull(); // not without the claim's lease token

    expect((await chunk("s1", 0, 1000))?.equals(content.subarray(0, 1000))).toBe(true);
    expect((await chunk("s1", 65_536, 32_768))?.equals(content.subarray(65_536, 98_304))).toBe(true);
    // The last piece is shorter; past the end is empty.
    expect((await chunk("s1", 199_990, 100))?.equals(content.subarray(199_990))).toBe(true);
    expect((await chunk("s1", 200_000, 100))?.length).toBe(0);
    expect(await chunk("s2", 0, 10)).toBeNull();

    // The pieces, read the way the sender reads them, make up the attachment.
    const streamed: Buffer[] = [];
    for await (const piece of chunkedStream(content.length, async (offset, length) => {
      const piece = await chunk("s1", offset, length);
      if (!piece) throw new Error("lease lost");
      return piece;
    }))
      streamed.push(piece as Buffer);
    expect(Buffer.concat(streamed).equals(content)).toBe(true);

    for (const [offset, length] of [
      [-1, 10],
      [0, 0],
      [0, 2 ** 27],
    ] as const) {
      const error = await errorOf(chunk("s1", offset, length));
      expect(error.code).toBe("22023");
    }

    await sender.query("SELECT dbmail.record_outcome($1, 's1', $2, 'sent', $3)", [
      id,
      token,
      (await db.query<{ id: number }>("SELECT account_id AS id FROM dbmail.accounts")).rows[0]?.id,
    ]);
    expect(await chunk("s1", 0, 10)).toBeNull(); // no longer held
  });
});

describe("the final check before the end of DATA", () => {
  const transport = () => {
    const t = nodemailer.createTransport({ host: "127.0.0.1", port: smtp.port, ignoreTLS: true, pool: true });
    t.use("stream", finalCheckPlugin);
    return t;
  };
  const message = (subject: string) => ({
    from: "a@example.com",
    to: "to@example.org",
    subject,
    text: "body",
    attachments: [{ filename: "x.bin", content: randomBytes(300_000) }],
  });
  const arrived = (subject: string) => smtp.received.filter((m) => m.parsed.subject === subject).length;

  it("lets the message end when the check says yes, at once or after a while", async () => {
    const t = transport();
    try {
      await t.sendMail(withFinalCheck(message("yes-now"), () => true));
      await t.sendMail(
        withFinalCheck(
          message("yes-later"),
          () => new Promise((resolve) => setTimeout(() => resolve(true), 200)),
        ),
      );
    } finally {
      t.close();
    }
    expect([arrived("yes-now"), arrived("yes-later")]).toEqual([1, 1]);
  });

  it("aborts the message when the check says no: the server, having seen no end of DATA, keeps nothing", async () => {
    const t = transport();
    let asked = 0;
    try {
      const error = await t
        .sendMail(
          withFinalCheck(message("no"), () => {
            asked++;
            return Promise.resolve(false);
          }),
        )
        .then(
          () => undefined,
          (e: unknown) => e as Error,
        );
      expect(error?.message).toMatch(/final check refused/);
      expect(asked).toBe(1);
      const thrown = await t
        .sendMail(
          withFinalCheck(message("throws"), () => {
            throw new FinalCheckRefused("no lease");
          }),
        )
        .then(
          () => undefined,
          (e: unknown) => e as Error,
        );
      expect(thrown?.message).toMatch(/no lease/);
      // The transport still works for the next message.
      await t.sendMail(withFinalCheck(message("after"), () => true));
    } finally {
      t.close();
    }
    await sleep(300);
    expect([arrived("no"), arrived("throws"), arrived("after")]).toEqual([0, 0, 1]);
  });
});
