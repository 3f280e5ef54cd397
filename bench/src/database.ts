import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, startLocalPostgres } from "@pg-dbmail/sender/dev/local-postgres";
import { migrate } from "@pg-dbmail/sql";
import pg from "pg";

/** A scratch database with schema dbmail and one public default profile, dropped by `drop()`. */
export interface BenchDatabase {
  url: string;
  drop(): Promise<void>;
}

/** A PostgreSQL for the run: DATABASE_URL (a superuser URL) if set, else one started from npm binaries. */
export async function benchServer(): Promise<{ adminUrl: string; stop(): Promise<void> }> {
  if (process.env.DATABASE_URL) return { adminUrl: process.env.DATABASE_URL, stop: async () => {} };
  const dataDir = mkdtempSync(join(tmpdir(), "dbmail-bench-pg-"));
  const server = await startLocalPostgres({ dataDir, port: await freePort() });
  return {
    adminUrl: server.url,
    stop: async () => {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function createBenchDatabase(adminUrl: string): Promise<BenchDatabase> {
  const name = `dbmail_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  await migrate(client);
  await client.query(`
    SELECT dbmail.sysmail_add_account_sp(account_name => 'bench', email_address => 'bench@example.com',
      mailserver_name => '127.0.0.1', port => 2525);
    SELECT dbmail.sysmail_add_profile_sp(profile_name => 'bench');
    SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'bench', account_name => 'bench', sequence_number => 1);
    SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'bench', is_default => true);
    -- The floor: a comparable table written with a plain INSERT and NOTIFY.
    CREATE TABLE public.raw_queue (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, recipients text,
      subject text, body text, created_at timestamptz DEFAULT now(), status text DEFAULT 'unsent');`);
  await client.end();
  return {
    url: url.toString(),
    drop: async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}
