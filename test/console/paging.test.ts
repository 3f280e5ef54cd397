// /items pages through the security-barrier view by ranges of ids (SPEC.md section 12): whatever the
// gaps between ids, whoever else's mail lies between, and however old the newest item claims to be,
// the pages together are every visible item exactly once, newest first.
import type { RunningConsole } from "@pg-dbmail/console";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole } from "../support/database.js";
import { send } from "../support/mail.js";
import { addPublicProfile, startTestConsole, Visitor } from "./support.js";

let db: TestDatabase;
let web: RunningConsole;
let admin: TestRole;
let gina: TestRole;
let hank: TestRole;
let ivy: TestRole;

const ids = (html: string) => [...html.matchAll(/<td><a href="\/items\/(\d+)">/g)].map((m) => m[1] as string);
const pager = (html: string, label: "Older →" | "← Newer") =>
  new RegExp(`href="([^"]+)">${label}<`).exec(html)?.[1]?.replace(/&amp;/g, "&");

/**
 * Every id on every page of `path`, following the Older links down; then back up by the Newer links,
 * which must give the same pages.
 */
async function allPages(visitor: Visitor, path: string): Promise<string[][]> {
  const pages: string[][] = [];
  let last = "";
  for (let next: string | undefined = path; next !== undefined; ) {
    const page = await visitor.get(next);
    expect(page.status).toBe(200);
    pages.push(ids(page.text));
    last = page.text;
    next = pager(page.text, "Older →");
  }
  const upwards: string[][] = [];
  for (let next = pager(last, "← Newer"); next !== undefined; ) {
    const page = await visitor.get(next);
    upwards.unshift(ids(page.text));
    next = pager(page.text, "← Newer");
  }
  // Each page above the last is a full 50, so going up cuts them the same way.
  expect(upwards).toEqual(pages.slice(0, -1));
  return pages;
}

async function expected(role: TestRole | undefined, status?: string): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT mailitem_id AS id FROM dbmail.mailitems
     WHERE ($1::name IS NULL OR send_request_user = $1) AND ($2::text IS NULL OR sent_status = $2)
     ORDER BY mailitem_id DESC`,
    [role?.name ?? null, status ?? null],
  );
  return rows.map((r) => String(r.id));
}

beforeAll(async () => {
  db = await TestDatabase.create();
  await addPublicProfile(db);
  admin = await db.createRole("console_pager_admin", { memberOf: ["dbmail_admin"] });
  gina = await db.createRole("console_gina", { memberOf: ["dbmail_user"] });
  hank = await db.createRole("console_hank", { memberOf: ["dbmail_user"] });
  ivy = await db.createRole("console_ivy", { memberOf: ["dbmail_user"] });
  const [g, h, i] = [await db.connect(gina), await db.connect(hank), await db.connect(ivy)];
  const batch = (client: typeof g, n: number) =>
    client.query(
      `SELECT dbmail.sp_send_dbmail(recipients => 'p' || x || '@example.com', subject => 's' || x, body => 'b')
       FROM generate_series(1, ${n}) x`,
    );
  for (let k = 1; k <= 5; k++) {
    // Gaps of thousands of ids, and hank's mail between gina's.
    await db.query("SELECT setval(pg_get_serial_sequence('dbmail.mailitems', 'mailitem_id'), $1)", [
      k * 37_000,
    ]);
    await batch(g, 15);
    await batch(h, 20);
    await batch(g, 15);
  }
  for (let x = 0; x < 3; x++)
    await send(i, { recipients: "ivy@example.com", subject: `old ${x}`, body: "b" });
  // The newest item of gina claims to be old; ivy's are all old.
  const newest = await send(g, { recipients: "late@example.com", subject: "newest but old", body: "b" });
  await db.query(
    `UPDATE dbmail.mailitems SET send_request_date = now() - interval '90 days'
     WHERE mailitem_id = $1 OR send_request_user = $2`,
    [newest, ivy.name],
  );
  await db.query("UPDATE dbmail.mailitems SET sent_status = 'sent' WHERE mailitem_id % 3 = 0");
  web = await startTestConsole(db);
});

afterAll(async () => {
  await web?.close();
  await db?.drop();
});

describe("paging /items", () => {
  it("shows a dbmail_user each of its items once, newest first, 50 a page, across gaps and others' mail", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(gina.name);
    const pages = await allPages(visitor, "/items");
    expect(pages.map((p) => p.length)).toEqual([50, 50, 50, 1]);
    expect(pages.flat()).toEqual(await expected(gina));
    const sent = await allPages(visitor, "/items?status=sent");
    expect(sent.flat()).toEqual(await expected(gina, "sent"));
  });

  it("shows an admin everything the same way", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(admin.name);
    const pages = await allPages(visitor, "/items");
    expect(pages.flat()).toEqual(await expected(undefined));
    expect(pages.flat()).toHaveLength(254);
  });

  it("pages the event log the same way, with a type filter", async () => {
    for (let k = 1; k <= 3; k++) {
      await db.query("SELECT setval(pg_get_serial_sequence('dbmail.event_log', 'log_id'), $1)", [k * 41_000]);
      await db.query(
        `INSERT INTO dbmail.event_log (event_type, description, last_mod_user)
         SELECT (ARRAY['information', 'warning'])[1 + x % 2], 'event ' || x, 'postgres' FROM generate_series(1, 40) x`,
      );
    }
    const logIds = async (type?: string) =>
      (
        await db.query<{ id: string }>(
          "SELECT log_id AS id FROM dbmail.event_log WHERE $1::text IS NULL OR event_type = $1 ORDER BY log_id DESC",
          [type ?? null],
        )
      ).rows.map((r) => String(r.id));
    const visitor = new Visitor(web.url);
    await visitor.signIn(admin.name);
    const eventIds = (html: string) =>
      [...html.matchAll(/<tr><td>(\d+)<\/td><td>/g)].map((m) => m[1] as string);
    for (const [path, type] of [
      ["/events", undefined],
      ["/events?type=warning", "warning"],
    ] as const) {
      const seen: string[] = [];
      for (let next: string | undefined = path; next !== undefined; ) {
        const page = await visitor.get(next);
        seen.push(...eventIds(page.text));
        next = pager(page.text, "Older →");
      }
      expect(seen, path).toEqual(await logIds(type));
    }
  });

  it("finds items that are all older than a month", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(ivy.name);
    expect((await allPages(visitor, "/items")).flat()).toEqual(await expected(ivy));
  });
});
