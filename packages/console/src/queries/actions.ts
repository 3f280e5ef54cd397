import type pg from "pg";

/** What a retry or cancel did: how many items it changed and the NOTICEs the procedure raised. */
export interface ActionResult {
  count: number;
  notices: string[];
}

/** The most items one bulk action takes: past this the person narrows the filter instead. */
export const bulkCap = 10_000;

/** Puts the failed items among `ids` back in the queue (a dbmail_user's own only: the procedure decides). */
export function retryItems(pool: pg.Pool, ids: string[]): Promise<ActionResult> {
  return callWithNotices(
    pool,
    "SELECT dbmail.sysmail_retry_mailitems_sp(mailitem_ids => $1::bigint[]) AS n",
    ids,
  );
}

/** Cancels the unsent and retrying items among `ids`; one being sent is left, and a NOTICE says so. */
export function cancelItems(pool: pg.Pool, ids: string[]): Promise<ActionResult> {
  return callWithNotices(
    pool,
    "SELECT dbmail.sysmail_cancel_mailitems_sp(mailitem_ids => $1::bigint[]) AS n",
    ids,
  );
}

/** One call on a connection of its own, so that the NOTICEs heard are this call's. */
async function callWithNotices(pool: pg.Pool, sql: string, ids: string[]): Promise<ActionResult> {
  const client = await pool.connect();
  const notices: string[] = [];
  const listen = (notice: { message?: string }) => {
    if (notice.message) notices.push(notice.message);
  };
  client.on("notice", listen);
  try {
    const { rows } = await client.query<{ n: number }>(sql, [ids]);
    return { count: Number(rows[0]?.n ?? 0), notices };
  } finally {
    client.off("notice", listen);
    client.release();
  }
}

/** "3 items put back in the queue", "1 item cancelled". */
export function describeResult(result: ActionResult, done: string): string[] {
  return [`${result.count} ${result.count === 1 ? "item" : "items"} ${done}`, ...result.notices];
}
