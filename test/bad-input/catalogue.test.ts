// Issue 5's bad-input catalogue: one row per bad call to a public dbmail function. Each row states the
// SQLSTATE docs/errors.md documents and the `<parameter>: <value>: ` the message must start with, and every
// call must leave every table of schema dbmail exactly as it was (docs/errors.md: "When an error is raised,
// nothing is changed"). The rows are in cases/, one module per concern; this file runs them.
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase } from "../support/database.js";
import { addAccount, call, expectError, profileWith, refusedUnchanged, send } from "../support/mail.js";
import { accountsCases } from "./cases/accounts.js";
import { attachmentsCases } from "./cases/attachments.js";
import { hardeningCases } from "./cases/hardening.js";
import { operatorsCases } from "./cases/operators.js";
import { profilesCases } from "./cases/profiles.js";
import { sendAddressesCases } from "./cases/send-addresses.js";
import { sendHeadersCases } from "./cases/send-headers.js";
import { sendOptionsCases } from "./cases/send-options.js";
import { settingsAndQueueCases } from "./cases/settings-and-queue.js";
import type { BadCall } from "./support.js";

const cases: BadCall[] = [
  ...sendOptionsCases,
  ...sendAddressesCases,
  ...sendHeadersCases,
  ...attachmentsCases,
  ...hardeningCases,
  ...accountsCases,
  ...profilesCases,
  ...settingsAndQueueCases,
  ...operatorsCases,
];

let db: TestDatabase;
const clients: Partial<Record<BadCall["role"], pg.Client>> = {};

beforeAll(async () => {
  db = await TestDatabase.create();
  const user = await db.createRole("app", { memberOf: ["dbmail_user"] });
  const admin = await db.createRole("boss", { memberOf: ["dbmail_admin"] });
  for (const name of ["main", "backup"])
    await addAccount(db, {
      account_name: name,
      email_address: `${name}@example.com`,
      mailserver_name: "localhost",
    });
  await profileWith(db, "p", ["main"], true);
  await profileWith(db, "private", ["main"]);
  await call(db, "sp_add_operator", { name: "ops", email_address: "ops@example.com" });
  await call(db, "sp_add_operator", { name: "off", email_address: "off@example.com", enabled: false });
  await call(db, "sp_add_operator", { name: "noemail" });
  // A waiting mail of the private profile (no sender runs), and so an event log and a mail item to protect.
  await send(db, { profile_name: "private", recipients: "waiting@example.com", body: "b" });
  await call(db, "sysmail_stop_sp");

  const ids = await db.query(
    `SELECT (SELECT string_agg(name || '=' || account_id, ',' ORDER BY account_id) FROM dbmail.accounts) AS accounts,
            (SELECT string_agg(name || '=' || profile_id, ',' ORDER BY profile_id) FROM dbmail.profiles) AS profiles,
            (SELECT string_agg(name || '=' || operator_id, ',' ORDER BY operator_id) FROM dbmail.operators) AS operators`,
  );
  expect(ids.rows[0]).toEqual({
    accounts: "main=1,backup=2",
    profiles: "p=1,private=2",
    operators: "ops=1,off=2,noemail=3",
  });
  clients.user = await db.connect(user);
  clients.admin = await db.connect(admin);
});

afterAll(async () => {
  await db?.drop();
});

describe("bad-input catalogue", () => {
  it("has at least 70 distinct cases, over every public procedure", () => {
    expect(cases.length).toBeGreaterThanOrEqual(70);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
    expect(new Set(cases.map((c) => c.call)).size).toBe(cases.length);
  });

  it("covers every public procedure", async () => {
    const { rows } = await db.query<{ proname: string }>(
      `SELECT DISTINCT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = 'dbmail'
         AND (p.proname LIKE 'sysmail\\_%\\_sp' OR p.proname LIKE 'sp\\_%' OR p.proname IN ('attachment', 'notify_job_failures'))
       ORDER BY 1`,
    );
    const called = cases.map((c) => c.call).join("\n");
    const missing = rows.map((r) => r.proname).filter((name) => !called.includes(`dbmail.${name}(`));
    expect(missing).toEqual([]);
  });

  it.each(cases)("$name", async ({ call: statement, role, sqlstate, parameter, value }) => {
    const client = clients[role];
    if (!client) throw new Error(`no connection for ${role}`);
    const error = await refusedUnchanged(db, () => client.query(statement));
    if (parameter === null) {
      // PostgreSQL's own error: not in dbmail's format; `value` is a part of its message.
      expect(value).not.toBeNull();
      expect(error.message).toContain(value);
    } else {
      expectError(error, sqlstate, parameter, value);
    }
    expect({ code: error.code, message: error.message.slice(0, 300) }).toMatchObject({ code: sqlstate });
  });
});
