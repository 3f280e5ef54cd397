// Enqueue scaling (issue 17), pgbench-style: each client a connection of its own, transactions back to
// back for a fixed time, at 1, 4 and 8 clients; every system and client count in turn within each
// repetition, so ratios are taken between figures measured seconds apart. No worker runs for any system:
// this is what queueing costs the application. And the server's instructions per sp_send_dbmail call
// (bench/enqueue-instructions.sh), when this machine can count them.
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import pg from "pg";
import type PgBoss from "pg-boss";
import { type BenchDatabase, createBenchDatabase, withClient } from "./database.js";
import { BODY } from "./mail.js";
import { prepareGraphile } from "./references/graphile.js";
import { pgBossClient, preparePgBoss, QUEUE } from "./references/pgboss.js";
import { type Summary, summarise } from "./stats.js";

/** The systems, in the order they run and are shown. */
export const SCALING_SYSTEMS = [
  "INSERT",
  "sp_send_dbmail",
  "app + INSERT",
  "app + sp_send_dbmail",
  "graphile add_job",
  "pg-boss send",
] as const;
export type ScalingSystem = (typeof SCALING_SYSTEMS)[number];

export interface ScalingResult {
  clients: number[];
  seconds: number;
  repetitions: number;
  /** Per system, per client count: transactions/s, one per repetition. */
  rates: Record<string, Record<string, number[]>>;
  /** Instructions per sp_send_dbmail call, or why it was not counted. */
  instructions: number | string;
}

/** One transaction of a system for client `c`, its `n`th. */
type Step = (client: pg.Client, c: number, n: number) => Promise<unknown>;

const SEND = `SELECT dbmail.sp_send_dbmail(recipients => $1, subject => $2, body => $3)`;
const INSERT = `INSERT INTO public.raw_queue (recipients, subject, body) VALUES ($1, $2, $3)`;
const ADD_JOB = `SELECT graphile_worker.add_job('send', json_build_object('to', $1::text, 'subject', $2::text, 'text', $3::text))`;
const values = (c: number, n: number) => [`r${c}@example.org`, `Bench mail ${n}`, BODY];

/**
 * The application's transaction: it updates a row of its own (one per client, so clients never wait for
 * each other's row) and queues one mail, in one round trip as a multi-statement simple query.
 */
const appTransaction = (queue: string) => (client: pg.Client, c: number, n: number) =>
  client.query(
    `BEGIN; UPDATE public.app_rows SET n = n + 1 WHERE id = ${c}; ${queue
      .replace("$1", `'r${c}@example.org'`)
      .replace("$2", `'Bench mail ${n}'`)
      .replace("$3", pg.escapeLiteral(BODY))}; COMMIT;`,
  );

/** Transactions per second of `step` from `clients` connections to `url` for `seconds`. */
async function rate(url: string, clients: number, seconds: number, step: Step): Promise<number> {
  const connections = await Promise.all(
    Array.from({ length: clients }, async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      return client;
    }),
  );
  try {
    let done = 0;
    const started = performance.now();
    const deadline = started + seconds * 1000;
    await Promise.all(
      connections.map(async (client, c) => {
        for (let n = 0; performance.now() < deadline; n++) {
          await step(client, c, n);
          done++;
        }
      }),
    );
    return done / ((performance.now() - started) / 1000);
  } finally {
    await Promise.all(connections.map((c) => c.end()));
  }
}

/** pg-boss's send() from `clients` loops over one instance with that many connections. */
async function bossRate(boss: PgBoss, clients: number, seconds: number): Promise<number> {
  let done = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let n = 0; performance.now() < deadline; n++) {
        await boss.send(QUEUE, { to: `r${c}@example.org`, subject: `Bench mail ${n}`, text: BODY });
        done++;
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}

/** bench/enqueue-instructions.sh's count, where it can run (root, valgrind, PostgreSQL's binaries). */
function countInstructions(): number | string {
  if (process.getuid?.() !== 0) return "not counted: needs root";
  try {
    execFileSync("valgrind", ["--version"], { stdio: "ignore" });
  } catch {
    return "not counted: no valgrind";
  }
  const script = fileURLToPath(new URL("../enqueue-instructions.sh", import.meta.url));
  try {
    const out = execFileSync("bash", [script], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    const match = /^(\d+) instructions per sp_send_dbmail call/m.exec(out);
    return match ? Number(match[1]) : `not counted: ${out.trim()}`;
  } catch (error) {
    return `not counted: ${(error as Error).message.split("\n")[0]}`;
  }
}

export async function benchScaling(
  adminUrl: string,
  clients: number[],
  seconds: number,
  repetitions: number,
): Promise<ScalingResult> {
  const databases: BenchDatabase[] = [];
  let boss: PgBoss | undefined;
  try {
    const dbmail = await createBenchDatabase(adminUrl, { tag: "scaling" });
    databases.push(dbmail);
    await withClient(dbmail.url, (client) =>
      client.query(`CREATE TABLE public.app_rows (id integer PRIMARY KEY, n bigint NOT NULL DEFAULT 0);
                    INSERT INTO public.app_rows (id) SELECT generate_series(0, 63);`),
    );
    const graphile = await prepareGraphile(adminUrl, 0);
    databases.push(graphile);
    const bossDb = await preparePgBoss(adminUrl, 0);
    databases.push(bossDb);
    const steps: Record<ScalingSystem, (n: number) => Promise<number>> = {
      INSERT: (n) =>
        rate(dbmail.url, n, seconds, (c, i, k) => c.query({ name: "i", text: INSERT, values: values(i, k) })),
      sp_send_dbmail: (n) =>
        rate(dbmail.url, n, seconds, (c, i, k) => c.query({ name: "s", text: SEND, values: values(i, k) })),
      "app + INSERT": (n) => rate(dbmail.url, n, seconds, appTransaction(INSERT)),
      "app + sp_send_dbmail": (n) => rate(dbmail.url, n, seconds, appTransaction(SEND)),
      "graphile add_job": (n) =>
        rate(graphile.url, n, seconds, (c, i, k) =>
          c.query({ name: "g", text: ADD_JOB, values: values(i, k) }),
        ),
      "pg-boss send": async (n) => {
        await boss?.stop({ graceful: false, wait: true });
        boss = await pgBossClient(bossDb.url, n);
        return bossRate(boss, n, seconds);
      },
    };
    const rates: ScalingResult["rates"] = {};
    // Warm-up: plan caches, first touch of the tables and indexes.
    for (const system of SCALING_SYSTEMS) await steps[system](1);
    for (let rep = 0; rep < repetitions; rep++) {
      for (const n of clients) {
        for (const system of SCALING_SYSTEMS) {
          const r = await steps[system](n);
          const bySystem = rates[system] ?? {};
          bySystem[String(n)] = [...(bySystem[String(n)] ?? []), r];
          rates[system] = bySystem;
          console.log(`  ${system}, ${n} client(s): ${r.toFixed(0)}/s`);
        }
      }
    }
    console.log("  counting instructions per sp_send_dbmail call (callgrind)");
    return { clients, seconds, repetitions, rates, instructions: countInstructions() };
  } finally {
    await boss?.stop({ graceful: false, wait: true });
    for (const db of databases) await db.drop();
  }
}

/** Per repetition, f(rep), summarised; undefined when a figure is missing. */
export function perRepetition(r: ScalingResult, f: (rep: number) => number): Summary | undefined {
  const values = Array.from({ length: r.repetitions }, (_, rep) => f(rep));
  return values.every(Number.isFinite) ? summarise(values) : undefined;
}

/** A system's rate at `clients` in repetition `rep` (NaN when missing). */
export const rateOf = (r: ScalingResult, system: ScalingSystem, clients: number, rep: number): number =>
  r.rates[system]?.[String(clients)]?.[rep] ?? Number.NaN;
