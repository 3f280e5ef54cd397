// A query result as CSV (RFC 4180), HTML (escaped, turning the body into HTML) and JSON (typed values),
// inline in the body (SPEC.md section 3). Compared with golden/query-results/ (see support/query-results.ts).
import { describe, expect, it } from "vitest";
import {
  attached,
  expectGolden,
  inline,
  item,
  main,
  narrow,
  send,
  tricky,
  useQueryResults,
} from "../support/query-results.js";

useQueryResults();

describe("CSV", () => {
  it("RFC 4180: header, quoting, NULL empty, CRLF", async () => {
    const body = await inline({ query: main, query_result_format: "CSV" });
    expectGolden("csv.csv", body);
    expect(body).toContain(`"O'Brien & <Co>, ""Jr.""\nline 2"`);
    expect(body.endsWith("\r\n")).toBe(true);
  });

  it("without a header row", async () => {
    expectGolden(
      "csv-no-header.csv",
      await inline({ query: main, query_result_format: "csv", query_result_header: false }),
    );
  });

  it("zero rows: only the header row", async () => {
    expectGolden(
      "csv-zero-rows.csv",
      (await attached({ query: "SELECT id, name FROM report WHERE false", query_result_format: "CSV" }))
        .content,
    );
  });

  it("zero rows without a header: an empty file, not an empty record", async () => {
    expectGolden(
      "csv-no-header-zero-rows.csv",
      (
        await attached({
          query: "SELECT id, name FROM report WHERE false",
          query_result_format: "CSV",
          query_result_header: false,
        })
      ).content,
    );
  });
});

describe("HTML", () => {
  it("a table with escaped values and NULL shown; inline, the body becomes HTML", async () => {
    const id = await send({ query: main, query_result_format: "HTML" });
    const stored = await item(id);
    expect(stored.body_format).toBe("HTML");
    expectGolden("html.golden", stored.body ?? "");
    expect(stored.body).toContain("O&#39;Brien &amp; &lt;Co&gt;, &quot;Jr.&quot;");
    expect(stored.body).not.toContain("<Co>");
  });

  it("without a header row", async () => {
    expectGolden(
      "html-no-header.golden",
      await inline({ query: narrow, query_result_format: "HTML", query_result_header: false }),
    );
  });

  it("a TEXT body is escaped, its line breaks become <br>, and the table follows", async () => {
    const id = await send({
      body: 'Hello <team> & "all"\nSee below.',
      query: "SELECT id, name FROM report WHERE id = 1",
      query_result_format: "HTML",
    });
    const stored = await item(id);
    const table = await inline({
      query: "SELECT id, name FROM report WHERE id = 1",
      query_result_format: "HTML",
    });
    expect(stored.body_format).toBe("HTML");
    expect(stored.body).toBe(`Hello &lt;team&gt; &amp; &quot;all&quot;<br>See below.<br>${table}`);
  });

  it("an HTML body is kept as it is, and the table follows", async () => {
    const id = await send({
      body: "<p>Report</p>",
      body_format: "HTML",
      query: "SELECT id, name FROM report WHERE id = 1",
      query_result_format: "HTML",
    });
    const table = await inline({
      query: "SELECT id, name FROM report WHERE id = 1",
      query_result_format: "HTML",
    });
    expect((await item(id)).body).toBe(`<p>Report</p><br>${table}`);
  });
});

describe("JSON", () => {
  it("an array of objects: numbers as numbers, NULL as null, bytea as a \\x string", async () => {
    const body = await inline({ query: main, query_result_format: "JSON" });
    expectGolden("json.golden", body);
    const parsed = JSON.parse(body) as Record<string, unknown>[];
    expect(parsed).toHaveLength(5);
    expect(parsed[0]).toEqual({
      id: 1,
      name: "Alice",
      qty: 10,
      amount: 1234.5,
      ratio: 0.5,
      active: true,
      day: "2024-01-02",
      at: "2024-01-02T03:04:05",
      blob: "\\x00ff",
    });
    expect(parsed[3]).toEqual({
      id: 4,
      name: null,
      qty: null,
      amount: null,
      ratio: null,
      active: null,
      day: null,
      at: null,
      blob: null,
    });
    expect(parsed[4]?.name).toBe(tricky);
  });

  it("zero rows: []", async () => {
    expect(await inline({ query: "SELECT id FROM report WHERE false", query_result_format: "JSON" })).toBe(
      "[]",
    );
  });
});
