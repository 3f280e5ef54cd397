// Reference (b): graphile-worker 0.17.3. Jobs carry the whole message (like dbmail's queue rows); one
// worker process runs a task that sends through one shared pooled nodemailer transport.
import { Logger, run, runMigrations } from "graphile-worker";
import type pg from "pg";
import { type BenchDatabase, createEmptyDatabase, withClient } from "../database.js";
import { BODY, FROM } from "../mail.js";
import { pooledTransport, type WorkerConfig } from "./common.js";

/**
 * Tuned per https://worker.graphile.org/docs/performance: concurrency above the connection count so the
 * pool is never starved, a local queue so jobs are fetched in batches, and completions batched.
 * LISTEN/NOTIFY wakes it for new jobs, so pollInterval is only the fallback (the default, 2 s).
 */
export const graphileSettings = (connections: number) => ({
  concurrency: 2 * connections,
  maxPoolSize: 2 * connections + 2,
  pollInterval: 2000,
  localQueueSize: 4 * connections,
  completeJobBatchDelay: 0,
});

// Logs below warnings go nowhere: graphile-worker logs every job at info, the sender runs at warn.
const quietLogger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`graphile-worker: ${message}`);
});

/** A fresh database with graphile-worker's schema and `n` jobs added in one statement (not timed). */
export async function prepareGraphile(adminUrl: string, n: number): Promise<BenchDatabase> {
  const db = await createEmptyDatabase(adminUrl, "graphile");
  await runMigrations({ connectionString: db.url, logger: quietLogger });
  if (n > 0) {
    await withClient(db.url, async (client) => {
      await client.query(
        `SELECT count(*) FROM graphile_worker.add_jobs(ARRAY(
           SELECT ROW('send', json_build_object('to', 'r' || i || '@example.org', 'subject', 'Bench mail ' || i,
                      'text', $2::text), NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec
             FROM generate_series(1, $1::integer) i))`,
        [n, BODY],
      );
      await client.query("VACUUM ANALYZE");
    });
  }
  return db;
}

/** Adds one job the way an application would (graphile_worker.add_job), for the latency runs. */
export async function addGraphileJob(client: pg.Client, i: number): Promise<void> {
  await client.query(
    `SELECT graphile_worker.add_job('send', json_build_object('to', $1::text, 'subject', $2::text, 'text', $3::text))`,
    [`r${i}@example.org`, `Bench mail ${i}`, BODY],
  );
}

export async function work(config: WorkerConfig): Promise<() => Promise<void>> {
  const transport = pooledTransport(config);
  const s = config.settings;
  const runner = await run({
    connectionString: config.url,
    concurrency: s.concurrency,
    maxPoolSize: s.maxPoolSize,
    pollInterval: s.pollInterval,
    noHandleSignals: true,
    logger: quietLogger,
    preset: {
      worker: {
        localQueue: { size: s.localQueueSize as number },
        completeJobBatchDelay: s.completeJobBatchDelay,
      },
    },
    taskList: {
      send: async (payload) => {
        const { to, subject, text } = payload as { to: string; subject: string; text: string };
        await transport.sendMail({ from: FROM, to, subject, text });
      },
    },
  });
  return async () => {
    await runner.stop();
    transport.close();
  };
}
