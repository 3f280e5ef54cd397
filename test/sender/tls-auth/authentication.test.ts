// SMTP authentication (SPEC section 4), end to end over STARTTLS: the account's username and password,
// passwords resolved from 'env:NAME' and 'file:/path' (refusing what cannot or must not be read), the
// sender's default credentials, and a changed password used without a restart. A password is never
// recorded in the item, the event log or the sender's log.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { eventually } from "../../support/sender.js";
import { useTlsAuth } from "./support.js";

const tls = useTlsAuth();
const { query, startSender, accountAndProfile, loginServer, send, expectSent, expectFailed, expectNowhere } =
  tls;

describe("authentication", () => {
  it("logs in with the account's username and password", async () => {
    const { server, observed, accountId, profile } = await loginServer(
      { user: "alice", pass: "s3cret" },
      { username: "alice", password: "s3cret" },
    );
    await startSender();
    const id = await send(profile, "authenticated");
    await expectSent(id, accountId);
    const [mail] = await server.waitFor(1);
    expect(mail?.user).toBe("alice");
    expect(mail?.parsed.subject).toBe("authenticated");
    expect(observed.auths).toEqual([{ username: "alice", password: "s3cret", secure: true }]);
    expect(observed.mailFrom).toEqual([{ secure: true, user: "alice" }]);
    await expectNowhere(id, ["s3cret"]);
  });

  it("a wrong password fails the item with the server's 535, and the password is never recorded or logged", async () => {
    const wrong = "Wr0ng-Pa55word-7f3a";
    const { server, observed, profile } = await loginServer(
      { user: "bob", pass: "right" },
      { username: "bob", password: wrong },
    );
    await startSender();
    const id = await send(profile);
    const item = await expectFailed(id, /535/);
    expect(item.last_error).toMatch(/auth|login|username or password/i);
    expect(server.received).toHaveLength(0);
    expect(observed.auths.map((a) => a.password)).toContain(wrong);
    // The log did record the failure (so looking for the password in it means something).
    await eventually(async () => tls.logLines().some((line) => line.includes(id) && /535/.test(line)));
    await expectNowhere(id, [
      wrong,
      Buffer.from(`\0bob\0${wrong}`).toString("base64"),
      Buffer.from(wrong).toString("base64"),
    ]);
  });

  it("resolves password 'env:NAME' from the sender's environment", async () => {
    const variable = `DBMAIL_TEST_SMTP_PASSWORD_${process.pid}`;
    tls.setEnv(variable, "from-the-environment");
    const { server, accountId, accountName, profile } = await loginServer(
      { user: "carol", pass: "from-the-environment" },
      { username: "carol", password: `env:${variable}` },
    );
    const { rows } = await query(
      "SELECT password_source FROM dbmail.sysmail_help_account_sp(account_name => $1)",
      [accountName],
    );
    expect(JSON.stringify(rows)).not.toContain("from-the-environment");
    await startSender();
    const id = await send(profile, "env password");
    await expectSent(id, accountId);
    const [mail] = await server.waitFor(1);
    expect(mail?.user).toBe("carol");
    expect(mail?.parsed.subject).toBe("env password");
    await expectNowhere(id, ["from-the-environment"]);
  });

  it("'env:NAME' naming a variable the sender lacks fails the item with an error naming it", async () => {
    const variable = "DBMAIL_TEST_NO_SUCH_SMTP_PASSWORD";
    delete process.env[variable];
    const { server, observed, profile } = await loginServer(
      { user: "dave", pass: "x" },
      { username: "dave", password: `env:${variable}` },
    );
    await startSender();
    const id = await send(profile);
    await expectFailed(id, new RegExp(variable));
    expect(server.received).toHaveLength(0);
    expect(observed.auths).toHaveLength(0);
  });

  it("resolves password 'file:/path' to the file's contents without the trailing newline", async () => {
    const file = join(tls.tempDir(), "smtp-password");
    writeFileSync(file, "from-a-file\n");
    const { server, observed, accountId, profile } = await loginServer(
      { user: "erin", pass: "from-a-file" },
      { username: "erin", password: `file:${file}` },
    );
    await startSender();
    const id = await send(profile, "file password");
    await expectSent(id, accountId);
    const [mail] = await server.waitFor(1);
    expect(mail?.user).toBe("erin");
    expect(observed.auths.map((a) => a.password)).toEqual(["from-a-file"]);
    await expectNowhere(id, ["from-a-file"]);
  });

  it("'file:/path' the sender cannot read fails the item with an error naming the path", async () => {
    const file = join(tls.tempDir(), "missing-password");
    const { server, profile } = await loginServer(
      { user: "frank", pass: "x" },
      { username: "frank", password: `file:${file}` },
    );
    await startSender();
    const id = await send(profile);
    await expectFailed(id, new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
    expect(server.received).toHaveLength(0);
  });

  it("'file:' refuses a FIFO, a directory and an oversized file, without blocking the sender", async () => {
    const dir = tls.tempDir();
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    const big = join(dir, "big");
    writeFileSync(big, Buffer.alloc(65 * 1024, "x"));
    const { server } = await tls.startServer({ starttls: true, auth: { user: "gina", pass: "ok" } });
    await startSender();
    // A FIFO nobody writes to would block a plain read (and the whole sender with it) forever.
    for (const [path, why] of [
      [fifo, /is not a regular file/],
      [dir, /is not a regular file/],
      [big, /is 66560 bytes; a secret file may have at most 65536/],
    ] as const) {
      const { profile } = await accountAndProfile(server, {
        security: "starttls",
        username: "gina",
        password: `file:${path}`,
      });
      await expectFailed(await send(profile), why);
    }
    // Still delivering.
    const { accountId, profile } = await accountAndProfile(server, {
      security: "starttls",
      username: "gina",
      password: "ok",
    });
    await expectSent(await send(profile, "after the refused secrets"), accountId);
  });

  it("use_default_credentials logs in with the sender's --smtp-username / --smtp-password", async () => {
    const { server, observed, accountId, profile } = await loginServer(
      { user: "svc", pass: "svc-pass" },
      { use_default_credentials: true },
    );
    await startSender({ smtpUsername: "svc", smtpPassword: "svc-pass" });
    const id = await send(profile, "default credentials");
    await expectSent(id, accountId);
    const [mail] = await server.waitFor(1);
    expect(mail?.user).toBe("svc");
    expect(mail?.parsed.subject).toBe("default credentials");
    expect(observed.auths).toEqual([{ username: "svc", password: "svc-pass", secure: true }]);
    await expectNowhere(id, ["svc-pass"]);
  });

  it("use_default_credentials on a sender without --smtp-username fails the item, saying so", async () => {
    const { server, observed, profile } = await loginServer(
      { user: "svc", pass: "svc-pass" },
      { use_default_credentials: true },
    );
    await startSender();
    const id = await send(profile);
    await expectFailed(id, /--smtp-username/);
    expect(server.received).toHaveLength(0);
    expect(observed.auths).toHaveLength(0);
  });

  it("a password changed with sysmail_update_account_sp is used for the next mail, without a restart", async () => {
    // The server checks against this object at every AUTH, so the test can rotate the password on both sides.
    const auth = { user: "grace", pass: "old-password-1" };
    const { server, observed, accountId, accountName, profile } = await loginServer(auth, {
      username: "grace",
      password: "old-password-1",
    });
    await startSender();
    await expectSent(await send(profile, "before the change"), accountId);
    await server.waitFor(1);

    auth.pass = "new-password-2";
    await query("SELECT dbmail.sysmail_update_account_sp(account_name => $1, password => $2)", [
      accountName,
      "new-password-2",
    ]);
    const id = await send(profile, "after the change");
    await expectSent(id, accountId);
    const received = await server.waitFor(2);
    expect(received.map((m) => [m.parsed.subject, m.user])).toEqual([
      ["before the change", "grace"],
      ["after the change", "grace"],
    ]);
    // The second mail went over a new connection that logged in with the new password (the pooled
    // connection that had logged in with the old one was not reused).
    expect(observed.auths.map((a) => a.password)).toEqual(["old-password-1", "new-password-2"]);
    await expectNowhere(id, ["old-password-1", "new-password-2"]);
  });
});
