import pg from "pg";
import { run } from "./enqueue.js";
import { type Summary, summarise } from "./stats.js";

// How the hot paths' cost grows with the table: enqueue and the database side of a drain (claim a
// batch, record each item sent) on an empty queue, with a large `sent` history, and with a large
// `unsent` backlog, all in one database and one run. Every condition is measured on the same rows so
// only the table's size differs.

const SEND = `SELECT dbmail.sp_send_dbmail(recipients => $1, subject => $2, body => $3)`;
const CLAIM_BATCH = 50;

export interface BacklogCondition {
  /** sp_send_dbmail calls per second, 1 client. */
  enqueuePerSecond: Summary;
  /** Items claimed (claim_mailitems, batches of CLAIM_BATCH) and recorded sent (record_outcome) per second. */
  claimRecordPerSecond: Summary;
}

export interface BacklogResult {
  history: number;
  waiting: number;
  empty: BacklogCondition;
  withHistory: BacklogCondition;
  withWaiting: BacklogCondition;
  /** Each condition's rate over the empty table's, within this run (median over repetitions). */
  ratios: { enqueueHistory: number; enqueueWaiting: number; claimHistory: number; claimWaiting: number };
  /** Plans of every statement run inside sp_send_dbmail, claim_mailitems and record_outcome at full size. */
  plans: string[];
  /** Plans that read dbmail.mailitems or dbmail.attachments with a sequential scan (want: none). */
  seqScans: string[];
}

/** Rows straight into the table (the bench connects as a superuser): seeding a million through
 * sp_send_dbmail would take longer than the whole run. They look like what a sender leaves behind. */
async function seed(client: pg.Client, count: number, status: "sent" | "unsent"): Promise<void> {
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
              'Backlog ' || i, 'A body.', '<backlog.' || $3::text || '.' || i || '@example.com>', current_user, current_user,
              $2, CASE WHEN $2 = 'sent' THEN now() - interval '1 hour' END, now() - interval '1 hour',
              now() - interval '1 hour', CASE WHEN $2 = 'sent' THEN (SELECT min(account_id) FROM dbmail.accounts) END,
              CASE WHEN $2 = 'sent' THEN 1 ELSE 0 END
       FROM generate_series(1, $1::int) AS i, (SELECT min(profile_id) AS profile_id FROM dbmail.profiles) p`,
      [n, status, `${status}${done}`],
    );
  }
  // A production table of this size has been vacuumed and analysed; autovacuum running mid-measurement
  // would measure autovacuum.
  await client.query("VACUUM ANALYZE dbmail.mailitems");
}

/** Claims `count` due items in batches and records each one sent, as a sender's database side does. */
async function claimAndRecord(client: pg.Client, count: number): Promise<number> {
  const accountId = (await client.query<{ id: number }>("SELECT min(account_id) AS id FROM dbmail.accounts"))
    .rows[0]?.id;
  let recorded = 0;
  const started = performance.now();
  while (recorded < count) {
    const { rows } = await client.query<{ mailitem_id: string }>({
      name: "claim",
      text: "SELECT mailitem_id FROM dbmail.claim_mailitems('bench-backlog', $1, 300)",
      values: [Math.min(CLAIM_BATCH, count - recorded)],
    });
    if (rows.length === 0) throw new Error(`the queue ran dry after ${recorded} of ${count} items`);
    for (const row of rows) {
      await client.query({
        name: "record",
        text: "SELECT dbmail.record_outcome($1, 'bench-backlog', 'sent', $2, '250 OK')",
        values: [row.mailitem_id, accountId],
      });
      recorded++;
    }
  }
  return recorded / ((performance.now() - started) / 1000);
}

/** Queues `count` due items through sp_send_dbmail, set-based, for claimAndRecord to take. */
async function queueDue(client: pg.Client, count: number): Promise<void> {
  await client.query(
    `SELECT count(dbmail.sp_send_dbmail(recipients => 'due' || i || '@example.com', subject => 'Due ' || i,
       body => 'A body.', exclude_query_output => true)) FROM generate_series(1, $1::int) AS i`,
    [count],
  );
}

async function measure(
  url: string,
  client: pg.Client,
  seconds: number,
  repetitions: number,
  claims: number,
  queueFirst: boolean,
): Promise<BacklogCondition> {
  const enqueue: number[] = [];
  const claim: number[] = [];
  await run(url, SEND, 1, 1); // warm-up
  for (let i = 0; i < repetitions; i++) {
    enqueue.push((await run(url, SEND, 1, seconds)).rate);
    // The enqueue runs queued due items of their own; the claim takes from the front of the queue.
    if (queueFirst) await queueDue(client, claims);
    claim.push(await claimAndRecord(client, claims));
  }
  return { enqueuePerSecond: summarise(enqueue), claimRecordPerSecond: summarise(claim) };
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
    const { rows } = await client.query<{ mailitem_id: string }>(
      "SELECT mailitem_id FROM dbmail.claim_mailitems('bench-backlog', 1, 300)",
    );
    if (rows[0]) {
      await client.query(
        "SELECT dbmail.record_outcome($1, 'bench-backlog', 'sent', (SELECT min(account_id) FROM dbmail.accounts), '250 OK')",
        [rows[0].mailitem_id],
      );
    }
  } finally {
    await client.query("RESET client_min_messages; RESET auto_explain.log_min_duration");
    client.off("notice", collect);
  }
  return plans;
}

export async function benchBacklog(
  url: string,
  sizes: { history: number; waiting: number },
  seconds: number,
  repetitions: number,
): Promise<BacklogResult> {
  const claims = 2000;
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  client.on("notice", () => {}); // sp_send_dbmail's "Mail queued." notices
  try {
    await client.query("SELECT dbmail.sender_heartbeat('bench-backlog')");
    const empty = await measure(url, client, seconds, repetitions, claims, true);
    await client.query("DELETE FROM dbmail.mailitems");
    await client.query("VACUUM ANALYZE dbmail.mailitems");

    await seed(client, sizes.history, "sent");
    const withHistory = await measure(url, client, seconds, repetitions, claims, true);

    // The waiting items are due now; each repetition claims from them and the enqueue adds more.
    await seed(client, sizes.waiting, "unsent");
    const withWaiting = await measure(url, client, seconds, repetitions, claims, false);
    const plans = await hotPathPlans(client);
    const ratio = (a: Summary, b: Summary) => a.median / b.median;
    return {
      ...sizes,
      empty,
      withHistory,
      withWaiting,
      ratios: {
        enqueueHistory: ratio(withHistory.enqueuePerSecond, empty.enqueuePerSecond),
        enqueueWaiting: ratio(withWaiting.enqueuePerSecond, empty.enqueuePerSecond),
        claimHistory: ratio(withHistory.claimRecordPerSecond, empty.claimRecordPerSecond),
        claimWaiting: ratio(withWaiting.claimRecordPerSecond, empty.claimRecordPerSecond),
      },
      plans,
      seqScans: plans.filter((p) => /Seq Scan on (mailitems|attachments)\b/.test(p)),
    };
  } finally {
    await client.end();
  }
}
