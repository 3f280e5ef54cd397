// A query that fails (SPEC.md sections 3 and 9): refused with the query's own SQLSTATE naming `query`, or
// queued with the error in the body under append_query_error; and one statement only.
import { describe, expect, it } from "vitest";
import { first, shown } from "../../../../test/support/mail.js";
import {
  attachmentsOf,
  inline,
  item,
  refused,
  send,
  sender,
  useQueryResults,
} from "../support/query-results.js";

useQueryResults();

describe("query errors", () => {
  it("append_query_error false: raises the query's own SQLSTATE, naming query; nothing queued", async () => {
    const query = "SELECT * FROM missing_table";
    const error = await refused({ body: "Body", query });
    expect(error.code).toBe("42P01");
    expect(error.message).toBe(`query: ${shown(query)}: relation "missing_table" does not exist`);
  });

  it("append_query_error true: queued, with the error in the body", async () => {
    const id = await send({ body: "Body", query: "SELECT * FROM missing_table", append_query_error: true });
    const stored = await item(id);
    expect(stored.body).toBe('Body\nQuery failed: relation "missing_table" does not exist');
    expect(await attachmentsOf(id)).toEqual([]);
  });

  it("append_query_error true with attach_query_result_as_file: the error goes in the body, not in a file", async () => {
    // SPEC: "append_query_error, which queues the mail with the error text in the body".
    const id = await send({
      body: "Body",
      query: "SELECT * FROM missing_table",
      append_query_error: true,
      attach_query_result_as_file: true,
      query_result_format: "JSON",
    });
    const stored = await item(id);
    expect(stored.body).toBe('Body\nQuery failed: relation "missing_table" does not exist');
    expect(await attachmentsOf(id)).toEqual([]);
  });

  it("append_query_error true with an inline HTML result: the error text is escaped", async () => {
    const id = await send({
      body: "Body",
      query: 'SELECT * FROM "<b>missing</b>"',
      append_query_error: true,
      query_result_format: "HTML",
    });
    const stored = await item(id);
    expect(stored.body_format).toBe("HTML");
    expect(stored.body).toContain(
      "Query failed: relation &quot;&lt;b&gt;missing&lt;/b&gt;&quot; does not exist",
    );
    expect(stored.body).not.toContain("<b>");
  });

  it("a query of two statements is refused with a clear error, and the second does not run", async () => {
    const error = await refused({ query: "SELECT 1; SELECT 2" });
    expect(error.message).toMatch(/^query: "SELECT 1; SELECT 2": /);
    expect(error.message).toMatch(/statement/i);

    const sneaky = await refused({ query: "SELECT 1 AS one; CREATE TEMP TABLE sneaky (x integer)" });
    expect(sneaky.message).toMatch(/^query: /);
    const { rows } = await sender.query<{ t: string | null }>(
      "SELECT to_regclass('pg_temp.sneaky')::text AS t",
    );
    expect(first(rows).t).toBeNull();
  });

  it("a trailing semicolon (and spaces) is fine", async () => {
    expect(await inline({ query: "SELECT 1 AS one;  \n" })).toBe("one\n---\n  1\n\n(1 row affected)");
  });
});
