import { join, resolve } from "node:path";
import type { DemoLogin, RunningConsole } from "@pg-dbmail/console";
import {
  CliError,
  connect,
  createLogger,
  type DevOptions,
  databaseUrlFrom,
  ExitCode,
  migrateOrExplain,
  Sender,
  senderDefaults,
} from "@pg-dbmail/sender";
import { printWelcome } from "./banner.js";
import { lockDataDir, refuseLivePostgres } from "./data-dir-lock.js";
import { ensureDemoProfile } from "./demo-profile.js";
import { ensureDemoRole, startDevConsole } from "./dev-console.js";
import { freePort, type LocalPostgres, portIsFree, startLocalPostgres } from "./local-postgres.js";
import { listCaughtMail, type MailCatcher, startMailCatcher } from "./mail-catcher.js";

const devDatabase = "dbmail_dev";

/** `dbmail dev`: see devHelp in @pg-dbmail/sender (src/commands/dev.ts) and docs/cli.md. */
export async function runDev(options: DevOptions): Promise<void> {
  const shownDataDir = options.dataDir ?? ".dbmail";
  const dataDir = resolve(shownDataDir);
  const mailDir = join(dataDir, "mail");
  if (options.list) {
    const caught = await listCaughtMail(mailDir);
    if (caught.length === 0) console.log(`no mail caught yet in ${mailDir}`);
    for (const m of caught) console.log(`${m.file}\n  from ${m.from} to ${m.to}: ${m.subject}`);
    return;
  }
  const lock = lockDataDir(dataDir, shownDataDir);
  let local: LocalPostgres | undefined;
  let catcher: MailCatcher | undefined;
  let web: RunningConsole | undefined;
  try {
    let url = databaseUrlFrom(options.databaseUrl);
    const urlFromEnvironment = options.databaseUrl === undefined && url !== undefined;
    if (!url) {
      const postgresDir = join(dataDir, "postgres");
      refuseLivePostgres(postgresDir, join(shownDataDir, "postgres"));
      local = await startOwnPostgres(postgresDir, options.port);
      url = await ensureDatabase(local.url, devDatabase);
    }
    catcher = await startMailCatcher({
      dir: mailDir,
      port: (await portIsFree(2525)) ? 2525 : await freePort(),
      onMessage: (m) => console.log(`caught mail from ${m.from} to ${m.to}: "${m.subject}"\n  ${m.file}`),
    });
    const client = await connectExplained(url, urlFromEnvironment);
    let demoLogin: DemoLogin | undefined;
    try {
      await migrateOrExplain(client);
      await ensureDemoProfile(client, catcher.port);
      if (local) demoLogin = await ensureDemoRole(client);
    } finally {
      await client.end();
    }
    web = await startDevConsole(url, options.consolePort, demoLogin);
    const sender = new Sender(
      {
        ...senderDefaults,
        databases: [{ name: devDatabase, url }],
        senderId: `dbmail-dev:${process.pid}`,
        pollIntervalMs: 1000,
      },
      createLogger("warn", { component: "sender" }),
    );
    await sender.start();
    printWelcome({
      url,
      ownPostgres: local !== undefined,
      catcherPort: catcher.port,
      mailDir,
      consoleUrl: web.url,
      demoRole: demoLogin?.role,
      dataDirOption: options.dataDir === undefined ? undefined : dataDir,
    });
    await untilSignal();
    await sender.stop(5000);
  } finally {
    await web?.close();
    await catcher?.stop();
    await local?.stop();
    lock.release();
  }
}

async function startOwnPostgres(dir: string, requestedPort: string | undefined): Promise<LocalPostgres> {
  const wanted = requestedPort ? Number(requestedPort) : 54329;
  const port = (await portIsFree(wanted)) ? wanted : await freePort();
  console.log(`starting PostgreSQL on 127.0.0.1:${port} (data in ${dir}) ...`);
  return startLocalPostgres({ dataDir: dir, port });
}

async function ensureDatabase(serverUrl: string, name: string): Promise<string> {
  const client = await connect(serverUrl, "dbmail dev");
  try {
    const { rows } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (rows.length === 0) await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * connect(), saying what to do when DATABASE_URL cannot be reached: it is often the URL a dbmail dev
 * printed, exported in this shell, while that dbmail dev (and its PostgreSQL) is no longer running.
 */
async function connectExplained(url: string, fromEnvironment: boolean) {
  try {
    return await connect(url, "dbmail dev");
  } catch (error) {
    if (!fromEnvironment || !(error instanceof CliError) || error.exitCode !== ExitCode.connection)
      throw error;
    throw new CliError(
      `${error.message} (DATABASE_URL is set: unset it to have dbmail dev start its own PostgreSQL)`,
      error.exitCode,
      { cause: error },
    );
  }
}

/** Resolves on Ctrl-C, SIGTERM, or the terminal closing (SIGHUP would otherwise leave PostgreSQL running). */
function untilSignal(): Promise<void> {
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  return new Promise((resolveSignal) => {
    const stop = () => {
      for (const signal of signals) process.off(signal, stop);
      console.log("\nstopping ...");
      resolveSignal();
    };
    for (const signal of signals) process.on(signal, stop);
  });
}
