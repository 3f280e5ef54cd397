import type pg from "pg";
import type { EventRow } from "./item.js";
import { pageSize } from "./items.js";

export const eventTypes = ["success", "information", "warning", "error"] as const;

export interface EventsPage {
  rows: EventRow[];
  newer: boolean;
  older: boolean;
}

/** One page of the event log, newest first, keyset-paged on log_id like the items. */
export async function listEvents(
  pool: pg.Pool,
  type: string | undefined,
  cursor: { before?: string; after?: string },
): Promise<EventsPage> {
  const where: string[] = [];
  const values: unknown[] = [];
  if (type !== undefined) {
    values.push(type);
    where.push(`event_type = $${values.length}`);
  }
  const upward = cursor.before === undefined && cursor.after !== undefined;
  const edge = cursor.before ?? cursor.after;
  if (edge !== undefined) {
    values.push(edge);
    where.push(`log_id ${upward ? ">" : "<"} $${values.length}::bigint`);
  }
  const result = await pool.query<EventRow>(
    `SELECT log_id, event_type, log_date, description, mailitem_id, account_id, sender_id
     FROM dbmail.sysmail_event_log
     ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
     ORDER BY log_id ${upward ? "ASC" : "DESC"}
     LIMIT ${pageSize + 1}`,
    values,
  );
  const more = result.rows.length > pageSize;
  const rows = result.rows.slice(0, pageSize);
  if (upward) rows.reverse();
  return { rows, newer: upward ? more : cursor.before !== undefined, older: upward ? true : more };
}
