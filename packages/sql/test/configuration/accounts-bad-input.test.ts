// Mail accounts refusing bad input (SPEC.md sections 4 and 9): every refusal of
// sysmail_add/update/delete/help_account_sp names the parameter and value, and changes nothing.
import { beforeAll, describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import { addAccount, call, unique } from "../../../../test/support/mail.js";
import { admin, type BadCall, expectBadCall, useDatabase } from "../support/configuration.js";

useDatabase("cfg_accounts_bad_input");

describe("accounts: bad input", () => {
  let fixture: { id: number; name: string };
  let other: { id: number; name: string };
  let locked: { id: number; name: string };
  const valid = () => ({
    account_name: unique("bad"),
    email_address: "ops@example.com",
    mailserver_name: "smtp.example.com",
  });

  beforeAll(async () => {
    fixture = await addAccount(admin, { account_name: unique("Fixture_Acct") });
    other = await addAccount(admin, { account_name: unique("Other_Acct") });
    locked = await addAccount(admin, { use_default_credentials: true });
  });

  // biome-ignore format: a table reads best one case per line
  const addCases: BadCall[] = [
    { label: "mailserver_type POP3", args: () => ({ mailserver_type: "POP3" }), code: "22023", parameter: "mailserver_type", value: "POP3", problem: "only SMTP" },
    { label: "mailserver_type NULL", args: () => ({ mailserver_type: null }), code: "22004", parameter: "mailserver_type", value: null },
    { label: "security ssl", args: () => ({ security: "ssl" }), code: "22023", parameter: "security", value: "ssl", problem: "must be none, starttls or tls" },
    { label: "security SSL (shown as given)", args: () => ({ security: "SSL" }), code: "22023", parameter: "security", value: "SSL" },
    { label: "security none with enable_ssl", args: () => ({ security: "none", enable_ssl: true }), code: "22023", parameter: "security", value: "none", problem: "enable_ssl" },
    { label: "email_address without @", args: () => ({ email_address: "not-an-address" }), code: "22023", parameter: "email_address", value: "not-an-address", problem: "no @" },
    { label: "email_address NULL", args: () => ({ email_address: null }), code: "22004", parameter: "email_address", value: null },
    { label: "two email addresses", args: () => ({ email_address: "a@example.com;b@example.com" }), code: "22023", parameter: "email_address", value: "a@example.com;b@example.com", problem: "only one address" },
    { label: "a comma in replyto_address", args: () => ({ replyto_address: "a@example.com, b@example.com" }), code: "22023", parameter: "replyto_address", value: "a@example.com, b@example.com", problem: "use ';'" },
    { label: "username with use_default_credentials", args: () => ({ username: "bob", use_default_credentials: true }), code: "22023", parameter: "username", value: "bob", problem: "use_default_credentials" },
    { label: "password without username (masked)", args: () => ({ password: "s3cret" }), code: "22023", parameter: "password", value: "********", problem: "needs a username" },
    { label: "env: without a variable name", args: () => ({ username: "u", password: "env:1BAD" }), code: "22023", parameter: "password", value: "env:1BAD" },
    { label: "file: with a relative path", args: () => ({ username: "u", password: "file:secrets/pw" }), code: "22023", parameter: "password", value: "file:secrets/pw", problem: "absolute path" },
    { label: "port 0", args: () => ({ port: 0 }), code: "22023", parameter: "port", value: "0", problem: "from 1 to 65535" },
    { label: "port 70000", args: () => ({ port: 70000 }), code: "22023", parameter: "port", value: "70000", problem: "from 1 to 65535" },
    { label: "port NULL", args: () => ({ port: null }), code: "22004", parameter: "port", value: null },
    { label: "timeout 0", args: () => ({ timeout: 0 }), code: "22023", parameter: "timeout", value: "0", problem: "from 1 to 3600" },
    { label: "account_name NULL", args: () => ({ account_name: null }), code: "22004", parameter: "account_name", value: null },
    { label: "a blank account_name", args: () => ({ account_name: "  " }), code: "22004", parameter: "account_name", value: "  " },
    { label: "mailserver_name NULL", args: () => ({ mailserver_name: null }), code: "22004", parameter: "mailserver_name", value: null },
    { label: "mailserver_name with a space", args: () => ({ mailserver_name: "smtp example.com" }), code: "22023", parameter: "mailserver_name", value: "smtp example.com" },
    { label: "display_name with a line break", args: () => ({ display_name: "Ops\r\nBcc: x@evil.example" }), code: "22023", parameter: "display_name", value: "Ops\r\nBcc: x@evil.example", problem: "line breaks" },
    { label: "use_default_credentials NULL", args: () => ({ use_default_credentials: null }), code: "22004", parameter: "use_default_credentials", value: null },
    { label: "a duplicate name", args: () => ({ account_name: fixture.name }), code: "42710", parameter: "account_name", value: () => fixture.name, problem: "exists" },
    { label: "a duplicate name in another case", args: () => ({ account_name: fixture.name.toUpperCase() }), code: "42710", parameter: "account_name", value: () => fixture.name.toUpperCase() },
  ];

  it.each(addCases)("add refuses $label", async (bad) => {
    await expectBadCall("sysmail_add_account_sp", bad, valid());
  });

  it("add never shows the password in a message", async () => {
    const error = await errorOf(
      call(admin, "sysmail_add_account_sp", { ...valid(), password: "Very$ecret" }),
    );
    expect(error.message).not.toContain("Very$ecret");
  });

  // biome-ignore format: a table reads best one case per line
  const updateCases: BadCall[] = [
    { label: "an unknown account_id", args: () => ({ account_id: 999999, port: 26 }), code: "42704", parameter: "account_id", value: "999999", problem: "no such account" },
    { label: "an unknown account_name", args: () => ({ account_name: "no_such_account", port: 26 }), code: "42704", parameter: "account_name", value: "no_such_account" },
    { label: "neither id nor name", args: () => ({ port: 26 }), code: "22004", parameter: "account_id, account_name", value: null },
    { label: "a rename onto another account (any case)", args: () => ({ account_id: fixture.id, account_name: other.name.toUpperCase() }), code: "42710", parameter: "account_name", value: () => other.name.toUpperCase(), problem: "exists" },
    { label: "port 70000", args: () => ({ account_id: fixture.id, port: 70000 }), code: "22023", parameter: "port", value: "70000" },
    { label: "timeout 0", args: () => ({ account_id: fixture.id, timeout: 0 }), code: "22023", parameter: "timeout", value: "0" },
    { label: "mailserver_type POP3", args: () => ({ account_id: fixture.id, mailserver_type: "POP3" }), code: "22023", parameter: "mailserver_type", value: "POP3" },
    { label: "an invalid email_address", args: () => ({ account_id: fixture.id, email_address: "bad" }), code: "22023", parameter: "email_address", value: "bad" },
    { label: "a comma in replyto_address", args: () => ({ account_id: fixture.id, replyto_address: "a@example.com, b@example.com" }), code: "22023", parameter: "replyto_address", value: "a@example.com, b@example.com" },
    { label: "a password for an account without username", args: () => ({ account_id: fixture.id, password: "pw" }), code: "22023", parameter: "password", value: "********" },
    { label: "a username with use_default_credentials", args: () => ({ account_id: locked.id, username: "bob" }), code: "22023", parameter: "username", value: "bob" },
  ];

  it.each(updateCases)("update refuses $label", async (bad) => {
    await expectBadCall("sysmail_update_account_sp", bad);
  });

  // biome-ignore format: a table reads best one case per line
  const deleteAndHelpCases: (BadCall & { fn: string })[] = [
    { fn: "sysmail_delete_account_sp", label: "neither id nor name", args: () => ({}), code: "22004", parameter: "account_id, account_name", value: null },
    { fn: "sysmail_delete_account_sp", label: "an unknown id", args: () => ({ account_id: 999999 }), code: "42704", parameter: "account_id", value: "999999" },
    { fn: "sysmail_delete_account_sp", label: "an unknown name", args: () => ({ account_name: "ghost" }), code: "42704", parameter: "account_name", value: "ghost" },
    { fn: "sysmail_delete_account_sp", label: "id and name of different accounts", args: () => ({ account_id: fixture.id, account_name: other.name }), code: "22023", parameter: "account_name", value: () => other.name, problem: "not account_id" },
    { fn: "sysmail_help_account_sp", label: "an unknown name", args: () => ({ account_name: "ghost" }), code: "42704", parameter: "account_name", value: "ghost" },
    { fn: "sysmail_help_account_sp", label: "an unknown id", args: () => ({ account_id: 999999 }), code: "42704", parameter: "account_id", value: "999999" },
    { fn: "sysmail_help_account_sp", label: "id and name of different accounts", args: () => ({ account_id: fixture.id, account_name: other.name }), code: "22023", parameter: "account_name", value: () => other.name },
  ];

  it.each(deleteAndHelpCases)("$fn refuses $label", async ({ fn, ...bad }) => {
    await expectBadCall(fn, bad);
  });
});
