// MaxMailSize (issue 5; SPEC.md sections 3 and 4), checked by dbmail.queue_mail: every byte of subject,
// addresses, headers, body, attachments (in memory and files) and query results counts; tried at, just
// under and just over the limit, a refusal is 54000, names the part that went over, and queues nothing.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configure, expectError, withSettings } from "../../../../test/support/mail.js";
import { message, useSendDatabase } from "../support/send.js";

const t = useSendDatabase();
const { send, refused } = t;

let directory: string;

beforeAll(async () => {
  directory = mkdtempSync(join(tmpdir(), "dbmail-limits-"));
  chmodSync(directory, 0o755);
  await configure(t.db, "AttachmentDirectories", directory);
});

afterAll(() => {
  if (directory) rmSync(directory, { recursive: true, force: true });
});

describe("MaxMailSize", () => {
  const problem = (size: number, max: number) =>
    `the mail would be ${size} bytes (subject, addresses, headers, body and attachments), more than MaxMailSize (${max} bytes)`;
  // subject "Test" (4 bytes) and recipients "to@example.org" (14 bytes): every mail below has them.
  const FIXED = 18;
  const LIMIT = 1000;
  // What an attachment counts besides its content: its name and its content type.
  const BIN = "application/octet-stream".length;

  it("accepts a mail of exactly MaxMailSize bytes and one byte under", async () => {
    await withSettings(t.db, { MaxMailSize: String(LIMIT) }, async () => {
      await send(message({ body: "x".repeat(LIMIT - FIXED) }));
      await send(message({ body: "x".repeat(LIMIT - FIXED - 1) }));
      await send(
        message({
          body: "x".repeat(500),
          attachments: [{ filename: "a.bin", content: Buffer.alloc(LIMIT - FIXED - 500 - 5 - BIN) }],
        }),
      );
    });
  });

  it("refuses one byte over, naming the body, and queues nothing", async () => {
    await withSettings(t.db, { MaxMailSize: String(LIMIT) }, async () => {
      const body = "x".repeat(LIMIT - FIXED + 1);
      expectError(await refused(message({ body })), "54000", "body", body, problem(LIMIT + 1, LIMIT));
    });
  });

  it("counts bytes, not characters", async () => {
    await withSettings(t.db, { MaxMailSize: String(LIMIT) }, async () => {
      // "é" is two bytes in UTF-8: 492 of them and the rest make 1002 bytes.
      const body = "é".repeat(492);
      expectError(await refused(message({ body })), "54000", "body", body, problem(1002, LIMIT));
      await send(message({ body: "é".repeat(491) }));
    });
  });

  it("names the subject when it alone is over", async () => {
    await withSettings(t.db, { MaxMailSize: "10" }, async () => {
      const subject = "a subject of 25 bytes....";
      expectError(
        await refused(message({ subject, body: "" })),
        "54000",
        "subject",
        subject,
        problem(25, 10),
      );
    });
  });

  it("names the in-memory attachment that went over, counting its name and content type", async () => {
    await withSettings(t.db, { MaxMailSize: String(LIMIT) }, async () => {
      // 18 + 96 + (9 + 24 + 500) = 647; then 10 + 24 + 320 more: 1001.
      const error = await refused(
        message({
          body: "x".repeat(96),
          attachments: [
            { filename: "first.bin", content: Buffer.alloc(500) },
            { filename: "second.bin", content: Buffer.alloc(320) },
          ],
        }),
      );
      expectError(error, "54000", "attachments", "second.bin", problem(LIMIT + 1, LIMIT));
    });
  });

  it("counts file attachments, with their names and content types", async () => {
    const path = join(directory, "report.csv");
    writeFileSync(path, Buffer.alloc(600, "a"));
    chmodSync(path, 0o644);
    // report.csv (10) as text/csv (8), 600 bytes.
    const file = 10 + 8 + 600;
    await withSettings(t.db, { MaxMailSize: String(LIMIT) }, async () => {
      await send(message({ body: "x".repeat(LIMIT - FIXED - file), file_attachments: path }));
      const error = await refused(
        message({ body: "x".repeat(LIMIT - FIXED - file + 1), file_attachments: path }),
      );
      expectError(error, "54000", "file_attachments", path, problem(LIMIT + 1, LIMIT));
    });
  });

  it("counts a query result, inline or attached, and names the query", async () => {
    await withSettings(t.db, { MaxMailSize: String(LIMIT) }, async () => {
      // 20 rows of 100 characters: over 2000 bytes however it is formatted.
      const query = "SELECT repeat('q', 100) AS big FROM generate_series(1, 20)";
      const inline = await refused(message({ query }));
      expect(inline.code).toBe("54000");
      expect(inline.message).toMatch(
        /^query: "SELECT repeat\('q', 100\) AS big FROM generate_series\(1, 20\)": the mail would be \d+ bytes/,
      );
      const attached = await refused(message({ query, attach_query_result_as_file: true }));
      expect(attached.code).toBe("54000");
      expect(attached.message).toMatch(
        /^query: ".*": the mail would be \d+ bytes .* more than MaxMailSize \(1000 bytes\)$/,
      );
      await send(message({ query: "SELECT 1 AS one" }));
    });
  });

  it("by default allows 10 MiB (10485760 bytes) and refuses a byte more", async () => {
    await send(message({ body: "x".repeat(10485760 - FIXED) }));
    const body = "x".repeat(10485760 - FIXED + 1);
    expectError(await refused(message({ body })), "54000", "body", body, problem(10485761, 10485760));
  });

  it("0 means unlimited", async () => {
    await withSettings(t.db, { MaxMailSize: "0" }, async () => {
      await send(message({ body: "x".repeat(10485760) }));
    });
  });

  // Issue 13: 20 MB of extra headers passed a 10 MB limit; display names did not count either.
  it("counts the headers, names and values (20 headers of 998 bytes do not pass a 10 kB limit)", async () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 20; i++) headers[`X-Filler-${String(i).padStart(2, "0")}`] = "h".repeat(998);
    const value = JSON.stringify(headers);
    await withSettings(t.db, { MaxMailSize: "10000" }, async () => {
      const error = await refused(message({ body: "", headers: value }));
      expect(error.code).toBe("54000");
      // 18 fixed, then 20 * (11 + 998).
      const stored =
        (await t.db.query<{ h: string }>("SELECT $1::jsonb::text AS h", [value])).rows[0]?.h ?? "";
      expectError(error, "54000", "headers", stored, problem(FIXED + 20 * (11 + 998), 10000));
      // Fewer fit: 9 headers are 9081 bytes.
      const few: Record<string, string> = {};
      for (let i = 0; i < 9; i++) few[`X-Filler-${String(i).padStart(2, "0")}`] = "h".repeat(998);
      await send(message({ body: "", headers: JSON.stringify(few) }));
    });
  });

  it("counts the address lists as given, display names included, and names the list that went over", async () => {
    const name = "N".repeat(250);
    const to = Array.from({ length: 4 }, (_, i) => `"${name}" <r${i}@example.org>`).join(";");
    await withSettings(t.db, { MaxMailSize: String(LIMIT) }, async () => {
      const error = await refused(message({ recipients: to, body: "" }));
      expectError(error, "54000", "recipients", to, problem(4 + Buffer.byteLength(to), LIMIT));
      const cc = `"${name}" <c@example.org>`;
      const error2 = await refused(message({ copy_recipients: `${cc};${cc};${cc};${cc}`, body: "" }));
      expect(error2.message).toMatch(/^copy_recipients: /);
    });
    // subject, recipients and from_address make 239 bytes; reply_to 221 more.
    const from = `"${"F".repeat(200)}" <from@example.org>`;
    await withSettings(t.db, { MaxMailSize: "400" }, async () => {
      const error = await refused(message({ from_address: from, reply_to: from, body: "" }));
      expectError(error, "54000", "reply_to", from, problem(FIXED + 2 * from.length, 400));
    });
  });
});
