// The README, run as a new user would: its set-up commands are the ones promised, and its install,
// configure, send, deliver, send-test, status and several-databases steps work as written, through
// `npx dbmail` from the repository root. Only the example hosts, ports, passwords and role names are
// replaced with the test's own (a real PostgreSQL, a real SMTP server with STARTTLS and a login).
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { cleanEnv, killAll, type Result, type Running, spawnCollecting } from "./support/cli.js";
import { withClient } from "./support/database.js";
import { withDatabase } from "./support/global-setup.js";
import { eventually } from "./support/sender.js";
import { TestSmtpServer } from "./support/smtp.js";

const root = new URL("..", import.meta.url).pathname;
const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const certificate = new URL("fixtures/tls/localhost.crt", import.meta.url).pathname;

/** The README's fenced blocks, with their language. */
const blocks = [...readme.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({
  lang: m[1] as string,
  text: m[2] as string,
}));

/** The one block of `lang` that contains `marker`. */
function block(lang: string, marker: string): string {
  const found = blocks.filter((b) => b.lang === lang && b.text.includes(marker));
  expect(found, `README: one ${lang} block with ${marker}`).toHaveLength(1);
  return (found[0] as { text: string }).text;
}

/** The `npx dbmail ...` command lines of a shell block, without comments, each with its env prefix. */
function commands(text: string): { env: Record<string, string>; args: string[] }[] {
  return text
    .split("\n")
    .map((line) => line.replace(/\s+#.*$/, "").trim())
    .filter((line) => /(^|\s)npx dbmail /.test(line))
    .map((line) => {
      const [prefix, rest] = line.split(/npx dbmail /) as [string, string];
      const env = Object.fromEntries(
        [...prefix.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1] as string, m[2] as string]),
      );
      return { env, args: rest.split(/\s+/) };
    });
}

const suffix = randomBytes(3).toString("hex");
const adminUrl = inject("adminUrl");
const names = {
  app: `readme_app_${suffix}`,
  billing: `readme_billing_${suffix}`,
  crm: `readme_crm_${suffix}`,
};
const roles = { app: `readme_app_${suffix}`, mailer: `readme_mailer_${suffix}` };
const smtpPassword = "smtp-secret";
let smtp: TestSmtpServer;
let dir: string;

/** The README's example text, pointed at this test's databases, roles and SMTP server. */
function ours(text: string): string {
  const url = (role: string, password: string | undefined, database: string) => {
    const parsed = new URL(withDatabase(adminUrl, database));
    parsed.username = role;
    parsed.password = password ?? "";
    return parsed.toString();
  };
  const admin = new URL(adminUrl);
  return text
    .replace(/postgres:\/\/admin@db\.example\.com\/app/g, url(admin.username, admin.password, names.app))
    .replace(/postgres:\/\/mailer:choose-one@db\.example\.com\/(\w+)/g, (_, db: keyof typeof names) =>
      url(roles.mailer, "choose-one", names[db]),
    )
    .replace(/\bROLE mailer\b/g, `ROLE ${roles.mailer}`)
    .replace(/\bTO mailer\b/g, `TO ${roles.mailer}`)
    .replace(/\b(TO|ROLE) app\b/g, `$1 ${roles.app}`)
    .replace(
      "mailserver_name => 'smtp.example.com', port => 587",
      `mailserver_name => 'localhost', port => ${smtp.port}`,
    );
}

/** `npx dbmail args`, from the repository root, as the README has the user type it. */
function npxDbmail(args: string[], env: Record<string, string> = {}): Running {
  return spawnCollecting("npx", ["dbmail", ...args], {
    cwd: root,
    env: { ...cleanEnv, ...env, SMTP_PASSWORD: smtpPassword, NODE_EXTRA_CA_CERTS: certificate },
  });
}

async function runAll(text: string, env: Record<string, string> = {}): Promise<Result[]> {
  const results: Result[] = [];
  for (const command of commands(ours(text))) {
    const result = await npxDbmail(command.args, { ...env, ...command.env }).exited;
    expect(result.code, `npx dbmail ${command.args.join(" ")}\n${result.stdout}${result.stderr}`).toBe(0);
    results.push(result);
  }
  return results;
}

/** Starts `npx dbmail start ...` and waits until it serves `count` databases. */
async function startSender(args: string[], env: Record<string, string>, count = 1): Promise<Running> {
  const sender = npxDbmail(args, env);
  await sender.waitForOutput(new RegExp(Array(count).fill('"msg":"serving"').join("[\\s\\S]*")), 30_000);
  return sender;
}

function sql(url: string, text: string) {
  return withClient(url, (c) => c.query(text));
}

beforeAll(async () => {
  smtp = await TestSmtpServer.start({ starttls: true, auth: { user: "db@example.com", pass: smtpPassword } });
  dir = mkdtempSync(join(tmpdir(), "dbmail-readme-"));
  for (const database of Object.values(names)) await sql(adminUrl, `CREATE DATABASE ${database}`);
  await sql(adminUrl, `CREATE ROLE ${roles.app} LOGIN PASSWORD 'app'`);
});

afterAll(async () => {
  // npx's node child, the sender, is not killed with npx: killAll ends each process group.
  await killAll();
  await smtp?.stop();
  await withClient(adminUrl, async (c) => {
    for (const database of Object.values(names))
      await c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    for (const role of Object.values(roles)) await c.query(`DROP ROLE IF EXISTS ${role}`);
  });
  rmSync(dir, { recursive: true, force: true });
});

describe("the README", () => {
  it("shows the two set-up commands literally, each a block of its own", () => {
    const shell = blocks.filter((b) => b.lang === "sh").map((b) => b.text.trim());
    expect(shell).toContain("npm ci && npm start");
    expect(shell).toContain("npm ci && npm test");
  });

  it("installs, configures, sends, delivers, tests and reports as written", {
    timeout: 120_000,
  }, async () => {
    const [migrated] = await runAll(block("sh", "npx dbmail migrate"));
    expect(migrated?.stdout).toMatch(/is at version \d+/);
    const appDatabase = withDatabase(adminUrl, names.app);
    await sql(appDatabase, ours(block("sql", "sysmail_add_account_sp(")));
    const appUrl = new URL(appDatabase);
    appUrl.username = roles.app;
    appUrl.password = "app";
    await sql(appUrl.toString(), ours(block("sql", "SELECT sp_send_dbmail(")));
    await sql(appDatabase, ours(block("sql", "CREATE ROLE mailer")));

    const [start] = commands(ours(block("sh", "npx dbmail start\n")));
    await startSender(start?.args ?? [], start?.env ?? {});
    const [disk] = await smtp.waitFor(1, 20_000);
    expect(disk?.parsed.subject).toBe("Disk 90% full");
    expect(disk?.envelope.to.sort()).toEqual(["jane@example.com", "oncall@example.com"]);
    // Through the account as configured: STARTTLS, and the login whose password was env:SMTP_PASSWORD.
    expect(disk?.user).toBe("db@example.com");

    const adminBlock = block("sh", "npx dbmail send-test");
    const exported = /export DATABASE_URL=(\S+)/.exec(ours(adminBlock))?.[1] as string;
    const [sendTest, status] = await runAll(adminBlock, { DATABASE_URL: exported });
    expect(sendTest?.stdout).toMatch(/sent through account/);
    expect(smtp.received.map((m) => m.envelope.to)).toContainEqual(["you@example.com"]);
    expect(status?.stdout).toMatch(/Database Mail is STARTED/);
    expect(status?.stdout).toMatch(/live senders: 1\b/);
  });

  it("serves several databases from one sender with the config file it shows", {
    timeout: 120_000,
  }, async () => {
    const config = JSON.parse(ours(block("json", '"databases"'))) as {
      databases: { name: string; url: string }[];
    };
    expect(config.databases.map((d) => d.name)).toEqual(["billing", "crm"]);
    for (const name of ["billing", "crm"] as const) {
      const url = withDatabase(adminUrl, names[name]);
      const migrate = commands(block("sh", "npx dbmail migrate"))[0]?.args ?? [];
      const result = await npxDbmail(migrate.map((a) => (a.startsWith("postgres://") ? url : a))).exited;
      expect(result.code, result.stderr).toBe(0);
      // The configuration block again, without the roles the first database's created for the cluster.
      await sql(url, ours(block("sql", "sysmail_add_account_sp(")).replace(/^(GRANT|ALTER ROLE).*$/gm, ""));
      await sql(
        url,
        `SELECT dbmail.sp_send_dbmail(recipients => 'to@example.org', subject => 'from ${name}')`,
      );
    }
    const file = join(dir, "dbmail.json");
    writeFileSync(file, JSON.stringify(config));
    const [start] = commands(block("sh", "--config dbmail.json"));
    const args = (start?.args ?? []).map((a) => (a === "dbmail.json" ? file : a));
    await startSender(args, {}, 2);
    await eventually(async () =>
      ["from billing", "from crm"].every((s) => smtp.received.some((m) => m.parsed.subject === s)),
    );
  });
});
