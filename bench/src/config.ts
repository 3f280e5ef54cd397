// What a bench run is configured with, and what it found: shared by the run (run.ts) and the report
// (report.ts), which both read them.
import type { BacklogResult } from "./backlog.js";
import type { DrainRun, SenderSettings } from "./drain.js";
import type { EnqueueResult, SetEnqueueResult } from "./enqueue.js";
import type { LatencyResult } from "./latency.js";
import type { ScalingResult } from "./scaling.js";

// npm run bench [-- --quick]: a short smoke run, or the full one. `--only drain,latency` runs some
// sections (for working on the benchmark; the report then says which ones ran).
export const quick = process.argv.includes("--quick");
const onlyArg = process.argv.find((a) => a.startsWith("--only="))?.slice("--only=".length);
export const sections = new Set(
  onlyArg ? onlyArg.split(",") : ["enqueue", "scaling", "drain", "latency", "memory", "backlog"],
);

export const config = {
  quick,
  enqueue: { seconds: quick ? 2 : 5, repetitions: quick ? 2 : 5, clients: [1, 4] },
  scaling: { seconds: quick ? 2 : 4, repetitions: quick ? 1 : 3, clients: [1, 4, 8] },
  drain: { mails: quick ? 2000 : 20_000, repetitions: quick ? 1 : 3, senders: [1, 2, 4] },
  latency: { samples: quick ? 30 : 200 },
  memory: { repetitions: quick ? 1 : 3 },
  backlog: {
    history: quick ? 100_000 : 1_000_000,
    waiting: quick ? 10_000 : 100_000,
    seconds: quick ? 2 : 5,
    repetitions: quick ? 1 : 3,
  },
  /** SMTP connections of every system, in total: the same for all, so only the queueing differs. */
  connections: 8,
};

/**
 * The sender's settings with `senders` processes sharing the connections: each gets an equal share of
 * the SMTP pool, and twice as many messages in flight as connections, so a connection that finishes a
 * message finds the next one composed and waiting while outcomes are recorded.
 */
export function senderSettings(senders: number): SenderSettings {
  const pool = config.connections / senders;
  return { concurrency: 2 * pool, batchSize: 20, smtpPoolSize: pool, pollIntervalMs: 5000, logLevel: "warn" };
}

export interface DrainResults {
  mails: number;
  /** Per system: one run per repetition, in order. */
  runs: Record<string, DrainRun[]>;
}

export interface BenchResults {
  date: string;
  quick: boolean;
  machine: Record<string, unknown>;
  config: typeof config;
  settings: Record<string, unknown>;
  enqueue?: EnqueueResult[];
  setEnqueue?: SetEnqueueResult;
  scaling?: ScalingResult;
  drain?: DrainResults;
  latency?: Record<string, LatencyResult>;
  memory?: { attachment: DrainRun[] };
  backlog?: Omit<BacklogResult, "plans">;
}
