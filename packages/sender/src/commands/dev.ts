import { join, resolve } from "node:path";
import { defaults } from "../config/options.js";
import { connect, databaseUrlFrom, describe } from "../connection.js";
import { demoProfile, ensureDemoProfile } from "../dev/demo-profile.js";
import { freePort, type LocalPostgres, portIsFree, startLocalPostgres } from "../dev/local-postgres.js";
import { listCaughtMail, startMailCatcher } from "../dev/mail-catcher.js";
import { createLogger } from "../log.js";
import { Sender } from "../sender/sender.js";
import { migrateOrExplain } from "./migrate.js";

export const devHelp = `Usage: dbmail dev [--database-url URL] [--data-dir DIR] [--port N]
       dbmail dev --list [--data-dir DIR]

Runs pg-dbmail locally: with no database URL, starts a PostgreSQL of its own (data kept in DIR),
installs schema dbmail, creates a demo profile that sends to a local mail catcher, starts the sender,
and prints a psql connection string and a ready-to-paste SELECT dbmail.sp_send_dbmail(...). Every mail
sent lands in DIR/mail as an .eml file. Ctrl-C stops everything.

Options:
  --database-url URL   use this database instead of starting one (default: DATABASE_URL)
  --data-dir DIR       where the local PostgreSQL and the caught mail are kept (default: .dbmail)
  --port N             the local PostgreSQL's port (default: 54329, or a free one if taken)
  --list               list the mail caught so far and exit
  -h, --help           show this help
`;

const devDatabase = "dbmail_dev";

export interface DevOptions {
  databaseUrl?: string;
  dataDir?: string;
  port?: string;
  list?: boolean;
}

export async function runDev(options: DevOptions): Promise<void> {
  const dataDir = resolve(options.dataDir ?? ".dbmail");
  const mailDir = join(dataDir, "mail");
  if (options.list) {
    const caught = await listCaughtMail(mailDir);
    if (caught.length === 0) console.log(`no mail caught yet in ${mailDir}`);
    for (const m of caught) console.log(`${m.file}\n  from ${m.from} to ${m.to}: ${m.subject}`);
    return;
  }
  let local: LocalPostgres | undefined;
  let url = databaseUrlFrom(options.databaseUrl);
  if (!url) {
    local = await startOwnPostgres(join(dataDir, "postgres"), options.port);
    url = await ensureDatabase(local.url, devDatabase);
  }
  const catcher = await startMailCatcher({
    dir: mailDir,
    port: (await portIsFree(2525)) ? 2525 : await freePort(),
    onMessage: (m) => console.log(`caught mail from ${m.from} to ${m.to}: "${m.subject}"\n  ${m.file}`),
  });
  const client = await connect(url, "dbmail dev");
  try {
    await migrateOrExplain(client);
    await ensureDemoProfile(client, catcher.port);
  } finally {
    await client.end();
  }
  const log = createLogger("warn", { component: "sender" });
  const sender = new Sender(
    {
      ...defaults,
      databases: [{ name: devDatabase, url }],
      senderId: `dbmail-dev:${process.pid}`,
      pollIntervalMs: 1000,
    },
    log,
  );
  await sender.start();
  printWelcome(url, local !== undefined, catcher.port, mailDir);
  await untilSignal();
  await sender.stop(5000);
  await catcher.stop();
  if (local) await local.stop();
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

function printWelcome(url: string, ownPostgres: boolean, catcherPort: number, mailDir: string): void {
  console.log(`
pg-dbmail is running in ${describe(url)}

  psql '${ownPostgres ? url : describe(url)}'

then paste:

  SELECT dbmail.sp_send_dbmail(recipients => 'you@example.com', subject => 'Hello from PostgreSQL', body => 'It works.');
  SELECT mailitem_id, subject, sent_status, sent_date FROM dbmail.sysmail_allitems ORDER BY mailitem_id DESC;

The profile '${demoProfile}' is every user's default; it sends to the mail catcher on 127.0.0.1:${catcherPort},
which keeps each mail in ${mailDir} (list them: dbmail dev --list).

Ctrl-C to stop.
`);
}

function untilSignal(): Promise<void> {
  return new Promise((resolveSignal) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      console.log("\nstopping ...");
      resolveSignal();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}
