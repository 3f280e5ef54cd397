// Report mail end to end: what sp_send_dbmail makes of a query, and what sp_notify_operator sends,
// as the recipient receives it (real SMTP server, parsed with mailparser). Also the install on a managed
// PostgreSQL: by a role that is not a superuser and may not read server files.
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Sender } from "@pg-dbmail/sender";
import { migrate } from "@pg-dbmail/sql";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, TestDatabase, type TestRole, withClient } from "./support/database.js";
import { migrationsDir, withDatabase } from "./support/global-setup.js";
import { addAccount, eventually, startSender } from "./support/sender.js";
import { type ReceivedMail, TestSmtpServer } from "./support/smtp.js";

let db: TestDatabase;
let smtp: TestSmtpServer;
let sender: Sender;
let app: pg.Client;

async function arrived(subject: string): Promise<ReceivedMail> {
  return eventually(async () => smtp.received.find((m) => m.parsed.subject === subject));
}

beforeAll(async () => {
  db = await TestDatabase.create();
  smtp = await TestSmtpServer.start();
  const senderRole = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
  const appRole = await db.createRole("app", { memberOf: ["dbmail_user"] });
  await addAccount(db, "main", smtp, { display_name: "Reports" });
  await db.query(`
    SELECT dbmail.sysmail_add_profile_sp(profile_name => 'ops');
    SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'ops', account_name => 'main', sequence_number => 1);
    SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'ops', is_default => true);
    CREATE SCHEMA shop;
    CREATE TABLE shop.orders (order_id integer, customer text, total numeric, created_at timestamptz);
    INSERT INTO shop.orders VALUES
      (1, 'Müller GmbH', 120.50, current_date - 1 + time '09:00'),
      (2, 'O''Brien, Ltd', 99, current_date - 1 + time '10:00'),
      (3, 'Today Inc', 5, current_date + time '08:00');
    GRANT USAGE ON SCHEMA shop TO ${appRole.name};
    GRANT SELECT ON shop.orders TO ${appRole.name};`);
  app = await db.connect(appRole);
  sender = await startSender(senderRole);
});

afterAll(async () => {
  await sender.stop();
  await smtp.stop();
  await db.drop();
});

describe("report mail", () => {
  it("delivers the README's example: yesterday's orders attached as CSV", async () => {
    await app.query(`
      SELECT dbmail.sp_send_dbmail(
        profile_name => 'ops', recipients => 'finance@example.com',
        subject => 'Yesterday''s orders', body => 'Attached: yesterday''s orders.',
        query => $q$SELECT order_id, customer, total FROM shop.orders
                     WHERE created_at >= current_date - 1 AND created_at < current_date ORDER BY order_id$q$,
        attach_query_result_as_file => true, query_result_format => 'CSV',
        query_attachment_filename => 'orders.csv')`);
    const mail = await arrived("Yesterday's orders");
    expect(mail.parsed.text?.trim()).toBe("Attached: yesterday's orders.");
    expect(mail.parsed.attachments).toHaveLength(1);
    const csv = mail.parsed.attachments[0];
    expect(csv?.filename).toBe("orders.csv");
    expect(csv?.contentType).toBe("text/csv");
    expect(csv?.content.toString("utf8")).toBe(
      'order_id,customer,total\r\n1,Müller GmbH,120.50\r\n2,"O\'Brien, Ltd",99\r\n',
    );
  });

  it("delivers an inline HTML table as an HTML mail with a plain-text alternative", async () => {
    await app.query(`
      SELECT dbmail.sp_send_dbmail(recipients => 'finance@example.com', subject => 'Orders table',
        body => 'Orders <all>:', query => 'SELECT order_id, customer FROM shop.orders ORDER BY order_id',
        query_result_format => 'HTML')`);
    const mail = await arrived("Orders table");
    const html = mail.parsed.html as string;
    expect(html.startsWith("Orders &lt;all&gt;:<br><table")).toBe(true);
    expect(html).toContain(">O&#39;Brien, Ltd</td>");
    expect(html).toContain("Müller GmbH");
    // The text part keeps the table readable: a column per field, a line per row, as written.
    expect(mail.parsed.text?.trimEnd()).toBe(
      [
        "Orders <all>:",
        "",
        "order_id   customer",
        "1          Müller GmbH",
        "2          O'Brien, Ltd",
        "3          Today Inc",
      ].join("\n"),
    );
  });

  it("delivers a sqlcmd-style result appended to the body", async () => {
    await app.query(`
      SELECT dbmail.sp_send_dbmail(recipients => 'finance@example.com', subject => 'Totals',
        body => 'Totals:', query => 'SELECT customer, total FROM shop.orders ORDER BY order_id')`);
    const mail = await arrived("Totals");
    // (The text part ends with the line break every text/plain body gets on the wire.)
    expect(mail.parsed.text?.trimEnd()).toBe(
      [
        "Totals:",
        "customer     total",
        "------------ ------",
        "Müller GmbH  120.50",
        "O'Brien, Ltd     99",
        "Today Inc         5",
        "",
        "(3 rows affected)",
      ].join("\n"),
    );
  });

  it("notifies an operator: sp_notify_operator's mail arrives at the operator's address", async () => {
    await db.query(
      "SELECT dbmail.sp_add_operator(name => 'dba on call', email_address => 'oncall@example.com; backup@example.com')",
    );
    await app.query(
      "SELECT dbmail.sp_notify_operator(name => 'dba on call', subject => 'Disk full', body => 'Volume /data is full.')",
    );
    const mail = await arrived("Disk full");
    expect(mail.envelope.to).toEqual(["oncall@example.com", "backup@example.com"]);
    expect(mail.parsed.text?.trim()).toBe("Volume /data is full.");
  });
});

describe("installed by a role that is not a superuser (a managed PostgreSQL)", () => {
  let installer: TestRole;
  let managedUrl: string;
  let managed: TestDatabase;
  let files: string;

  beforeAll(async () => {
    // A database owned by an installer with CREATEROLE but not superuser, and no pg_read_server_files.
    managed = await TestDatabase.create();
    installer = await managed.createRole("installer");
    await managed.query(`ALTER ROLE ${installer.name} CREATEROLE`);
    // It administers its own install and runs the sender too (any dbmail_sender login would do).
    await managed.query(`GRANT dbmail_admin, dbmail_sender TO ${installer.name}`);
    const name = `${managed.name}_managed_${randomBytes(2).toString("hex")}`;
    await withClient(managed.adminUrl, (c) => c.query(`CREATE DATABASE ${name} OWNER ${installer.name}`));
    const url = new URL(withDatabase(managed.adminUrl, name));
    url.username = installer.name;
    url.password = "test";
    managedUrl = url.toString();
    files = mkdtempSync(join(tmpdir(), "dbmail-managed-"));
    chmodSync(files, 0o755);
    writeFileSync(join(files, "report.txt"), "a file");
    chmodSync(join(files, "report.txt"), 0o644);
  });

  afterAll(async () => {
    rmSync(files, { recursive: true, force: true });
    const name = new URL(managedUrl).pathname.slice(1);
    await withClient(managed.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    await managed.drop();
  });

  it("installs, refuses file attachments with the grant to ask for, and still sends in-memory ones", async () => {
    await migrate(managedUrl, { migrationsDir });
    await withClient(managedUrl, async (c) => {
      await c.query(`
        SELECT dbmail.sysmail_add_account_sp(account_name => 'a', email_address => 'a@example.com',
          mailserver_name => '127.0.0.1', port => ${smtp.port});
        SELECT dbmail.sysmail_add_profile_sp(profile_name => 'p');
        SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'p', account_name => 'a', sequence_number => 1);
        SELECT dbmail.sysmail_configure_sp('AttachmentDirectories', '${files}');`);
      const path = join(files, "report.txt");
      const error = await errorOf(
        c.query(
          "SELECT dbmail.sp_send_dbmail(profile_name => 'p', recipients => 'x@example.org', file_attachments => $1)",
          [path],
        ),
      );
      expect(error.code).toBe("42501");
      expect(error.message).toBe(
        `file_attachments: "${path}": the database may not read files: GRANT pg_read_server_files TO ${installer.name} ` +
          "(the owner of schema dbmail); in-memory attachments (attachments => ...) need no such right",
      );
      const { rows } = await c.query<{ n: string }>("SELECT count(*) AS n FROM dbmail.mailitems");
      expect(rows[0]?.n).toBe("0");
      await c.query(
        `SELECT dbmail.sp_send_dbmail(profile_name => 'p', recipients => 'x@example.org', subject => 'In memory',
           attachments => ARRAY[dbmail.attachment('data.txt', convert_to('in memory', 'UTF8'))])`,
      );
      const managedSender = await startSender({ name: installer.name, url: managedUrl });
      try {
        const mail = await arrived("In memory");
        expect(mail.parsed.attachments[0]?.content.toString()).toBe("in memory");
      } finally {
        await managedSender.stop();
      }
    });
  });
});
