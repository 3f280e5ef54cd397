// Drain: N queued mails, a system started, time until the sink has the last one. The clock starts right
// before the system's processes are spawned, so process start-up counts, the same for every system.
import { fileURLToPath } from "node:url";
import {
  type Child,
  forkScript,
  now,
  spawnProgram,
  stopChild,
  type Watched,
  watchProcess,
} from "./children.js";
import { type BenchDatabase, createBenchDatabase, withClient } from "./database.js";
import { BODY } from "./mail.js";
import type { System, WorkerConfig } from "./references/common.js";
import type { Sink } from "./sink-client.js";

export const cli = fileURLToPath(new URL("../../packages/sender/dist/cli.js", import.meta.url));

/** One timed drain of one system. */
export interface DrainRun {
  mailsPerSecond: number;
  seconds: number;
  /** From start to the first message at the sink: start-up and the first claim. */
  firstMailMs: number;
  /** Per process of the system. */
  peakRssMiB: number[];
  cpuSeconds: number[];
  sinkCpuSeconds: number;
  /** Messages the sink counted once the system had stopped (more than n = duplicates). */
  received: number;
}

/** The sender's settings for a run: every one is passed as a flag, so the report can list them all. */
export interface SenderSettings {
  concurrency: number;
  batchSize: number;
  smtpPoolSize: number;
  pollIntervalMs: number;
  logLevel: string;
}

export function senderArgs(url: string, settings: SenderSettings, extra: string[] = []): string[] {
  return [
    cli,
    "start",
    "--database-url",
    url,
    "--concurrency",
    String(settings.concurrency),
    "--batch-size",
    String(settings.batchSize),
    "--smtp-pool-size",
    String(settings.smtpPoolSize),
    "--poll-interval-ms",
    String(settings.pollIntervalMs),
    "--log-level",
    settings.logLevel,
    ...extra,
  ];
}

/** Starts one sender process; `exitWhenIdle` makes it leave 1 s after the queue is empty. */
export function startSender(url: string, settings: SenderSettings, exitWhenIdle: boolean): Child {
  return spawnProgram(process.execPath, senderArgs(url, settings, exitWhenIdle ? ["--exit-when-idle"] : []));
}

/** Queues `n` mails with sp_send_dbmail in one set-based statement (setup: not timed). */
export async function queueMails(url: string, n: number, from = 1): Promise<void> {
  await withClient(url, (client) =>
    client.query(
      `SELECT count(dbmail.sp_send_dbmail(recipients => 'r' || i || '@example.org', subject => 'Bench mail ' || i,
                                          body => $3))
         FROM generate_series($1::integer, $2::integer) i`,
      [from, from + n - 1, BODY],
    ),
  );
}

/**
 * Times one drain: `start` spawns the system's processes; done when the sink has `n` messages. Then
 * `finish` ends the processes (or waits for them to leave on their own) and the sink is counted again.
 */
export async function timeDrain(
  sink: Sink,
  n: number,
  start: () => Child[],
  finish: (children: Child[]) => Promise<void>,
  timeoutMs: number,
): Promise<DrainRun> {
  await sink.reset();
  const sinkBefore = (await sink.stats()).cpu;
  const started = now();
  const children = start();
  const watched: Watched[] = children.map(watchProcess);
  const failed = Promise.race(
    children.map((c) =>
      c.exited.then(({ code }) => {
        if (code !== 0) throw new Error(`a process of the system exited with ${code}: ${c.output()}`);
        return new Promise<never>(() => {});
      }),
    ),
  );
  // Only its first failure matters, and only until the drain is done.
  failed.catch(() => {});
  try {
    const stats = await Promise.race([sink.waitFor(n, timeoutMs), failed]);
    const seconds = (stats.lastAt - started) / 1000;
    await finish(children);
    const after = await sink.stats();
    return {
      mailsPerSecond: n / seconds,
      seconds,
      firstMailMs: stats.firstAt - started,
      peakRssMiB: watched.map((w) => w.peakRssMiB()),
      cpuSeconds: watched.map((w) => w.cpuSeconds()),
      sinkCpuSeconds: (after.cpu.user - sinkBefore.user + after.cpu.system - sinkBefore.system) / 1e6,
      received: after.messages,
    };
  } finally {
    await Promise.all(children.map((c) => stopChild(c)));
  }
}

/** Waits for senders started with --exit-when-idle to leave by themselves (SIGTERM after 30 s). */
export async function untilExited(children: Child[]): Promise<void> {
  await Promise.all(
    children.map(async (c) => {
      const timer = setTimeout(() => c.process.kill("SIGTERM"), 30_000);
      const { code } = await c.exited;
      clearTimeout(timer);
      if (code !== 0) throw new Error(`a sender exited with ${code}: ${c.output()}`);
    }),
  );
}

/** SIGTERM (graceful stop) to reference workers. */
export async function terminate(children: Child[]): Promise<void> {
  await Promise.all(children.map((c) => stopChild(c, 10_000)));
}

/** pg-dbmail: `senders` processes draining `n` mails in a fresh database. */
export async function drainOurs(
  adminUrl: string,
  sink: Sink,
  n: number,
  senders: number,
  settings: SenderSettings,
): Promise<DrainRun> {
  const db = await createBenchDatabase(adminUrl, { smtpPort: sink.port });
  try {
    await queueMails(db.url, n);
    await settle(db.url);
    return await timeDrain(
      sink,
      n,
      () => Array.from({ length: senders }, () => startSender(db.url, settings, true)),
      untilExited,
      timeoutFor(n),
    );
  } finally {
    await db.drop();
  }
}

/** A reference system's worker process (references/worker.ts). */
export function startReference(system: System, config: WorkerConfig): Child {
  return forkScript("./references/worker.js", [system, JSON.stringify(config)]);
}

/** A reference draining `n` jobs already in `db` (or, for nodemailer, from memory). */
export async function drainReference(
  sink: Sink,
  n: number,
  system: System,
  config: WorkerConfig,
  db?: BenchDatabase,
): Promise<DrainRun> {
  try {
    if (db) await settle(db.url);
    return await timeDrain(sink, n, () => [startReference(system, config)], terminate, timeoutFor(n));
  } finally {
    await db?.drop();
  }
}

/** VACUUM ANALYZE the fresh queue and CHECKPOINT, so neither autovacuum nor a checkpoint of the setup's
 * writes lands inside the timed part. */
export async function settle(url: string): Promise<void> {
  await withClient(url, async (client) => {
    await client.query("VACUUM ANALYZE");
    await client.query("CHECKPOINT");
  });
}

/** Generous: a stuck system fails the run instead of hanging it. */
const timeoutFor = (n: number) => 120_000 + n * 20;
