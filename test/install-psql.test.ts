// The README's "Without Node" install, end to end: the migration files applied with psql only, then the
// real CLI and the real sender (child processes, as an operator runs them) accept that database and
// deliver a mail sent with sp_send_dbmail to an SMTP server.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { withClient } from "./support/database.js";
import { withDatabase } from "./support/global-setup.js";
import { toolMajorVersion } from "./support/schema-dump.js";
import { eventually } from "./support/sender.js";
import { TestSmtpServer } from "./support/smtp.js";

const migrationsDir = new URL("../sql/migrations", import.meta.url).pathname;
const cli = new URL("../packages/sender/dist/cli.js", import.meta.url).pathname;
const adminUrl = inject("adminUrl");
const suffix = randomBytes(4).toString("hex");
// Named like the test databases, so the global teardown drops it if this file crashes.
const database = `${inject("templateDatabase").replace(/_template$/, "")}_psql_${suffix}`;
const senderRole = `dbmail_psql_sender_${suffix}`;
const appRole = `dbmail_psql_app_${suffix}`;
const url = withDatabase(adminUrl, database);

/** A URL for this database as `role` (password "test"). */
function loginUrl(role: string): string {
  const parsed = new URL(url);
  parsed.username = role;
  parsed.password = "test";
  return parsed.toString();
}

/** The CLI's environment: nothing that would choose a database for it but --database-url. */
const cliEnv = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => name !== "DATABASE_URL" && !name.startsWith("PG")),
);

// Off CI a machine with only Node has no psql, so this is skipped there; CI has it and must run it.
function psqlAvailable(): boolean {
  const usable = toolMajorVersion("psql") !== undefined;
  if (!usable && process.env.CI) throw new Error("CI needs psql on PATH to check the install by psql");
  return usable;
}

let smtp: TestSmtpServer | undefined;

beforeAll(async () => {
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${database}`));
});

afterAll(async () => {
  await smtp?.stop();
  await withClient(adminUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await c.query(`DROP ROLE IF EXISTS ${senderRole}`);
    await c.query(`DROP ROLE IF EXISTS ${appRole}`);
  });
});

it("installed with psql only, it is accepted by `dbmail migrate` and by the sender, which delivers mail", {
  timeout: 60_000,
}, async (ctx) => {
  if (!psqlAvailable()) return ctx.skip();
  for (const file of readdirSync(migrationsDir)
    .filter((f) => f.endsWith(".sql"))
    .sort()) {
    const result = spawnSync(
      "psql",
      ["-X", "-v", "ON_ERROR_STOP=1", "-1", "-f", `${migrationsDir}/${file}`, url],
      { encoding: "utf8" },
    );
    expect(result.status, `psql -f ${file}: ${result.stderr}`).toBe(0);
  }

  const migrated = spawnSync(process.execPath, [cli, "migrate", "--database-url", url], {
    encoding: "utf8",
    env: cliEnv,
  });
  expect(migrated.stderr).toBe("");
  expect(migrated.status).toBe(0);
  expect(migrated.stdout).toMatch(/is up to date \(version \d+\)/);

  smtp = await TestSmtpServer.start();
  await withClient(url, async (c) => {
    await c.query(
      `SELECT dbmail.sysmail_add_account_sp(account_name => 'main', email_address => 'db@example.com',
                                             mailserver_name => '127.0.0.1', port => $1)`,
      [smtp?.port],
    );
    await c.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'default')");
    await c.query(
      `SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'default', account_name => 'main',
                                                    sequence_number => 1)`,
    );
    await c.query(
      `SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'default',
                                                      is_default => true)`,
    );
    await c.query(`CREATE ROLE ${senderRole} LOGIN PASSWORD 'test' IN ROLE dbmail_sender`);
    await c.query(`CREATE ROLE ${appRole} LOGIN PASSWORD 'test' IN ROLE dbmail_user`);
  });

  let sender: ChildProcess | undefined;
  try {
    sender = spawn(
      process.execPath,
      [cli, "start", "--database-url", loginUrl(senderRole), "--poll-interval-ms", "200"],
      { stdio: ["ignore", "pipe", "pipe"], env: cliEnv },
    );
    let output = "";
    sender.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    sender.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const child = sender;
    await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`the sender exited early:\n${output}`);
      return output.includes('"msg":"serving"');
    }, 20_000);

    const id = await withClient(loginUrl(appRole), async (c) => {
      const { rows } = await c.query<{ id: string }>(
        `SELECT dbmail.sp_send_dbmail(recipients => 'someone@example.com', subject => 'installed with psql',
                                      body => 'Hello from a database installed without Node.') AS id`,
      );
      return rows[0]?.id;
    });

    const [mail] = await smtp.waitFor(1, 20_000);
    expect(mail?.parsed.subject).toBe("installed with psql");
    expect(mail?.envelope.to).toEqual(["someone@example.com"]);
    const status = await eventually(async () =>
      withClient(url, async (c) => {
        const { rows } = await c.query<{ sent_status: string }>(
          "SELECT sent_status FROM dbmail.sysmail_allitems WHERE mailitem_id = $1",
          [id],
        );
        return rows[0]?.sent_status === "sent" ? rows[0].sent_status : undefined;
      }),
    );
    expect(status).toBe("sent");
  } finally {
    if (sender && sender.exitCode === null && sender.signalCode === null) {
      const exited = new Promise((resolve) => sender?.once("exit", resolve));
      sender.kill("SIGKILL");
      await exited;
    }
  }
});
