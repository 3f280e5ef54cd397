// One sender serving several databases keeps them apart (SPEC.md section 11): two databases whose
// accounts share id 1 but point at different SMTP servers each get their own pools, and a third that
// cannot be served yet (no schema) is named, retried and served once it is fixed, while the others
// keep delivering.

import type { Sender } from "@pg-dbmail/sender";
import { migrate } from "@pg-dbmail/sql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole, withClient } from "../support/database.js";
import { migrationsDir, withDatabase } from "../support/global-setup.js";
import { addAccount, profileWith, type Queryable } from "../support/mail.js";
import { eventually, startSender } from "../support/sender.js";
import { TestSmtpServer } from "../support/smtp.js";
import { queue } from "./support.js";

const MAILS = 300;
const POOL_SIZE = 5;

let a: TestDatabase;
let b: TestDatabase;
let cUrl: string;
let cName: string;
let smtpA: TestSmtpServer;
let smtpB: TestSmtpServer;
let login: TestRole;
let sender: Sender | undefined;

/** The sender's login, for another database of the cluster (roles are cluster-wide). */
function loginTo(database: string): string {
  const url = new URL(login.url);
  url.pathname = `/${database}`;
  return url.toString();
}

/** An account (id 1 in each fresh database) on `smtp`, in a public default profile. */
async function setUp(db: Queryable, smtp: TestSmtpServer, label: string) {
  await addAccount(db, {
    account_name: "main",
    email_address: `${label}@example.com`,
    mailserver_name: "127.0.0.1",
    port: smtp.port,
  });
  await profileWith(db, "p", ["main"], true);
}

async function statusCounts(db: TestDatabase): Promise<Record<string, number>> {
  const { rows } = await db.query<{ sent_status: string; n: number }>(
    "SELECT sent_status, count(*)::int AS n FROM dbmail.sysmail_allitems GROUP BY 1",
  );
  return Object.fromEntries(rows.map((r) => [r.sent_status, r.n]));
}

/** The subjects a server received, and how often each. */
function subjectsAt(smtp: TestSmtpServer): Map<string, number> {
  const counts = new Map<string, number>();
  for (const mail of smtp.received) {
    const subject = mail.parsed.subject ?? "";
    counts.set(subject, (counts.get(subject) ?? 0) + 1);
  }
  return counts;
}

function expectExactlyOnce(smtp: TestSmtpServer, label: string, count: number) {
  const subjects = subjectsAt(smtp);
  const ours = [...subjects].filter(([subject]) => subject.startsWith(`${label} `));
  expect(ours.length, `${label}: distinct mails`).toBe(count);
  expect(
    ours.filter(([, n]) => n !== 1),
    `${label}: mails that arrived more than once`,
  ).toEqual([]);
}

beforeAll(async () => {
  a = await TestDatabase.create();
  b = await TestDatabase.create();
  smtpA = await TestSmtpServer.start();
  smtpB = await TestSmtpServer.start();
  login = await a.createRole("many", { memberOf: ["dbmail_sender"] });
  await setUp(a, smtpA, "a");
  await setUp(b, smtpB, "b");
  // A third database without schema dbmail: it cannot be served until someone runs dbmail migrate.
  cName = `${a.name}_c`;
  await withClient(a.adminUrl, (c) => c.query(`CREATE DATABASE ${cName}`));
  cUrl = withDatabase(a.adminUrl, cName);
});

afterAll(async () => {
  await sender?.stop();
  await smtpA?.stop();
  await smtpB?.stop();
  await withClient(a.adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${cName} WITH (FORCE)`));
  await b?.drop();
  await a?.drop();
});

describe("one sender, three databases", () => {
  it("delivers each database's mail through its own account id 1, exactly once, over its own pool", {
    timeout: 90_000,
  }, async () => {
    const accountId = async (db: TestDatabase) =>
      (await db.query<{ id: number }>("SELECT account_id AS id FROM dbmail.sysmail_help_account_sp()"))
        .rows[0]?.id;
    const [idA, idB] = [await accountId(a), await accountId(b)];
    // The collision this test is about: the same account id, different servers.
    expect(idA).toBe(idB);

    sender = await startSender(login, {
      databases: [
        { name: "a", url: loginTo(a.name) },
        { name: "b", url: loginTo(b.name) },
        { name: "c", url: loginTo(cName) },
      ],
      smtpPoolSize: POOL_SIZE,
    });
    // The broken database is named and retried, not fatal.
    const refused = await eventually(async () => {
      const state = sender?.databases().get("c");
      return state?.state === "refused" ? state : undefined;
    });
    expect(refused.reason).toContain("dbmail migrate");

    await Promise.all([queue(a, MAILS, "A"), queue(b, MAILS, "B")]);
    await Promise.all([smtpA.waitFor(MAILS, 60_000), smtpB.waitFor(MAILS, 60_000)]);
    await eventually(
      async () => (await statusCounts(a)).sent === MAILS && (await statusCounts(b)).sent === MAILS,
    );
    expect(await statusCounts(a)).toEqual({ sent: MAILS });
    expect(await statusCounts(b)).toEqual({ sent: MAILS });
    expectExactlyOnce(smtpA, "A", MAILS);
    expectExactlyOnce(smtpB, "B", MAILS);
    expect(subjectsAt(smtpA).has("B 1")).toBe(false);
    expect(subjectsAt(smtpB).has("A 1")).toBe(false);
    // Each database's pool for its account, opened once and reused: no pool closed and rebuilt
    // because another database's account 1 looked different.
    expect(smtpA.connections).toBeLessThanOrEqual(POOL_SIZE);
    expect(smtpB.connections).toBeLessThanOrEqual(POOL_SIZE);

    // The third database is fixed: it is served without a restart, and the others go on.
    await migrate(cUrl, { migrationsDir });
    await withClient(cUrl, async (c) => {
      await setUp(c, smtpA, "c");
      await queue(c, 20, "C");
    });
    await eventually(async () => sender?.databases().get("c")?.state === "serving", 40_000);
    await queue(b, 20, "B2");
    await eventually(
      async () => subjectsAt(smtpA).size >= MAILS + 20 && subjectsAt(smtpB).size >= MAILS + 20,
      30_000,
    );
    expectExactlyOnce(smtpA, "C", 20);
    expectExactlyOnce(smtpB, "B2", 20);
    const sentInC = () =>
      withClient(cUrl, async (c) => {
        const { rows } = await c.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM dbmail.sysmail_allitems WHERE sent_status = 'sent'",
        );
        return rows[0]?.n;
      });
    await eventually(async () => (await sentInC()) === 20);
  });
});
