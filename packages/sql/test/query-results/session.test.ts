// The query runs in the caller's session (SPEC.md sections 3 and 5): with the caller's rights,
// temporary tables, search_path and transaction, in the current database only; and no 'Mail queued'
// notice.
import { describe, expect, it } from "vitest";
import { queued, shown } from "../../../../test/support/mail.js";
import {
  db,
  golden,
  inline,
  refused,
  send,
  sender,
  senderRole,
  useQueryResults,
} from "../support/query-results.js";

useQueryResults();

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
    const before = await queued(db);
    await sender.query("BEGIN");
    try {
      await send({ query: "SELECT 1 AS one" });
    } finally {
      await sender.query("ROLLBACK");
    }
    expect(await queued(db)).toBe(before);
  });
});

describe("no 'Mail queued' notice", () => {
  // SQL Server prints "Mail queued." unless exclude_query_output; here the id is the result, and a
  // notice would cost every application a message of its own (docs/sql-reference.md section 7).
  it.each([
    ["a mail", { body: "b" }],
    ["a query result", { query: "SELECT 1 AS one" }],
  ])("%s is queued without a notice, exclude_query_output or not, and stores it", async (_, args) => {
    const received: string[] = [];
    const listener = (notice: { message?: string }) => received.push(notice.message ?? "");
    sender.on("notice", listener);
    try {
      const ids = [await send(args), await send({ ...args, exclude_query_output: true })];
      expect(received).toEqual([]);
      const { rows } = await db.query<{ exclude_query_output: boolean }>(
        "SELECT exclude_query_output FROM dbmail.sysmail_allitems WHERE mailitem_id = ANY($1) ORDER BY mailitem_id",
        [ids],
      );
      expect(rows.map((r) => r.exclude_query_output)).toEqual([false, true]);
    } finally {
      sender.off("notice", listener);
    }
  });
});
