// `dbmail dev` (SPEC.md section 8, "Beyond: everything local"): with a database URL it installs into it;
// without one it starts a PostgreSQL of its own; either way it prints psql and a ready-to-paste SELECT
// whose mail the local catcher keeps, lists what it caught, refuses a second dev on the same data
// directory (exit 13), and stops everything on SIGINT.
import { once } from "node:events";
import { chmodSync, readdirSync, readFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { freePort, portIsFree } from "@pg-dbmail/dev/local-postgres";
import { describeDatabaseUrl as withoutPassword } from "@pg-dbmail/sender";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { Visitor } from "../console/support.js";
import {
  cleanUpProcessesAndFiles,
  launch,
  output,
  type Running,
  run,
  stop,
  tmpDir,
  withEmptyDatabase,
} from "../support/cli.js";
import { withClient } from "../support/database.js";
import { eventually } from "../support/sender.js";

cleanUpProcessesAndFiles();

describe("dbmail dev", () => {
  function caughtFiles(dataDir: string): string[] {
    try {
      return readdirSync(join(dataDir, "mail")).filter((f) => f.endsWith(".eml"));
    } catch {
      return [];
    }
  }

  /** The web console's address, from the banner line that also says how to sign in. */
  function consoleLine(stdout: string): { url: string; signIn: string } {
    const match = stdout.match(/^The web console: (http:\/\/127\.0\.0\.1:\d+) \((.*)\)$/m);
    expect(match, stdout).not.toBeNull();
    return { url: match?.[1] as string, signIn: match?.[2] as string };
  }

  function sendLine(stdout: string): string {
    const line = stdout.match(/^\s*(SELECT dbmail\.sp_send_dbmail\(.*\);)\s*$/m)?.[1];
    expect(line, stdout).toBeDefined();
    return line as string;
  }

  it("with a database URL: installs, prints psql and a SELECT that delivers to the catcher; --list; SIGINT exits 0", async () => {
    const dataDir = tmpDir();
    await withEmptyDatabase(async (url) => {
      const consolePort = await freePort();
      const proc = launch([
        "dev",
        ...["--database-url", url, "--data-dir", dataDir, "--console-port", String(consolePort)],
      ]);
      const stdout = await proc.waitForOutput(/Ctrl-C to stop/, 30_000);
      expect(stdout).toMatch(/^\s*psql '[^']+'/m);
      // A URL the user gave is shown without its password (the tests' own URL may carry one).
      expect(stdout).toContain(`psql '${withoutPassword(url)}'`);
      expect(stdout).toContain(`export DATABASE_URL='${withoutPassword(url)}'`);
      const select = sendLine(stdout);

      // The console, at --console-port; in a database dbmail dev did not start, no password-less role.
      const web = consoleLine(stdout);
      expect(web).toEqual({
        url: `http://127.0.0.1:${consolePort}`,
        signIn: "sign in with your PostgreSQL role",
      });
      const login = await new Visitor(web.url).get("/login");
      expect(login.status).toBe(200);
      expect(login.text).toContain('name="password"');
      expect(login.text).not.toContain("Development mode");

      await withClient(url, (c) => c.query(select));
      const [file] = await eventually(async () => {
        const files = caughtFiles(dataDir);
        return files.length > 0 ? files : undefined;
      });
      const raw = readFileSync(join(dataDir, "mail", file as string), "utf8");
      expect(raw).toContain("you@example.com");
      await proc.waitForOutput(/caught mail/);

      const list = await run(["dev", "--list", "--data-dir", dataDir]);
      expect(list.code, list.stderr).toBe(0);
      expect(list.stdout).toContain(file);
      expect(list.stdout).toContain("Hello from PostgreSQL");
      expect(list.stdout).toContain("you@example.com");

      const result = await stop(proc, "SIGINT");
      expect(result.code, result.stderr).toBe(0);
    });
  }, 60_000);

  it("--console-port: refuses one that is not a port, or in use (exit 2, naming it)", async () => {
    const bad = await run(["dev", "--console-port", "99999", "--data-dir", tmpDir()]);
    expect(bad.code, output(bad)).toBe(2);
    expect(bad.stderr).toBe('dbmail: --console-port: "99999": not a port number\n');
    const taken = createServer().listen(0, "127.0.0.1");
    await once(taken, "listening");
    const port = String((taken.address() as AddressInfo).port);
    try {
      await withEmptyDatabase(async (url) => {
        const result = await run([
          "dev",
          "--database-url",
          url,
          "--data-dir",
          tmpDir(),
          "--console-port",
          port,
        ]);
        expect(result.code, output(result)).toBe(2);
        expect(result.stderr).toBe(`dbmail: --console-port: "${port}": in use on 127.0.0.1\n`);
      });
    } finally {
      taken.close();
    }
  }, 30_000);

  it("--list with nothing caught says so", async () => {
    const result = await run(["dev", "--list", "--data-dir", tmpDir()]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/no mail caught/);
  });

  async function devWithOwnPostgres(dataDir: string) {
    const port = await freePort();
    const proc = launch(["dev", "--data-dir", dataDir, "--port", String(port)]);
    const stdout = await proc.waitForOutput(/Ctrl-C to stop/, 45_000);
    const psqlUrl = stdout.match(/^\s*psql '([^']+)'/m)?.[1];
    expect(psqlUrl, stdout).toBeDefined();
    expect(new URL(psqlUrl as string).port).toBe(String(port));
    return { port, proc, stdout, psqlUrl: psqlUrl as string };
  }

  async function stopAndCheckPort(proc: Running, port: number, stdout: string): Promise<void> {
    const result = await stop(proc, "SIGINT", 20_000);
    expect(result.code, result.stderr).toBe(0);
    expect(await portIsFree(port), `a server is still listening on ${port}`).toBe(true);
    const consolePort = Number(new URL(consoleLine(stdout).url).port);
    expect(await portIsFree(consolePort), `the console still listens on ${consolePort}`).toBe(true);
    await expect(
      withClient(`postgres://postgres:postgres@127.0.0.1:${port}/postgres`, async () => true),
    ).rejects.toThrow();
  }

  it("without a database URL: starts its own PostgreSQL, mail sent through it is caught, SIGINT stops it all", async () => {
    const dataDir = tmpDir();
    // A directory anyone may traverse, so this test does not depend on how a private one is handled.
    chmodSync(dataDir, 0o755);
    const { port, proc, stdout, psqlUrl } = await devWithOwnPostgres(dataDir);
    try {
      // What to paste in another terminal: DATABASE_URL (its own server's password is a fixed dev one),
      // with which the other commands reach the dev database (cleanEnv has no DATABASE_URL or PG*).
      const exported = stdout.match(/^\s*export DATABASE_URL='([^']+)'\s*$/m)?.[1];
      expect(exported, stdout).toBe(psqlUrl);
      const status = await run(["status"], { DATABASE_URL: exported });
      expect(status.code, output(status)).toBe(0);
      expect(status.stdout).toContain("/dbmail_dev: Database Mail is STARTED");
      expect(status.stdout).toMatch(/live senders: 1\b/);
      for (const command of ["npx dbmail status", "npx dbmail send-test --to you@example.com"]) {
        expect(stdout).toMatch(new RegExp(`^\\s+${command}\\s`, "m"));
      }
      expect(stdout).toContain(`npx dbmail dev --list --data-dir '${dataDir}'`);

      // A second dbmail dev on the same data directory: one line, exit 13, and the first goes on.
      const second = await run(["dev", "--data-dir", dataDir, "--port", String(await freePort())]);
      expect(second.code, output(second)).toBe(13);
      expect(second.stdout).toBe("");
      expect(second.stderr).toBe(
        `dbmail: ${dataDir} is in use by another dbmail dev (pid ${proc.child.pid}): stop it, or use another --data-dir\n`,
      );
      expect(proc.child.exitCode).toBeNull();

      const client = new pg.Client({ connectionString: psqlUrl });
      await client.connect();
      try {
        const { rows } = await client.query<{ d: string }>("SELECT current_database() AS d");
        expect(rows[0]?.d).toBe("dbmail_dev");
        await client.query(sendLine(stdout));
      } finally {
        await client.end();
      }
      await eventually(async () => caughtFiles(dataDir).length === 1);
      await proc.waitForOutput(/caught mail .*"Hello from PostgreSQL"/);

      // The console: dbmail_demo signs in without a password (this server checks passwords: the
      // console uses the one dbmail dev set), and sees the mail just sent, as an admin.
      const web = consoleLine(stdout);
      expect(web.signIn).toBe("sign in as dbmail_demo, no password needed on this machine");
      const visitor = new Visitor(web.url);
      const login = await visitor.get("/login");
      expect(login.status).toBe(200);
      expect(login.text).toContain(
        "Development mode: sign in as dbmail_demo without a password (only on this machine)",
      );
      expect((await visitor.post("/login", { username: "dbmail_demo" })).status).toBe(303);
      const items = await visitor.get("/items");
      expect(items.status).toBe(200);
      expect(items.text).toContain('<span class="who">dbmail_demo</span>');
      expect(items.text).toContain("Hello from PostgreSQL");
      // Its password is dbmail dev's secret: never printed, and not the development one of postgres.
      await expect(
        withClient(`postgres://dbmail_demo:postgres@127.0.0.1:${port}/dbmail_dev`, async () => true),
      ).rejects.toThrow(/password authentication failed/);

      // This server checks passwords: a wrong one is exit 3, and is not printed.
      const wrong = new URL(psqlUrl);
      wrong.password = "Wr0ng-Passw0rd";
      const refused = await run(["start", "--database-url", wrong.toString()]);
      expect(refused.code, output(refused)).toBe(3);
      expect(output(refused)).not.toContain("Wr0ng-Passw0rd");
    } finally {
      await stopAndCheckPort(proc, port, stdout);
    }
  }, 60_000);

  it("without a database URL, with --data-dir in a private (0700) temporary directory", async () => {
    const dataDir = tmpDir(); // mkdtemp makes it 0700
    const { port, proc, stdout } = await devWithOwnPostgres(dataDir);
    await stopAndCheckPort(proc, port, stdout);
  }, 60_000);
});
