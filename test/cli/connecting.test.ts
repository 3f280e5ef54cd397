// Reaching the database (SPEC.md sections 8 and 11): exit 3 for a server, login, password or role that
// will not do, exit 9 for a database without schema dbmail, and `dbmail start` retrying a database that is
// not up yet instead of exiting; never a password in the output.
import { freePort } from "@pg-dbmail/dev/local-postgres";
import { describe, expect, it } from "vitest";
import { db, launch, output, run, setUpCliTests, stop, withEmptyDatabase } from "../support/cli.js";
import { withClient } from "../support/database.js";
import { sleep, unique } from "../support/mail.js";

setUpCliTests();

describe("connecting", () => {
  const password = "s3cret-Pa55word";

  it("migrate against a port nobody listens on exits 3 without printing the password", async () => {
    const url = `postgres://dbmail:${password}@127.0.0.1:${await freePort()}/nowhere`;
    const result = await run(["migrate", "--database-url", url]);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain("127.0.0.1");
    expect(output(result)).not.toContain(password);
  });

  it("start against a database that is not up yet keeps retrying (logging why, never the password), and SIGTERM exits 0", async () => {
    // A sender may start before its database (compose, boot order): it waits instead of exiting.
    const url = `postgres://dbmail:${password}@127.0.0.1:${await freePort()}/nowhere`;
    const proc = launch(["start", "--database-url", url]);
    await proc.waitForOutput(/database unreachable; retrying/);
    await sleep(1000);
    expect(proc.child.exitCode).toBeNull();
    const result = await stop(proc);
    expect(result.code, output(result)).toBe(0);
    expect(output(result)).toContain("ECONNREFUSED");
    expect(output(result)).not.toContain(password);
  });

  it("start against a host name that does not resolve keeps retrying, naming it, and SIGTERM exits 0", async () => {
    const proc = launch([
      "start",
      "--database-url",
      `postgres://dbmail:${password}@no-such-host.invalid/app`,
    ]);
    await proc.waitForOutput(/ENOTFOUND no-such-host\.invalid.*database unreachable; retrying/);
    await sleep(500);
    expect(proc.child.exitCode).toBeNull();
    const result = await stop(proc);
    expect(result.code, output(result)).toBe(0);
    expect(output(result)).not.toContain(password);
  });

  it("start against a database without schema dbmail exits 9 and says to run dbmail migrate", async () => {
    await withEmptyDatabase(async (url) => {
      const result = await run(["start", "--database-url", url]);
      expect(result.code).toBe(9);
      expect(result.stderr).toContain("dbmail migrate");
    });
  });

  it("status and send-test as a login without the dbmail role they need exit 3 in one line naming it", async () => {
    const plain = await db.createRole("cli_norole");
    const user = await db.createRole("cli_user", { memberOf: ["dbmail_user"] });
    for (const role of [plain, user]) {
      const status = await run(["status", "--database-url", role.url]);
      expect(status.code).toBe(3);
      expect(status.stdout).toBe("");
      expect(status.stderr).toBe(
        `dbmail: status needs dbmail_admin: the login "${role.name}" is not a member; ` +
          `GRANT dbmail_admin TO "${role.name}", or connect as a login that is\n`,
      );
    }
    const sendTest = await run(["send-test", "--to", "a@example.org", "--database-url", plain.url]);
    expect(sendTest.code).toBe(3);
    expect(sendTest.stderr).toBe(
      `dbmail: send-test needs dbmail_user: the login "${plain.name}" is not a member; ` +
        `GRANT dbmail_user TO "${plain.name}", or connect as a login that is\n`,
    );
  });

  it("status in a database without schema dbmail exits 9 saying to migrate", async () => {
    await withEmptyDatabase(async (url) => {
      const result = await run(["status", "--database-url", url]);
      expect(result.code).toBe(9);
      expect(result.stderr).toMatch(/has no schema dbmail: install it with dbmail migrate\n$/);
    });
  });

  it("start with a login that is not in dbmail_sender exits 3 naming dbmail_sender", async () => {
    const plain = await db.createRole("cli_plain");
    const result = await run(["start", "--database-url", plain.url]);
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(/dbmail_sender|permission/);
  });

  it("start with a role that does not exist exits 3", async () => {
    const url = new URL(db.url);
    url.username = unique("nobody");
    url.password = password;
    const result = await run(["start", "--database-url", url.toString()]);
    expect(result.code).toBe(3);
    expect(output(result)).not.toContain(password);
  });

  it("start with a wrong password exits 3 without printing it", async (ctx) => {
    const role = await db.createRole("cli_pw", { memberOf: ["dbmail_sender"] });
    const url = new URL(role.url);
    url.password = password;
    // A server that trusts 127.0.0.1 accepts any password; dev.test.ts checks one that does not.
    const accepted = await withClient(url.toString(), async () => true).catch(() => false);
    if (accepted) return ctx.skip();
    const result = await run(["start", "--database-url", url.toString()]);
    expect(result.code).toBe(3);
    expect(output(result)).not.toContain(password);
  });
});
