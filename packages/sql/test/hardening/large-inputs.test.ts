// Issue 13, the database side: work that grew with the square of the input. Large query results and
// recipient lists are handled correctly within the default test timeout, and refused at MaxFileSize
// and MaxRecipientsPerMail (SECURITY.md §6; docs/sql-reference.md §2.3 and §2.12). No test here
// measures time: the scaling figures are in the change's report. MaxMailSize with headers and
// display names, and MaxMailsPerUserPerDay after deletions, are in limits.test.ts.
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestDatabase } from "../../../../test/support/database.js";
import {
  type Args,
  first,
  type Queryable,
  refused,
  send,
  shown,
  withSettings,
} from "../../../../test/support/mail.js";
import { bodyOf, mailArgs, setUpHardening } from "../support/boundaries.js";

const sendAs = (client: Queryable, args: Args) => send(client, mailArgs(args));
const refusedAs = (client: Queryable, args: Args) => refused(db, client, mailArgs(args));

let db: TestDatabase;
let alice: pg.Client;

beforeAll(async () => {
  ({ db, alice } = await setUpHardening());
});

afterAll(async () => {
  await db?.drop();
});

describe("query results: linear work, refused at MaxFileSize", () => {
  // Formatting in time quadratic in the output, 20,000 rows (300 kB) took 15 s, so 40,000 rows went past
  // the test timeout.
  it("formats a 40,000-row TEXT result byte for byte", async () => {
    await withSettings(db, { MaxFileSize: "10000000", MaxMailSize: "0" }, async () => {
      const id = await sendAs(alice, {
        query: "SELECT g AS n, 'row ' || g AS label FROM generate_series(1, 40000) g",
        exclude_query_output: true,
      });
      const lines = ["n     label", "----- ---------"];
      for (let g = 1; g <= 40000; g++) lines.push(`${String(g).padStart(5)} ${`row ${g}`}`);
      expect(await bodyOf(db, id)).toBe(`${lines.join("\n")}\n\n(40000 rows affected)`);
    });
  });

  it.each([
    ["ASCII", "x"],
    ["multibyte", "é"],
  ])("wraps a line of 300,000 characters (%s) at query_result_width, as before", async (_label, ch) => {
    await withSettings(db, { MaxFileSize: "10000000", MaxMailSize: "0" }, async () => {
      const id = await sendAs(alice, {
        query: `SELECT repeat('${ch}', 300000) AS v`,
        query_no_truncate: true,
        query_result_width: 1000,
      });
      const cut = (line: string) => {
        const pieces: string[] = [];
        for (let i = 0; i < line.length; i += 1000) pieces.push(line.slice(i, i + 1000));
        return pieces;
      };
      const expected = ["v", ...cut("-".repeat(300000)), ...cut(ch.repeat(300000)), "", "(1 row affected)"];
      expect(await bodyOf(db, id)).toBe(expected.join("\n"));
    });
  });

  // Before: a 100 MB value with query_no_truncate used 2.9 GB of backend memory before MaxFileSize
  // refused it; a 20 MB one here did not finish within the test timeout.
  it.each([
    ["TEXT, query_no_truncate", { query_no_truncate: true }],
    ["CSV", { query_result_format: "CSV" }],
    ["HTML", { query_result_format: "HTML" }],
    ["JSON", { query_result_format: "JSON" }],
  ])("refuses a 20 MB value at MaxFileSize (%s), naming the query", async (_label, options) => {
    const query = "SELECT repeat('x', 20000000) AS v";
    const error = await refusedAs(alice, { query, ...options });
    expect(error.code).toBe("54000");
    expect(error.message).toBe(`query: ${shown(query)}: the result is more than MaxFileSize (1000000 bytes)`);
  });

  it.each([
    ["TEXT", {}],
    ["TEXT, query_result_no_padding", { query_result_no_padding: true }],
    ["CSV", { query_result_format: "CSV" }],
    ["HTML", { query_result_format: "HTML" }],
    ["JSON", { query_result_format: "JSON" }],
  ])(
    "refuses a result of many rows at MaxFileSize (%s), even with append_query_error",
    async (_label, options) => {
      const query = "SELECT g FROM generate_series(1, 300000) g";
      const error = await refusedAs(alice, { query, append_query_error: true, ...options });
      expect(error.code).toBe("54000");
      expect(error.message).toBe(
        `query: ${shown(query)}: the result is more than MaxFileSize (1000000 bytes)`,
      );
    },
  );

  it("accepts a result of exactly MaxFileSize bytes, in each format", async () => {
    for (const format of ["TEXT", "CSV", "HTML", "JSON"]) {
      const query = "SELECT g AS n, repeat('é', g % 7) AS v FROM generate_series(1, 50) g";
      const reference = await bodyOf(db, await sendAs(alice, { query, query_result_format: format }));
      const size = Buffer.byteLength(reference, "utf8");
      await withSettings(db, { MaxFileSize: String(size) }, async () => {
        expect(await bodyOf(db, await sendAs(alice, { query, query_result_format: format }))).toBe(reference);
      });
      await withSettings(db, { MaxFileSize: String(size - 1) }, async () => {
        const error = await refusedAs(alice, { query, query_result_format: format });
        expect(error.code, `${format}: ${error.message}`).toBe("54000");
      });
    }
  });
});

describe("recipient lists: linear work, refused at MaxRecipientsPerMail", () => {
  // Before: 20,000 addresses took 51 s of CPU (here 10,000 took 17 s) before MaxRecipientsPerMail refused.
  it("refuses 20,000 addresses at the 101st, naming the list", async () => {
    const list = Array.from({ length: 20000 }, (_, i) => `r${i}@example.org`).join(";");
    const error = await refusedAs(alice, { recipients: list, body: "b" });
    expect(error.code).toBe("54000");
    expect(error.message).toBe(
      `recipients: ${shown(list)}: more than MaxRecipientsPerMail (100) recipients, to, cc and bcc together`,
    );
  });

  it("parses 20,000 addresses with quoted display names when the limit allows them", async () => {
    const list = Array.from({ length: 20000 }, (_, i) => `"Doe; ${i}, \\"J\\"" <r${i}@example.org>`).join(
      ";",
    );
    await withSettings(db, { MaxRecipientsPerMail: "0", MaxMailSize: "0" }, async () => {
      const id = await sendAs(alice, { recipients: list, body: "b", exclude_query_output: true });
      const { rows } = await db.query<{ n: number; one: { name: string; address: string } }>(
        "SELECT jsonb_array_length(envelope -> 'to') AS n, envelope -> 'to' -> 12345 AS one FROM dbmail.mailitems WHERE mailitem_id = $1",
        [id],
      );
      expect(first(rows)).toEqual({
        n: 20000,
        one: { name: 'Doe; 12345, "J"', address: "r12345@example.org" },
      });
    });
  });

  it("still refuses a comma outside quotes and an unclosed quote in a quoted list", async () => {
    for (const [list, problem] of [
      ['"A, B" <a@x.org>, b@x.org', "use ';' to separate addresses"],
      ['a@x.org; "Doe, Jane <j@x.org>', "a double quote is not closed"],
      ['"A \\" <a@x.org>', "a double quote is not closed"],
    ]) {
      const error = await refusedAs(alice, { recipients: list, body: "b" });
      expect(error.message).toBe(`recipients: ${shown(list as string)}: ${problem}`);
    }
  });
});
