// `dbmail console` (SPEC.md section 12) as a user runs it: where it may listen (loopback unless
// --allow-remote), its options and environment, and TLS, where the session cookie is Secure.
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { describe, expect, it } from "vitest";
import { db, launch, output, run, setUpCliTests, stop } from "../support/cli.js";

setUpCliTests();

const tls = new URL("../fixtures/tls/", import.meta.url).pathname;

describe("dbmail console", () => {
  it("refuses a --listen address that is not loopback without --allow-remote (exit 2, naming it)", async () => {
    for (const [args, env] of [
      [["console", "--listen", "0.0.0.0:8025"], {}],
      [["console"], { DBMAIL_CONSOLE_LISTEN: "192.0.2.10:8025" }],
    ] as const) {
      const result = await run([...args], { ...env });
      expect(result.code, output(result)).toBe(2);
      const shown = args[2] ?? env.DBMAIL_CONSOLE_LISTEN;
      expect(result.stderr).toBe(
        `dbmail: --listen: "${shown}": not a loopback address; the console listens on 127.0.0.1, ::1 or ` +
          "localhost unless --allow-remote is given (then serve it with --tls-cert and --tls-key)\n",
      );
    }
    const bad = await run(["console", "--listen", "8025"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--listen: "8025": not HOST:PORT');
    const half = await run(["console", "--tls-cert", `${tls}localhost.crt`]);
    expect(half.code).toBe(2);
    expect(half.stderr).toContain("--tls-key: missing: --tls-cert and --tls-key go together");
  });

  it("listens where DBMAIL_CONSOLE_LISTEN says, serves /login, and stops on SIGTERM", async () => {
    const withPassword = new URL(db.url);
    withPassword.password = "s3cret-console";
    const proc = launch(["console"], {
      DBMAIL_CONSOLE_LISTEN: "127.0.0.1:0",
      DATABASE_URL: withPassword.toString(),
    });
    const printed = await proc.waitForOutput(/dbmail console on (http:\/\/127\.0\.0\.1:\d+)/);
    const url = /dbmail console on (\S+)/.exec(printed)?.[1] as string;
    // The URL's password is never printed (nor used: people sign in with their own).
    expect(printed).toContain(":****@");
    expect(printed).not.toContain("s3cret-console");
    const login = await fetch(new URL("/login", url));
    expect(login.status).toBe(200);
    expect(await login.text()).toContain('name="username"');
    const result = await stop(proc);
    expect(result.code).toBe(0);
  });

  it("serves https with --tls-cert/--tls-key, and the session cookie is then Secure and __Host-", async () => {
    const role = await db.createRole("console_tls", { memberOf: ["dbmail_user"] });
    const proc = launch(
      [
        "console",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        `${tls}localhost.crt`,
        "--tls-key",
        `${tls}localhost.key`,
      ],
      { DATABASE_URL: db.url },
    );
    const printed = await proc.waitForOutput(/dbmail console on https:\/\/127\.0\.0\.1:\d+/);
    const port = Number(/https:\/\/127\.0\.0\.1:(\d+)/.exec(printed)?.[1]);
    const ca = readFileSync(`${tls}localhost.crt`);
    const origin = `https://localhost:${port}`;
    const form = await httpsRequest(port, ca, "GET", "/login");
    const token = /name="_csrf" value="([^"]+)"/.exec(form.body)?.[1] as string;
    const signInCookie = (form.cookies[0] ?? "").split(";")[0] as string;
    expect(signInCookie).toMatch(/^__Host-dbmail_signin=/);
    const body = new URLSearchParams({ _csrf: token, username: role.name, password: "test" }).toString();
    const signedIn = await httpsRequest(port, ca, "POST", "/login", body, {
      Origin: origin,
      Cookie: signInCookie,
      "Content-Type": "application/x-www-form-urlencoded",
    });
    expect(signedIn.status).toBe(303);
    const session = signedIn.cookies.find((c) => c.startsWith("__Host-dbmail_session="));
    const flags = (session ?? "").split(";").map((f) => f.trim().toLowerCase());
    expect(flags).toEqual(expect.arrayContaining(["secure", "httponly", "samesite=strict", "path=/"]));
    await stop(proc);
  });
});

function httpsRequest(
  port: number,
  ca: Buffer,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number | undefined; cookies: string[]; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        servername: "localhost",
        port,
        method,
        path,
        ca,
        headers: { Host: `localhost:${port}`, ...headers },
      },
      (response) => {
        let text = "";
        response.on("data", (chunk: Buffer) => {
          text += chunk.toString();
        });
        response.on("end", () =>
          resolve({ status: response.statusCode, cookies: response.headers["set-cookie"] ?? [], body: text }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
