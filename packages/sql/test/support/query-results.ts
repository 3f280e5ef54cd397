// The fixture of the query result tests (packages/sql/test/query-results/): a database of its own per test
// file with a profile every dbmail_user may use, a `report` table of every column type, a table the sender
// may not read behind a view it may, and a login (`sender`) that sends its queries.
//
// Formatted output is compared byte for byte with files in golden/query-results/. They hold what the
// output SHOULD be: when the code changes the output on purpose, regenerate them with
//   UPDATE_GOLDEN=1 npx vitest run packages/sql/test/query-results/
// and read the diff before committing it. JSON and HTML golden files end in `.golden` so that no
// formatter touches them.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type pg from "pg";
import { afterAll, beforeAll, expect } from "vitest";
import { TestDatabase, type TestRole } from "../../../../test/support/database.js";
import {
  type Args,
  addAccount,
  addProfile,
  call,
  first,
  type Queryable,
  type Refusal,
  refused as refusedAs,
  send as sendAs,
} from "../../../../test/support/mail.js";

const goldenDir = fileURLToPath(new URL("../golden/query-results/", import.meta.url));
const regenerate = "UPDATE_GOLDEN=1 npx vitest run packages/sql/test/query-results/";

/** Compares `actual` with golden/query-results/<name> exactly; UPDATE_GOLDEN=1 writes the file instead. */
export function expectGolden(name: string, actual: string): void {
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
export function golden(name: string): string {
  const file = join(goldenDir, name);
  if (!existsSync(file))
    throw new Error(`golden file golden/query-results/${name} is missing: ${regenerate}`);
  return readFileSync(file, "utf8");
}

export interface Item {
  body: string | null;
  body_format: string;
  query: string | null;
}

export interface Attachment {
  filename: string;
  content: string;
  content_type: string;
}

export let db: TestDatabase;
/** A dbmail_user login that may read `report` and `secret_count`, not `secret`. */
export let senderRole: TestRole;
export let sender: pg.Client;

export const the300 = "0123456789".repeat(30);
export const tricky = 'O\'Brien & <Co>, "Jr."\nline 2';

/** The fixed report: every column type, NULLs, unicode, negative numbers, a tricky and a long value. */
export const main =
  "SELECT id, name, qty, amount, ratio, active, day, at, blob FROM report WHERE id <= 5 ORDER BY id";
/** The same without the value that has a line break (TEXT output stays one line per row). */
export const plain =
  "SELECT id, name, qty, amount, ratio, active, day, at, blob FROM report WHERE id <= 4 ORDER BY id";
export const narrow = "SELECT id, name, qty FROM report WHERE id <= 4 ORDER BY id";
export const long = "SELECT id, name FROM report WHERE id = 6";

/** Creates the database, the report tables and the sender login for this test file. */
export function useQueryResults(): void {
  beforeAll(async () => {
    db = await TestDatabase.create();
    senderRole = await db.createRole("reporter", { memberOf: ["dbmail_user"] });

    await addAccount(db, {
      account_name: "reports",
      email_address: "reports@example.com",
      mailserver_name: "localhost",
    });
    await addProfile(db, { profile_name: "Reports" });
    await call(db, "sysmail_add_profileaccount_sp", {
      profile_name: "Reports",
      account_name: "reports",
      sequence_number: 1,
    });
    await call(db, "sysmail_add_principalprofile_sp", {
      principal_name: "public",
      profile_name: "Reports",
      is_default: true,
    });

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
}

/** The arguments with a recipient and a subject, which every test leaves alone. */
const report = (args: Args): Args => ({ recipients: "to@example.org", subject: "Report", ...args });

/** Queues a report as `client` (the sender login unless given); returns its mailitem_id. */
export const send = (args: Args, client: Queryable = sender): Promise<string> => sendAs(client, report(args));

/** Sends a report expecting a refusal; asserts that nothing was queued. */
export const refused = (args: Args, client: Queryable = sender): Promise<Refusal> =>
  refusedAs(db, client, report(args));

export async function item(id: string, client: Queryable = sender): Promise<Item> {
  const { rows } = await client.query<Item>(
    "SELECT body, body_format, query FROM dbmail.sysmail_allitems WHERE mailitem_id = $1",
    [id],
  );
  return first(rows);
}

/** The formatted result of an inline query sent without a body: the whole body. */
export async function inline(args: Args, client: Queryable = sender): Promise<string> {
  const { body } = await item(await send(args, client), client);
  if (body === null) throw new Error("expected a body");
  return body;
}

export async function attachmentsOf(id: string): Promise<Attachment[]> {
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
export async function attached(args: Args): Promise<Attachment> {
  const id = await send({ attach_query_result_as_file: true, ...args });
  const files = await attachmentsOf(id);
  expect(files).toHaveLength(1);
  return first(files);
}
