import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startLocalPostgres } from "@pg-dbmail/dev/local-postgres";
import { migrate } from "@pg-dbmail/sql";
import pg from "pg";

/** A scratch database, dropped by `drop()` (and by dropAllBenchDatabases() at the end of a run). */
export interface BenchDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/** A PostgreSQL for the run: DATABASE_URL (a superuser URL) if set, else one started from npm binaries. */
export async function benchServer(): Promise<{ adminUrl: string; own: boolean; stop(): Promise<void> }> {
  if (process.env.DATABASE_URL)
    return { adminUrl: process.env.DATABASE_URL, own: false, stop: async () => {} };
  const dataDir = mkdtempSync(join(tmpdir(), "dbmail-bench-pg-"));
  const server = await startLocalPostgres({ dataDir, port: await freePort() });
  return {
    adminUrl: server.url,
    own: true,
    stop: async () => {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Runs `sql` on a connection of its own. */
export async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

const created = new Map<string, string>();

/** An empty database named dbmail_bench_<tag>_<random>. */
export async function createEmptyDatabase(adminUrl: string, tag = "x"): Promise<BenchDatabase> {
  const name = `dbmail_bench_${tag}_${randomBytes(4).toString("hex")}`;
  await withClient(adminUrl, (admin) => admin.query(`CREATE DATABASE ${name}`));
  created.set(name, adminUrl);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: async () => {
      await withClient(adminUrl, (admin) => admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
      created.delete(name);
    },
  };
}

/** Drops every database this run created and has not dropped yet. */
export async function dropAllBenchDatabases(): Promise<void> {
  for (const [name, adminUrl] of [...created]) {
    await withClient(adminUrl, (admin) => admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).catch(
      (error: unknown) => console.error(`could not drop ${name}: ${(error as Error).message}`),
    );
    created.delete(name);
  }
}

/**
 * A database with schema dbmail and one public default profile 'bench' whose account points at
 * 127.0.0.1:`smtpPort` (plain SMTP), plus the raw_queue table of the enqueue floor.
 */
export async function createBenchDatabase(
  adminUrl: string,
  options: { smtpPort?: number; tag?: string } = {},
): Promise<BenchDatabase> {
  const db = await createEmptyDatabase(adminUrl, options.tag ?? "dbmail");
  await withClient(db.url, async (client) => {
    await migrate(client);
    await client.query(
      `SELECT dbmail.sysmail_add_account_sp(account_name => 'bench', email_address => 'bench@example.com',
         mailserver_name => '127.0.0.1', port => $1, security => 'none')`,
      [options.smtpPort ?? 2525],
    );
    await client.query(`
      SELECT dbmail.sysmail_add_profile_sp(profile_name => 'bench');
      SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'bench', account_name => 'bench', sequence_number => 1);
      SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'bench', is_default => true);
      -- An idle sender started with --exit-when-idle leaves after 1 s, so drains end promptly.
      SELECT dbmail.sysmail_configure_sp('DatabaseMailExeMinimumLifeTime', '1');
      -- The floor: a comparable table written with a plain INSERT and NOTIFY.
      CREATE TABLE public.raw_queue (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, recipients text,
        subject text, body text, created_at timestamptz DEFAULT now(), status text DEFAULT 'unsent');`);
  });
  return db;
}
