import pg from "pg";
import { type Summary, summarise } from "./stats.js";

// How the hot paths' cost grows with the table: enqueue and the database side of a drain (claim a
// batch, record its outcomes in one record_outcomes call, as the sender does) on an empty queue, with a
// large `sent` history, and with a large `unsent` backlog, all in one database and one run. Every
// condition claims the same kind of rows, queued by sp_send_dbmail, so only the table's size differs.

const SEND = `SELECT dbmail.sp_send_dbmail(recipients => $1, subject => $2, body => $3)`;
const CLAIM_BATCH = 50;
/** Items claimed and recorded per slice of the interleaved runs. */
const CLAIM_SLICE = 500;
/** Items of the untimed pass that counts buffers. */
const BUFFER_SAMPLE = 500;

export interface BacklogCondition {
  /** sp_send_dbmail calls per second, 1 client. */
  enqueuePerSecond: Summary;
  /** Items claimed (claim_mailitems, batches of CLAIM_BATCH) and recorded sent (record_outcomes, one call a batch) per second. */
  claimRecordPerSecond: Summary;
  /**
   * Shared buffers (hit + read, every table and index) per item of claim_mailitems and of
   * record_outcomes, from EXPLAIN (ANALYZE, BUFFERS) of the calls in an untimed pass after the timed
   * ones; null when auto_explain is not available.
   */
  buffersPerItem: { claim: number; record: number } | null;
}

export interface BacklogResult {
  history: number;
  waiting: number;
  empty: BacklogCondition;
  withHistory: BacklogCondition;
  withWaiting: BacklogCondition;
  /** Each condition's rate over the empty table's in the same repetition, median over the repetitions. */
  ratios: { enqueueHistory: number; enqueueWaiting: number; claimHistory: number; claimWaiting: number };
  /** Plans of every statement run inside sp_send_dbmail, claim_mailitems, extend_leases and record_outcomes at full size. */
  plans: string[];
  /** Plans that read dbmail.mailitems or dbmail.attachments with a sequential scan (want: none). */
  seqScans: string[];
}

/** `sent` history straight into the table (the bench connects as a superuser): seeding a million
 * through sp_send_dbmail would take longer than the whole run. They look like what a sender leaves
 * behind, and are never claimed. */
async function seedHistory(client: pg.Client, count: number): Promise<void> {
  const chunk = 100_000;
  for (let done = 0; done < count; done += chunk) {
    const n = Math.min(chunk, count - done);
    await client.query(
      `INSERT INTO dbmail.mailitems (profile_id, recipients, envelope, subject, body, message_id,
         send_request_user, last_mod_user, sent_status, sent_date, send_request_date, next_attempt_at,
         sent_account_id, send_attempts)
       SELECT p.profile_id, 'history' || i || '@example.com',
              jsonb_build_object('to', jsonb_build_array(jsonb_build_object('address', 'history' || i || '@example.com')),
                                 'cc', '[]'::jsonb, 'bcc', '[]'::jsonb),
              'Backlog ' || i, 'A body.', '<backlog.' || $2::int || '.' || i || '@example.com>', current_user, current_user,
              'sent', now() - interval '1 hour', now() - interval '1 hour', now() - interval '1 hour',
              (SELECT min(account_id) FROM dbmail.accounts), 1
       FROM generate_series(1, $1::int) AS i, (SELECT min(profile_id) AS profile_id FROM dbmail.profiles) p`,
      [n, done],
    );
  }
  await vacuum(client);
}

/** A production table of this size has been vacuumed and analysed; autovacuum running mid-measurement
 * would measure autovacuum. */
async function vacuum(client: pg.Client): Promise<void> {
  await client.query("VACUUM ANALYZE dbmail.mailitems");
}

/**
 * Claims `count` due items in batches and records them sent, one record_outcomes call (one commit) per
 * batch, as a sender's database side does (packages/sender/src/sender/outcomes.ts), minus the SMTP.
 */
async function claimAndRecord(client: pg.Client, count: number): Promise<number> {
  const accountId = (await client.query<{ id: number }>("SELECT min(account_id) AS id FROM dbmail.accounts"))
    .rows[0]?.id;
  let recorded = 0;
  const started = performance.now();
  while (recorded < count) {
    const { rows } = await client.query<{ mailitem_id: string; lease_token: string }>({
      name: "claim",
      text: "SELECT mailitem_id, lease_token FROM dbmail.claim_mailitems('bench-backlog', $1, 300)",
      values: [Math.min(CLAIM_BATCH, count - recorded)],
    });
    if (rows.length === 0) throw new Error(`the queue ran dry after ${recorded} of ${count} items`);
    const outcomes = rows.map((row) => ({
      mailitem_id: row.mailitem_id,
      lease_token: row.lease_token,
      outcome: "sent",
      account_id: accountId,
      smtp_response: "250 OK",
    }));
    const written = await client.query<{ status: string }>({
      name: "record",
      text: "SELECT mailitem_id, status FROM dbmail.record_outcomes('bench-backlog', $1, $2)",
      values: [JSON.stringify(outcomes), process.pid],
    });
    if (written.rows.some((r) => r.status !== "sent")) throw new Error("an outcome was not recorded as sent");
    recorded += rows.length;
  }
  return recorded / ((performance.now() - started) / 1000);
}

/** Queues `count` due items through sp_send_dbmail, set-based, for claimAndRecord to take. */
async function queueDue(client: pg.Client, count: number, tag = "due"): Promise<void> {
  const chunk = 10_000;
  for (let done = 0; done < count; done += chunk) {
    await client.query(
      `SELECT count(dbmail.sp_send_dbmail(recipients => $2 || i || '@example.com', subject => 'Due ' || i,
         body => 'A body.', exclude_query_output => true)) FROM generate_series(1, $1::int) AS i`,
      [Math.min(chunk, count - done), tag],
    );
  }
}

/**
 * Shared buffers per item of claim_mailitems and record_outcomes over `count` items, from auto_explain's
 * EXPLAIN (ANALYZE, BUFFERS) of each call (the top node's counts include every statement the function
 * runs). Untimed: instrumentation slows the calls down.
 */
async function buffersPerItem(client: pg.Client, count: number): Promise<BacklogCondition["buffersPerItem"]> {
  try {
    await client.query("LOAD 'auto_explain'");
  } catch {
    return null;
  }
  const totals = { claim: 0, record: 0 };
  const collect = (message: { message?: string }) => {
    const text = message.message ?? "";
    const call = text.includes("dbmail.claim_mailitems(")
      ? "claim"
      : text.includes("dbmail.record_outcomes(")
        ? "record"
        : null;
    // The first Buffers line is the top node's.
    const top = text.match(/Buffers: shared((?: \w+=\d+)+)/);
    if (!call || !top?.[1]) return;
    for (const [, kind, n] of top[1].matchAll(/ (\w+)=(\d+)/g)) {
      if (kind === "hit" || kind === "read") totals[call] += Number(n);
    }
  };
  client.on("notice", collect);
  try {
    await client.query(`SET auto_explain.log_min_duration = 0; SET auto_explain.log_analyze = on;
                        SET auto_explain.log_buffers = on; SET auto_explain.log_timing = off;
                        SET auto_explain.log_nested_statements = off; SET client_min_messages = log`);
    await claimAndRecord(client, count);
  } finally {
    await client.query("RESET client_min_messages; RESET auto_explain.log_min_duration");
    client.off("notice", collect);
  }
  return { claim: totals.claim / count, record: totals.record / count };
}

/** One condition's database: its URL and the connection that claims, records and counts buffers. */
interface Condition {
  url: string;
  /** Claims, records and counts buffers. */
  client: pg.Client;
  /** Calls sp_send_dbmail, as the enqueue section's single client does. */
  enqueuer: pg.Client;
  /** Whether each repetition first queues the items it claims (the waiting case claims its backlog). */
  queueFirst: boolean;
  enqueue: number[];
  claim: number[];
}

async function openCondition(url: string, queueFirst: boolean): Promise<Condition> {
  const open = async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    return client;
  };
  const client = await open();
  await client.query("SELECT dbmail.sender_heartbeat('bench-backlog')");
  return { url, client, enqueuer: await open(), queueFirst, enqueue: [], claim: [] };
}

/** sp_send_dbmail calls, one at a time, for `ms`: the calls made and the seconds they took. */
async function enqueueFor(c: Condition, ms: number): Promise<{ calls: number; seconds: number }> {
  let calls = 0;
  const started = performance.now();
  const deadline = started + ms;
  while (performance.now() < deadline) {
    await c.enqueuer.query({
      name: "enqueue",
      text: SEND,
      values: ["user0@example.com", `Subject ${calls}`, "A body."],
    });
    calls++;
  }
  return { calls, seconds: (performance.now() - started) / 1000 };
}

/**
 * The machines this runs on are shared: a condition measured a minute after another can see a
 * different machine. So each repetition interleaves the three conditions in short slices, rotating
 * their order, and each condition's rate is over its slices of that repetition: enqueue in slices of
 * one second, `seconds` of them per condition; claim + record in slices of CLAIM_SLICE items.
 */
async function measureAll(conditions: Condition[], seconds: number, repetitions: number, claims: number) {
  for (const c of conditions) await enqueueFor(c, 1000); // warm-up: plans cached, pages in memory
  for (let i = 0; i < repetitions; i++) {
    const enqueued = conditions.map(() => ({ calls: 0, seconds: 0 }));
    for (let slice = 0; slice < seconds; slice++) {
      for (let k = 0; k < conditions.length; k++) {
        const at = (k + slice + i) % conditions.length;
        const { calls, seconds: took } = await enqueueFor(conditions[at] as Condition, 1000);
        (enqueued[at] as { calls: number; seconds: number }).calls += calls;
        (enqueued[at] as { calls: number; seconds: number }).seconds += took;
      }
    }
    // The enqueue queued due items of its own; the claim takes from the front of the queue.
    for (const c of conditions) if (c.queueFirst) await queueDue(c.client, claims);
    const claimed = conditions.map(() => 0);
    for (let slice = 0; slice < claims / CLAIM_SLICE; slice++) {
      for (let k = 0; k < conditions.length; k++) {
        const at = (k + slice + i) % conditions.length;
        const rate = await claimAndRecord((conditions[at] as Condition).client, CLAIM_SLICE);
        claimed[at] = (claimed[at] as number) + CLAIM_SLICE / rate;
      }
    }
    conditions.forEach((c, k) => {
      const e = enqueued[k] as { calls: number; seconds: number };
      c.enqueue.push(e.calls / e.seconds);
      c.claim.push(claims / (claimed[k] as number));
    });
  }
}

async function summariseCondition(c: Condition): Promise<BacklogCondition> {
  if (c.queueFirst) await queueDue(c.client, BUFFER_SAMPLE);
  return {
    enqueuePerSecond: summarise(c.enqueue),
    claimRecordPerSecond: summarise(c.claim),
    buffersPerItem: await buffersPerItem(c.client, BUFFER_SAMPLE),
  };
}

/** The median over repetitions of a's rate over b's in the same repetition. */
function ratio(a: number[], b: number[]): number {
  return summarise(a.map((x, i) => x / (b[i] as number))).median;
}

/** EXPLAIN of every statement the hot functions run, through auto_explain's nested-statement logging. */
async function hotPathPlans(client: pg.Client): Promise<string[]> {
  const plans: string[] = [];
  const collect = (message: { message?: string }) => {
    if (message.message?.includes("Query Text:")) plans.push(message.message);
  };
  try {
    await client.query("LOAD 'auto_explain'");
  } catch (error) {
    return [`auto_explain is not available on this server: ${(error as Error).message}`];
  }
  client.on("notice", collect);
  try {
    await client.query(`SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on;
                        SET auto_explain.log_analyze = on; SET auto_explain.log_buffers = on;
                        SET client_min_messages = log`);
    await client.query(
      "SELECT dbmail.sp_send_dbmail(recipients => 'plan@example.com', subject => 'Plan', body => 'x')",
    );
    const { rows } = await client.query<{ mailitem_id: string; lease_token: string }>(
      "SELECT mailitem_id, lease_token FROM dbmail.claim_mailitems('bench-backlog', 1, 300)",
    );
    if (rows[0]) {
      await client.query(
        "SELECT dbmail.extend_leases('bench-backlog', ARRAY[$1::bigint], ARRAY[$2::uuid], 300)",
        [rows[0].mailitem_id, rows[0].lease_token],
      );
      await client.query(
        `SELECT * FROM dbmail.record_outcomes('bench-backlog', jsonb_build_array(jsonb_build_object(
           'mailitem_id', $1::bigint, 'lease_token', $2::uuid, 'outcome', 'sent',
           'account_id', (SELECT min(account_id) FROM dbmail.accounts), 'smtp_response', '250 OK')))`,
        [rows[0].mailitem_id, rows[0].lease_token],
      );
    }
  } finally {
    await client.query("RESET client_min_messages; RESET auto_explain.log_min_duration");
    client.off("notice", collect);
  }
  return plans;
}

/** A database like `url`'s (a copy of it, made before anything is queued), dropped by the returned function. */
async function copyDatabase(url: string, suffix: string): Promise<{ url: string; drop(): Promise<void> }> {
  const source = new URL(url);
  const name = `${decodeURIComponent(source.pathname.slice(1))}_${suffix}`;
  const maintenance = new URL(url);
  maintenance.pathname = "/postgres";
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: maintenance.toString() });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(
    `CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE ${pg.escapeIdentifier(source.pathname.slice(1))}`,
  );
  const copy = new URL(url);
  copy.pathname = `/${name}`;
  return {
    url: copy.toString(),
    drop: () => admin(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`),
  };
}

/**
 * The three conditions in three databases made from `url`'s (migrated, one profile): empty (analysed
 * empty, as an idle queue is), `history` sent items, and the same history plus `waiting` items queued
 * by sp_send_dbmail. All three are measured in every repetition.
 */
export async function benchBacklog(
  url: string,
  sizes: { history: number; waiting: number },
  seconds: number,
  repetitions: number,
): Promise<BacklogResult> {
  const claims = 2000;
  const historyDb = await copyDatabase(url, "h");
  const waitingDb = await copyDatabase(url, "w");
  const conditions: Condition[] = [];
  try {
    const empty = await openCondition(url, true);
    conditions.push(empty);
    await vacuum(empty.client);
    const history = await openCondition(historyDb.url, true);
    conditions.push(history);
    await seedHistory(history.client, sizes.history);
    const waiting = await openCondition(waitingDb.url, false);
    conditions.push(waiting);
    await seedHistory(waiting.client, sizes.history);
    // The waiting items are due now; each repetition claims from them and the enqueue adds more. They
    // are queued by sp_send_dbmail, so the claims take the same kind of rows as in the other two cases.
    await queueDue(waiting.client, sizes.waiting, "waiting");
    await vacuum(waiting.client);

    await measureAll(conditions, seconds, repetitions, claims);
    // In the history database: its statistics were taken with nothing waiting, as autovacuum finds an
    // idle queue, and the enqueue slices have left thousands waiting since, the case where a plan that
    // walks the waiting items shows.
    const plans = await hotPathPlans(history.client);
    return {
      ...sizes,
      empty: await summariseCondition(empty),
      withHistory: await summariseCondition(history),
      withWaiting: await summariseCondition(waiting),
      ratios: {
        enqueueHistory: ratio(history.enqueue, empty.enqueue),
        enqueueWaiting: ratio(waiting.enqueue, empty.enqueue),
        claimHistory: ratio(history.claim, empty.claim),
        claimWaiting: ratio(waiting.claim, empty.claim),
      },
      plans,
      seqScans: plans.filter((p) => /Seq Scan on (mailitems|attachments)\b/.test(p)),
    };
  } finally {
    for (const c of conditions) {
      await c.client.end();
      await c.enqueuer.end();
    }
    await historyDb.drop();
    await waitingDb.drop();
  }
}
