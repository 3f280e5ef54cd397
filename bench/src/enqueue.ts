import pg from "pg";
import { percentile, type Summary, summarise } from "./stats.js";

const SEND = `SELECT dbmail.sp_send_dbmail(recipients => $1, subject => $2, body => $3)`;
const RAW = `WITH q AS (INSERT INTO public.raw_queue (recipients, subject, body) VALUES ($1, $2, $3) RETURNING id)
             SELECT id, pg_notify('raw_queue', '') FROM q`;

export interface EnqueueResult {
  clients: number;
  dbmailPerSecond: Summary;
  rawPerSecond: Summary;
  /** dbmail / raw, within each repetition. */
  ratio: Summary;
  dbmailP50Ms: number;
  dbmailP99Ms: number;
  rawP50Ms: number;
  rawP99Ms: number;
}

/** Calls per second of one statement from `clients` connections for `seconds`, and each call's latency. */
async function run(
  url: string,
  sql: string,
  clients: number,
  seconds: number,
): Promise<{ rate: number; latencies: number[] }> {
  const connections = await Promise.all(
    Array.from({ length: clients }, async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      return c;
    }),
  );
  const latencies: number[] = [];
  let calls = 0;
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    connections.map(async (c, i) => {
      let n = 0;
      while (performance.now() < deadline) {
        const t = performance.now();
        await c.query({
          name: "enqueue",
          text: sql,
          values: [`user${i}@example.com`, `Subject ${n}`, "A body."],
        });
        latencies.push(performance.now() - t);
        n++;
        calls++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  await Promise.all(connections.map((c) => c.end()));
  return { rate: calls / elapsed, latencies };
}

/** Enqueue rate of sp_send_dbmail against the raw INSERT + NOTIFY floor, alternating within each repetition. */
export async function benchEnqueue(
  url: string,
  clients: number,
  seconds: number,
  repetitions: number,
): Promise<EnqueueResult> {
  const dbmail: number[] = [];
  const raw: number[] = [];
  const ratios: number[] = [];
  const dbmailLatencies: number[] = [];
  const rawLatencies: number[] = [];
  await run(url, SEND, clients, 1); // warm-up: plan caches, first-touch of the tables
  await run(url, RAW, clients, 1);
  for (let i = 0; i < repetitions; i++) {
    const d = await run(url, SEND, clients, seconds);
    const r = await run(url, RAW, clients, seconds);
    dbmail.push(d.rate);
    raw.push(r.rate);
    ratios.push(d.rate / r.rate);
    dbmailLatencies.push(...d.latencies);
    rawLatencies.push(...r.latencies);
  }
  return {
    clients,
    dbmailPerSecond: summarise(dbmail),
    rawPerSecond: summarise(raw),
    ratio: summarise(ratios),
    dbmailP50Ms: percentile(dbmailLatencies, 50),
    dbmailP99Ms: percentile(dbmailLatencies, 99),
    rawP50Ms: percentile(rawLatencies, 50),
    rawP99Ms: percentile(rawLatencies, 99),
  };
}
