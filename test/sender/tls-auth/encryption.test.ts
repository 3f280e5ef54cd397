// Encryption and certificate checks of the SMTP connection (SPEC section 4), end to end: a real sender
// delivers to servers speaking STARTTLS or implicit TLS, or plain text; security 'starttls', 'tls',
// 'none' and enable_ssl each do what they say, never falling back to plain text, and
// tls_reject_unauthorized refuses a self-signed certificate unless turned off.
import { describe, expect, it } from "vitest";
import { useTlsAuth } from "./support.js";

const { query, startSender, startServer, accountAndProfile, send, expectSent, expectFailed } = useTlsAuth();

describe("encryption", () => {
  it("security 'starttls' upgrades the connection to a STARTTLS server (self-signed, not verified)", async () => {
    const { server, observed } = await startServer({ starttls: true });
    const { accountId, profile } = await accountAndProfile(server, { security: "starttls" });
    await startSender();
    const id = await send(profile, "over starttls");
    await expectSent(id, accountId);
    const [mail] = await server.waitFor(1);
    expect(mail?.parsed.subject).toBe("over starttls");
    expect(mail?.envelope.to).toEqual(["someone@example.org"]);
    expect(observed.mailFrom).toEqual([{ secure: true, user: undefined }]);
  });

  it("enable_ssl => true (SQL Server's switch) means STARTTLS", async () => {
    const { server, observed } = await startServer({ starttls: true });
    const { accountId, accountName, profile } = await accountAndProfile(server, { enable_ssl: true });
    const { rows } = await query(
      "SELECT security, enable_ssl FROM dbmail.sysmail_help_account_sp(account_name => $1)",
      [accountName],
    );
    expect(rows[0]).toEqual({ security: "starttls", enable_ssl: true });
    await startSender();
    const id = await send(profile, "enable_ssl");
    await expectSent(id, accountId);
    const [mail] = await server.waitFor(1);
    expect(mail?.parsed.subject).toBe("enable_ssl");
    expect(observed.mailFrom.map((m) => m.secure)).toEqual([true]);
  });

  it("security 'tls' speaks TLS from the first byte to an implicit-TLS server", async () => {
    const { server, observed } = await startServer({ implicitTls: true });
    const { accountId, profile } = await accountAndProfile(server, { security: "tls" });
    await startSender();
    const id = await send(profile, "over implicit tls");
    const item = await expectSent(id, accountId);
    expect(item.smtp_response).toMatch(/^250/);
    const [mail] = await server.waitFor(1);
    expect(mail?.parsed.subject).toBe("over implicit tls");
    expect(observed.mailFrom.map((m) => m.secure)).toEqual([true]);
  });

  it("security 'none' cannot talk to an implicit-TLS server: the item fails, nothing is delivered", async () => {
    const { server, observed } = await startServer({ implicitTls: true });
    const { profile } = await accountAndProfile(server, { security: "none" });
    await startSender();
    const id = await send(profile);
    const item = await expectFailed(id, /\S/);
    expect(item.smtp_response).toBeNull();
    expect(server.received).toHaveLength(0);
    expect(observed.mailFrom).toHaveLength(0);
  });

  it("security 'tls' against a plain-text server fails instead of falling back to plain text", async () => {
    const { server, observed } = await startServer({});
    const { profile } = await accountAndProfile(server, { security: "tls" });
    await startSender();
    const id = await send(profile);
    await expectFailed(id, /\S/);
    expect(server.received).toHaveLength(0);
    expect(observed.mailFrom).toHaveLength(0);
  });

  it.each(["starttls", "tls"] as const)(
    "tls_reject_unauthorized true (the default) refuses the self-signed certificate (security %s)",
    async (security) => {
      const { server, observed } = await startServer(
        security === "tls" ? { implicitTls: true } : { starttls: true },
      );
      const { accountName, profile } = await accountAndProfile(server, {
        security,
        tls_reject_unauthorized: undefined,
      });
      const { rows } = await query(
        "SELECT tls_reject_unauthorized FROM dbmail.sysmail_help_account_sp(account_name => $1)",
        [accountName],
      );
      expect(rows[0]).toEqual({ tls_reject_unauthorized: true });
      await startSender();
      const id = await send(profile);
      await expectFailed(id, /certificate/i);
      expect(server.received).toHaveLength(0);
      expect(observed.mailFrom).toHaveLength(0);
    },
  );

  it("security 'starttls' against a server without STARTTLS is refused: nothing goes out in plain text", async () => {
    const { server, observed } = await startServer({ auth: { user: "plain", pass: "never-in-clear" } });
    const { profile } = await accountAndProfile(server, {
      security: "starttls",
      username: "plain",
      password: "never-in-clear",
    });
    await startSender();
    const id = await send(profile);
    await expectFailed(id, /STARTTLS|TLS/);
    expect(server.received).toHaveLength(0);
    // Neither the credentials nor the envelope were sent over the unencrypted connection.
    expect(observed.auths).toHaveLength(0);
    expect(observed.mailFrom).toHaveLength(0);
  });

  it("security 'none' against a STARTTLS-capable server sends in plain text without trying to upgrade", async () => {
    const { server, observed } = await startServer({ starttls: true });
    // tls_reject_unauthorized true: had the sender attempted STARTTLS, the self-signed certificate would fail it.
    const { accountId, profile } = await accountAndProfile(server, {
      security: "none",
      tls_reject_unauthorized: true,
    });
    await startSender();
    const id = await send(profile, "plain text");
    await expectSent(id, accountId);
    const [mail] = await server.waitFor(1);
    expect(mail?.parsed.subject).toBe("plain text");
    expect(observed.mailFrom.map((m) => m.secure)).toEqual([false]);
  });
});
