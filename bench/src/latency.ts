// Idle latency: a system already running with nothing to do; one mail at a time, from the moment the
// enqueueing statement has returned (autocommit: it is committed) to the sink's end of DATA. Both clocks
// are performance.timeOrigin + performance.now() on the same machine.
import { type Child, now, sleep, stopChild } from "./children.js";
import { createBenchDatabase, withClient } from "./database.js";
import { type SenderSettings, startReference, startSender } from "./drain.js";
import { BODY } from "./mail.js";
import { addGraphileJob, graphileSettings, prepareGraphile } from "./references/graphile.js";
import { pgBossClient, pgBossSettings, preparePgBoss, QUEUE } from "./references/pgboss.js";
import type { Sink } from "./sink-client.js";
import { percentile } from "./stats.js";

export interface LatencyResult {
  samples: number;
  p50Ms: number;
  p99Ms: number;
  minMs: number;
  maxMs: number;
}

const WARM_UP = 5;

/**
 * Takes `samples` measurements of `enqueue` (which must return once committed). Between two, a random
 * pause of 50-550 ms: the system is idle again (outcome recorded), and the arrivals fall at random
 * phases of a 500 ms poller instead of locking onto one (a fixed rhythm near its period would).
 */
async function measure(
  sink: Sink,
  samples: number,
  enqueue: (i: number) => Promise<void>,
): Promise<LatencyResult> {
  await sink.reset(true);
  const latencies: number[] = [];
  for (let i = 1; i <= WARM_UP + samples; i++) {
    await enqueue(i);
    const committed = now();
    const arrived = await sink.nextMail(10_000);
    if (i > WARM_UP) latencies.push(arrived - committed);
    await sleep(50 + Math.random() * 500);
  }
  await sink.reset(false);
  return {
    samples,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    minMs: Math.min(...latencies),
    maxMs: Math.max(...latencies),
  };
}

/** Waits for a reference worker's "ready" message (it is then listening or polling). */
function ready(child: Child): Promise<void> {
  return new Promise((resolve, reject) => {
    child.process.once("message", () => resolve());
    void child.exited.then(() => reject(new Error(`the worker exited: ${child.output()}`)));
  });
}

export async function latencyOurs(
  adminUrl: string,
  sink: Sink,
  samples: number,
  settings: SenderSettings,
): Promise<LatencyResult> {
  const db = await createBenchDatabase(adminUrl, { smtpPort: sink.port, tag: "latency" });
  const sender = startSender(db.url, settings, false);
  try {
    return await withClient(db.url, (client) =>
      measure(sink, samples, async (i) => {
        await client.query("SELECT dbmail.sp_send_dbmail(recipients => $1, subject => $2, body => $3)", [
          `r${i}@example.org`,
          `Bench mail ${i}`,
          BODY,
        ]);
      }),
    );
  } finally {
    await stopChild(sender);
    await db.drop();
  }
}

export async function latencyGraphile(
  adminUrl: string,
  sink: Sink,
  samples: number,
  connections: number,
): Promise<LatencyResult> {
  const db = await prepareGraphile(adminUrl, 0);
  const worker = startReference("graphile-worker", {
    url: db.url,
    smtpPort: sink.port,
    connections,
    settings: graphileSettings(connections),
  });
  try {
    await ready(worker);
    return await withClient(db.url, (client) => measure(sink, samples, (i) => addGraphileJob(client, i)));
  } finally {
    await stopChild(worker, 10_000);
    await db.drop();
  }
}

export async function latencyPgBoss(
  adminUrl: string,
  sink: Sink,
  samples: number,
  connections: number,
): Promise<LatencyResult> {
  const db = await preparePgBoss(adminUrl, 0);
  const worker = startReference("pg-boss", {
    url: db.url,
    smtpPort: sink.port,
    connections,
    settings: pgBossSettings(connections),
  });
  const client = await pgBossClient(db.url);
  try {
    await ready(worker);
    return await measure(sink, samples, async (i) => {
      await client.send(QUEUE, { to: `r${i}@example.org`, subject: `Bench mail ${i}`, text: BODY });
    });
  } finally {
    await client.stop({ graceful: false, wait: true });
    await stopChild(worker, 10_000);
    await db.drop();
  }
}
