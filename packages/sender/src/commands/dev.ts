import { resolve } from "node:path";
import { migrate } from "@pg-dbmail/sql";
import { connect, databaseUrlFrom, describe } from "../connection.js";
import { demoProfile, ensureDemoProfile } from "../dev/demo-profile.js";
import { freePort, type LocalPostgres, portIsFree, startLocalPostgres } from "../dev/local-postgres.js";

export const devHelp = `Usage: dbmail dev [--database-url URL] [--data-dir DIR] [--port N]

Runs pg-dbmail locally: with no database URL, starts a PostgreSQL of its own (data kept in DIR),
installs schema dbmail, creates a demo profile, and prints a psql connection string and a
ready-to-paste SELECT dbmail.sp_send_dbmail(...). Ctrl-C stops everything.

Options:
  --database-url URL   use this database instead of starting one (default: DATABASE_URL)
  --data-dir DIR       where the local PostgreSQL keeps its data (default: .dbmail)
  --port N             the local PostgreSQL's port (default: 54329, or a free one if taken)
  -h, --help           show this help
`;

const devDatabase = "dbmail_dev";
const catcherPort = 2525;

export async function runDev(options: {
  databaseUrl?: string;
  dataDir?: string;
  port?: string;
}): Promise<void> {
  let local: LocalPostgres | undefined;
  let url = databaseUrlFrom(options.databaseUrl);
  if (!url) {
    local = await startOwnPostgres(options);
    url = await ensureDatabase(local.url, devDatabase);
  }
  const client = await connect(url, "dbmail dev");
  try {
    await migrate(client);
    await ensureDemoProfile(client, catcherPort);
  } finally {
    await client.end();
  }
  printWelcome(url, local !== undefined);
  await untilSignal();
  if (local) await local.stop();
}

async function startOwnPostgres(options: { dataDir?: string; port?: string }): Promise<LocalPostgres> {
  const dataDir = resolve(options.dataDir ?? ".dbmail", "postgres");
  const wanted = options.port ? Number(options.port) : 54329;
  const port = (await portIsFree(wanted)) ? wanted : await freePort();
  console.log(`starting PostgreSQL on 127.0.0.1:${port} (data in ${dataDir}) ...`);
  return startLocalPostgres({ dataDir, port });
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

function printWelcome(url: string, ownPostgres: boolean): void {
  const shown = ownPostgres ? url : describe(url);
  console.log(`
pg-dbmail is ready in ${describe(url)}

  psql '${shown}'

then paste:

  SELECT dbmail.sp_send_dbmail(recipients => 'you@example.com', subject => 'Hello from PostgreSQL', body => 'It works.');
  SELECT mailitem_id, subject, sent_status FROM dbmail.sysmail_allitems ORDER BY mailitem_id DESC;

The profile '${demoProfile}' is every user's default. Delivery needs the sender (dbmail start), which
this version does not run yet: mail stays queued in dbmail.sysmail_unsentitems.

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
