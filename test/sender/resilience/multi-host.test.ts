// libpq's multi-host URL (SPEC.md section 11, Beyond: PostgreSQL failover) against a real primary and a
// streaming hot standby of the test's own: migrate, status, send-test and the sender connect to the
// host that is not in recovery, whichever order the URL lists them in and past a closed port; each
// target_session_attrs picks the server libpq would; a sender given only the standby claims nothing,
// says why in its log and /readyz (503), and serves once the standby is promoted (200), where a sender
// gone quiet is not taken for dead in the first 30 s after the promotion.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { freePort } from "@pg-dbmail/dev/local-postgres";
import { connect, Sender, senderDefaults } from "@pg-dbmail/sender";
import pg from "pg";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { profileWith, type Queryable, sleep } from "../../support/mail.js";
import { type ReplicatedPair, startReplicatedPair } from "../../support/replicated-postgres.js";
import { addAccount, eventually } from "../../support/sender.js";
import { TestSmtpServer } from "../../support/smtp.js";
import { get } from "../monitoring/support.js";
import { cli, queue, statusCounts, tally } from "../support.js";

let pair: ReplicatedPair;
let admin: pg.Pool;
let smtp: TestSmtpServer;
const senders: Sender[] = [];

beforeAll(async () => {
  // remote_apply: what the primary committed is visible on the standby when the commit returns.
  pair = await startReplicatedPair({ synchronous: "remote_apply" });
  admin = new pg.Pool({ connectionString: pair.adminUrl(pair.primary), max: 2 });
  admin.on("error", () => {});
  smtp = await TestSmtpServer.start();
  await addAccount(admin as never, "acct", smtp);
  await profileWith(admin as Queryable, "p", ["acct"]);
}, 120_000);

afterAll(async () => {
  for (const sender of senders) await sender.stop().catch(() => {});
  await admin?.end().catch(() => {});
  await smtp?.stop();
  await pair?.stop();
});

/** Runs the dbmail CLI; its exit code and output. */
async function dbmail(...args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [cli, ...args], {
      env: { ...process.env, DATABASE_URL: "" },
    });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const { code, stdout, stderr } = error as { code: number; stdout: string; stderr: string };
    return { code, output: stdout + stderr };
  }
}

/** A sender serving database "app" at `url`, with /readyz on a port of its own; not awaited to serve. */
async function startServing(url: string, logLines: string[]): Promise<number> {
  const http = await freePort();
  const sender = new Sender(
    {
      ...senderDefaults,
      databases: [{ name: "app", url }],
      senderId: `multi-host-${senders.length}`,
      pollIntervalMs: 200,
      heartbeatIntervalMs: 500,
      shutdownTimeoutMs: 5000,
      http: `127.0.0.1:${http}`,
    },
    pino({ level: "info" }, { write: (line: string) => void logLines.push(line) }),
  );
  senders.push(sender);
  // Resolves once serving; a sender given only a standby is still waiting when the test reads /readyz.
  void sender.start().catch(() => {});
  await eventually(async () => sender.httpAddress());
  return http;
}

async function readyz(port: number): Promise<{ status: number; problems: string[] }> {
  const answer = await get(port, "/readyz");
  const body = JSON.parse(answer.body) as { databases: Record<string, { problems: string[] }> };
  return { status: answer.status, problems: body.databases.app?.problems ?? [] };
}

describe("a URL of several hosts", () => {
  it("migrate and status reach the primary when the standby is listed first", async () => {
    const adminFirstStandby = `postgres://postgres:postgres@127.0.0.1:${pair.standby.port},127.0.0.1:${pair.primary.port}/app?target_session_attrs=read-write`;
    const migrated = await dbmail("migrate", "--database-url", adminFirstStandby);
    expect(migrated.output).toMatch(/is up to date \(version \d+\)/);
    expect(migrated.code).toBe(0);
    const status = await dbmail("status", "--database-url", adminFirstStandby, "--json");
    expect(status.code).toBe(0);
    expect(JSON.parse(status.output)).toHaveProperty("queue");
  });

  it("migrate refuses, naming the host, when every host is in recovery (exit 3)", async () => {
    const standbyOnly = `postgres://postgres:postgres@127.0.0.1:${pair.standby.port}/app`;
    const refused = await dbmail("migrate", "--database-url", standbyOnly);
    expect(refused.code).toBe(3);
    expect(refused.output).toContain(`127.0.0.1:${pair.standby.port} is in recovery (read-only)`);
  });

  it("the sender serves the primary behind a closed port and the standby; send-test too", {
    timeout: 60_000,
  }, async () => {
    const closed = await freePort();
    const hosts = [closed, pair.standby.port, pair.primary.port].map((p) => `127.0.0.1:${p}`).join(",");
    const port = await startServing(
      `postgres://mailer:mailer@${hosts}/app?target_session_attrs=read-write`,
      [],
    );
    const ids = await queue(admin as Queryable, 3, "multi-host");
    await eventually(async () => tally([smtp], ids).arrived === 3 || undefined);
    expect((await readyz(port)).status).toBe(200);
    const sent = await dbmail(
      "send-test",
      "--to",
      "dba@example.org",
      "--profile",
      "p",
      "--timeout",
      "20",
      "--database-url",
      `postgres://postgres:postgres@${hosts}/app`,
    );
    expect(sent.output).toContain("sent");
    expect(sent.code).toBe(0);
    await senders.pop()?.stop();
  });
});

describe("target_session_attrs, as libpq", () => {
  it.each([
    ["any", "primary"],
    ["read-write", "primary"],
    ["primary", "primary"],
    ["read-only", "standby"],
    ["standby", "standby"],
    ["prefer-standby", "standby"],
  ] as const)("%s connects to the %s", async (attrs, expected) => {
    // The primary listed first: any takes it, the standby-seeking values move on.
    const url = `postgres://postgres:postgres@127.0.0.1:${pair.primary.port},127.0.0.1:${pair.standby.port}/app?target_session_attrs=${attrs}`;
    const client = await connect(url, "multi-host test", { writes: false });
    try {
      const { rows } = await client.query<{ r: boolean }>("SELECT pg_is_in_recovery() AS r");
      expect(rows[0]?.r ? "standby" : "primary").toBe(expected);
    } finally {
      await client.end();
    }
  });

  it("prefer-standby takes the primary when no standby answers", async () => {
    const url = `postgres://postgres:postgres@127.0.0.1:${await freePort()},127.0.0.1:${pair.primary.port}/app?target_session_attrs=prefer-standby`;
    const client = await connect(url, "multi-host test", { writes: false });
    await client.end();
    expect(client.port).toBe(pair.primary.port);
  });
});

/**
 * On the promoted standby, which started long before it was promoted: a sender whose heartbeat is 40 s
 * old is not taken for dead in the first 30 s after the promotion (it may be on its way back, with mail
 * sent but not yet recorded), as after a restart; after them it is.
 */
async function newPrimaryGivesSendersTime(): Promise<void> {
  const promoted = new pg.Pool({ connectionString: pair.adminUrl(pair.standby), max: 2 });
  try {
    const seconds = async (sql: string) => Number((await promoted.query<{ s: number }>(sql)).rows[0]?.s);
    // Older than a restart's 30 s, so only the promotion can hold the takeover back.
    const uptime = await seconds("SELECT extract(epoch FROM now() - pg_postmaster_start_time()) AS s");
    if (uptime < 31) await sleep((31 - uptime) * 1000);
    const { rows: state } = await promoted.query<{ timeline: string; since: number }>(
      "SELECT timeline, extract(epoch FROM now() - timeline_since) AS since FROM dbmail.system_state",
    );
    expect(state[0]?.timeline).toBe("00000002");
    expect(Number(state[0]?.since)).toBeLessThan(30);

    const client = await promoted.connect();
    let id: string;
    try {
      await client.query("BEGIN");
      [id] = (await queue(client as Queryable, 1, "ghost")) as [string];
      await client.query(
        "INSERT INTO dbmail.senders (sender_id, last_heartbeat) VALUES ('ghost', now() - interval '40 seconds')",
      );
      await client.query(
        `UPDATE dbmail.mailitems SET sent_status = 'sending', lease_owner = 'ghost', lease_token = gen_random_uuid(),
                lease_expires_at = now() + interval '5 minutes' WHERE mailitem_id = $1`,
        [id],
      );
      await client.query("COMMIT");
    } finally {
      client.release();
    }
    await sleep(2000);
    const owner = async () =>
      (
        await promoted.query<{ o: string }>(
          "SELECT lease_owner AS o FROM dbmail.mailitems WHERE mailitem_id = $1",
          [id],
        )
      ).rows[0]?.o;
    expect(await owner()).toBe("ghost");
    expect(tally([smtp], [id]).arrived).toBe(0);

    // 30 s after the promotion (made to have passed): ghost is dead, its item sent again.
    await promoted.query("UPDATE dbmail.system_state SET timeline_since = now() - interval '31 seconds'");
    await eventually(async () => tally([smtp], [id]).arrived === 1 || undefined, 15_000);
  } finally {
    await promoted.end();
  }
}

describe("a sender given only a standby", () => {
  it("claims nothing, says why in its log and /readyz, and serves once promoted", {
    timeout: 90_000,
  }, async () => {
    const ids = await queue(admin as Queryable, 2, "standby-only");
    const log: string[] = [];
    // One host, no target_session_attrs: the sender writes, so it still waits for a read-write session.
    const port = await startServing(pair.mailerUrl([pair.standby], ""), log);
    const waiting = await eventually(async () => {
      const answer = await readyz(port);
      return answer.status === 503 && answer.problems.length > 0 ? answer : undefined;
    });
    expect(waiting.problems).toEqual([
      `connecting: 127.0.0.1:${pair.standby.port} is in recovery (read-only): waiting for a primary`,
    ]);
    // Several attempts (backoff from 250 ms) later: still nothing claimed, and said once.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(await statusCounts(admin as Queryable, ids)).toEqual({ unsent: 2 });
    expect(tally([smtp], ids).arrived).toBe(0);
    const said = log.filter((line) => line.includes("no primary to write to; claiming nothing"));
    expect(said).toHaveLength(1);
    expect(JSON.parse(said[0] as string).reason).toBe(
      `127.0.0.1:${pair.standby.port} is in recovery (read-only): waiting for a primary`,
    );

    await admin.end();
    await pair.primary.stop("immediate");
    await pair.standby.promote();
    await eventually(async () => tally([smtp], ids).arrived === 2 || undefined, 30_000);
    await eventually(async () => ((await readyz(port)).status === 200 ? true : undefined), 15_000);
    await newPrimaryGivesSendersTime();
  });
});
