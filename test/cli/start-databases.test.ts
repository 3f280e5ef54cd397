// One `dbmail start` serving the databases of its config file (SPEC.md section 11): mail of each is
// sent, a database it cannot serve is named and retried while the others are served, and SIGHUP re-reads
// the list (a config file that cannot be used changes nothing).
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  addProfile,
  db,
  launch,
  liveSender,
  output,
  sendMail,
  setUpCliTests,
  stop,
  writeConfig,
} from "../support/cli.js";
import { TestDatabase } from "../support/database.js";
import { withDatabase } from "../support/global-setup.js";
import { sleep, unique } from "../support/mail.js";
import { addAccount, eventually } from "../support/sender.js";
import { TestSmtpServer } from "../support/smtp.js";

setUpCliTests();

describe("dbmail start --config with two databases", () => {
  let db2: TestDatabase;
  let smtp: TestSmtpServer;

  beforeAll(async () => {
    db2 = await TestDatabase.create();
    smtp = await TestSmtpServer.start();
  });
  afterAll(async () => {
    await smtp?.stop();
    await db2?.drop();
  });

  it("one process serves both", async () => {
    for (const [target, label] of [
      [db, "one"],
      [db2, "two"],
    ] as const) {
      await addAccount(target, `two_${label}`, smtp);
      await addProfile(target, `two_${label}`, `two_${label}`);
      await sendMail(target, `two_${label}`, `from database ${label}`);
    }
    const senderId = unique("two-dbs");
    const config = writeConfig({
      databases: [
        { name: "one", url: db.url },
        { name: "two", url: db2.url },
      ],
      senderId,
      pollIntervalMs: 200,
    });
    const proc = launch(["start", "--config", config]);
    const received = await smtp.waitFor(2, 20_000).catch((error: Error) => {
      throw new Error(`${error.message}\nstdout: ${proc.stdout()}\nstderr: ${proc.stderr()}`);
    });
    expect(received.map((m) => m.parsed.subject).sort()).toEqual(["from database one", "from database two"]);
    for (const target of [db, db2]) {
      const { rows } = await target.query("SELECT 1 FROM dbmail.senders WHERE sender_id = $1", [senderId]);
      expect(rows).toHaveLength(1);
    }
    const result = await stop(proc);
    expect(result.code, result.stderr).toBe(0);
  });
  it("names a database it cannot serve and serves the others; SIGHUP re-reads the databases", {
    timeout: 60_000,
  }, async () => {
    for (const target of [db, db2]) {
      await addAccount(target, "hup", smtp);
      await addProfile(target, "hup", "hup");
    }
    const arrived = (subject: string) => smtp.received.some((m) => m.parsed.subject === subject);
    const senderId = unique("hup");
    const missing = withDatabase(db.adminUrl, unique("dbmail_missing"));
    const settings = { senderId, pollIntervalMs: 200 };
    const config = writeConfig({
      databases: [
        { name: "one", url: db.url },
        { name: "missing", url: missing },
      ],
      ...settings,
    });
    const proc = launch(["start", "--config", config]);
    // The database that does not exist is named in the log and retried; the other is served.
    await proc.waitForOutput(/"database":"missing".*the database does not exist/);
    await liveSender(db, [senderId]);
    await sendMail(db, "hup", "served while another database is missing");
    await eventually(async () => arrived("served while another database is missing"));

    // Database two is added, database one removed.
    await sendMail(db2, "hup", "waiting for the reload");
    await sleep(600);
    expect(arrived("waiting for the reload")).toBe(false);
    writeFileSync(config, JSON.stringify({ databases: [{ name: "two", url: db2.url }], ...settings }));
    proc.child.kill("SIGHUP");
    await eventually(async () => arrived("waiting for the reload"));
    // One was given back cleanly: its sender row says stopped, and its mail is no longer sent.
    await eventually(async () => {
      const { rows } = await db.query("SELECT stopped_at FROM dbmail.senders WHERE sender_id = $1", [
        senderId,
      ]);
      return rows[0]?.stopped_at !== null;
    });
    await sendMail(db, "hup", "after one was removed");
    await sleep(800);
    expect(arrived("after one was removed")).toBe(false);

    // A config file that cannot be used on SIGHUP changes nothing.
    writeFileSync(config, "{ not json");
    proc.child.kill("SIGHUP");
    await proc.waitForOutput(/the config file cannot be used; still serving the same databases/);
    await sendMail(db2, "hup", "still served");
    await eventually(async () => arrived("still served"));

    const result = await stop(proc);
    expect(result.code, result.stderr).toBe(0);
    expect(output(result)).not.toMatch(/"level":(50|60).*"database":"two"/);
  });
});
