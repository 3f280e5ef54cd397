// sp_send_dbmail's enumerations (body_format, importance, sensitivity, query_result_format) and the query
// options: flags, width, separator, their combinations and execute_query_database (SPEC.md section 3).
import { describe, expect, it } from "vitest";
import { expectError } from "../../../../test/support/mail.js";
import { message, useSendDatabase } from "../support/send.js";

const t = useSendDatabase();
const { refused, sendAndRead } = t;

/**
 * Sends with one parameter set to `value`, expecting its refusal: a required parameter that is NULL is
 * 22004 (null_value_not_allowed); a wrong value is 22023. `text` is the value as the message shows it.
 */
async function expectRefused(parameter: string, value: unknown, text: string | null, problem: string) {
  const error = await refused(message({ [parameter]: value }));
  expectError(error, value === null ? "22004" : "22023", parameter, text, problem);
}

describe("enumerations and query options", () => {
  it.each([
    ["body_format", "markdown", "must be TEXT or HTML"],
    ["body_format", "", "must be TEXT or HTML"],
    ["importance", "urgent", "must be LOW, NORMAL or HIGH"],
    ["importance", "", "must be LOW, NORMAL or HIGH"],
    ["importance", null, "must be LOW, NORMAL or HIGH"],
    ["sensitivity", "secret", "must be NORMAL, PERSONAL, PRIVATE or CONFIDENTIAL"],
    ["sensitivity", null, "must be NORMAL, PERSONAL, PRIVATE or CONFIDENTIAL"],
    ["query_result_format", "xml", "must be TEXT, CSV, HTML or JSON"],
    ["query_result_format", null, "must be TEXT, CSV, HTML or JSON"],
  ])("refuses %s %j", async (parameter, value, problem) => {
    await expectRefused(parameter, value, value, problem);
  });

  it.each([
    "attach_query_result_as_file",
    "query_result_header",
    "exclude_query_output",
    "append_query_error",
    "query_no_truncate",
    "query_result_no_padding",
  ])("refuses %s NULL", async (parameter) => {
    const error = await refused(message({ [parameter]: null }));
    expectError(error, "22004", parameter, null, "must be true or false");
  });

  it.each([
    [9, "9"],
    [32768, "32768"],
    [0, "0"],
    [-1, "-1"],
    [null, null],
  ])("refuses query_result_width %j", async (width, text) => {
    await expectRefused("query_result_width", width, text, "must be from 10 to 32767");
  });

  it.each([10, 32767])("accepts query_result_width %i", async (width) => {
    expect((await sendAndRead(message({ query_result_width: width }))).query_result_width).toBe(width);
  });

  it.each([
    ["empty", ""],
    ["two characters", ",,"],
    ["NULL", null],
  ])("refuses a query_result_separator that is %s", async (_label, separator) => {
    await expectRefused("query_result_separator", separator, separator, "must be exactly one character");
  });

  it.each([",", "│"])("accepts the query_result_separator %j", async (separator) => {
    expect((await sendAndRead(message({ query_result_separator: separator }))).query_result_separator).toBe(
      separator,
    );
  });

  it("refuses query_result_no_padding together with query_no_truncate", async () => {
    const error = await refused(message({ query_result_no_padding: true, query_no_truncate: true }));
    expectError(
      error,
      "22023",
      "query_result_no_padding",
      "true",
      "query_result_no_padding and query_no_truncate cannot both be true",
    );
  });

  it("accepts query_result_no_padding or query_no_truncate alone", async () => {
    const padding = await sendAndRead(message({ query_result_no_padding: true }));
    const truncate = await sendAndRead(message({ query_no_truncate: true }));
    expect([padding.query_result_no_padding, padding.query_no_truncate]).toEqual([true, false]);
    expect([truncate.query_result_no_padding, truncate.query_no_truncate]).toEqual([false, true]);
  });

  it("refuses attach_query_result_as_file without a query", async () => {
    const error = await refused(message({ attach_query_result_as_file: true }));
    expectError(error, "22023", "attach_query_result_as_file", "true", "needs a query");
  });

  it("refuses an execute_query_database other than the current database", async () => {
    const error = await refused(message({ execute_query_database: "some_other_db" }));
    expect(error.code).toBe("22023");
    expect(error.message).toBe(
      `execute_query_database: "some_other_db": queries run in the current database (${t.db.name}); connect to the other database to query it`,
    );
  });

  it("accepts the current database as execute_query_database", async () => {
    expect((await sendAndRead(message({ execute_query_database: t.db.name }))).execute_query_database).toBe(
      t.db.name,
    );
  });
});
