// A sender never exits for a transient server state (SPEC.md section 11): started while its PostgreSQL
// refuses connections with 57P03 (starting up, recovering), it waits with backoff and serves once the
// server opens; when the server shuts down under it (57P01) and comes back, it goes on. A PostgreSQL of
// the test's own, never the machine's.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, type LocalPostgres, startLocalPostgres } from "@pg-dbmail/dev/local-postgres";
import { migrate } from "@pg-dbmail/sql";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, withClient } from "../support/database.js";
import { migrationsDir, withDatabase } from "../support/global-setup.js";
import { addAccount, profileWith, sleep } from "../support/mail.js";
import { eventually } from "../support/sender.js";
import { TestSmtpServer } from "../support/smtp.js";
import { killSpawned, spawnStart } from "./support.js";

let dataDir: string;
let port: number;
let server: LocalPostgres | undefined;
let smtp: TestSmtpServer;
let adminUrl: string;
let senderUrl: string;

async function queueMail(subject: string): Promise<void> {
  await withClient(adminUrl, (c) =>
    c.query("SELECT dbmail.sp_send_dbmail(recipients => 'to@example.org', subject => $1, body => 'x')", [
      subject,
    ]),
  );
}

const arrived = (subject: string) => smtp.received.some((m) => m.parsed.subject === subject);

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "dbmail-restarts-"));
  port = await freePort();
  smtp = await TestSmtpServer.start();
  server = await startLocalPostgres({ dataDir: join(dataDir, "pg"), port });
  await withClient(server.url, (c) => c.query("CREATE DATABASE app"));
  adminUrl = withDatabase(server.url, "app");
  await migrate(adminUrl, { migrationsDir });
  await withClient(adminUrl, async (c) => {
    await c.query("CREATE ROLE restarts_mailer LOGIN PASSWORD 'mailer' IN ROLE dbmail_sender");
    await addAccount(c, {
      account_name: "main",
      email_address: "db@example.com",
      mailserver_name: "127.0.0.1",
      port: smtp.port,
    });
    await profileWith(c, "p", ["main"], true);
  });
  senderUrl = `postgres://restarts_mailer:mailer@127.0.0.1:${port}/app`;
  await server.stop();
}, 120_000);

afterAll(async () => {
  await killSpawned();
  await server?.stop();
  await smtp?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("a sender and a PostgreSQL that is not ready", () => {
  it("waits out 57P03 (recovering) with backoff, serves when the server opens, and rides out a restart", {
    timeout: 120_000,
  }, async () => {
    server = await startLocalPostgres({ dataDir: join(dataDir, "pg"), port, standby: true });
    const refusal = await errorOf(withClient(senderUrl, async () => {}));
    expect(refusal.code).toBe("57P03");

    const child = spawnStart(senderUrl);
    const output = child.output;
    // It says why it waits, more than once (backing off), and stays up.
    await eventually(
      async () => (output().match(/database unreachable; retrying/g) ?? []).length >= 3,
      20_000,
    );
    expect(output()).toContain("not accepting connections");
    expect(child.child.exitCode).toBeNull();
    const delays = [...output().matchAll(/"retryInMs":(\d+)/g)].map((m) => Number(m[1]));
    expect(Math.max(...delays)).toBeGreaterThan(Math.min(...delays));

    await server.promote();
    await eventually(async () => output().includes('"msg":"serving"'), 40_000);
    await queueMail("after recovery");
    await eventually(async () => arrived("after recovery"), 15_000);

    // The server shuts down under the sender (its sessions get 57P01) and comes back.
    await server.stop("fast");
    await sleep(1500);
    expect(child.child.exitCode).toBeNull();
    server = await startLocalPostgres({ dataDir: join(dataDir, "pg"), port });
    await queueMail("after the restart");
    await eventually(async () => arrived("after the restart"), 30_000);
    expect(child.child.exitCode).toBeNull();
    const senders = await withClient(adminUrl, async (c: pg.Client) => {
      const { rows } = await c.query(
        "SELECT count(*)::int AS n FROM dbmail.sysmail_help_queue_sp(), jsonb_array_elements(senders)",
      );
      return rows[0]?.n;
    });
    expect(senders).toBe(1);
  });
});
