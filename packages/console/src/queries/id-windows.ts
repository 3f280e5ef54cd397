import type pg from "pg";

/** A condition on the items, given a function that binds a value and returns its placeholder. */
export type Condition = (param: (value: unknown) => string) => string;

/** The visible items that also meet `extra`, ordered by mailitem_id, at most `limit`. */
export type Select<R> = (extra: Condition[], order: "ASC" | "DESC", limit: number) => Promise<R[]>;

const firstWidth = 1000n;
const growth = 8n;
/** Going up there is no id 1 to stop at: past this width, one last query without an upper bound. */
const widestWindow = firstWidth * growth ** 6n;

/**
 * The newest `limit` items below mailitem_id `before` (or of all), found window by window.
 *
 * The sysmail_* views are security barriers, so PostgreSQL cannot carry an ORDER BY ... LIMIT through
 * them to the primary key: `ORDER BY mailitem_id DESC LIMIT 51` alone reads every visible row. A
 * narrow id range, though, is pushed down and read from the index. So the items are read in ranges
 * of ids going down from the bound, each 8 times wider than the last, until enough are found; past
 * id 1, one last query without a lower bound. The first page has no bound: it starts at the highest
 * id among recent items (found through the send_request_date index), plus whatever lies above it.
 */
export async function newestBelow<R>(
  pool: pg.Pool,
  select: Select<R>,
  before: string | undefined,
  limit: number,
): Promise<R[]> {
  const rows: R[] = [];
  let upper: bigint;
  if (before !== undefined) {
    upper = BigInt(before);
  } else {
    const seed = await recentTop(pool);
    if (seed === undefined) return select([], "DESC", limit);
    rows.push(...(await select([(p) => `mailitem_id > ${p(seed)}::bigint`], "DESC", limit)));
    upper = BigInt(seed) + 1n;
  }
  for (let width = firstWidth; rows.length < limit; width *= growth) {
    const high = upper.toString();
    const below: Condition = (p) => `mailitem_id < ${p(high)}::bigint`;
    const lower = upper - width;
    if (lower <= 1n) {
      rows.push(...(await select([below], "DESC", limit - rows.length)));
      break;
    }
    const low = lower.toString();
    rows.push(
      ...(await select([below, (p) => `mailitem_id >= ${p(low)}::bigint`], "DESC", limit - rows.length)),
    );
    upper = lower;
  }
  return rows;
}

/** The oldest `limit` items above mailitem_id `after`, the same way upwards (for the Newer links). */
export async function oldestAbove<R>(select: Select<R>, after: string, limit: number): Promise<R[]> {
  const rows: R[] = [];
  let lower = BigInt(after) + 1n;
  for (let width = firstWidth; rows.length < limit; width *= growth) {
    const low = lower.toString();
    const above: Condition = (p) => `mailitem_id >= ${p(low)}::bigint`;
    if (width > widestWindow) {
      rows.push(...(await select([above], "ASC", limit - rows.length)));
      break;
    }
    const high = (lower + width).toString();
    rows.push(
      ...(await select([above, (p) => `mailitem_id < ${p(high)}::bigint`], "ASC", limit - rows.length)),
    );
    lower += width;
  }
  return rows;
}

/** The highest id among the items queued in the last hour, day or month, if any. */
async function recentTop(pool: pg.Pool): Promise<string | undefined> {
  for (const since of ["1 hour", "1 day", "30 days"]) {
    const { rows } = await pool.query<{ top: string | null }>(
      `SELECT max(mailitem_id) AS top FROM dbmail.sysmail_allitems
       WHERE send_request_date >= now() - $1::interval`,
      [since],
    );
    const top = rows[0]?.top;
    if (top) return top;
  }
  return undefined;
}
