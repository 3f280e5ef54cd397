// Account passwords stay with the sender (SPEC section 2): no table, help procedure, view, statistic or
// error message shows one to a user or an admin; dbmail_sender reads them through dbmail.sender_accounts().
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import {
  expectDenied,
  HELP_PROCEDURES,
  SECRET,
  SENDER_FUNCTIONS,
  useSecurityDatabase,
  VIEWS,
} from "../support/security.js";

const t = useSecurityDatabase();
const { expectUnchanged, notDenied } = t;

describe("passwords", () => {
  it("dbmail_user and dbmail_admin cannot SELECT dbmail.account_secrets", async () => {
    await expectDenied(
      t.aliceClient.query("SELECT * FROM dbmail.account_secrets"),
      /permission denied for table/,
    );
    await expectDenied(
      t.adminClient.query("SELECT * FROM dbmail.account_secrets"),
      /permission denied for table/,
    );
    await expectDenied(t.adminClient.query("SELECT password FROM dbmail.account_secrets"));
  });

  it("dbmail_admin cannot call sender_accounts or any other sender function", async () => {
    await expectUnchanged(async () => {
      expect(
        await notDenied(
          t.adminClient,
          SENDER_FUNCTIONS.filter((f) => f !== "schema_version"),
          /permission denied for function/,
        ),
      ).toEqual([]);
    });
  });

  it("sysmail_help_account_sp has no password column and no value equal to the password", async () => {
    const result = await t.adminClient.query("SELECT * FROM dbmail.sysmail_help_account_sp()");
    expect(result.rows.length).toBeGreaterThan(0);
    const columns = result.fields.map((f) => f.name);
    // Of each secret (password, OAuth2 client secret and refresh token, DKIM key) only how it is given.
    expect(columns.filter((c) => /pass|secret|refresh|private/i.test(c))).toEqual([
      "password_source",
      "oauth2_client_secret_source",
      "oauth2_refresh_token_source",
      "dkim_private_key_source",
    ]);
    for (const row of result.rows) {
      for (const value of Object.values(row)) expect(value).not.toBe(SECRET);
      expect(row.password_source).toBe("literal");
    }
    expect(JSON.stringify(result.rows)).not.toContain(SECRET);
  });

  it("no help procedure and no sysmail_* view shows the password to an admin", async () => {
    const outputs: string[] = [];
    for (const name of HELP_PROCEDURES) {
      const { rows } = await t.adminClient.query(`SELECT * FROM dbmail.${name}()`);
      outputs.push(`${name}: ${JSON.stringify(rows)}`);
    }
    for (const view of VIEWS) {
      const { rows } = await t.adminClient.query(`SELECT * FROM dbmail.${view}`);
      outputs.push(`${view}: ${JSON.stringify(rows)}`);
    }
    expect(outputs.filter((o) => o.includes(SECRET))).toEqual([]);
  });

  it("pg_stats does not reveal the password to users or admins after ANALYZE", async () => {
    await t.db.query("ANALYZE dbmail.account_secrets");
    for (const client of [t.aliceClient, t.adminClient]) {
      const { rows } = await client.query("SELECT * FROM pg_stats WHERE schemaname = 'dbmail'");
      expect(JSON.stringify(rows)).not.toContain(SECRET);
    }
  });

  it("error messages about an account never echo a literal password", async () => {
    const add = await errorOf(
      t.adminClient.query(
        `SELECT dbmail.sysmail_add_account_sp(account_name => 'nouser', email_address => 'x@example.com',
           mailserver_name => 'localhost', password => $1)`,
        [SECRET],
      ),
    );
    expect(add.message).toContain("password");
    expect(add.message).not.toContain(SECRET);
    const update = await errorOf(
      t.adminClient.query(
        "SELECT dbmail.sysmail_update_account_sp(account_name => 'main', username => '', password => $1)",
        [SECRET],
      ),
    );
    expect(update.message).not.toContain(SECRET);
  });

  it("dbmail_sender reads the password through dbmail.sender_accounts()", async () => {
    const { rows } = await t.senderClient.query<{ account_id: number; password: string }>(
      "SELECT account_id, password FROM dbmail.sender_accounts()",
    );
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.filter((r) => r.account_id === t.accountId).map((r) => r.password)).toContain(SECRET);
  });
});
