// Backing up and restoring with the ordinary tools (SPEC.md section 10): a database installed with CREATE
// EXTENSION pg_dbmail, and one installed by the migrations, configured, with mail sent and mail queued,
// goes through `pg_dump -Fc` and `pg_restore` into a new database. There every row is as it was
// (accounts and their secrets, profiles, grants, settings, operators, items, attachments, attempts, the
// event log), privileges too: a user still cannot read the secrets; identity columns go on after the
// restored ids; and a sender serves the restored database, delivering the mail that was still queued.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Sender } from "@pg-dbmail/sender";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, withClient } from "../support/database.js";
import { withDatabase } from "../support/global-setup.js";
import { createDatabase, installWithCli, installWithExtension, runCli } from "../support/install-paths.js";
import { send } from "../support/mail.js";
import { type OwnPostgres, ownPostgresAvailable, startOwnPostgres } from "../support/own-postgres.js";
import { eventually, startSender } from "../support/sender.js";
import { TestSmtpServer } from "../support/smtp.js";

const available = ownPostgresAvailable();
let pg: OwnPostgres;
let smtp: TestSmtpServer;
let dumps: string;

beforeAll(async () => {
  if (!available) return;
  pg = await startOwnPostgres();
  runCli(["extension", "install", "--pg-config", pg.pgConfig]);
  smtp = await TestSmtpServer.start();
  dumps = mkdtempSync(join(tmpdir(), "pg-dbmail-dumps-"));
});
afterAll(async () => {
  await smtp?.stop();
  await pg?.stop();
  if (dumps) rmSync(dumps, { recursive: true, force: true });
});

/** A login URL to `url`'s database as `role` (trust authentication: no password). */
function as(url: string, role: string): string {
  const parsed = new URL(url);
  parsed.username = role;
  return parsed.toString();
}

/** Every row of every dbmail table but dbmail.migrations, and every privilege in schema dbmail. */
async function contents(url: string): Promise<Record<string, string[]>> {
  return withClient(url, async (c) => {
    const { rows: tables } = await c.query<{ name: string }>(
      `SELECT relname AS name FROM pg_class
       WHERE relnamespace = 'dbmail'::regnamespace AND relkind = 'r' AND relname <> 'migrations' ORDER BY 1`,
    );
    const result: Record<string, string[]> = {};
    for (const { name } of tables) {
      const { rows } = await c.query<{ row: string }>(
        `SELECT to_jsonb(t)::text AS row FROM dbmail.${name} t ORDER BY 1`,
      );
      result[name] = rows.map((r) => r.row);
    }
    // An ACL equal to the default is shown as the default: pg_dump leaves it out, so a restored table may
    // have none (NULL) where the original had it spelt out; both mean the same privileges.
    const { rows: acls } = await c.query<{ acl: string }>(
      `SELECT relname || ' ' || coalesce(relacl, acldefault((CASE relkind WHEN 'S' THEN 's' ELSE 'r' END)::"char", relowner))::text AS acl
       FROM pg_class WHERE relnamespace = 'dbmail'::regnamespace
       UNION ALL SELECT p.oid::regprocedure::text || ' ' || coalesce(proacl, acldefault('f'::"char", proowner))::text FROM pg_proc p
       WHERE pronamespace = 'dbmail'::regnamespace ORDER BY 1`,
    );
    result["(privileges)"] = acls.map((r) => r.acl);
    return result;
  });
}

async function itemStatus(url: string, id: string): Promise<string | undefined> {
  return withClient(url, async (c) => {
    const { rows } = await c.query("SELECT sent_status FROM dbmail.sysmail_allitems WHERE mailitem_id = $1", [
      id,
    ]);
    return rows[0]?.sent_status;
  });
}

/** Runs a sender against `url` until `ids` are sent. */
async function deliver(url: string, senderRole: string, ids: string[]): Promise<void> {
  let sender: Sender | undefined;
  try {
    sender = await startSender({ name: senderRole, url: as(url, senderRole) });
    for (const id of ids) await eventually(async () => (await itemStatus(url, id)) === "sent", 20_000);
  } finally {
    await sender?.stop();
  }
}

describe.skipIf(!available)("pg_dump and pg_restore", () => {
  for (const install of ["extension", "migrations"] as const) {
    it(`keep configuration, mail and privileges of a ${install} install, and a sender serves the restored database`, {
      timeout: 120_000,
    }, async () => {
      const url = await createDatabase(pg.url, `backed_up_${install}`);
      if (install === "extension") await installWithExtension(url);
      else installWithCli(url);
      const [app, sender] = [`app_${install}`, `sender_${install}`];
      await withClient(url, async (c) => {
        await c.query(`CREATE ROLE ${app} LOGIN IN ROLE dbmail_user`);
        await c.query(`CREATE ROLE ${sender} LOGIN IN ROLE dbmail_sender`);
        await c.query(
          `SELECT dbmail.sysmail_add_account_sp(account_name => 'main', email_address => 'db@example.com',
                                                 mailserver_name => '127.0.0.1', port => $1)`,
          [smtp.port],
        );
        await c.query(
          `SELECT dbmail.sysmail_add_account_sp(account_name => 'backup', email_address => 'db@example.com',
                    mailserver_name => 'smtp.example.com', username => 'db', password => 'backup-secret')`,
        );
        await c.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'default')");
        for (const [account, sequence] of [
          ["main", 1],
          ["backup", 2],
        ]) {
          await c.query(
            "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'default', account_name => $1, sequence_number => $2)",
            [account, sequence],
          );
        }
        await c.query(
          "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => $1, profile_name => 'default', is_default => true)",
          [app],
        );
        await c.query("SELECT dbmail.sysmail_configure_sp('AccountRetryAttempts', '3')");
        // Successes go to the event log too.
        await c.query("SELECT dbmail.sysmail_configure_sp('LoggingLevel', '3')");
        await c.query(
          "SELECT dbmail.sp_add_operator(name => 'oncall', email_address => 'oncall@example.com')",
        );
      });
      const sent = await withClient(as(url, app), (c) =>
        Promise.all([
          send(c, { recipients: "a@example.com", subject: `${install}: sent`, body: "before the backup" }),
          send(c, {
            recipients: "b@example.com",
            subject: `${install}: with attachment`,
            attachments: [{ filename: "report.csv", content: Buffer.from("id,total\n1,42\n") }],
          }),
        ]),
      );
      await deliver(url, sender, sent);
      // Queued after the sender stopped: the restored database's sender delivers it.
      const waiting = await withClient(as(url, app), (c) =>
        send(c, { recipients: "c@example.com", subject: `${install}: queued at backup time`, body: "later" }),
      );
      const before = await contents(url);
      expect(before.accounts).toHaveLength(2);
      expect(before.account_secrets?.join()).toContain("backup-secret");
      expect(before.attachments).toHaveLength(1);
      expect(before.event_log?.length).toBeGreaterThan(0);

      const dump = join(dumps, `${install}.dump`);
      execFileSync(join(pg.clientBin, "pg_dump"), ["-Fc", "-f", dump, "-d", url], { stdio: "pipe" });
      const restored = await createDatabase(pg.url, `restored_${install}`);
      const restore = spawnSync(join(pg.clientBin, "pg_restore"), ["--exit-on-error", "-d", restored, dump], {
        encoding: "utf8",
      });
      expect(restore.stderr).toBe("");
      expect(restore.status).toBe(0);
      const { rows: extensions } = await withClient(restored, (c) =>
        c.query("SELECT extversion FROM pg_extension WHERE extname = 'pg_dbmail'"),
      );
      expect(extensions.length).toBe(install === "extension" ? 1 : 0);

      expect(await contents(restored)).toEqual(before);
      expect(runCli(["migrate", "--database-url", restored])).toMatch(/is up to date/);
      // Users still cannot read the secrets (nor any table).
      const denied = await withClient(as(restored, app), (c) =>
        errorOf(c.query("SELECT * FROM dbmail.account_secrets")),
      );
      expect(denied.message).toBe("permission denied for table account_secrets");

      // Ids go on after the restored ones, and the sender delivers what was queued and what is new.
      const after = await withClient(as(restored, app), (c) =>
        send(c, { recipients: "d@example.com", subject: `${install}: after the restore`, body: "new" }),
      );
      expect(Number(after)).toBeGreaterThan(Number(waiting));
      await deliver(restored, sender, [waiting, after]);
      const subjects = smtp.received.map((m) => m.parsed.subject);
      expect(subjects.filter((s) => s?.startsWith(`${install}:`)).sort()).toEqual(
        [
          `${install}: after the restore`,
          `${install}: queued at backup time`,
          `${install}: sent`,
          `${install}: with attachment`,
        ].sort(),
      );
      const attachment = smtp.received.find((m) => m.parsed.subject === `${install}: with attachment`);
      expect(attachment?.parsed.attachments[0]?.content.toString()).toBe("id,total\n1,42\n");
      expect(await itemStatus(withDatabase(pg.url, `backed_up_${install}`), waiting)).toBe("unsent");
    });
  }
});
