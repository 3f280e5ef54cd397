import type pg from "pg";

/** A condition on the rows, given a function that binds a value and returns its placeholder. */
export type Condition = (param: (value: unknown) => string) => string;

/** The visible rows that also meet `extra`, ordered by the list's id, at most `limit`. */
export type Select<R> = (extra: Condition[], order: "ASC" | "DESC", limit: number) => Promise<R[]>;

/** A list paged by an increasing id: its view, the id column, and an indexed time column. */
export interface IdList {
  view: string;
  id: string;
  time: string;
}

export const itemList: IdList = {
  view: "dbmail.sysmail_allitems",
  id: "mailitem_id",
  time: "send_request_date",
};
export const eventList: IdList = { view: "dbmail.sysmail_event_log", id: "log_id", time: "log_date" };

/** A Select over `list`: `columns` of the rows that meet `filters` and the extra conditions. */
export function selectFrom<R extends pg.QueryResultRow>(
  pool: pg.Pool,
  list: IdList,
  columns: string,
  filters: Condition[],
): Select<R> {
  return async (extra, order, limit) => {
    const values: unknown[] = [];
    const param = (value: unknown) => {
      values.push(value);
      return `$${values.length}`;
    };
    const where = [...filters, ...extra].map((condition) => condition(param));
    const result = await pool.query<R>(
      `SELECT ${columns} FROM ${list.view}
       ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
       ORDER BY ${list.id} ${order}
       LIMIT ${limit}`,
      values,
    );
    return result.rows;
  };
}

const firstWidth = 1000n;
const growth = 8n;
/** Going up there is no id 1 to stop at: past this width, one last query without an upper bound. */
const widestWindow = firstWidth * growth ** 6n;

/**
 * The newest `limit` rows below id `before` (or of all), found window by window.
 *
 * The sysmail_* views are security barriers, so PostgreSQL cannot carry an ORDER BY ... LIMIT through
 * them to the primary key: `ORDER BY mailitem_id DESC LIMIT 51` alone reads every visible row. A
 * narrow id range, though, is pushed down and read from the index. So the rows are read in ranges
 * of ids going down from the bound, each 8 times wider than the last, until enough are found; past
 * id 1, one last query without a lower bound. The first page has no bound: it starts at the highest
 * id among recent rows (found through the index on their time), plus whatever lies above it.
 */
export async function newestBelow<R>(
  pool: pg.Pool,
  list: IdList,
  select: Select<R>,
  before: string | undefined,
  limit: number,
): Promise<R[]> {
  const rows: R[] = [];
  let upper: bigint;
  if (before !== undefined) {
    upper = BigInt(before);
  } else {
    const seed = await recentTop(pool, list);
    if (seed === undefined) return select([], "DESC", limit);
    rows.push(...(await select([(p) => `${list.id} > ${p(seed)}::bigint`], "DESC", limit)));
    upper = BigInt(seed) + 1n;
  }
  for (let width = firstWidth; rows.length < limit; width *= growth) {
    const high = upper.toString();
    const below: Condition = (p) => `${list.id} < ${p(high)}::bigint`;
    const lower = upper - width;
    if (lower <= 1n) {
      rows.push(...(await select([below], "DESC", limit - rows.length)));
      break;
    }
    const low = lower.toString();
    rows.push(
      ...(await select([below, (p) => `${list.id} >= ${p(low)}::bigint`], "DESC", limit - rows.length)),
    );
    upper = lower;
  }
  return rows;
}

/** The oldest `limit` rows above id `after`, the same way upwards (for the Newer links). */
export async function oldestAbove<R>(
  list: IdList,
  select: Select<R>,
  after: string,
  limit: number,
): Promise<R[]> {
  const rows: R[] = [];
  let lower = BigInt(after) + 1n;
  for (let width = firstWidth; rows.length < limit; width *= growth) {
    const low = lower.toString();
    const above: Condition = (p) => `${list.id} >= ${p(low)}::bigint`;
    if (width > widestWindow) {
      rows.push(...(await select([above], "ASC", limit - rows.length)));
      break;
    }
    const high = (lower + width).toString();
    rows.push(
      ...(await select([above, (p) => `${list.id} < ${p(high)}::bigint`], "ASC", limit - rows.length)),
    );
    lower += width;
  }
  return rows;
}

/** The highest id among the rows of the last hour, day or month, if any. */
async function recentTop(pool: pg.Pool, list: IdList): Promise<string | undefined> {
  for (const since of ["1 hour", "1 day", "30 days"]) {
    const { rows } = await pool.query<{ top: string | null }>(
      `SELECT max(${list.id}) AS top FROM ${list.view} WHERE ${list.time} >= now() - $1::interval`,
      [since],
    );
    const top = rows[0]?.top;
    if (top) return top;
  }
  return undefined;
}
