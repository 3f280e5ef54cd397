import type pg from "pg";
import { type Condition, itemList, newestBelow, oldestAbove, selectFrom } from "./id-windows.js";
import { statuses } from "./overview.js";

export const pageSize = 50;

/** The filters of /items as given in the query string (empty fields left out). */
export interface ItemFilter {
  status?: string;
  profile?: string;
  recipient?: string;
  from?: string;
  to?: string;
}

/** Keyset paging on mailitem_id: the page below `before`, or the page above `after`. */
export interface PageCursor {
  before?: string;
  after?: string;
}

export interface ItemRow {
  mailitem_id: string;
  profile_id: number;
  recipients: string | null;
  subject: string | null;
  sent_status: string;
  send_request_date: Date;
  send_request_user: string;
  sent_date: Date | null;
}

export interface ItemsPage {
  rows: ItemRow[];
  newer: boolean;
  older: boolean;
}

const idPattern = /^\d{1,18}$/;
const datePattern = /^\d{4}-\d{2}-\d{2}$/;

/** The filter and cursor from the query string, and a message for each value that is not usable. */
export function readItemQuery(query: Record<string, string>): {
  filter: ItemFilter;
  cursor: PageCursor;
  problems: string[];
} {
  const filter: ItemFilter = {};
  const cursor: PageCursor = {};
  const problems: string[] = [];
  const value = (name: string) => query[name]?.trim() || undefined;
  const status = value("status");
  if (status !== undefined) {
    if ((statuses as readonly string[]).includes(status)) filter.status = status;
    else problems.push(`status: "${status}": not one of ${statuses.join(", ")}`);
  }
  filter.profile = value("profile");
  filter.recipient = value("recipient");
  for (const name of ["from", "to"] as const) {
    const date = value(name);
    if (date === undefined) continue;
    if (datePattern.test(date) && !Number.isNaN(Date.parse(date))) filter[name] = date;
    else problems.push(`${name}: "${date}": not a date (YYYY-MM-DD)`);
  }
  for (const name of ["before", "after"] as const) {
    const id = value(name);
    if (id === undefined) continue;
    if (idPattern.test(id)) cursor[name] = id;
    else problems.push(`${name}: "${id}": not a mail item id`);
  }
  return { filter, cursor, problems };
}

/**
 * One page of items, newest first, as the signed-in role sees them. The page is found by
 * mailitem_id (the primary key), never by OFFSET, and read range by range (see id-windows.ts), so
 * the thousandth page costs what the first does.
 */
export async function listItems(
  pool: pg.Pool,
  filter: ItemFilter,
  cursor: PageCursor,
  profileId: number | undefined,
): Promise<ItemsPage> {
  const filters = itemConditions(filter, profileId);
  const select = selectFrom<ItemRow>(
    pool,
    itemList,
    `mailitem_id, profile_id, recipients, subject, sent_status, send_request_date, send_request_user,
     sent_date`,
    filters,
  );
  const upward = cursor.before === undefined && cursor.after !== undefined;
  const found = upward
    ? await oldestAbove(itemList, select, cursor.after as string, pageSize + 1)
    : await newestBelow(pool, itemList, select, cursor.before, pageSize + 1);
  const more = found.length > pageSize;
  const rows = found.slice(0, pageSize);
  if (upward) rows.reverse();
  return {
    rows,
    newer: upward ? more : cursor.before !== undefined,
    older: upward ? true : more,
  };
}

/** The filter as conditions on sysmail_allitems: the list and its bulk actions use these same ones. */
export function itemConditions(filter: ItemFilter, profileId: number | undefined): Condition[] {
  const filters: Condition[] = [];
  if (filter.status) filters.push((p) => `sent_status = ${p(filter.status)}`);
  if (profileId !== undefined) filters.push((p) => `profile_id = ${p(profileId)}`);
  if (filter.recipient) {
    filters.push(
      (p) =>
        `strpos(lower(concat_ws(' ', recipients, copy_recipients, blind_copy_recipients)), lower(${p(filter.recipient)})) > 0`,
    );
  }
  if (filter.from) filters.push((p) => `send_request_date >= ${p(filter.from)}::date`);
  if (filter.to) filters.push((p) => `send_request_date < ${p(filter.to)}::date + 1`);
  return filters;
}

/**
 * The ids of the items the list shows for `filter` whose status is one of `statuses`, at most `limit`
 * (ask for one more than the cap to know it is exceeded).
 */
export async function matchingIds(
  pool: pg.Pool,
  filter: ItemFilter,
  profileId: number | undefined,
  statuses: string[],
  limit: number,
): Promise<string[]> {
  const select = selectFrom<{ mailitem_id: string }>(
    pool,
    itemList,
    "mailitem_id",
    itemConditions(filter, profileId),
  );
  const rows = await select([(p) => `sent_status = ANY(${p(statuses)}::text[])`], "ASC", limit);
  return rows.map((row) => row.mailitem_id);
}

/**
 * The profile filter as an id: digits are an id; a name is looked up, which only admins may do
 * (profile names come from sysmail_help_profile_sp). Returns a problem message instead when it cannot.
 */
export async function profileIdOf(pool: pg.Pool, profile: string, admin: boolean): Promise<number | string> {
  if (/^\d{1,9}$/.test(profile)) return Number(profile);
  if (!admin) return `profile: "${profile}": give the profile's id (profile names are shown to admins only)`;
  try {
    const found = await pool.query<{ profile_id: number }>(
      "SELECT profile_id FROM dbmail.sysmail_help_profile_sp(profile_name => $1)",
      [profile],
    );
    return found.rows[0]?.profile_id ?? `profile: "${profile}": no such profile`;
  } catch (error) {
    return (error as Error).message;
  }
}

/** The filter of a query string or form, its profile resolved to an id, and what is wrong with it. */
export async function resolveFilter(
  pool: pg.Pool,
  query: Record<string, string>,
  admin: boolean,
): Promise<{ filter: ItemFilter; cursor: PageCursor; profileId: number | undefined; problems: string[] }> {
  const { filter, cursor, problems } = readItemQuery(query);
  let profileId: number | undefined;
  if (filter.profile !== undefined) {
    const found = await profileIdOf(pool, filter.profile, admin);
    if (typeof found === "number") profileId = found;
    else problems.push(found);
  }
  return { filter, cursor, profileId, problems };
}
