// The admin pages' boundaries (SPEC.md section 12): a dbmail_user gets a 403 "admins only" page for
// every admin page and every admin POST, even one carrying its own valid CSRF token, and nothing
// changes; an admin whose rights were revoked after signing in is refused by the procedures
// themselves; every admin POST needs the CSRF token and the console's Origin, and nothing changes
// without them. The nav links to the admin pages for admins only.
import type { RunningConsole } from "@pg-dbmail/console";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole } from "../support/database.js";
import { addAccount, profileWith, unique } from "../support/mail.js";
import { startTestConsole, Visitor } from "./support.js";

let db: TestDatabase;
let web: RunningConsole;
let admin: TestRole;
let user: TestRole;
let accountId: string;
let profileId: string;

beforeAll(async () => {
  db = await TestDatabase.create();
  admin = await db.createRole("console_sec_admin", { memberOf: ["dbmail_admin"] });
  user = await db.createRole("console_sec_user", { memberOf: ["dbmail_user"] });
  const account = await addAccount(db, { account_name: unique("guarded") });
  accountId = String(account.id);
  const profile = unique("guarded");
  await profileWith(db, profile, [account.name], true);
  const { rows } = await db.query<{ profile_id: number }>(
    "SELECT profile_id FROM dbmail.sysmail_help_profile_sp(profile_name => $1)",
    [profile],
  );
  profileId = String(rows[0]?.profile_id);
  web = await startTestConsole(db);
});

afterAll(async () => {
  await web?.close();
  await db?.drop();
});

const pages = () => [
  "/accounts",
  "/accounts/new",
  `/accounts/${accountId}`,
  `/accounts/${accountId}/delete`,
  "/profiles",
  `/profiles/${profileId}`,
  `/profiles/${profileId}/delete`,
  "/settings",
];

/** Every admin POST with fields that would change something if it went through. */
const posts = (): [string, Record<string, string>][] => [
  [
    "/accounts/new",
    { account_name: unique("forged"), email_address: "x@example.com", mailserver_name: "h", port: "25" },
  ],
  [
    `/accounts/${accountId}`,
    { account_name: "forged", email_address: "x@example.com", mailserver_name: "h", port: "26" },
  ],
  [`/accounts/${accountId}/delete`, {}],
  ["/profiles/new", { profile_name: unique("forged") }],
  [`/profiles/${profileId}`, { profile_name: "forged", description: "forged" }],
  [`/profiles/${profileId}/delete`, { force_delete: "true" }],
  [`/profiles/${profileId}/accounts/add`, { account_id: accountId, sequence_number: "9" }],
  [`/profiles/${profileId}/accounts/update`, { account_id: accountId, sequence_number: "9" }],
  [`/profiles/${profileId}/accounts/delete`, { account_id: accountId }],
  [`/profiles/${profileId}/grants/add`, { principal_name: "postgres", is_default: "true" }],
  [`/profiles/${profileId}/grants/update`, { principal_id: "0", is_default: "false" }],
  [`/profiles/${profileId}/grants/delete`, { principal_id: "0" }],
  ["/settings", { parameter_name: "AccountRetryAttempts", parameter_value: "9" }],
  ["/settings/stop", {}],
  ["/settings/start", {}],
];

/** Everything the admin POSTs could change, read as the superuser. */
async function state(): Promise<string> {
  const parts: string[] = [];
  // One after another: the test's connection runs one query at a time.
  for (const sql of [
    "SELECT * FROM dbmail.sysmail_help_account_sp()",
    "SELECT * FROM dbmail.sysmail_help_profile_sp()",
    `SELECT * FROM dbmail.sysmail_help_profileaccount_sp(profile_id => ${profileId})`,
    "SELECT principal_id::text, profile_id, is_default FROM dbmail.sysmail_help_principalprofile_sp()",
    "SELECT * FROM dbmail.sysmail_help_configure_sp()",
    "SELECT dbmail.sysmail_help_status_sp()",
  ])
    parts.push(JSON.stringify((await db.query(sql)).rows));
  return parts.join("\n");
}

describe("the admin pages' boundaries", () => {
  it("answers a dbmail_user 403 'admins only' for every admin page, and hides them from its nav", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(user.name);
    expect((await visitor.get("/")).text).not.toContain('href="/accounts"');
    for (const path of pages()) {
      const page = await visitor.get(path);
      expect(page.status, path).toBe(403);
      expect(page.text, path).toContain("<h1>Admins only</h1>");
    }
  });

  it("refuses every admin POST of a dbmail_user, even with its own valid CSRF token, and changes nothing", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(user.name);
    const before = await state();
    for (const [path, fields] of posts()) {
      const page = await visitor.post(path, fields);
      expect(page.status, path).toBe(403);
      expect(page.text, path).toContain("Admins only");
    }
    expect(await state()).toBe(before);
  });

  it("leaves the refusal to the procedures for an admin whose rights went after signing in", async () => {
    const former = await db.createRole("console_sec_former", { memberOf: ["dbmail_admin"] });
    const visitor = new Visitor(web.url);
    await visitor.signIn(former.name);
    expect((await visitor.get("/")).text).toContain('href="/accounts"');
    await db.query(`REVOKE dbmail_admin FROM ${former.name}`);
    const before = await state();
    const page = await visitor.post("/profiles/new", { profile_name: unique("late") });
    expect(page.status).toBe(403);
    expect(page.text).toContain("<h1>Admins only</h1>");
    expect(page.text).toContain("<li>permission denied for schema dbmail</li>");
    for (const [path, fields] of posts()) expect((await visitor.post(path, fields)).status, path).toBe(403);
    expect((await visitor.get("/settings")).status).toBe(403);
    expect(await state()).toBe(before);
  });

  it("shows the admin pages in an admin's nav", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(admin.name);
    const home = await visitor.get("/");
    for (const path of ["/accounts", "/profiles", "/settings"])
      expect(home.text).toContain(`<a href="${path}">`);
    for (const path of pages()) expect((await visitor.get(path)).status, path).toBe(200);
  });

  it("refuses every admin POST without the CSRF token, with a wrong one, from another Origin or none", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(admin.name);
    const before = await state();
    for (const [path, fields] of posts()) {
      for (const options of [
        { csrf: null },
        { csrf: "x".repeat(43) },
        { origin: "http://evil.example" },
        { origin: null },
      ]) {
        const page = await visitor.post(path, fields, options);
        expect(page.status, `${path} ${JSON.stringify(options)}`).toBe(403);
        expect(page.text).toMatch(/^Forbidden: /);
      }
    }
    expect(await state()).toBe(before);
    // The same POST from the console's page with its token goes through.
    expect((await visitor.post("/settings/stop", {})).status).toBe(303);
    expect(await state()).not.toBe(before);
    await visitor.post("/settings/start", {});
  });
});
