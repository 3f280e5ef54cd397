// The account settings of SPEC.md section 13, as a dbmail_admin member configures them: OAuth2 (auth_method,
// oauth2_*), DKIM (dkim_*) and max_messages_per_minute. What help_account_sp shows (how each secret is
// given, never the secret), each refusal (naming the parameter, changing nothing), how an update switches
// the login method, and the Microsoft 365 warning. Delivery with these settings: test/sender/oauth2,
// dkim and rate-limit tests.
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import { type Args, call, unique } from "../../../../test/support/mail.js";
import { admin, expectBadCall, scalar, single, su, useDatabase, user } from "../support/configuration.js";

useDatabase("cfg_modern");

const SECRET = "client-Secret-4711";
const REFRESH = "refresh-Token-0815";
const PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";

const base = (): Args => ({
  account_name: unique("modern"),
  email_address: "reports@example.com",
  mailserver_name: "smtp.example.com",
});
const oauth2 = (): Args => ({
  ...base(),
  username: "reports@example.com",
  auth_method: "oauth2",
  oauth2_token_url: "https://login.example.com/tenant/oauth2/v2.0/token",
  oauth2_client_id: "00000000-1111-2222-3333-444444444444",
  oauth2_client_secret: SECRET,
  oauth2_scope: "https://outlook.office365.com/.default",
});
const dkim = (): Args => ({ dkim_domain: "Example.com", dkim_selector: "sel2026", dkim_private_key: PEM });

async function add(args: Args): Promise<number> {
  return (await scalar(admin, "sysmail_add_account_sp", args)) as number;
}

const helpAccount = (id: number) => single("sysmail_help_account_sp", { account_id: id });

describe("OAuth2, DKIM and rate-limit settings", () => {
  it("help_account_sp shows each setting and how each secret is given, never a secret", async () => {
    const id = await add({
      ...oauth2(),
      oauth2_refresh_token: "env:M365_REFRESH",
      ...dkim(),
      dkim_private_key: "file:/etc/dbmail/dkim.pem",
      max_messages_per_minute: 30,
    });
    const row = await helpAccount(id);
    expect(row).toMatchObject({
      auth_method: "oauth2",
      username: "reports@example.com",
      oauth2_token_url: "https://login.example.com/tenant/oauth2/v2.0/token",
      oauth2_client_id: "00000000-1111-2222-3333-444444444444",
      oauth2_scope: "https://outlook.office365.com/.default",
      password_source: "none",
      oauth2_client_secret_source: "literal",
      oauth2_refresh_token_source: "env",
      dkim_domain: "example.com",
      dkim_selector: "sel2026",
      dkim_private_key_source: "file",
      max_messages_per_minute: 30,
    });
    expect(JSON.stringify(row)).not.toContain(SECRET);
    expect(
      await su(
        "SELECT oauth2_client_secret, dkim_private_key FROM dbmail.account_secrets WHERE account_id = $1",
        [id],
      ),
    ).toEqual([{ oauth2_client_secret: SECRET, dkim_private_key: "file:/etc/dbmail/dkim.pem" }]);
  });

  it("auth_method defaults to password with a username and to none without", async () => {
    const withLogin = await add({ ...base(), username: "u", password: "p" });
    const without = await add(base());
    expect((await helpAccount(withLogin)).auth_method).toBe("password");
    expect((await helpAccount(without)).auth_method).toBe("none");
  });

  it("a refresh token alone will do (a public client), without a client secret", async () => {
    const id = await add({ ...oauth2(), oauth2_client_secret: null, oauth2_refresh_token: REFRESH });
    expect(await helpAccount(id)).toMatchObject({
      oauth2_client_secret_source: "none",
      oauth2_refresh_token_source: "literal",
    });
  });

  const refusals = [
    {
      label: "an unknown auth_method",
      args: () => ({ ...base(), auth_method: "kerberos" }),
      code: "22023",
      parameter: "auth_method",
      value: "kerberos",
    },
    {
      label: "oauth2 without a token URL",
      args: () => ({ ...oauth2(), oauth2_token_url: null }),
      code: "22004",
      parameter: "oauth2_token_url",
      value: null,
    },
    {
      label: "a token URL that is not http(s)",
      args: () => ({ ...oauth2(), oauth2_token_url: "ftp://x/token" }),
      code: "22023",
      parameter: "oauth2_token_url",
      value: "ftp://x/token",
    },
    {
      label: "oauth2 without a client id",
      args: () => ({ ...oauth2(), oauth2_client_id: null }),
      code: "22004",
      parameter: "oauth2_client_id",
      value: null,
    },
    {
      label: "oauth2 without a secret or refresh token",
      args: () => ({ ...oauth2(), oauth2_client_secret: null }),
      code: "22004",
      parameter: "oauth2_client_secret",
      value: null,
    },
    {
      label: "oauth2 without a username",
      args: () => ({ ...oauth2(), username: null }),
      code: "22004",
      parameter: "username",
      value: null,
    },
    {
      label: "oauth2 with a password (never shown)",
      args: () => ({ ...oauth2(), password: "hunter2" }),
      code: "22023",
      parameter: "password",
      value: "********",
    },
    {
      label: "oauth2 settings on a password account",
      args: () => ({ ...base(), username: "u", oauth2_client_id: "x" }),
      code: "22023",
      parameter: "auth_method",
      value: "password",
    },
    {
      label: "a malformed env: reference",
      args: () => ({ ...oauth2(), oauth2_client_secret: "env:1BAD" }),
      code: "22023",
      parameter: "oauth2_client_secret",
      value: "env:1BAD",
    },
    {
      label: "a relative file: reference",
      args: () => ({ ...oauth2(), oauth2_refresh_token: "file:token.txt" }),
      code: "22023",
      parameter: "oauth2_refresh_token",
      value: "file:token.txt",
    },
    {
      label: "DKIM without a selector",
      args: () => ({ ...base(), ...dkim(), dkim_selector: null }),
      code: "22004",
      parameter: "dkim_selector",
      value: null,
    },
    {
      label: "DKIM without a key",
      args: () => ({ ...base(), ...dkim(), dkim_private_key: null }),
      code: "22004",
      parameter: "dkim_private_key",
      value: null,
    },
    {
      label: "a DKIM domain that is no domain",
      args: () => ({ ...base(), ...dkim(), dkim_domain: "not a domain" }),
      code: "22023",
      parameter: "dkim_domain",
      value: "not a domain",
    },
    {
      label: "a DKIM key that is not PEM (never shown)",
      args: () => ({ ...base(), ...dkim(), dkim_private_key: "my-secret-key" }),
      code: "22023",
      parameter: "dkim_private_key",
      value: "********",
    },
    {
      label: "a negative rate",
      args: () => ({ ...base(), max_messages_per_minute: -5 }),
      code: "22023",
      parameter: "max_messages_per_minute",
      value: "-5",
    },
    {
      label: "a rate over 100000",
      args: () => ({ ...base(), max_messages_per_minute: 100_001 }),
      code: "22023",
      parameter: "max_messages_per_minute",
      value: "100001",
    },
  ];
  it.each(refusals)("add refuses $label, naming the parameter", async (refusal) => {
    await expectBadCall("sysmail_add_account_sp", refusal);
  });

  it("no refusal message carries a secret", async () => {
    for (const args of [
      { ...oauth2(), password: "hunter2" },
      { ...base(), ...dkim(), dkim_private_key: "my-secret-key" },
    ]) {
      const { message } = await errorOf(call(admin, "sysmail_add_account_sp", args));
      expect(message).not.toMatch(/hunter2|my-secret-key/);
    }
  });
});

describe("updating the login method", () => {
  it("a new auth_method drops the old method's credentials; oauth2 back to password keeps none of oauth2's", async () => {
    const id = await add({ ...base(), username: "reports@example.com", password: "old-password" });
    await call(admin, "sysmail_update_account_sp", {
      account_id: id,
      auth_method: "oauth2",
      oauth2_token_url: "https://login.example.com/token",
      oauth2_client_id: "client",
      oauth2_client_secret: SECRET,
    });
    expect(
      await su("SELECT password, oauth2_client_secret FROM dbmail.account_secrets WHERE account_id = $1", [
        id,
      ]),
    ).toEqual([{ password: null, oauth2_client_secret: SECRET }]);
    await call(admin, "sysmail_update_account_sp", {
      account_id: id,
      auth_method: "password",
      password: "new",
    });
    expect(await helpAccount(id)).toMatchObject({
      auth_method: "password",
      username: "reports@example.com",
      password_source: "literal",
      oauth2_token_url: null,
      oauth2_client_id: null,
      oauth2_client_secret_source: "none",
    });
  });

  it("leaving auth_method out keeps it; dkim_domain => '' turns DKIM off; max_messages_per_minute => 0 the limit", async () => {
    const id = await add({ ...oauth2(), ...dkim(), max_messages_per_minute: 10 });
    await call(admin, "sysmail_update_account_sp", { account_id: id, oauth2_scope: "" });
    await call(admin, "sysmail_update_account_sp", {
      account_id: id,
      dkim_domain: "",
      max_messages_per_minute: 0,
    });
    expect(await helpAccount(id)).toMatchObject({
      auth_method: "oauth2",
      oauth2_scope: null,
      oauth2_client_secret_source: "literal",
      dkim_domain: null,
      dkim_selector: null,
      dkim_private_key_source: "none",
      max_messages_per_minute: null,
    });
  });

  it("an update that breaks the oauth2 settings is refused and changes nothing", async () => {
    const id = await add(oauth2());
    await expectBadCall("sysmail_update_account_sp", {
      label: "clearing the token URL",
      args: () => ({ account_id: id, oauth2_token_url: "" }),
      code: "22004",
      parameter: "oauth2_token_url",
      value: null,
    });
  });
});

describe("Microsoft 365 and password logins", () => {
  it("warns, in the event log and to the caller, when a password account points at Microsoft 365", async () => {
    const notices: string[] = [];
    const listen = (n: { message?: string; severity?: string }) =>
      notices.push(`${n.severity}: ${n.message}`);
    admin.on("notice", listen);
    try {
      const name = unique("m365");
      const id = await add({
        ...base(),
        account_name: name,
        mailserver_name: "smtp.office365.com",
        username: "u",
        password: "p",
      });
      const expected = `account ${id} (${name}) logs in to smtp.office365.com with a password: Microsoft 365 is switching Basic SMTP AUTH off; use auth_method => 'oauth2' (see docs/sender.md)`;
      expect(notices).toContain(`WARNING: ${expected}`);
      expect(
        await su("SELECT event_type, account_id FROM dbmail.event_log WHERE description = $1", [expected]),
      ).toEqual([{ event_type: "warning", account_id: id }]);
      notices.length = 0;
      await add({ ...oauth2(), mailserver_name: "smtp.office365.com" });
      expect(notices).toEqual([]);
    } finally {
      admin.off("notice", listen);
    }
  });
});

describe("who may see and use the new settings", () => {
  it("a dbmail_user may not read accounts, call help_account_sp, sender_accounts or take_send_slot", async () => {
    for (const sql of [
      "SELECT * FROM dbmail.account_secrets",
      "SELECT * FROM dbmail.send_slots",
      "SELECT * FROM dbmail.sysmail_help_account_sp()",
      "SELECT * FROM dbmail.sender_accounts()",
      "SELECT * FROM dbmail.take_send_slot('x', 1, gen_random_uuid(), 1)",
    ]) {
      expect((await errorOf(user.query(sql))).code, sql).toBe("42501");
    }
  });

  it("an admin reads no secret: not from the tables, not from any view", async () => {
    await add({ ...oauth2(), oauth2_refresh_token: REFRESH, ...dkim() });
    expect((await errorOf(admin.query("SELECT * FROM dbmail.account_secrets"))).code).toBe("42501");
    const views = await su("SELECT viewname FROM pg_views WHERE schemaname = 'dbmail'");
    for (const { viewname } of views) {
      const rows = await admin.query(`SELECT * FROM dbmail.${viewname}`).then(
        (r) => r.rows,
        () => [],
      );
      expect(JSON.stringify(rows), String(viewname)).not.toMatch(
        new RegExp(`${SECRET}|${REFRESH}|PRIVATE KEY`),
      );
    }
  });
});
