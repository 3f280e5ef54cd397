// sp_send_dbmail's `query`: run in the caller's session with the caller's rights, and its result formatted
// as TEXT (like sqlcmd, SQL Server's @query), CSV, HTML or JSON, inline in the body or attached (SPEC.md
// section 3; reference/sqlserver-dbmail.md sections 2.1 and 6.10).
//
// Formatted output is compared byte for byte with files in golden/query-results/. They hold what the
// output SHOULD be: when the code changes the output on purpose, regenerate them with
//   UPDATE_GOLDEN=1 npx vitest run packages/sql/test/query-results.test.ts
// and read the diff before committing it. JSON and HTML golden files end in `.golden` so that no
// formatter touches them.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, TestDatabase, type TestRole } from "../../../test/support/database.js";

const goldenDir = fileURLToPath(new URL("./golden/query-results/", import.meta.url));
const regenerate = "UPDATE_GOLDEN=1 npx vitest run packages/sql/test/query-results.test.ts";

/** Compares `actual` with golden/query-results/<name> exactly; UPDATE_GOLDEN=1 writes the file instead. */
function expectGolden(name: string, actual: string): void {
  const file = join(goldenDir, name);
  if (process.env.UPDATE_GOLDEN === "1") {
    mkdirSync(goldenDir, { recursive: true });
    writeFileSync(file, actual);
    return;
  }
  if (!existsSync(file)) {
    throw new Error(`golden file golden/query-results/${name} is missing; create it with: ${regenerate}`);
  }
  expect(
    actual,
    `output differs from golden/query-results/${name}; if the new output is right, regenerate with ` +
      `${regenerate} and review the diff`,
  ).toBe(readFileSync(file, "utf8"));
}

/** Reads a golden file (for comparing an attachment with the inline output of the same query). */
function golden(name: string): string {
  const file = join(goldenDir, name);
  if (!existsSync(file))
    throw new Error(`golden file golden/query-results/${name} is missing: ${regenerate}`);
  return readFileSync(file, "utf8");
}

/** Arguments of sp_send_dbmail in named notation; undefined leaves a parameter at its default. */
type Args = Record<string, unknown>;

function sendCall(args: Args): { text: string; values: unknown[] } {
  const parts: string[] = [];
  const values: unknown[] = [];
  for (const [name, value] of Object.entries(args)) {
    if (value === undefined) continue;
    values.push(value);
    parts.push(`${name} => $${values.length}`);
  }
  return { text: `SELECT dbmail.sp_send_dbmail(${parts.join(", ")}) AS id`, values };
}

function first<T>(rows: T[]): T {
  const row = rows[0];
  if (row === undefined) throw new Error("expected a row");
  return row;
}

interface Item {
  body: string | null;
  body_format: string;
  query: string | null;
}

interface Attachment {
  filename: string;
  content: string;
  content_type: string;
}

let db: TestDatabase;
let senderRole: TestRole;
let sender: pg.Client;

const the300 = "0123456789".repeat(30);
const tricky = 'O\'Brien & <Co>, "Jr."\nline 2';

/** The fixed report: every column type, NULLs, unicode, negative numbers, a tricky and a long value. */
const main =
  "SELECT id, name, qty, amount, ratio, active, day, at, blob FROM report WHERE id <= 5 ORDER BY id";
/** The same without the value that has a line break (TEXT output stays one line per row). */
const plain =
  "SELECT id, name, qty, amount, ratio, active, day, at, blob FROM report WHERE id <= 4 ORDER BY id";
const narrow = "SELECT id, name, qty FROM report WHERE id <= 4 ORDER BY id";
const long = "SELECT id, name FROM report WHERE id = 6";

async function send(args: Args, client: pg.Client = sender): Promise<string> {
  const { text, values } = sendCall({ recipients: "to@example.org", subject: "Report", ...args });
  const { rows } = await client.query<{ id: string }>(text, values);
  return first(rows).id;
}

async function item(id: string, client: pg.Client = sender): Promise<Item> {
  const { rows } = await client.query<Item>(
    "SELECT body, body_format, query FROM dbmail.sysmail_allitems WHERE mailitem_id = $1",
    [id],
  );
  return first(rows);
}

/** The formatted result of an inline query sent without a body: the whole body. */
async function inline(args: Args, client: pg.Client = sender): Promise<string> {
  const { body } = await item(await send(args, client), client);
  if (body === null) throw new Error("expected a body");
  return body;
}

async function attachmentsOf(id: string): Promise<Attachment[]> {
  const { rows } = await sender.query<{ attachment_id: string; filename: string; content: string }>(
    `SELECT attachment_id, filename, convert_from(attachment, 'UTF8') AS content
     FROM dbmail.sysmail_mailattachments WHERE mailitem_id = $1 ORDER BY attachment_id`,
    [id],
  );
  const types = await db.query<{ attachment_id: string; content_type: string }>(
    "SELECT attachment_id, content_type FROM dbmail.attachments WHERE mailitem_id = $1",
    [id],
  );
  return rows.map((row) => ({
    filename: row.filename,
    content: row.content,
    content_type: types.rows.find((t) => t.attachment_id === row.attachment_id)?.content_type ?? "",
  }));
}

/** Sends with attach_query_result_as_file and returns the only attachment. */
async function attached(args: Args): Promise<Attachment> {
  const id = await send({ attach_query_result_as_file: true, ...args });
  const files = await attachmentsOf(id);
  expect(files).toHaveLength(1);
  return first(files);
}

async function queued(): Promise<number> {
  const { rows } = await db.query<{ n: number }>("SELECT count(*)::integer AS n FROM dbmail.mailitems");
  return first(rows).n;
}

/** Sends expecting an error; asserts that nothing was queued. */
async function refused(args: Args, client: pg.Client = sender): Promise<{ code: string; message: string }> {
  const before = await queued();
  const error = await errorOf(send(args, client));
  expect(await queued()).toBe(before);
  return error;
}

/** How dbmail.show_value shows a value in an error message. */
function shown(value: string): string {
  const short = value.length > 200 ? `${value.slice(0, 200)}…` : value;
  return `"${short.replace(/\r/g, "\\r").replace(/\n/g, "\\n").replace(/\t/g, "\\t")}"`;
}

async function withMaxFileSize<T>(bytes: number, fn: () => Promise<T>): Promise<T> {
  const { rows } = await db.query<{ value: string }>(
    "SELECT paramvalue AS value FROM dbmail.sysmail_help_configure_sp('MaxFileSize')",
  );
  const previous = first(rows).value;
  await db.query("SELECT dbmail.sysmail_configure_sp('MaxFileSize', $1)", [String(bytes)]);
  try {
    return await fn();
  } finally {
    await db.query("SELECT dbmail.sysmail_configure_sp('MaxFileSize', $1)", [previous]);
  }
}

beforeAll(async () => {
  db = await TestDatabase.create();
  senderRole = await db.createRole("reporter", { memberOf: ["dbmail_user"] });

  await db.query(
    "SELECT dbmail.sysmail_add_account_sp(account_name => 'reports', email_address => 'reports@example.com', mailserver_name => 'localhost')",
  );
  await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'Reports')");
  await db.query(
    "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'Reports', account_name => 'reports', sequence_number => 1)",
  );
  await db.query(
    "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'Reports', is_default => true)",
  );

  await db.query(`
    CREATE TABLE public.report (
      id integer PRIMARY KEY,
      name text,
      qty integer,
      amount numeric(12, 2),
      ratio double precision,
      active boolean,
      day date,
      at timestamp,
      blob bytea
    )`);
  await db.query(
    `INSERT INTO public.report VALUES
      (1, 'Alice', 10, 1234.50, 0.5, true, '2024-01-02', '2024-01-02 03:04:05', '\\x00ff'),
      (2, 'Jürgen Größe', -7, -42.00, -1.25, false, '2023-12-31', '2023-12-31 23:59:59', '\\xdeadbeef'),
      (3, '東京タワー 🗼', 0, 0, 1e6, NULL, '2000-02-29', '2000-02-29 12:00:00', '\\x'),
      (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
      (5, $1, -1000, -0.01, -2.5, true, '1999-01-01', '1999-01-01 00:00:00', '\\x22'),
      (6, $2, 1, 99999999.99, 3, false, '2030-06-15', '2030-06-15 18:30:00', '\\x0102')`,
    [tricky, the300],
  );
  await db.query(`GRANT SELECT ON public.report TO ${senderRole.name}`);
  // A table the sender may not read, and a plain (owner's rights) view over it that the sender may read.
  await db.query("CREATE TABLE public.secret (id integer, password text)");
  await db.query("INSERT INTO public.secret VALUES (1, 'hunter2'), (2, 'swordfish')");
  await db.query("CREATE VIEW public.secret_count AS SELECT count(*) AS secrets FROM public.secret");
  await db.query(`GRANT SELECT ON public.secret_count TO ${senderRole.name}`);
  // A schema named after the sender: first on its default search_path ("$user", public).
  await db.query(`CREATE SCHEMA ${senderRole.name} AUTHORIZATION ${senderRole.name}`);

  sender = await db.connect(senderRole);
});

afterAll(async () => {
  await db?.drop();
});

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
      const error = await withMaxFileSize(100, () =>
        refused({ query: plain, attach_query_result_as_file: attach }),
      );
      expect(error.code).toBe("54000");
      expect(error.message).toMatch(new RegExp(`^query: ${escapeRegExp(shown(plain))}: `));
      expect(error.message).toContain("MaxFileSize (100 bytes)");
    },
  );

  it("a result of exactly MaxFileSize bytes is accepted", async () => {
    const size = Buffer.byteLength(golden("text-default.txt"), "utf8");
    const body = await withMaxFileSize(size, () => inline({ query: plain }));
    expect(body).toBe(golden("text-default.txt"));
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

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

describe("the caller's session and rights", () => {
  it.each(["dbmail_user", "dbmail_admin"])(
    "a member of %s who is not a superuser may send a query result",
    async (group) => {
      const role = await db.createRole(`member_${group}`, { memberOf: [group] });
      await db.query(`GRANT SELECT ON public.report TO ${role.name}`);
      const client = await db.connect(role);
      expect(await inline({ query: "SELECT id, name FROM report WHERE id = 1" }, client)).toBe(
        golden("text-one-row.txt"),
      );
    },
  );

  it("a table the caller may not read: 42501 naming query, nothing queued; the superuser may", async () => {
    const query = "SELECT id, password FROM secret ORDER BY id";
    const error = await refused({ query });
    expect(error.code).toBe("42501");
    expect(error.message).toBe(`query: ${shown(query)}: permission denied for table secret`);

    const admin = await db.connect();
    const body = await inline({ query }, admin);
    expect(body).toBe("id password\n-- ---------\n 1 hunter2\n 2 swordfish\n\n(2 rows affected)");
  });

  it("a plain view the caller may read works (the view's owner reads the table)", async () => {
    expect(await inline({ query: "SELECT secrets FROM secret_count" })).toBe(
      "secrets\n-------\n      2\n\n(1 row affected)",
    );
  });

  it("sees the caller's temporary tables", async () => {
    await sender.query("CREATE TEMP TABLE my_numbers AS SELECT v FROM generate_series(1, 3) v");
    try {
      expect(await inline({ query: "SELECT v FROM my_numbers ORDER BY v" })).toBe(
        "v\n-\n1\n2\n3\n\n(3 rows affected)",
      );
    } finally {
      await sender.query("DROP TABLE my_numbers");
    }
  });

  it("uses the caller's search_path", async () => {
    await sender.query("CREATE TABLE orders (ref text)");
    await sender.query("INSERT INTO orders VALUES ('mine')");
    // Found through "$user" on the default search_path.
    expect(await inline({ query: "SELECT ref FROM orders" })).toBe("ref\n----\nmine\n\n(1 row affected)");

    await db.query("CREATE SCHEMA sales");
    await db.query("CREATE TABLE sales.orders (ref text)");
    await db.query("INSERT INTO sales.orders VALUES ('sales')");
    await db.query(`GRANT USAGE ON SCHEMA sales TO ${senderRole.name}`);
    await db.query(`GRANT SELECT ON sales.orders TO ${senderRole.name}`);
    await sender.query("SET search_path = sales, public");
    try {
      expect(await inline({ query: "SELECT ref FROM orders" })).toBe("ref\n-----\nsales\n\n(1 row affected)");
    } finally {
      await sender.query("RESET search_path");
    }
  });

  it("execute_query_database must be the current database", async () => {
    const error = await refused({ query: "SELECT 1 AS one", execute_query_database: "postgres" });
    expect(error.code).toBe("22023");
    expect(error.message).toMatch(/^execute_query_database: "postgres": /);

    const body = await inline({ query: "SELECT 1 AS one", execute_query_database: db.name });
    expect(body).toBe("one\n---\n  1\n\n(1 row affected)");
  });

  it("runs in the caller's transaction: a rollback queues nothing", async () => {
    const before = await queued();
    await sender.query("BEGIN");
    try {
      await send({ query: "SELECT 1 AS one" });
    } finally {
      await sender.query("ROLLBACK");
    }
    expect(await queued()).toBe(before);
  });
});

describe("the 'Mail queued' notice", () => {
  it("arrives as a NOTICE with the id, and not with exclude_query_output", async () => {
    const received: string[] = [];
    const listener = (notice: { message?: string }) => received.push(notice.message ?? "");
    sender.on("notice", listener);
    try {
      const id = await send({ query: "SELECT 1 AS one" });
      expect(received).toEqual([`Mail (Id: ${id}) queued.`]);

      received.length = 0;
      await send({ query: "SELECT 1 AS one", exclude_query_output: true });
      expect(received).toEqual([]);
    } finally {
      sender.off("notice", listener);
    }
  });
});
