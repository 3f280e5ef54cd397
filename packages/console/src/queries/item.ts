import type pg from "pg";
import { type AttemptRow, readAttempts } from "./attempts.js";

export interface AttachmentInfo {
  attachment_id: string;
  filename: string;
  filesize: string;
  content_type: string | null;
}

export interface EventRow {
  log_id: string;
  event_type: string;
  log_date: Date;
  description: string | null;
  mailitem_id: string | null;
  account_id: number | null;
  sender_id: string | null;
}

/** Ids in paths: digits that fit a bigint; anything else is simply not found. */
export const isId = (id: string) => /^\d{1,18}$/.test(id);

/** Every field of one item, if the role may see it (the view's row filter decides: no row, no item). */
export async function readItem(pool: pg.Pool, id: string): Promise<Record<string, unknown> | undefined> {
  return (await pool.query("SELECT * FROM dbmail.sysmail_allitems WHERE mailitem_id = $1", [id])).rows[0];
}

export async function readAttachments(pool: pg.Pool, id: string): Promise<AttachmentInfo[]> {
  const result = await pool.query<AttachmentInfo>(
    `SELECT attachment_id, filename, filesize, content_type FROM dbmail.sysmail_mailattachments
     WHERE mailitem_id = $1 ORDER BY attachment_id`,
    [id],
  );
  return result.rows;
}

export async function readAttachment(
  pool: pg.Pool,
  id: string,
  attachmentId: string,
): Promise<{ filename: string; attachment: Buffer } | undefined> {
  const result = await pool.query<{ filename: string; attachment: Buffer }>(
    `SELECT filename, attachment FROM dbmail.sysmail_mailattachments
     WHERE mailitem_id = $1 AND attachment_id = $2`,
    [id, attachmentId],
  );
  return result.rows[0];
}

export async function readItemEvents(pool: pg.Pool, id: string): Promise<EventRow[]> {
  const result = await pool.query<EventRow>(
    `SELECT log_id, event_type, log_date, description, mailitem_id, account_id, sender_id
     FROM dbmail.sysmail_event_log WHERE mailitem_id = $1 ORDER BY log_id`,
    [id],
  );
  return result.rows;
}

/** An HTML body, only for an item whose body_format is HTML. */
export async function readHtmlBody(pool: pg.Pool, id: string): Promise<string | undefined> {
  const result = await pool.query<{ body: string | null }>(
    "SELECT body FROM dbmail.sysmail_allitems WHERE mailitem_id = $1 AND body_format = 'HTML'",
    [id],
  );
  const row = result.rows[0];
  return row ? (row.body ?? "") : undefined;
}

/** Everything /items/<id> shows, or undefined when the role may not see the item. */
export async function readItemPage(pool: pg.Pool, id: string): Promise<ItemPageData | undefined> {
  const item = isId(id) ? await readItem(pool, id) : undefined;
  if (!item) return undefined;
  const [attachments, events, attempts] = await Promise.all([
    readAttachments(pool, id),
    readItemEvents(pool, id),
    readAttempts(pool, id),
  ]);
  return { id, item, attachments, events, attempts };
}

export interface ItemPageData {
  id: string;
  item: Record<string, unknown>;
  attachments: AttachmentInfo[];
  events: EventRow[];
  attempts: AttemptRow[];
}
