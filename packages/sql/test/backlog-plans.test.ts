import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase } from "../../../test/support/database.js";

// The sender's calls must cost the same per item whatever the backlog, also when the table was last
// analysed while the queue was idle (statistics that say nothing is unsent or sending). Such statistics
// once made the planner read claim_mailitems' probes and every outcome's lookup through a full scan of
// a partial index (every pending item, per call). Counted in shared buffers, which unlike time do not
// depend on the machine.

const SENDER = "sender-backlog";

let db: TestDatabase;
let client: pg.Client;
let accountId: number;

/** Shared buffers (hit + read) of one statement, nested statements included. */
async function buffers(sql: string, params: unknown[] = []): Promise<{ buffers: number; rows: number }> {
  const { rows } = await client.query<{ "QUERY PLAN": [{ Plan: Record<string, number> }] }>(
    `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`,
    params,
  );
  const plan = rows[0]?.["QUERY PLAN"][0]?.Plan ?? {};
  return {
    buffers: (plan["Shared Hit Blocks"] ?? 0) + (plan["Shared Read Blocks"] ?? 0),
    rows: plan["Actual Rows"] ?? 0,
  };
}

/** Claims `batch` items and records them sent, in a transaction rolled back afterwards. */
async function claimAndRecord(batch: number): Promise<{ claim: number; record: number }> {
  await client.query("BEGIN");
  try {
    const claim = await buffers(`SELECT * FROM dbmail.claim_mailitems('${SENDER}', ${batch}, 300)`);
    expect(claim.rows).toBe(batch);
    const { rows } = await client.query<{ mailitem_id: string; lease_token: string }>(
      "SELECT mailitem_id, lease_token FROM dbmail.mailitems WHERE lease_owner = $1",
      [SENDER],
    );
    const outcomes = rows.map((r) => ({
      mailitem_id: r.mailitem_id,
      lease_token: r.lease_token,
      outcome: "sent",
      account_id: accountId,
    }));
    const record = await buffers(`SELECT * FROM dbmail.record_outcomes('${SENDER}', $1)`, [
      JSON.stringify(outcomes),
    ]);
    expect(record.rows).toBe(batch);
    return { claim: claim.buffers, record: record.buffers / batch };
  } finally {
    await client.query("ROLLBACK");
  }
}

/** Makes the backlog `waiting` items long: copies of an item queued by sp_send_dbmail, due now. */
async function backlog(waiting: number): Promise<void> {
  await db.query("DELETE FROM dbmail.mailitems WHERE sent_status <> 'sent'");
  await db.query(
    "SELECT dbmail.sp_send_dbmail(profile_name => 'p', recipients => 'a@x.org', subject => 's', body => 'b')",
  );
  await db.query(
    `INSERT INTO dbmail.mailitems (profile_id, recipients, envelope, subject, body, message_id,
       send_request_user, last_mod_user)
     SELECT m.profile_id, m.recipients, m.envelope, m.subject, m.body, m.message_id || '.' || g,
       m.send_request_user, m.last_mod_user
     FROM generate_series(2, $1::int) g, (SELECT * FROM dbmail.mailitems WHERE sent_status = 'unsent') m`,
    [waiting],
  );
}

beforeAll(async () => {
  db = await TestDatabase.create();
  client = await db.connect();
  accountId = (
    await db.query<{ id: number }>(
      `SELECT dbmail.sysmail_add_account_sp(account_name => 'a', email_address => 'a@example.org',
         mailserver_name => 'localhost') AS id`,
    )
  ).rows[0]?.id as number;
  await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'p')");
  await db.query(
    "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'p', account_name => 'a', sequence_number => 1)",
  );
  await db.query("SELECT dbmail.sysmail_start_sp()");
  await db.query(`SELECT dbmail.sender_heartbeat('${SENDER}')`);
  // History, analysed while nothing waits: as autovacuum finds an idle queue.
  await db.query(
    `INSERT INTO dbmail.mailitems (profile_id, envelope, subject, message_id, send_request_user, last_mod_user,
       sent_status, sent_date, sent_account_id, send_attempts)
     SELECT (SELECT min(profile_id) FROM dbmail.profiles), '{"to": [], "cc": [], "bcc": []}', 'old', '<old.' || g || '>',
       current_user, current_user, 'sent', now(), $1, 1
     FROM generate_series(1, 200000) g`,
    [accountId],
  );
  await db.query("VACUUM ANALYZE dbmail.mailitems");
});

afterAll(async () => {
  await db?.drop();
});

describe("with a backlog the statistics do not know of", () => {
  it("claims and records at the same cost per item with 50 or 5,000 items waiting", async () => {
    await backlog(50);
    await claimAndRecord(20); // plans and catalog entries cached, as in a running sender
    const small = await claimAndRecord(20);
    await backlog(5000);
    const large = await claimAndRecord(20);
    // Deeper indexes cost a little more (about 1.1x measured); a walk over the waiting items costs a
    // buffer for every dozen or so of them (2x for the claim, 8x per outcome before the fix).
    expect(large.claim).toBeLessThan(small.claim * 1.5);
    expect(large.record).toBeLessThan(small.record * 1.5);
  });
});
