// /livez and /readyz (SPEC.md section 12) of a sender serving two databases: one in the shared test
// PostgreSQL, one in a PostgreSQL of the test's own, which the test stops and starts again (never the
// machine's). /readyz turns 503 with a JSON body naming the database that went away and why, while
// /livez stays 200; it is 200 again when the database is back. A database the config names that does
// not exist keeps /readyz at 503, named, and so do claims that fail. dbmail_database_up follows.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, type LocalPostgres, startLocalPostgres } from "@pg-dbmail/dev/local-postgres";
import type { Sender } from "@pg-dbmail/sender";
import { migrate } from "@pg-dbmail/sql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole, withClient } from "../../support/database.js";
import { migrationsDir, withDatabase } from "../../support/global-setup.js";
import { eventually, startSender } from "../../support/sender.js";
import { get, sampleValue, scrape } from "./support.js";

interface Readiness {
  status: string;
  ready: boolean;
  databases: Record<
    string,
    { ready: boolean; state: string; connected: boolean; wakeup?: string; problems: string[] }
  >;
}

let dataDir: string;
let pgPort: number;
let own: LocalPostgres | undefined;
let ownUrl: string;
let db: TestDatabase;
let role: TestRole;
const senders: Sender[] = [];

async function readyz(port: number): Promise<{ status: number; body: Readiness }> {
  const answer = await get(port, "/readyz");
  expect(answer.contentType).toBe("application/json; charset=utf-8");
  return { status: answer.status, body: JSON.parse(answer.body) as Readiness };
}

async function serve(databases: { name: string; url: string }[]): Promise<number> {
  // The log (a database that refuses is logged as an error) is kept out of the test output.
  const sender = await startSender(role, { databases, http: "127.0.0.1:0" }, []);
  senders.push(sender);
  return sender.httpAddress()?.port as number;
}

beforeAll(async () => {
  db = await TestDatabase.create();
  role = await db.createRole("readyz_sender", { memberOf: ["dbmail_sender"] });
  dataDir = mkdtempSync(join(tmpdir(), "dbmail-readyz-"));
  pgPort = await freePort();
  own = await startLocalPostgres({ dataDir: join(dataDir, "pg"), port: pgPort });
  await withClient(own.url, (c) => c.query("CREATE DATABASE app"));
  await migrate(withDatabase(own.url, "app"), { migrationsDir });
  await withClient(withDatabase(own.url, "app"), (c) =>
    c.query("CREATE ROLE readyz_mailer LOGIN PASSWORD 'mailer' IN ROLE dbmail_sender"),
  );
  ownUrl = `postgres://readyz_mailer:mailer@127.0.0.1:${pgPort}/app`;
}, 120_000);

afterAll(async () => {
  for (const sender of senders) await sender.stop();
  await own?.stop();
  await db?.drop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("/livez and /readyz", () => {
  it("turn with a served database going away and coming back", { timeout: 120_000 }, async () => {
    const port = await serve([
      { name: "main", url: role.url },
      { name: "own", url: ownUrl },
    ]);
    expect((await get(port, "/livez")).status).toBe(200);
    // Ready once both serve and listen.
    const ready = await eventually(async () => {
      const answer = await readyz(port);
      return answer.status === 200 && answer.body.databases.own?.wakeup === "listen" ? answer : undefined;
    });
    expect(ready.body).toEqual({
      status: "ready",
      ready: true,
      databases: {
        main: { ready: true, state: "serving", connected: true, wakeup: "listen", problems: [] },
        own: { ready: true, state: "serving", connected: true, wakeup: "listen", problems: [] },
      },
    });

    await own?.stop();
    // (The probe's answer is reused for a second: the lost LISTEN connection may be reported first.)
    const down = await eventually(async () => {
      const answer = await readyz(port);
      return answer.status === 503 && answer.body.databases.own?.connected === false ? answer : undefined;
    });
    expect(down.body.status).toBe("not ready");
    expect(down.body.ready).toBe(false);
    expect(down.body.databases.main?.ready).toBe(true);
    const ownHealth = down.body.databases.own;
    expect(ownHealth?.ready).toBe(false);
    expect(ownHealth?.connected).toBe(false);
    expect(ownHealth?.problems.join("; ")).toMatch(/^database unreachable: /);
    // Alive all the same: the process runs, and waits for the database.
    expect((await get(port, "/livez")).status).toBe(200);
    const metrics = await scrape(port);
    expect(sampleValue(metrics, "dbmail_database_up", { database: "own" })).toBe(0);
    expect(sampleValue(metrics, "dbmail_database_up", { database: "main" })).toBe(1);
    // Its queue cannot be read: no figure rather than a stale one.
    expect(sampleValue(metrics, "dbmail_queue_items", { database: "own", status: "unsent" })).toBeUndefined();
    expect(sampleValue(metrics, "dbmail_queue_items", { database: "main", status: "unsent" })).toBe(0);

    own = await startLocalPostgres({ dataDir: join(dataDir, "pg"), port: pgPort });
    const back = await eventually(async () => {
      const answer = await readyz(port);
      return answer.status === 200 ? answer : undefined;
    }, 30_000);
    expect(back.body.databases.own).toMatchObject({ ready: true, connected: true, problems: [] });
    const after = await scrape(port);
    expect(sampleValue(after, "dbmail_database_up", { database: "own" })).toBe(1);
  });

  it("turns 503 while claims fail (SenderRoles shuts the login out), 200 once they work", {
    timeout: 60_000,
  }, async () => {
    const port = await serve([{ name: "main", url: role.url }]);
    await eventually(async () => (await readyz(port)).status === 200);
    const outsiders = await db.createRole("readyz_outsiders", { login: false });
    await db.query("SELECT dbmail.sysmail_configure_sp('SenderRoles', $1)", [outsiders.name]);
    try {
      const refused = await eventually(async () => {
        const answer = await readyz(port);
        return answer.status === 503 ? answer : undefined;
      });
      const main = refused.body.databases.main;
      expect(main).toMatchObject({ ready: false, state: "serving", connected: true, wakeup: "listen" });
      expect(main?.problems).toHaveLength(1);
      expect(main?.problems[0]).toMatch(/^claiming mail fails: .*SenderRoles allows the sender functions/);
    } finally {
      await db.query("SELECT dbmail.sysmail_configure_sp('SenderRoles', '')");
    }
    // The next claim (after the claim loop's backoff) works again.
    await eventually(async () => (await readyz(port)).status === 200, 45_000);
  });

  it("names a database the config lists that does not exist", { timeout: 30_000 }, async () => {
    const missing = new URL(role.url);
    missing.pathname = "/no_such_database_here";
    const port = await serve([
      { name: "main", url: role.url },
      { name: "missing", url: missing.toString() },
    ]);
    const answer = await eventually(async () => {
      const a = await readyz(port);
      return a.body.databases.missing?.state === "refused" && a.body.databases.main?.ready ? a : undefined;
    });
    expect(answer.status).toBe(503);
    expect(answer.body.databases.missing).toMatchObject({ ready: false, connected: false });
    expect(answer.body.databases.missing?.problems.join("; ")).toMatch(
      /the database does not exist.*no_such_database_here/,
    );
    // The password of the URL is not shown.
    expect(JSON.stringify(answer.body)).not.toContain("test@");
    expect(sampleValue(await scrape(port), "dbmail_database_up", { database: "missing" })).toBe(0);
  });
});
