// In-memory attachments of sp_send_dbmail (SPEC.md sections 3, 6 and 7): dbmail.attachment values built
// in SQL or passed as bytea, stored with the item in order, with a given or guessed content type, shown in
// sysmail_mailattachments to their owner only, rolled back with the caller's transaction, and delivered
// byte-exact by the sender to a real SMTP server.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  app,
  attachmentsOf,
  counts,
  db,
  declaredType,
  other,
  sendAndReceive,
  sendMail,
  setUpAttachments,
  sha256,
  stored,
} from "../support/attachments.js";
import { errorOf } from "../support/database.js";
import { Raw } from "../support/mail.js";

setUpAttachments();

describe("in-memory attachments", () => {
  it("delivers a CSV built in SQL byte-exact, as text/csv, and stores it", async () => {
    const csv = 'id,name,city\r\n1,Müller,Köln\r\n2,"Doe, Jane",Zürich\r\n';
    const expected = Buffer.from(csv, "utf8");
    const { id, mail } = await sendAndReceive({
      body: "see attached",
      attachments: new Raw(
        `ARRAY[dbmail.attachment('report.csv', convert_to('id,name,city' || E'\\r\\n' || '1,Müller,Köln' || E'\\r\\n' || '2,"Doe, Jane",Zürich' || E'\\r\\n', 'UTF8'))]`,
      ),
    });
    const [stored1] = await stored(id);
    expect(stored1?.filename).toBe("report.csv");
    expect(stored1?.content_type).toBe("text/csv");
    expect(Number(stored1?.filesize)).toBe(expected.length);
    expect(sha256(stored1?.attachment ?? Buffer.alloc(0))).toBe(sha256(expected));

    const received = attachmentsOf(mail);
    expect(received).toHaveLength(1);
    expect(received[0]?.filename).toBe("report.csv");
    expect(received.map((a) => declaredType(a))).toEqual(["text/csv"]);
    expect(sha256(received[0]?.content ?? Buffer.alloc(0))).toBe(sha256(expected));
    expect(mail.parsed.text?.trim()).toBe("see attached");
  });

  it("delivers a binary with all 256 byte values byte-exact", async () => {
    const expected = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const { id, mail } = await sendAndReceive({
      attachments: new Raw(
        `ARRAY[dbmail.attachment('bytes.bin', (SELECT string_agg(decode(lpad(to_hex(i), 2, '0'), 'hex'), ''::bytea ORDER BY i) FROM generate_series(0, 255) AS i))]`,
      ),
    });
    const [row] = await stored(id);
    expect(row?.attachment.equals(expected)).toBe(true);
    expect(row?.content_type).toBe("application/octet-stream");
    const [received] = attachmentsOf(mail);
    expect(received?.filename).toBe("bytes.bin");
    expect(received?.content.length).toBe(256);
    expect(received && declaredType(received)).toBe("application/octet-stream");
    expect(sha256(received?.content ?? Buffer.alloc(0))).toBe(sha256(expected));
  });

  it("delivers a 500 KB random bytea byte-exact", async () => {
    const content = randomBytes(500 * 1024);
    const { id, mail } = await sendAndReceive({
      attachments: [{ filename: "random.bin", content }],
    });
    const [row] = await stored(id);
    expect(Number(row?.filesize)).toBe(500 * 1024);
    const [received] = attachmentsOf(mail);
    expect(received?.filename).toBe("random.bin");
    expect(sha256(received?.content ?? Buffer.alloc(0))).toBe(sha256(content));
  });

  it("keeps the order of several attachments, a given content type, and guesses a missing one", async () => {
    const files: { filename: string; content: Buffer; contentType?: string | null; expectedType: string }[] =
      [
        { filename: "report.csv", content: Buffer.from("a,b\r\n1,2\r\n"), expectedType: "text/csv" },
        { filename: "x.pdf", content: Buffer.from("%PDF-1.4\n%âãÏÓ\n"), expectedType: "application/pdf" },
        { filename: "unknown.xyz", content: randomBytes(100), expectedType: "application/octet-stream" },
        {
          filename: "custom.dat",
          content: randomBytes(50),
          contentType: "application/x-custom",
          expectedType: "application/x-custom",
        },
        {
          filename: "data.csv",
          content: Buffer.from("not really csv"),
          contentType: "text/plain",
          expectedType: "text/plain",
        },
        {
          filename: "empty-type.pdf",
          content: randomBytes(20),
          contentType: null,
          expectedType: "application/pdf",
        },
        {
          filename: "Bericht für März.csv",
          content: Buffer.from("Monat;Umsatz\r\nMärz;100\r\n", "utf8"),
          expectedType: "text/csv",
        },
      ];
    const { id, mail } = await sendAndReceive({ body: "several", attachments: files });

    const rows = await stored(id);
    expect(rows.map((r) => r.filename)).toEqual(files.map((f) => f.filename));
    expect(rows.map((r) => r.content_type)).toEqual(files.map((f) => f.expectedType));
    expect(rows.map((r) => Number(r.filesize))).toEqual(files.map((f) => f.content.length));

    const received = attachmentsOf(mail);
    expect(received.map((a) => a.filename)).toEqual(files.map((f) => f.filename));
    expect(received.map((a) => declaredType(a))).toEqual(files.map((f) => f.expectedType));
    expect(received.map((a) => sha256(a.content))).toEqual(files.map((f) => sha256(f.content)));
  });

  it("guesses content types from the last extension, case-insensitively", async () => {
    const { rows } = await db.query<{ name: string; type: string }>(
      `SELECT n AS name, dbmail.content_type_for(n) AS type
       FROM unnest(ARRAY['report.csv', 'x.pdf', 'unknown.xyz', 'REPORT.CSV', 'archive.tar.gz', 'noextension', 'notes.txt', 'image.JPG']) n`,
    );
    expect(Object.fromEntries(rows.map((r) => [r.name, r.type]))).toEqual({
      "report.csv": "text/csv",
      "x.pdf": "application/pdf",
      "unknown.xyz": "application/octet-stream",
      "REPORT.CSV": "text/csv",
      "archive.tar.gz": "application/gzip",
      noextension: "application/octet-stream",
      "notes.txt": "text/plain",
      "image.JPG": "image/jpeg",
    });
  });

  it("lists the attachments in sysmail_mailattachments for their owner only", async () => {
    const content = randomBytes(300);
    const id = await sendMail({ attachments: [{ filename: "private.bin", content }] });

    const mine = await app.query<{
      filename: string;
      filesize: string;
      attachment: Buffer;
      content_type: string;
    }>(
      "SELECT filename, filesize, attachment, content_type FROM dbmail.sysmail_mailattachments WHERE mailitem_id = $1",
      [id],
    );
    expect(mine.rows).toHaveLength(1);
    expect(mine.rows[0]?.filename).toBe("private.bin");
    expect(Number(mine.rows[0]?.filesize)).toBe(300);
    expect(mine.rows[0]?.attachment.equals(content)).toBe(true);
    expect(mine.rows[0]?.content_type).toBe("application/octet-stream");

    const theirs = await other.query(
      "SELECT filename FROM dbmail.sysmail_mailattachments WHERE mailitem_id = $1 OR filename = 'private.bin'",
      [id],
    );
    expect(theirs.rows).toHaveLength(0);
    // Nor through the table itself.
    expect((await errorOf(other.query("SELECT count(*) FROM dbmail.attachments"))).code).toBe("42501");
    expect((await errorOf(app.query("SELECT count(*) FROM dbmail.attachments"))).code).toBe("42501");
  });

  it("takes part in the caller's transaction: a rollback stores no attachment", async () => {
    const before = await counts();
    await app.query("BEGIN");
    try {
      await sendMail({ attachments: [{ filename: "rolled-back.txt", content: Buffer.from("x") }] });
    } finally {
      await app.query("ROLLBACK");
    }
    expect(await counts()).toEqual(before);
  });
});
