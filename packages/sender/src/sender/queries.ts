import type pg from "pg";
import type { ClaimedItem, Outcome, ProfileAccount, StoredAttachment } from "../rows.js";

// Named statements: node-postgres prepares each once per connection.
export async function heartbeat(
  db: pg.Pool,
  senderId: string,
  host: string,
  version: string,
): Promise<{ started: boolean; settings: Record<string, string> }> {
  const { rows } = await db.query({
    name: "dbmail_heartbeat",
    text: "SELECT started, settings FROM dbmail.sender_heartbeat($1, $2, $3, $4)",
    values: [senderId, host, process.pid, version],
  });
  return rows[0] as { started: boolean; settings: Record<string, string> };
}

export async function senderStopped(db: pg.Pool, senderId: string): Promise<void> {
  await db.query("SELECT dbmail.sender_stopped($1)", [senderId]);
}

export async function claim(
  db: pg.Pool,
  senderId: string,
  batchSize: number,
  leaseSeconds: number,
): Promise<ClaimedItem[]> {
  const { rows } = await db.query<ClaimedItem>({
    name: "dbmail_claim",
    text: `SELECT mailitem_id, profile_id, envelope, subject, body, body_format, importance, sensitivity,
                  from_address, reply_to, headers, message_id, send_attempts, attachment_count, lease_token
           FROM dbmail.claim_mailitems($1, $2, $3)`,
    values: [senderId, batchSize, leaseSeconds],
  });
  return rows;
}

/**
 * Waits up to `timeoutMs` for every transaction that queued mail counting on a watcher to end (the
 * wake-up protocol, 000017); false when the time ran out.
 */
export async function settle(db: pg.Pool, timeoutMs: number): Promise<boolean> {
  const { rows } = await db.query<{ settled: boolean }>({
    name: "dbmail_settle",
    text: "SELECT dbmail.sender_settle($1) AS settled",
    values: [timeoutMs],
  });
  return rows[0]?.settled === true;
}

/**
 * Wakes every sender (NOTIFY dbmail_queue), after settling when `settleMs` is given (false when the
 * settle timed out): a watcher that stops looking hands its watch over so.
 */
export async function wakeSenders(db: pg.Pool, settleMs?: number): Promise<boolean> {
  const { rows } = await db.query<{ settled: boolean }>(
    settleMs === undefined
      ? "SELECT true AS settled, pg_notify('dbmail_queue', '')"
      : {
          text: "SELECT dbmail.sender_settle($1) AS settled, pg_notify('dbmail_queue', '')",
          values: [settleMs],
        },
  );
  return rows[0]?.settled === true;
}

/** One outcome waiting to be recorded with recordOutcomes. */
export interface PendingOutcome {
  mailitemId: string;
  outcome: Outcome;
}

/**
 * The lease token of each item a sender holds, by mailitem_id: from the claim that last leased it to the
 * sender. An item missing from it is one the sender does not hold (the database says lease_lost).
 */
export type LeaseTokens = ReadonlyMap<string, string>;

/**
 * Records many outcomes in one statement (one commit), each with exactly dbmail.record_outcome's effect; returns
 * each item's status afterwards, or 'lease_lost', by mailitem_id.
 */
export async function recordOutcomes(
  db: pg.Pool,
  senderId: string,
  outcomes: PendingOutcome[],
  leases: LeaseTokens,
): Promise<Map<string, string>> {
  const { rows } = await db.query<{ mailitem_id: string; status: string }>({
    name: "dbmail_record_outcomes",
    text: "SELECT mailitem_id, status FROM dbmail.record_outcomes($1, $2, $3)",
    values: [
      senderId,
      JSON.stringify(
        outcomes.map(({ mailitemId, outcome }) => ({
          mailitem_id: mailitemId,
          lease_token: leases.get(mailitemId) ?? null,
          outcome: outcome.status,
          account_id: outcome.accountId ?? null,
          smtp_response: outcome.smtpResponse ?? null,
          error: outcome.error ?? null,
          account_errors: outcome.accountErrors,
          attempts: outcome.attempts ?? null,
        })),
      ),
      process.pid,
    ],
  });
  return new Map(rows.map((r) => [r.mailitem_id, r.status]));
}

/** The lease tokens of these items (the database ignores an item named without its token). */
function tokensOf(ids: string[], leases: LeaseTokens): (string | null)[] {
  return ids.map((id) => leases.get(id) ?? null);
}

export async function extendLeases(
  db: pg.Pool,
  senderId: string,
  ids: string[],
  leases: LeaseTokens,
  leaseSeconds: number,
): Promise<Set<string>> {
  const { rows } = await db.query<{ held: string[] }>({
    name: "dbmail_extend_leases",
    text: "SELECT dbmail.extend_leases($1, $2, $3, $4) AS held",
    values: [senderId, ids, tokensOf(ids, leases), leaseSeconds],
  });
  return new Set(rows[0]?.held ?? []);
}

export async function release(
  db: pg.Pool,
  senderId: string,
  ids: string[],
  leases: LeaseTokens,
): Promise<number> {
  const { rows } = await db.query<{ released: number }>(
    "SELECT dbmail.release_mailitems($1, $2, $3) AS released",
    [senderId, ids, tokensOf(ids, leases)],
  );
  return rows[0]?.released ?? 0;
}

/** Asks for a slot of a rate-limited account (dbmail.take_send_slot); see ItemDelivery.admit. */
export async function takeSendSlot(
  db: pg.Pool,
  senderId: string,
  id: string,
  leaseToken: string | undefined,
  accountId: number,
): Promise<{ admitted: boolean; due_at: Date | null }> {
  const { rows } = await db.query<{ admitted: boolean; due_at: Date | null }>({
    name: "dbmail_take_send_slot",
    text: "SELECT * FROM dbmail.take_send_slot($1, $2, $3, $4)",
    values: [senderId, id, leaseToken ?? null, accountId],
  });
  return rows[0] ?? { admitted: false, due_at: null };
}

export async function profileAccounts(db: pg.Pool): Promise<ProfileAccount[]> {
  const { rows } = await db.query<ProfileAccount>({
    name: "dbmail_accounts",
    text: "SELECT * FROM dbmail.sender_accounts()",
  });
  return rows;
}

/**
 * An item's attachments; the bytes only of those up to `inlineLimit` bytes. (The function's rows keep
 * the larger values as TOAST pointers, so leaving them out here means they are never read.)
 */
export async function attachments(
  db: pg.Pool,
  senderId: string,
  mailitemId: string,
  leaseToken: string | undefined,
  inlineLimit: number,
): Promise<StoredAttachment[]> {
  const { rows } = await db.query<StoredAttachment>({
    name: "dbmail_attachments",
    text: `SELECT attachment_id, filename, content_type, octet_length(attachment) AS size,
                  CASE WHEN octet_length(attachment) <= $4 THEN attachment END AS content
           FROM dbmail.sender_attachments($1, $2, $3)`,
    values: [senderId, mailitemId, leaseToken ?? null, inlineLimit],
  });
  return rows;
}

/** `length` bytes of an attachment from `offset`; null when the sender no longer holds its item. */
export async function attachmentChunk(
  db: pg.Pool,
  senderId: string,
  attachmentId: string,
  leaseToken: string | undefined,
  offset: number,
  length: number,
): Promise<Buffer | null> {
  const { rows } = await db.query<{ chunk: Buffer | null }>({
    name: "dbmail_attachment_chunk",
    text: "SELECT dbmail.sender_attachment_chunk($1, $2, $3, $4, $5) AS chunk",
    values: [senderId, attachmentId, leaseToken ?? null, offset, length],
  });
  return rows[0]?.chunk ?? null;
}
