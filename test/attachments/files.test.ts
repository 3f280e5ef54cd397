// file_attachments of sp_send_dbmail and the AttachmentDirectories setting (SPEC.md sections 3 and 4):
// refused while no directory is allowed; files of an allowed directory (and below it) attached by base name,
// in order, byte-exact, with in-memory ones, as read at call time; and a setting only a dbmail_admin may
// change, to absolute directories only, empty again after the tests that allowed one.
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  allowAttachmentDirectory,
  allowed,
  app,
  attachmentsOf,
  db,
  declaredType,
  makeDirectory,
  outside,
  receivedWithSubject,
  refusedMail,
  sendAndReceive,
  sendMail,
  setUpAttachments,
  sha256,
  stored,
  writeFile,
} from "../support/attachments.js";
import { errorOf } from "../support/database.js";
import { configure, expectError, first, setting, uniqueSubject, withSettings } from "../support/mail.js";

setUpAttachments();

describe("file attachments while AttachmentDirectories is empty", () => {
  it("refuses file attachments with 42501, explaining how to enable them", async () => {
    expect(await setting(db, "AttachmentDirectories")).toBe("");
    const path = join(allowed, "disabled.txt");
    writeFile(path, "not to be read");
    for (const client of [app, await db.connect()]) {
      const error = await refusedMail({ file_attachments: path }, client);
      expectError(error, "42501", "file_attachments", path);
      expect(error.message).toContain("AttachmentDirectories");
      expect(error.message).toContain("sysmail_configure_sp");
    }
  });
});

describe("file attachments", () => {
  allowAttachmentDirectory();

  it("attaches a file of the allowed directory with its base name, byte-exact", async () => {
    const content = writeFile(join(allowed, "data.bin"), randomBytes(64 * 1024));
    const { id, mail } = await sendAndReceive({ body: "file", file_attachments: join(allowed, "data.bin") });
    const rows = await stored(id);
    expect(rows.map((r) => [r.filename, r.content_type, Number(r.filesize)])).toEqual([
      ["data.bin", "application/octet-stream", content.length],
    ]);
    expect(sha256(rows[0]?.attachment ?? Buffer.alloc(0))).toBe(sha256(content));
    const received = attachmentsOf(mail);
    expect(received.map((a) => a.filename)).toEqual(["data.bin"]);
    expect(sha256(received[0]?.content ?? Buffer.alloc(0))).toBe(sha256(content));
    // The item keeps the list as given.
    const { rows: items } = await db.query<{ file_attachments: string }>(
      "SELECT file_attachments FROM dbmail.mailitems WHERE mailitem_id = $1",
      [id],
    );
    expect(first(items).file_attachments).toBe(join(allowed, "data.bin"));
  });

  it("attaches two ';'-separated files in order, tolerating spaces and a trailing ';'", async () => {
    const csv = writeFile(join(allowed, "Bericht für März.csv"), "Monat;Umsatz\r\nMärz;100\r\n");
    const pdf = writeFile(join(allowed, "summary.pdf"), randomBytes(2048));
    const list = ` ${join(allowed, "Bericht für März.csv")} ;${join(allowed, "summary.pdf")};`;
    const { id, mail } = await sendAndReceive({ file_attachments: list });
    expect((await stored(id)).map((r) => [r.filename, r.content_type])).toEqual([
      ["Bericht für März.csv", "text/csv"],
      ["summary.pdf", "application/pdf"],
    ]);
    const received = attachmentsOf(mail);
    expect(received.map((a) => a.filename)).toEqual(["Bericht für März.csv", "summary.pdf"]);
    expect(received.map((a) => declaredType(a))).toEqual(["text/csv", "application/pdf"]);
    expect(received.map((a) => sha256(a.content))).toEqual([sha256(csv), sha256(pdf)]);
  });

  it("combines file attachments with in-memory attachments", async () => {
    const file = writeFile(join(allowed, "combined.txt"), "from disk\n");
    const memory = randomBytes(10);
    const { mail } = await sendAndReceive({
      file_attachments: join(allowed, "combined.txt"),
      attachments: [{ filename: "memory.bin", content: memory }],
    });
    const received = attachmentsOf(mail);
    expect(received.map((a) => a.filename).sort()).toEqual(["combined.txt", "memory.bin"]);
    expect(sha256(received.find((a) => a.filename === "combined.txt")?.content ?? Buffer.alloc(0))).toBe(
      sha256(file),
    );
    expect(sha256(received.find((a) => a.filename === "memory.bin")?.content ?? Buffer.alloc(0))).toBe(
      sha256(memory),
    );
  });

  it("accepts doubled slashes and a directory configured with a trailing slash", async () => {
    writeFile(join(allowed, "slashes.txt"), "slashes");
    const id = await sendMail({ file_attachments: `${allowed}//slashes.txt` });
    expect((await stored(id)).map((r) => r.filename)).toEqual(["slashes.txt"]);
    await withSettings(db, { AttachmentDirectories: `${outside};${allowed}/` }, async () => {
      expect(await setting(db, "AttachmentDirectories")).toBe(`${outside};${allowed}`);
      const again = await sendMail({ file_attachments: join(allowed, "slashes.txt") });
      expect((await stored(again)).map((r) => r.filename)).toEqual(["slashes.txt"]);
    });
  });

  it("reads files in subdirectories of an allowed directory", async () => {
    const sub = makeDirectory(join(allowed, "nested"));
    const content = writeFile(join(sub, "deep.txt"), "deep");
    const id = await sendMail({ file_attachments: join(sub, "deep.txt") });
    const rows = await stored(id);
    expect(rows.map((r) => r.filename)).toEqual(["deep.txt"]);
    expect(rows[0]?.attachment.equals(content)).toBe(true);
  });

  it("stores the content read at call time: later changes to the file are not delivered", async () => {
    const path = join(allowed, "snapshot.txt");
    const original = writeFile(path, "original content\n");
    const subject = uniqueSubject("snapshot");
    const id = await sendMail({
      subject,
      file_attachments: path,
      send_at: new Date(Date.now() + 3_600_000).toISOString(),
    });
    // Change, then remove the file before the sender may deliver.
    writeFile(path, "changed content, which must not be sent\n");
    expect(first(await stored(id)).attachment.equals(original)).toBe(true);
    rmSync(path);
    await db.query("UPDATE dbmail.mailitems SET next_attempt_at = now() WHERE mailitem_id = $1", [id]);
    const mail = await receivedWithSubject(subject);
    const received = attachmentsOf(mail);
    expect(received.map((a) => a.filename)).toEqual(["snapshot.txt"]);
    expect(received[0]?.content.equals(original)).toBe(true);
  });
});

describe("AttachmentDirectories setting", () => {
  it("refuses a relative directory or one with '.' or '..', keeping the old value", async () => {
    const before = await setting(db, "AttachmentDirectories");
    for (const value of ["reports", "srv/reports", "/srv/../etc", "/srv/./reports", `${allowed};../x`]) {
      const error = await errorOf(configure(db, "AttachmentDirectories", value));
      expect(error.code).toBe("22023");
      expect(error.message).toContain("AttachmentDirectories");
      expect(await setting(db, "AttachmentDirectories")).toBe(before);
    }
  });

  it("cannot be changed by a dbmail_user", async () => {
    const error = await errorOf(
      app.query("SELECT dbmail.sysmail_configure_sp('AttachmentDirectories', '/')"),
    );
    expect(error.code).toBe("42501");
    expect(await setting(db, "AttachmentDirectories")).toBe("");
  });

  it("is empty again after the file tests (file attachments disabled)", async () => {
    expect(await setting(db, "AttachmentDirectories")).toBe("");
    writeFile(join(allowed, "after.txt"), "x");
    expectError(
      await refusedMail({ file_attachments: join(allowed, "after.txt") }),
      "42501",
      "file_attachments",
      join(allowed, "after.txt"),
    );
  });
});
