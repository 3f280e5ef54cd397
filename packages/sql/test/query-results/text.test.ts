// A query result as TEXT, the default, like sqlcmd's (SPEC.md section 3; reference/sqlserver-dbmail.md
// sections 2.1 and 6.10): header and dash line, padding, width and wrapping, separators, truncation, row
// counts, and the result appended to a body. Compared with golden/query-results/ (see support/query-results.ts).
import { describe, expect, it } from "vitest";
import {
  expectGolden,
  golden,
  inline,
  item,
  long,
  narrow,
  plain,
  send,
  the300,
  useQueryResults,
} from "../support/query-results.js";

useQueryResults();

describe("TEXT, like sqlcmd", () => {
  it("default options: header, dash line, padded columns, numbers right-aligned, NULL, row count", async () => {
    expectGolden("text-default.txt", await inline({ query: plain }));
  });

  it("a value with a line break is printed as it is", async () => {
    expectGolden(
      "text-line-break.txt",
      await inline({ query: "SELECT id, name, qty FROM report WHERE id IN (1, 5) ORDER BY id" }),
    );
  });

  it("query_result_header false: no column names, no dash line", async () => {
    expectGolden("text-no-header.txt", await inline({ query: plain, query_result_header: false }));
  });

  it("query_result_width 10 wraps longer lines", async () => {
    expectGolden("text-width-10.txt", await inline({ query: narrow, query_result_width: 10 }));
  });

  it("query_result_width 20 wraps longer lines", async () => {
    expectGolden(
      "text-width-20.txt",
      await inline({
        query: "SELECT id, name, qty, amount FROM report WHERE id <= 4 ORDER BY id",
        query_result_width: 20,
      }),
    );
  });

  it("query_result_width 32767: a long row stays on one line", async () => {
    expectGolden(
      "text-width-32767.txt",
      await inline({ query: "SELECT id, name, qty FROM report ORDER BY id", query_result_width: 32767 }),
    );
  });

  it("the default width 256 wraps a row longer than 256 characters", async () => {
    expectGolden("text-width-default-long.txt", await inline({ query: long }));
  });

  it.each([
    [",", "comma"],
    ["|", "pipe"],
  ])("query_result_separator '%s' separates the columns and the dashes", async (separator, name) => {
    expectGolden(
      `text-separator-${name}.txt`,
      await inline({ query: narrow, query_result_separator: separator }),
    );
  });

  it("query_result_no_padding: values only separated", async () => {
    expectGolden(
      "text-no-padding.txt",
      await inline({ query: narrow, query_result_no_padding: true, query_result_separator: "," }),
    );
  });

  it("query_result_no_padding overrides query_result_width: a long row is not wrapped", async () => {
    // SQL Server: "If you set @query_result_no_padding to 1 and you set the @query_result_width parameter,
    // the @query_result_no_padding parameter overwrites the @query_result_width parameter."
    expectGolden(
      "text-no-padding-long.txt",
      await inline({ query: long, query_result_no_padding: true, query_result_separator: "," }),
    );
  });

  it("values are cut at 256 characters by default", async () => {
    const body = await inline({ query: long, query_result_width: 32767 });
    expectGolden("text-truncate-256.txt", body);
    expect(body).toContain(the300.slice(0, 256));
    expect(body).not.toContain(the300.slice(0, 257));
  });

  it("query_no_truncate keeps the 300-character value whole", async () => {
    const body = await inline({ query: long, query_no_truncate: true, query_result_width: 32767 });
    expectGolden("text-no-truncate.txt", body);
    expect(body).toContain(the300);
  });

  it("zero rows: the header and (0 rows affected)", async () => {
    expectGolden("text-zero-rows.txt", await inline({ query: "SELECT id, name FROM report WHERE false" }));
  });

  it("one row: (1 row affected)", async () => {
    expectGolden("text-one-row.txt", await inline({ query: "SELECT id, name FROM report WHERE id = 1" }));
  });

  it("columns with the same name (a join) are shown, as sqlcmd does", async () => {
    expectGolden(
      "text-duplicate-names.txt",
      await inline({
        query:
          "SELECT a.id, b.id FROM report a JOIN report b ON b.id = a.id + 1 WHERE a.id <= 2 ORDER BY a.id",
      }),
    );
  });

  it("result columns may have any name, including n, c and k", async () => {
    expectGolden(
      "text-column-names.txt",
      await inline({ query: "SELECT id AS n, name AS c, qty AS k FROM report WHERE id <= 2 ORDER BY id" }),
    );
  });

  it("is appended to a TEXT body after a line break", async () => {
    const id = await send({ body: "Daily report:", query: "SELECT id, name FROM report WHERE id = 1" });
    const stored = await item(id);
    expect(stored.body_format).toBe("TEXT");
    expect(stored.body).toBe(`Daily report:\n${golden("text-one-row.txt")}`);
  });
});
