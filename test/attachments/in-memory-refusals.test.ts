// What sp_send_dbmail refuses in `attachments`, storing nothing (SPEC.md sections 3 and 4): a prohibited
// extension (ProhibitedExtensions, the last extension, however disguised), a file larger than MaxFileSize,
// NULL content or attachments, a missing, too long or path-like name, control characters in a name or a
// content type; and what it still accepts.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { db, refusedMail, sendMail, setUpAttachments, stored } from "../support/attachments.js";
import { expectError, Raw, setting, withSettings } from "../support/mail.js";

setUpAttachments();

describe("in-memory attachment refusals", () => {
  it("refuses a prohibited extension, case-insensitively, naming the file", async () => {
    const error = await refusedMail({ attachments: [{ filename: "evil.EXE", content: Buffer.from("MZ") }] });
    expectError(error, "22023", "attachments", "evil.EXE");
    expect(error.message).toContain("exe");
    expect(error.message).toContain("ProhibitedExtensions");
    for (const filename of ["lib.dll", "script.Vbs", "app.js"]) {
      expectError(
        await refusedMail({ attachments: [{ filename, content: Buffer.from("x") }] }),
        "22023",
        "attachments",
        filename,
      );
    }
  });

  it("checks the last extension: report.pdf.vbs is refused, report.exe.txt is allowed", async () => {
    expectError(
      await refusedMail({ attachments: [{ filename: "report.pdf.vbs", content: Buffer.from("x") }] }),
      "22023",
      "attachments",
      "report.pdf.vbs",
    );
    const id = await sendMail({
      attachments: [{ filename: "report.exe.txt", content: Buffer.from("fine") }],
    });
    expect((await stored(id)).map((r) => [r.filename, r.content_type])).toEqual([
      ["report.exe.txt", "text/plain"],
    ]);
  });

  it("refuses a prohibited extension hidden behind surrounding spaces (the stored name is trimmed)", async () => {
    // The name is stored trimmed ('evil.exe'), so the check must not let the trailing space hide 'exe'.
    const error = await refusedMail({ attachments: [{ filename: "evil.exe ", content: Buffer.from("MZ") }] });
    expectError(error, "22023", "attachments", "evil.exe ");
  });

  // Issue 13: before the hardening each of these passed ProhibitedExtensions (the last extension was "exe.",
  // "exe\u00a0", "exe::$data", ...), and a receiver saved the file as x.exe.
  it.each([
    ["a trailing dot", "evil.exe.", "end with a dot"],
    ["trailing dots and spaces", "evil.exe . .", "end with a dot"],
    ["a no-break space after the extension", "evil.exe\u00a0", "invisible, space-like or control characters"],
    [
      "a zero-width space after the extension",
      "evil.exe\u200b",
      "invisible, space-like or control characters",
    ],
    ["NEL (U+0085) after the extension", "evil.exe\u0085", "invisible, space-like or control characters"],
    ["a tab inside the name", "evil\t.exe.txt", "invisible, space-like or control characters"],
    ["a right-to-left override", "invoice\u202etxt.exe", "invisible, space-like or control characters"],
    ["an NTFS alternate data stream", "evil.exe::$DATA", "a colon"],
    ["a colon and a stream name", "evil.exe:stream.txt", "a colon"],
  ])(
    "refuses a name a receiver reads differently: %s, naming the file",
    async (_label, filename, problem) => {
      const error = await refusedMail({ attachments: [{ filename, content: Buffer.from("MZ") }] });
      expectError(error, "22023", "attachments", filename);
      expect(error.message).toContain(problem);
      const query = await refusedMail({
        query: "SELECT 1",
        attach_query_result_as_file: true,
        query_attachment_filename: filename,
      });
      expectError(query, "22023", "query_attachment_filename", filename);
    },
  );

  it("still accepts plain spaces, inner dots and non-ASCII letters in a name", async () => {
    const names = ["my report.final.pdf", "Bericht für März.csv", "東京 データ.txt"];
    const id = await sendMail({
      attachments: names.map((filename) => ({ filename, content: Buffer.from("x") })),
    });
    expect((await stored(id)).map((r) => r.filename)).toEqual(names);
  });

  it("refuses the whole message when one attachment of several is bad", async () => {
    const error = await refusedMail({
      attachments: [
        { filename: "good.txt", content: Buffer.from("good") },
        { filename: "bad.vbs", content: Buffer.from("bad") },
      ],
    });
    expectError(error, "22023", "attachments", "bad.vbs");
  });

  it("follows a changed ProhibitedExtensions setting", async () => {
    await withSettings(db, { ProhibitedExtensions: "csv, .BAT" }, async () => {
      expectError(
        await refusedMail({ attachments: [{ filename: "report.csv", content: Buffer.from("a,b") }] }),
        "22023",
        "attachments",
        "report.csv",
      );
      expectError(
        await refusedMail({ attachments: [{ filename: "run.bat", content: Buffer.from("x") }] }),
        "22023",
        "attachments",
        "run.bat",
      );
      const id = await sendMail({ attachments: [{ filename: "tool.exe", content: Buffer.from("MZ") }] });
      expect((await stored(id)).map((r) => r.filename)).toEqual(["tool.exe"]);
    });
    expect(await setting(db, "ProhibitedExtensions")).toBe("exe,dll,vbs,js");
  });

  it("refuses an attachment larger than MaxFileSize (54000) and accepts exactly MaxFileSize", async () => {
    await withSettings(db, { MaxFileSize: "1000" }, async () => {
      const error = await refusedMail({ attachments: [{ filename: "big.bin", content: randomBytes(1001) }] });
      expectError(error, "54000", "attachments", "big.bin");
      expect(error.message).toContain("1001");
      expect(error.message).toContain("MaxFileSize");
      const id = await sendMail({ attachments: [{ filename: "exact.bin", content: randomBytes(1000) }] });
      expect((await stored(id)).map((r) => Number(r.filesize))).toEqual([1000]);
      // Each attachment is checked on its own: two of 1000 bytes are fine.
      const two = await sendMail({
        attachments: [
          { filename: "one.bin", content: randomBytes(1000) },
          { filename: "two.bin", content: randomBytes(1000) },
        ],
      });
      expect((await stored(two)).map((r) => Number(r.filesize))).toEqual([1000, 1000]);
    });
  });

  it("refuses NULL content, naming the file", async () => {
    const error = await refusedMail({ attachments: [{ filename: "nothing.txt", content: null }] });
    expectError(error, "22004", "attachments", "nothing.txt");
    expect(error.message).toContain("content");
  });

  it("refuses a NULL attachment in the array", async () => {
    const error = await refusedMail({ attachments: new Raw("ARRAY[NULL::dbmail.attachment]") });
    expect(error.code).toBe("22004");
    expect(error.message.startsWith("attachments: ")).toBe(true);
  });

  it("refuses an empty, blank or NULL file name", async () => {
    for (const filename of ["", "   ", null]) {
      const error = await refusedMail({ attachments: [{ filename, content: Buffer.from("x") }] });
      expectError(error, "22004", "attachments", filename);
      expect(error.message).toContain("file name");
    }
  });

  it("refuses a file name with a slash or a backslash (a path)", async () => {
    for (const filename of ["dir/report.txt", "/etc/passwd", "..\\report.txt"]) {
      const error = await refusedMail({ attachments: [{ filename, content: Buffer.from("x") }] });
      expectError(error, "22023", "attachments", filename);
    }
  });

  it("refuses a file name with a line break or another control character", async () => {
    for (const filename of ["report\r\nBcc: victim@example.org.txt", "two\nlines.txt", "nul\u0001.txt"]) {
      const error = await refusedMail({ attachments: [{ filename, content: Buffer.from("x") }] });
      expectError(error, "22023", "attachments", filename);
    }
  });

  it("refuses a 256-character file name and accepts 255 characters", async () => {
    const long = `${"a".repeat(252)}.txt`;
    expect(long).toHaveLength(256);
    const error = await refusedMail({ attachments: [{ filename: long, content: Buffer.from("x") }] });
    expectError(error, "22023", "attachments", long);
    expect(error.message).toContain("255");
    const fits = `${"ä".repeat(251)}.txt`;
    expect(fits).toHaveLength(255);
    const id = await sendMail({ attachments: [{ filename: fits, content: Buffer.from("x") }] });
    expect((await stored(id)).map((r) => r.filename)).toEqual([fits]);
  });

  it("refuses a content type with a line break (it ends up in the part's Content-Type header)", async () => {
    const error = await refusedMail({
      attachments: [
        { filename: "report.txt", content: Buffer.from("x"), contentType: "text/plain\r\nX-Injected: yes" },
      ],
    });
    expect(error.code).toBe("22023");
    expect(error.message.startsWith("attachments: "), error.message).toBe(true);
  });
});
