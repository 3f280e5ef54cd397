// Mail accounts (SPEC.md sections 4 and 5): sysmail_add/update/delete/help_account_sp as a dbmail_admin
// member, what help_account_sp shows (never the password) and what the private tables hold. Refusals are
// in accounts-bad-input.test.ts.
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import { type Args, addAccount, addProfile, call, unique } from "../../../../test/support/mail.js";
import {
  admin,
  adminRole,
  link,
  listedInIdOrder,
  scalar,
  single,
  su,
  useDatabase,
} from "../support/configuration.js";

useDatabase("cfg_accounts");

const helpAccount = (args: Args) => single("sysmail_help_account_sp", args);

/** What help_account_sp shows of an account without OAuth2, DKIM or a rate limit (SPEC.md section 13). */
const WITHOUT_MODERN_SETTINGS = {
  oauth2_token_url: null,
  oauth2_client_id: null,
  oauth2_scope: null,
  oauth2_client_secret_source: "none",
  oauth2_refresh_token_source: "none",
  dkim_domain: null,
  dkim_selector: null,
  dkim_private_key_source: "none",
  max_messages_per_minute: null,
};

describe("accounts", () => {
  it("add returns the new id; help_account_sp shows the settings but never the password", async () => {
    const name = unique("Relay");
    const id = await scalar(admin, "sysmail_add_account_sp", {
      account_name: name,
      email_address: "ops@example.com",
      display_name: "Ops Team",
      replyto_address: "replies@example.com",
      description: "main relay",
      mailserver_name: "smtp.example.com",
      port: 587,
      username: "mailer",
      password: "Sup3r-Secret!",
      enable_ssl: true,
      timeout: 30,
    });
    expect(typeof id).toBe("number");
    const rows = await call(admin, "sysmail_help_account_sp", { account_name: name });
    expect(rows).toEqual([
      {
        account_id: id,
        name,
        description: "main relay",
        email_address: "ops@example.com",
        display_name: "Ops Team",
        replyto_address: "replies@example.com",
        servertype: "SMTP",
        servername: "smtp.example.com",
        port: 587,
        username: "mailer",
        use_default_credentials: false,
        enable_ssl: true,
        security: "starttls",
        timeout: 30,
        tls_reject_unauthorized: true,
        password_source: "literal",
        auth_method: "password",
        ...WITHOUT_MODERN_SETTINGS,
      },
    ]);
    expect(JSON.stringify(rows)).not.toContain("Sup3r-Secret!");
  });

  it("keeps the password apart: the superuser reads it, a dbmail_admin cannot", async () => {
    const { id } = await addAccount(admin, { username: "mailer", password: "hunter2" });
    expect(await su("SELECT password FROM dbmail.account_secrets WHERE account_id = $1", [id])).toEqual([
      { password: "hunter2" },
    ]);
    expect((await errorOf(admin.query("SELECT * FROM dbmail.account_secrets"))).code).toBe("42501");
    expect((await errorOf(admin.query("SELECT * FROM dbmail.accounts"))).code).toBe("42501");
  });

  it("records the calling role as last_mod_user", async () => {
    const { id } = await addAccount(admin);
    expect(await su("SELECT last_mod_user FROM dbmail.accounts WHERE account_id = $1", [id])).toEqual([
      { last_mod_user: adminRole.name },
    ]);
  });

  it("applies SQL Server's defaults", async () => {
    const { id, name } = await addAccount(admin);
    expect(await helpAccount({ account_id: id })).toEqual({
      account_id: id,
      name,
      description: null,
      email_address: "ops@example.com",
      display_name: null,
      replyto_address: null,
      servertype: "SMTP",
      servername: "smtp.example.com",
      port: 25,
      username: null,
      use_default_credentials: false,
      enable_ssl: false,
      security: "none",
      timeout: null,
      tls_reject_unauthorized: true,
      password_source: "none",
      auth_method: "none",
      ...WITHOUT_MODERN_SETTINGS,
    });
  });

  it.each([
    { args: { enable_ssl: true }, security: "starttls", enable_ssl: true },
    { args: { security: "tls", port: 465 }, security: "tls", enable_ssl: true },
    { args: { security: " STARTTLS " }, security: "starttls", enable_ssl: true },
    { args: { enable_ssl: true, security: "tls" }, security: "tls", enable_ssl: true },
  ])("maps $args to security $security", async ({ args, security, enable_ssl }) => {
    const { id } = await addAccount(admin, args);
    expect(await helpAccount({ account_id: id })).toMatchObject({ security, enable_ssl });
  });

  it("accepts env: and file: password references, shown as password_source env and file", async () => {
    const env = await addAccount(admin, { username: "u", password: "env:SMTP_PASSWORD" });
    const file = await addAccount(admin, { username: "u", password: "file:/run/secrets/smtp" });
    expect(await helpAccount({ account_id: env.id })).toMatchObject({ password_source: "env" });
    expect(await helpAccount({ account_id: file.id })).toMatchObject({ password_source: "file" });
    const secrets = await su(
      "SELECT password FROM dbmail.account_secrets WHERE account_id IN ($1, $2) ORDER BY account_id",
      [env.id, file.id],
    );
    expect(secrets).toEqual([{ password: "env:SMTP_PASSWORD" }, { password: "file:/run/secrets/smtp" }]);
  });

  it("help_account_sp lists every account by id, or finds one by id or by name in any case", async () => {
    const a = await addAccount(admin);
    const b = await addAccount(admin);
    const all = await listedInIdOrder("sysmail_help_account_sp", "account_id", [a.id, b.id]);
    expect(all.length).toBe(Number((await su("SELECT count(*) AS n FROM dbmail.accounts"))[0]?.n));
    expect((await helpAccount({ account_name: a.name.toUpperCase() })).account_id).toBe(a.id);
    expect((await helpAccount({ account_id: b.id })).name).toBe(b.name);
  });

  it("an account's email_address is a bare address (a display name goes in display_name)", async () => {
    const error = await errorOf(
      scalar(admin, "sysmail_add_account_sp", {
        account_name: unique("acct"),
        email_address: "Ops <ops@example.com>",
        mailserver_name: "smtp.example.com",
      }),
    );
    expect(error.code).toBe("22023");
    expect(error.message).toMatch(/^email_address: "Ops <ops@example.com>": /);
  });

  describe("update", () => {
    it("NULL arguments keep every stored value", async () => {
      const { id } = await addAccount(admin, {
        display_name: "Ops",
        replyto_address: "r@example.com",
        description: "d",
        port: 2525,
        username: "u",
        password: "p",
        security: "tls",
        timeout: 20,
        tls_reject_unauthorized: false,
      });
      const before = await helpAccount({ account_id: id });
      await call(admin, "sysmail_update_account_sp", { account_id: id });
      expect(await helpAccount({ account_id: id })).toEqual(before);
      await call(admin, "sysmail_update_account_sp", { account_id: id, port: 587 });
      expect(await helpAccount({ account_id: id })).toEqual({ ...before, port: 587 });
    });

    it("'' clears display_name, replyto_address and description", async () => {
      const { id } = await addAccount(admin, {
        display_name: "Ops",
        replyto_address: "r@example.com",
        description: "d",
      });
      await call(admin, "sysmail_update_account_sp", {
        account_id: id,
        display_name: "",
        replyto_address: "",
        description: "",
      });
      expect(await helpAccount({ account_id: id })).toMatchObject({
        display_name: null,
        replyto_address: null,
        description: null,
      });
    });

    it("without a password keeps the stored one (SQL Server would drop it)", async () => {
      const { id } = await addAccount(admin, { username: "mailer", password: "keep-me" });
      await call(admin, "sysmail_update_account_sp", {
        account_id: id,
        display_name: "New name",
        port: 2525,
      });
      expect(await helpAccount({ account_id: id })).toMatchObject({
        username: "mailer",
        password_source: "literal",
        display_name: "New name",
      });
      expect(await su("SELECT password FROM dbmail.account_secrets WHERE account_id = $1", [id])).toEqual([
        { password: "keep-me" },
      ]);
    });

    it("a new password replaces the stored one; username '' drops username and password", async () => {
      const { id } = await addAccount(admin, { username: "mailer", password: "old" });
      await call(admin, "sysmail_update_account_sp", { account_id: id, password: "env:NEW_SECRET" });
      expect(await su("SELECT password FROM dbmail.account_secrets WHERE account_id = $1", [id])).toEqual([
        { password: "env:NEW_SECRET" },
      ]);
      expect((await helpAccount({ account_id: id })).password_source).toBe("env");
      await call(admin, "sysmail_update_account_sp", { account_id: id, username: "" });
      expect(await helpAccount({ account_id: id })).toMatchObject({
        username: null,
        password_source: "none",
      });
      expect(await su("SELECT * FROM dbmail.account_secrets WHERE account_id = $1", [id])).toEqual([]);
    });

    it("use_default_credentials => true drops the stored username and password", async () => {
      const { id } = await addAccount(admin, { username: "mailer", password: "pw" });
      await call(admin, "sysmail_update_account_sp", { account_id: id, use_default_credentials: true });
      expect(await helpAccount({ account_id: id })).toMatchObject({
        use_default_credentials: true,
        username: null,
        password_source: "none",
      });
    });

    it("account_id with account_name renames; the old name is then unknown", async () => {
      const { id, name } = await addAccount(admin);
      const newName = unique("renamed");
      await call(admin, "sysmail_update_account_sp", { account_id: id, account_name: newName });
      expect((await helpAccount({ account_name: newName })).account_id).toBe(id);
      expect((await errorOf(call(admin, "sysmail_help_account_sp", { account_name: name }))).code).toBe(
        "42704",
      );
      // Changing only the case of its own name is not a duplicate.
      await call(admin, "sysmail_update_account_sp", { account_id: id, account_name: newName.toUpperCase() });
      expect((await helpAccount({ account_id: id })).name).toBe(newName.toUpperCase());
    });

    it("by name: enable_ssl and security switch the transport security", async () => {
      const { id, name } = await addAccount(admin);
      await call(admin, "sysmail_update_account_sp", { account_name: name, enable_ssl: true });
      expect(await helpAccount({ account_id: id })).toMatchObject({ security: "starttls", enable_ssl: true });
      await call(admin, "sysmail_update_account_sp", { account_name: name, security: "TLS", port: 465 });
      expect(await helpAccount({ account_id: id })).toMatchObject({
        security: "tls",
        enable_ssl: true,
        port: 465,
      });
      await call(admin, "sysmail_update_account_sp", { account_name: name, enable_ssl: false });
      expect(await helpAccount({ account_id: id })).toMatchObject({ security: "none", enable_ssl: false });
    });

    it("changes address, server, timeout and records who changed it", async () => {
      const { id } = await addAccount(admin);
      await call(admin, "sysmail_update_account_sp", {
        account_id: id,
        email_address: " noreply@example.org ",
        mailserver_name: "mail.example.org",
        timeout: 45,
        tls_reject_unauthorized: false,
      });
      expect(await helpAccount({ account_id: id })).toMatchObject({
        email_address: "noreply@example.org",
        servername: "mail.example.org",
        timeout: 45,
        tls_reject_unauthorized: false,
      });
      expect(await su("SELECT last_mod_user FROM dbmail.accounts WHERE account_id = $1", [id])).toEqual([
        { last_mod_user: adminRole.name },
      ]);
    });
  });

  it("delete by name or id removes the account with its secret and profile memberships", async () => {
    const a = await addAccount(admin, { username: "u", password: "p" });
    const b = await addAccount(admin);
    const profile = await addProfile(admin);
    await link(profile.id, a.id, 1);
    await call(admin, "sysmail_delete_account_sp", { account_name: a.name });
    await call(admin, "sysmail_delete_account_sp", { account_id: b.id });
    expect((await errorOf(call(admin, "sysmail_help_account_sp", { account_id: a.id }))).code).toBe("42704");
    expect((await errorOf(call(admin, "sysmail_help_account_sp", { account_id: b.id }))).code).toBe("42704");
    expect(await su("SELECT * FROM dbmail.account_secrets WHERE account_id = $1", [a.id])).toEqual([]);
    expect(await call(admin, "sysmail_help_profileaccount_sp", { profile_id: profile.id })).toEqual([]);
    expect(await call(admin, "sysmail_help_profile_sp", { profile_id: profile.id })).toHaveLength(1);
  });
});
