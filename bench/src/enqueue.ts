import pg from "pg";
import { percentile, type Summary, summarise } from "./stats.js";

const SEND = `SELECT dbmail.sp_send_dbmail(recipients => $1, subject => $2, body => $3)`;
const RAW = `WITH q AS (INSERT INTO public.raw_queue (recipients, subject, body) VALUES ($1, $2, $3) RETURNING id)
             SELECT id, pg_notify('raw_queue', '') FROM q`;

// The set-based path: many mails in one statement, against one INSERT ... SELECT and one NOTIFY.
const SET_SIZE = 1000;
const SEND_SET = `SELECT count(dbmail.sp_send_dbmail(recipients => 'user' || i || '@example.com',
                    subject => 'Subject ' || i, body => 'A body.', exclude_query_output => true))
                  FROM generate_series(1, ${SET_SIZE}) AS i`;
const RAW_SET = `WITH q AS (INSERT INTO public.raw_queue (recipients, subject, body)
                   SELECT 'user' || i || '@example.com', 'Subject ' || i, 'A body.' FROM generate_series(1, ${SET_SIZE}) AS i
                   RETURNING id)
                 SELECT count(*), pg_notify('raw_queue', '') FROM q`;

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

/**
 * Mails per second of one statement from `clients` connections for `seconds` (each call queues
 * `mailsPerCall`), and each call's latency.
 */
export async function run(
  url: string,
  sql: string,
  clients: number,
  seconds: number,
  mailsPerCall = 1,
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
        await c.query(
          mailsPerCall === 1
            ? { name: "enqueue", text: sql, values: [`user${i}@example.com`, `Subject ${n}`, "A body."] }
            : { name: "enqueue", text: sql },
        );
        latencies.push(performance.now() - t);
        n++;
        calls++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  await Promise.all(connections.map((c) => c.end()));
  return { rate: (calls * mailsPerCall) / elapsed, latencies };
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

export interface SetEnqueueResult {
  mailsPerStatement: number;
  dbmailPerSecond: Summary;
  rawPerSecond: Summary;
  ratio: Summary;
}

/** Mails per second queued by one statement of SET_SIZE sp_send_dbmail calls, against INSERT ... SELECT. */
export async function benchSetEnqueue(
  url: string,
  seconds: number,
  repetitions: number,
): Promise<SetEnqueueResult> {
  const dbmail: number[] = [];
  const raw: number[] = [];
  const ratios: number[] = [];
  await run(url, SEND_SET, 1, 1, SET_SIZE);
  for (let i = 0; i < repetitions; i++) {
    const d = await run(url, SEND_SET, 1, seconds, SET_SIZE);
    const r = await run(url, RAW_SET, 1, seconds, SET_SIZE);
    dbmail.push(d.rate);
    raw.push(r.rate);
    ratios.push(d.rate / r.rate);
  }
  return {
    mailsPerStatement: SET_SIZE,
    dbmailPerSecond: summarise(dbmail),
    rawPerSecond: summarise(raw),
    ratio: summarise(ratios),
  };
}
