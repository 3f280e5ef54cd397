import type pg from "pg";
import { type Condition, eventList, newestBelow, oldestAbove, selectFrom } from "./id-windows.js";
import type { EventRow } from "./item.js";
import { pageSize } from "./items.js";

export const eventTypes = ["success", "information", "warning", "error"] as const;

export interface EventsPage {
  rows: EventRow[];
  newer: boolean;
  older: boolean;
}

/** One page of the event log, newest first, read by ranges of log_id like the items. */
export async function listEvents(
  pool: pg.Pool,
  type: string | undefined,
  cursor: { before?: string; after?: string },
): Promise<EventsPage> {
  const filters: Condition[] = type === undefined ? [] : [(p) => `event_type = ${p(type)}`];
  const select = selectFrom<EventRow>(
    pool,
    eventList,
    "log_id, event_type, log_date, description, mailitem_id, account_id, sender_id",
    filters,
  );
  const upward = cursor.before === undefined && cursor.after !== undefined;
  const found = upward
    ? await oldestAbove(eventList, select, cursor.after as string, pageSize + 1)
    : await newestBelow(pool, eventList, select, cursor.before, pageSize + 1);
  const more = found.length > pageSize;
  const rows = found.slice(0, pageSize);
  if (upward) rows.reverse();
  return { rows, newer: upward ? more : cursor.before !== undefined, older: upward ? true : more };
}
