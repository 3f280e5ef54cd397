// The accounts page (SPEC.md section 12) as an admin: an account with OAuth2 settings and secrets is
// added through the form, listed with the source of each secret but never the secret (not in the list,
// the edit form, nor a page refusing the form); an empty secret field keeps the stored secret and its
// "clear" box drops it; the procedure's refusal is shown escaped and changes nothing; the Microsoft 365
// warning is shown after saving; a name carrying <script> comes out escaped; deletion asks first.
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { unique } from "../support/mail.js";
import { useSignedInAdmin } from "./support.js";

const clientSecret = "client-secret-Zq81vX";
const refreshToken = "refresh-token-Kp20aB";
const dkimKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
  type: "pkcs8",
  format: "pem",
}) as string;
const dkimKeyBody = (dkimKey.split("\n")[1] ?? "").slice(0, 40);

const t = useSignedInAdmin("console_acct_admin");

async function account(name: string) {
  const { rows } = await t.db.query<Record<string, unknown>>(
    "SELECT * FROM dbmail.sysmail_help_account_sp(account_name => $1)",
    [name],
  );
  return rows[0] as Record<string, unknown>;
}

async function secrets(id: unknown) {
  const { rows } = await t.db.query<Record<string, string | null>>(
    "SELECT * FROM dbmail.account_secrets WHERE account_id = $1",
    [id],
  );
  return rows[0];
}

/** The fields of the edit form as the browser would post them back (secrets empty, boxes ticked or not). */
function formFields(html: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const m of html.matchAll(/<input ([^>]*)>/g)) {
    const attrs = m[1] ?? "";
    const name = /name="([^"]+)"/.exec(attrs)?.[1];
    if (!name || name === "_csrf") continue;
    if (attrs.includes('type="checkbox"')) {
      if (/\bchecked\b/.test(attrs)) fields[name] = "on";
    } else fields[name] = /value="([^"]*)"/.exec(attrs)?.[1] ?? "";
  }
  for (const m of html.matchAll(/<select name="([^"]+)">([\s\S]*?)<\/select>/g)) {
    fields[m[1] ?? ""] = /<option value="([^"]*)" selected/.exec(m[2] ?? "")?.[1] ?? "";
  }
  return fields;
}

const oauthForm = (name: string) => ({
  account_name: name,
  email_address: "box@example.com",
  mailserver_name: "smtp.example.com",
  mailserver_type: "SMTP",
  port: "587",
  security: "starttls",
  tls_reject_unauthorized: "on",
  auth_method: "oauth2",
  username: "box@example.com",
  oauth2_token_url: "https://login.example.com/tenant/oauth2/v2.0/token",
  oauth2_client_id: "client-1",
  oauth2_scope: "https://outlook.office365.com/.default",
  oauth2_client_secret: clientSecret,
  oauth2_refresh_token: refreshToken,
  dkim_domain: "Example.COM",
  dkim_selector: "s1",
  dkim_private_key: dkimKey,
  max_messages_per_minute: "30",
});

function expectNoSecret(html: string) {
  expect(html).not.toContain(clientSecret);
  expect(html).not.toContain(refreshToken);
  expect(html).not.toContain(dkimKeyBody);
  expect(html).not.toContain("PRIVATE KEY");
}

describe("the accounts page", () => {
  it("adds an OAuth2 account with secrets through the form, and shows only how each secret is stored", async () => {
    const name = unique("oauth");
    const form = await t.visitor.get("/accounts/new");
    expect(form.status).toBe(200);
    expect(form.text).toContain('type="password" name="oauth2_client_secret"');
    const saved = await t.visitor.post("/accounts/new", oauthForm(name));
    expect(saved.status).toBe(200);
    expect(saved.text).toContain(`Account ${name} added.`);
    expect(saved.text).toContain("oauth2_client_secret: literal, oauth2_refresh_token: literal");
    expect(saved.text).toContain("dkim_private_key: literal");
    expect(saved.text).toContain("example.com (s1)");
    expectNoSecret(saved.text);

    const row = await account(name);
    expect(row).toMatchObject({
      auth_method: "oauth2",
      oauth2_client_id: "client-1",
      oauth2_client_secret_source: "literal",
      oauth2_refresh_token_source: "literal",
      dkim_domain: "example.com",
      dkim_private_key_source: "literal",
      security: "starttls",
      port: 587,
      max_messages_per_minute: 30,
    });
    expect(await secrets(row.account_id)).toMatchObject({
      oauth2_client_secret: clientSecret,
      oauth2_refresh_token: refreshToken,
      dkim_private_key: dkimKey,
    });

    const list = await t.visitor.get("/accounts");
    expect(list.text).toContain(`>${name}</a>`);
    expectNoSecret(list.text);
    const edit = await t.visitor.get(`/accounts/${row.account_id}`);
    expect(edit.status).toBe(200);
    expect(edit.text).toContain("stored: literal; leave empty to keep it");
    expectNoSecret(edit.text);
  });

  it("keeps a secret whose field is left empty on edit, and drops it when its clear box is ticked", async () => {
    const name = unique("keep");
    await t.visitor.post("/accounts/new", oauthForm(name));
    const { account_id: id } = await account(name);
    const fields = formFields((await t.visitor.get(`/accounts/${id}`)).text);
    expect(fields.oauth2_client_secret).toBe("");
    const saved = await t.visitor.post(`/accounts/${id}`, { ...fields, max_messages_per_minute: "45" });
    expect(saved.status).toBe(200);
    expect(saved.text).toContain(`Account ${name} saved.`);
    expect(await account(name)).toMatchObject({ max_messages_per_minute: 45, oauth2_client_id: "client-1" });
    expect(await secrets(id)).toMatchObject({
      oauth2_client_secret: clientSecret,
      oauth2_refresh_token: refreshToken,
    });

    await t.visitor.post(`/accounts/${id}`, {
      ...fields,
      clear_oauth2_refresh_token: "on",
      max_messages_per_minute: "",
    });
    expect(await account(name)).toMatchObject({
      oauth2_refresh_token_source: "none",
      oauth2_client_secret_source: "literal",
      max_messages_per_minute: null,
    });
    expect(await secrets(id)).toMatchObject({
      oauth2_client_secret: clientSecret,
      oauth2_refresh_token: null,
    });
  });

  it("shows a refused add's error from the procedure, escaped, without the secrets, and adds nothing", async () => {
    const before = (await t.db.query("SELECT * FROM dbmail.sysmail_help_account_sp()")).rowCount;
    const name = `<script>alert(1)</script>${unique("bad")}`;
    const refused = await t.visitor.post("/accounts/new", {
      ...oauthForm(name),
      email_address: "DB <db@example.com>",
    });
    expect(refused.status).toBe(422);
    expect(refused.text).toMatch(
      /<ul class="problems" role="alert"><li>email_address: &quot;DB &lt;db@example.com&gt;&quot;: [^<]+<\/li>/,
    );
    expect(refused.text).not.toContain("<script>alert(1)");
    // The form comes back with what was typed, except the secrets.
    expect(refused.text).toContain('value="client-1"');
    expectNoSecret(refused.text);
    expect((await t.db.query("SELECT * FROM dbmail.sysmail_help_account_sp()")).rowCount).toBe(before);

    const badPort = await t.visitor.post("/accounts/new", { ...oauthForm(unique("port")), port: "5x" });
    expect(badPort.status).toBe(422);
    expect(badPort.text).toContain("port: &quot;5x&quot;: not a whole number");
    expectNoSecret(badPort.text);
  });

  it("shows an account name carrying <script> escaped in the list and on its edit page", async () => {
    const name = `<script>alert('x')</script> ${unique("esc")}`;
    const saved = await t.visitor.post("/accounts/new", {
      account_name: name,
      email_address: "db@example.com",
      mailserver_name: "smtp.example.com",
      port: "25",
    });
    expect(saved.status).toBe(200);
    const escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;";
    expect(saved.text).toContain(escaped);
    expect(saved.text).not.toContain("<script>alert");
    const { account_id: id } = await account(name);
    const edit = await t.visitor.get(`/accounts/${id}`);
    expect(edit.text).toContain(escaped);
    expect(edit.text).not.toContain("<script>alert");
  });

  it("shows the Microsoft 365 password warning of the procedure after saving", async () => {
    const name = unique("m365");
    const saved = await t.visitor.post("/accounts/new", {
      account_name: name,
      email_address: "db@contoso.example",
      mailserver_name: "smtp.office365.com",
      port: "587",
      security: "starttls",
      username: "db@contoso.example",
      password: "m365-password-Qw9",
    });
    expect(saved.status).toBe(200);
    expect(saved.text).toMatch(
      /<li>WARNING: account \d+ \(\w+\) logs in to smtp.office365.com with a password: Microsoft 365/,
    );
    expect(saved.text).not.toContain("m365-password-Qw9");
  });

  it("asks before deleting an account, and deletes it on the confirmation's POST", async () => {
    const name = unique("gone");
    await t.visitor.post("/accounts/new", {
      account_name: name,
      email_address: "a@example.com",
      mailserver_name: "h",
      port: "25",
    });
    const { account_id: id } = await account(name);
    const confirm = await t.visitor.get(`/accounts/${id}/delete`);
    expect(confirm.text).toContain(`Delete account ${name}?`);
    expect(await account(name)).toBeDefined();
    const deleted = await t.visitor.post(`/accounts/${id}/delete`, {});
    expect(deleted.status).toBe(303);
    expect(deleted.headers.get("Location")).toBe("/accounts");
    const { rowCount } = await t.db.query("SELECT 1 FROM dbmail.accounts WHERE account_id = $1", [id]);
    expect(rowCount).toBe(0);
    expect((await t.visitor.get(`/accounts/${id}`)).status).toBe(404);
    expect((await t.visitor.get("/accounts/abc")).status).toBe(404);
  });
});
