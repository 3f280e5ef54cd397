// Reference (c): pg-boss 10.4.2. Jobs carry the whole message; one worker process runs several work()
// loops that each fetch a batch and send it through one shared pooled nodemailer transport.
import PgBoss from "pg-boss";
import { type BenchDatabase, createEmptyDatabase, withClient } from "../database.js";
import { BODY, FROM } from "../mail.js";
import { pooledTransport, type WorkerConfig } from "./common.js";

export const QUEUE = "send";

/**
 * pg-boss polls (no LISTEN): pollingIntervalSeconds 0.5 is its documented minimum. A work() loop waits
 * out the rest of the interval after a batch that finished sooner, so throughput comes from several
 * loops (pg-boss 10 dropped teamSize: call work() more than once) with batches big enough to take longer
 * than the interval.
 */
export const pgBossSettings = (connections: number) => ({
  workers: connections,
  batchSize: 50,
  pollingIntervalSeconds: 0.5,
  max: connections + 2,
});

function boss(url: string, max = 4): PgBoss {
  // No cron, no maintenance in the setup and client instances: only the worker runs like a deployment.
  return new PgBoss({ connectionString: url, max, schedule: false, supervise: false });
}

/** A fresh database with pg-boss's schema, its queue, and `n` jobs inserted in bulk (not timed). */
export async function preparePgBoss(adminUrl: string, n: number): Promise<BenchDatabase> {
  const db = await createEmptyDatabase(adminUrl, "pgboss");
  const setup = boss(db.url);
  setup.on("error", (error) => console.error(`pg-boss: ${error.message}`));
  await setup.start();
  await setup.createQueue(QUEUE);
  for (let from = 1; from <= n; from += 5000) {
    const jobs = Array.from({ length: Math.min(5000, n - from + 1) }, (_, k) => ({
      name: QUEUE,
      data: { to: `r${from + k}@example.org`, subject: `Bench mail ${from + k}`, text: BODY },
    }));
    await setup.insert(jobs);
  }
  await setup.stop({ graceful: false, wait: true });
  if (n > 0) await withClient(db.url, (client) => client.query("VACUUM ANALYZE"));
  return db;
}

/** A client instance for boss.send(), with `max` connections (latency runs: 2). */
export async function pgBossClient(url: string, max = 2): Promise<PgBoss> {
  const client = boss(url, max);
  client.on("error", (error) => console.error(`pg-boss: ${error.message}`));
  await client.start();
  return client;
}

export async function work(config: WorkerConfig): Promise<() => Promise<void>> {
  const transport = pooledTransport(config);
  const s = config.settings;
  const worker = new PgBoss({ connectionString: config.url, max: s.max });
  worker.on("error", (error) => console.error(`pg-boss: ${error.message}`));
  await worker.start();
  type Mail = { to: string; subject: string; text: string };
  for (let w = 0; w < (s.workers ?? 1); w++) {
    await worker.work<Mail>(
      QUEUE,
      { batchSize: s.batchSize, pollingIntervalSeconds: s.pollingIntervalSeconds },
      async (jobs) => {
        await Promise.all(jobs.map((job) => transport.sendMail({ from: FROM, ...job.data })));
      },
    );
  }
  return async () => {
    await worker.stop({ graceful: true, wait: true, timeout: 5000 });
    transport.close();
  };
}
