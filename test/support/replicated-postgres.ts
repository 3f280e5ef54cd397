// A primary and a streaming hot standby of a test's own (npm binaries, own ports and data directories,
// never the machine's PostgreSQL): database "app" migrated, a login "mailer" (password "mailer") in
// dbmail_sender. For the failover tests: kill the primary, promote the standby.
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, type LocalPostgres, startLocalPostgres } from "@pg-dbmail/dev/local-postgres";
import { migrate } from "@pg-dbmail/sql";
import pg from "pg";
import { withClient } from "./database.js";
import { migrationsDir, withDatabase } from "./global-setup.js";
import { sleep } from "./mail.js";

export interface ReplicatedPair {
  primary: LocalPostgres;
  standby: LocalPostgres;
  /** A superuser URL to database app on `server`. */
  adminUrl(server: LocalPostgres): string;
  /** The mailer's URL to database app over `servers` in this order (libpq's multi-host form). */
  mailerUrl(servers: LocalPostgres[], query?: string): string;
  /** Stops both servers (whatever still runs) and removes their data. */
  stop(): Promise<void>;
}

export interface PairOptions {
  /**
   * Synchronous replication (synchronous_standby_names '*'): "on" returns from a commit once the standby
   * has flushed it; "remote_apply" once it has applied it (so a read on the standby sees it at once).
   */
  synchronous?: "on" | "remote_apply";
}

export async function startReplicatedPair(options: PairOptions = {}): Promise<ReplicatedPair> {
  const dir = mkdtempSync(join(tmpdir(), "dbmail-replicated-"));
  // Reachable by the postgres user when the tests run as root, so the data stays under `dir`.
  chmodSync(dir, 0o755);
  const servers: LocalPostgres[] = [];
  const pair = {
    adminUrl: (server: LocalPostgres) => withDatabase(server.url, "app"),
    mailerUrl: (list: LocalPostgres[], query = "target_session_attrs=read-write") =>
      `postgres://mailer:mailer@${list.map((s) => `127.0.0.1:${s.port}`).join(",")}/app${query ? `?${query}` : ""}`,
    stop: async () => {
      for (const server of servers) await server.stop("immediate").catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    const primary = await startLocalPostgres({ dataDir: join(dir, "primary"), port: await freePort() });
    servers.push(primary);
    await withClient(primary.url, (c) => c.query("CREATE DATABASE app"));
    await migrate(pair.adminUrl(primary), { migrationsDir });
    await withClient(pair.adminUrl(primary), (c) =>
      c.query("CREATE ROLE mailer LOGIN PASSWORD 'mailer' IN ROLE dbmail_sender"),
    );
    const standby = await startLocalPostgres({
      dataDir: join(dir, "standby"),
      port: await freePort(),
      replicaOf: primary.port,
    });
    servers.push(standby);
    if (options.synchronous) await makeSynchronous(primary.url, options.synchronous);
    return { ...pair, primary, standby };
  } catch (error) {
    await pair.stop();
    throw error;
  }
}

/** Turns on synchronous replication on the primary (a server of the test's own) and waits for it. */
async function makeSynchronous(primaryUrl: string, commit: "on" | "remote_apply"): Promise<void> {
  const client = new pg.Client({ connectionString: primaryUrl });
  await client.connect();
  try {
    await client.query("ALTER SYSTEM SET synchronous_standby_names = '*'");
    await client.query(`ALTER SYSTEM SET synchronous_commit = '${commit}'`);
    await client.query("SELECT pg_reload_conf()");
    for (let waited = 0; ; waited += 100) {
      const { rows } = await client.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_replication WHERE sync_state = 'sync'",
      );
      if (rows[0]?.n === 1) return;
      if (waited > 30_000) throw new Error("the standby did not become synchronous within 30 s");
      await sleep(100);
    }
  } finally {
    await client.end();
  }
}
