// attach_query_result_as_file (SPEC.md section 3): the result as a file of the format's name and content
// type, query_attachment_filename and ProhibitedExtensions, and MaxFileSize for inline and attached results.
import { describe, expect, it } from "vitest";
import { shown, withSettings } from "../../../../test/support/mail.js";
import {
  attached,
  attachmentsOf,
  db,
  golden,
  inline,
  item,
  main,
  narrow,
  plain,
  refused,
  send,
  useQueryResults,
} from "../support/query-results.js";

useQueryResults();

describe("attach_query_result_as_file", () => {
  it.each([
    ["TEXT", "QueryResults.txt", "text/plain; charset=utf-8", "text-default.txt", plain],
    ["CSV", "QueryResults.csv", "text/csv; charset=utf-8", "csv.csv", main],
    ["HTML", "QueryResults.html", "text/html; charset=utf-8", "html.golden", main],
    ["JSON", "QueryResults.json", "application/json", "json.golden", main],
  ])(
    "%s: default name %s, content type %s, the same content as inline",
    async (format, name, type, file, query) => {
      const id = await send({
        body: "See the attachment.",
        query,
        query_result_format: format,
        attach_query_result_as_file: true,
      });
      const stored = await item(id);
      expect(stored.body).toBe("See the attachment.");
      expect(stored.body_format).toBe("TEXT");
      const files = await attachmentsOf(id);
      expect(files).toEqual([{ filename: name, content: golden(file), content_type: type }]);
    },
  );

  it("query_attachment_filename names the file (trimmed)", async () => {
    const file = await attached({
      query: main,
      query_result_format: "CSV",
      query_attachment_filename: "  daily report.csv ",
    });
    expect(file.filename).toBe("daily report.csv");
    expect(file.content_type).toBe("text/csv; charset=utf-8");
    expect(file.content).toBe(golden("csv.csv"));
  });

  it("the TEXT options apply to the file too", async () => {
    const file = await attached({
      query: narrow,
      query_result_separator: "|",
      query_attachment_filename: "r.txt",
    });
    expect(file.content).toBe(golden("text-separator-pipe.txt"));
  });

  it.each(["report.exe", "REPORT.EXE", "report.txt.js"])(
    "a prohibited extension (%s) is refused, naming query_attachment_filename",
    async (filename) => {
      const error = await refused({
        query: narrow,
        attach_query_result_as_file: true,
        query_attachment_filename: filename,
      });
      expect(error.code).toBe("22023");
      expect(error.message).toMatch(/^query_attachment_filename: /);
      expect(error.message).toContain(shown(filename));
      expect(error.message).toContain("ProhibitedExtensions");
    },
  );

  it("query_attachment_filename is ignored when the result is inline", async () => {
    const id = await send({ query: narrow, query_attachment_filename: "report.exe" });
    expect(await attachmentsOf(id)).toEqual([]);
    expect((await item(id)).body).toBe(await inline({ query: narrow }));
  });
});

describe("MaxFileSize", () => {
  it.each([false, true])(
    "a result bigger than MaxFileSize is refused with 54000 (attached: %s)",
    async (attach) => {
      const error = await withSettings(db, { MaxFileSize: "100" }, () =>
        refused({ query: plain, attach_query_result_as_file: attach }),
      );
      expect(error.code).toBe("54000");
      expect(error.message).toMatch(new RegExp(`^query: ${escapeRegExp(shown(plain))}: `));
      expect(error.message).toContain("MaxFileSize (100 bytes)");
    },
  );

  it("a result of exactly MaxFileSize bytes is accepted", async () => {
    const size = Buffer.byteLength(golden("text-default.txt"), "utf8");
    const body = await withSettings(db, { MaxFileSize: String(size) }, () => inline({ query: plain }));
    expect(body).toBe(golden("text-default.txt"));
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
