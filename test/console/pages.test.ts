// The console's pages (SPEC.md section 12) as the signed-in role sees them: the overview (counts,
// oldest unsent, live senders and the stalled flag for admins, recent failures), /items with its
// filters and keyset paging, an item's fields, attachments and events, and the event log.
import type { RunningConsole } from "@pg-dbmail/console";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole } from "../support/database.js";
import { call, first, send } from "../support/mail.js";
import { addPublicProfile, startTestConsole, Visitor } from "./support.js";

let db: TestDatabase;
let web: RunningConsole;
let admin: TestRole;
let dave: TestRole;
let erin: TestRole;
let profileId: number;
let failedItem: string;

/** The ids in the items table of a page, in order. */
const ids = (html: string) => [...html.matchAll(/<td><a href="\/items\/(\d+)">/g)].map((m) => m[1]);
/** The href of a pager link. */
const link = (html: string, label: "Newer" | "Older") =>
  new RegExp(`href="([^"]+)">${label === "Newer" ? "← Newer" : "Older →"}<`)
    .exec(html)?.[1]
    ?.replace(/&amp;/g, "&");

beforeAll(async () => {
  db = await TestDatabase.create();
  await addPublicProfile(db);
  profileId = Number((await db.query("SELECT max(profile_id) AS id FROM dbmail.profiles")).rows[0]?.id);
  admin = await db.createRole("console_admin", { memberOf: ["dbmail_admin"] });
  dave = await db.createRole("console_dave", { memberOf: ["dbmail_user"] });
  erin = await db.createRole("console_erin", { memberOf: ["dbmail_user"] });
  const client = await db.connect(dave);
  await client.query(
    `SELECT dbmail.sp_send_dbmail(recipients => 'Paged' || g || '@Example.com', subject => 'paged ' || g, body => 'x')
     FROM generate_series(1, 118) g`,
  );
  failedItem = await send(client, { recipients: "gone@example.com", subject: "bounced", body: "x" });
  await send(client, {
    recipients: "last@example.com",
    copy_recipients: "cc@example.com",
    subject: "latest",
    body: "x",
  });
  await db.query(
    `UPDATE dbmail.mailitems SET sent_status = 'failed', sent_date = now(), last_error = '550 no such user'
     WHERE mailitem_id = $1`,
    [failedItem],
  );
  await db.query(
    `INSERT INTO dbmail.event_log (event_type, description, mailitem_id, last_mod_user)
     VALUES ('error', 'Mail Id ' || $1 || ' failed: 550 no such user', $1::bigint, 'postgres')`,
    [failedItem],
  );
  await send(await db.connect(erin), { recipients: "erin@example.com", subject: "erin's", body: "x" });
  web = await startTestConsole(db);
});

afterAll(async () => {
  await web?.close();
  await db?.drop();
});

describe("the overview", () => {
  it("shows an admin every item's counts, the stalled flag, the live senders and the recent failures", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(admin.name);
    const before = await visitor.get("/");
    expect(before.status).toBe(200);
    expect(before.text).toContain('<b>120</b><a href="/items?status=unsent">unsent</a>');
    expect(before.text).toContain('<b>1</b><a href="/items?status=failed">failed</a>');
    expect(before.text).toContain(`Oldest mail still waiting: <time>${await oldestWaiting()}</time>`);
    expect(before.text).toContain("STALLED: mail is due and no sender is alive");
    expect(before.text).toContain("Live senders: 0");
    expect(before.text).toMatch(
      new RegExp(`<a href="/items/${failedItem}">${failedItem}</a>.*550 no such user`),
    );
    await db.query(
      "SELECT * FROM dbmail.sender_heartbeat('console-sender-1', 'mail<b>host</b>', 4242, '0.1.0')",
    );
    const after = await visitor.get("/");
    expect(after.text).not.toContain("STALLED");
    expect(after.text).toContain("Live senders: 1");
    expect(after.text).toContain(
      "<td>console-sender-1</td><td>mail&lt;b&gt;host&lt;/b&gt;</td><td>4242</td>",
    );
    await db.query("SELECT dbmail.sender_stopped('console-sender-1')");
  });

  it("shows a dbmail_user its own items only, and no senders", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(erin.name);
    const page = await visitor.get("/");
    expect(page.text).toContain('<b>1</b><a href="/items?status=unsent">unsent</a>');
    expect(page.text).toContain('<b>0</b><a href="/items?status=failed">failed</a>');
    expect(page.text).toContain("the senders and the whole queue are shown to admins");
    expect(page.text).toContain(`Oldest mail still waiting: <time>${await oldestWaiting(erin.name)}</time>`);
    expect(page.text).not.toContain("Live senders");
  });
});

describe("/items", () => {
  it("pages by 50, newest first, with older and newer links that keep the filters", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(dave.name);
    const first = await visitor.get("/items?recipient=example.com");
    const firstIds = ids(first.text);
    expect(firstIds).toHaveLength(50);
    expect(firstIds.map(Number)).toEqual([...firstIds.map(Number)].sort((a, b) => b - a));
    expect(link(first.text, "Newer")).toBeUndefined();
    const older = link(first.text, "Older") as string;
    expect(older).toBe(`/items?recipient=example.com&before=${firstIds.at(-1)}`);
    const second = await visitor.get(older);
    expect(ids(second.text)).toHaveLength(50);
    const third = await visitor.get(link(second.text, "Older") as string);
    expect(ids(third.text)).toHaveLength(20);
    expect(link(third.text, "Older")).toBeUndefined();
    const back = await visitor.get(link(second.text, "Newer") as string);
    expect(ids(back.text)).toEqual(firstIds);
    expect(new Set([...firstIds, ...ids(second.text), ...ids(third.text)]).size).toBe(120);
  });

  it("filters by status, recipient (any list, any case), profile and date", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(dave.name);
    expect(ids((await visitor.get("/items?status=failed")).text)).toEqual([failedItem]);
    expect(ids((await visitor.get("/items?recipient=PAGED117@")).text)).toHaveLength(1);
    expect(ids((await visitor.get("/items?recipient=cc%40example")).text)).toHaveLength(1);
    expect(ids((await visitor.get(`/items?profile=${profileId}&status=failed`)).text)).toEqual([failedItem]);
    expect((await visitor.get(`/items?profile=${profileId + 1000}`)).text).toContain("No mail item matches.");
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    expect(ids((await visitor.get(`/items?from=2000-01-01&to=${tomorrow}&status=failed`)).text)).toEqual([
      failedItem,
    ]);
    expect((await visitor.get(`/items?from=${tomorrow}`)).text).toContain("No mail item matches.");
    expect((await visitor.get(`/items?to=2000-01-01&from=1999-01-01`)).text).toContain(
      "No mail item matches.",
    );
    // Today's items, whatever the server's time zone: yesterday to tomorrow.
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    expect(
      ids((await visitor.get(`/items?from=${yesterday}&to=${tomorrow}&status=failed`)).text),
    ).toHaveLength(1);
  });

  it("names the filter and the value it cannot use", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(dave.name);
    const bad = await visitor.get("/items?status=lost&from=2024-13-45&before=abc");
    expect(bad.status).toBe(200);
    expect(bad.text).toContain(
      "status: &quot;lost&quot;: not one of unsent, sending, retrying, sent, failed",
    );
    expect(bad.text).toContain("from: &quot;2024-13-45&quot;: not a date (YYYY-MM-DD)");
    expect(bad.text).toContain("before: &quot;abc&quot;: not a mail item id");
    expect(ids(bad.text)).toEqual([]);
    // Profile names are for admins (a dbmail_user cannot read profiles).
    const profileName = (await call(db, "sysmail_help_profile_sp", { profile_id: profileId }))[0]
      ?.name as string;
    const byName = await visitor.get(`/items?profile=${profileName}`);
    expect(byName.text).toContain("give the profile&#39;s id (profile names are shown to admins only)");
    const adminVisitor = new Visitor(web.url);
    await adminVisitor.signIn(admin.name);
    expect(ids((await adminVisitor.get(`/items?profile=${profileName}&status=failed`)).text)).toEqual([
      failedItem,
    ]);
    expect((await adminVisitor.get("/items?profile=no_such_profile")).text).toContain(
      "profile_name: &quot;no_such_profile&quot;",
    );
  });
});

describe("an item and the event log", () => {
  it("shows every field of the item and its events", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(dave.name);
    const page = await visitor.get(`/items/${failedItem}`);
    expect(page.status).toBe(200);
    const columns = (
      await db.query<{ c: string }>(
        `SELECT column_name AS c FROM information_schema.columns
         WHERE table_schema = 'dbmail' AND table_name = 'sysmail_allitems' AND column_name <> 'body'`,
      )
    ).rows.map((r) => r.c);
    expect(columns.length).toBeGreaterThan(30);
    for (const column of columns) expect(page.text, column).toContain(`<dt>${column}</dt>`);
    expect(page.text).toContain("<dt>last_error</dt><dd>550 no such user</dd>");
    expect(page.text).toContain(`Mail Id ${failedItem} failed: 550 no such user`);
  });

  it("pages the event log; a dbmail_user sees its own items' events, an admin also the others", async () => {
    await call(db, "sysmail_stop_sp");
    await call(db, "sysmail_start_sp");
    const user = new Visitor(web.url);
    await user.signIn(dave.name);
    const own = await user.get("/events");
    expect(own.text).toContain(`Mail Id ${failedItem} failed`);
    expect(own.text).not.toContain("The mail queue was stopped");
    const adminVisitor = new Visitor(web.url);
    await adminVisitor.signIn(admin.name);
    const all = await adminVisitor.get("/events?type=information");
    expect(all.text).toContain("The mail queue was stopped by");
    expect(all.text).not.toContain(`Mail Id ${failedItem} failed`);
    expect((await adminVisitor.get("/events?type=loud")).text).toContain(
      "type: &quot;loud&quot;: not one of success, information, warning, error",
    );
    await erinSeesNoEvent();
  });
});

/** When the oldest waiting item (of `role`, else of all) was queued, as the console shows it. */
async function oldestWaiting(role?: string): Promise<string> {
  const { rows } = await db.query<{ oldest: Date }>(
    `SELECT min(send_request_date) AS oldest FROM dbmail.mailitems
     WHERE sent_status IN ('unsent', 'sending', 'retrying') AND ($1::name IS NULL OR send_request_user = $1)`,
    [role ?? null],
  );
  return first(rows)
    .oldest.toISOString()
    .replace(/\.\d{3}Z$/, "Z");
}

async function erinSeesNoEvent(): Promise<void> {
  const visitor = new Visitor(web.url);
  await visitor.signIn(erin.name);
  expect((await visitor.get("/events")).text).toContain("No event.");
}
