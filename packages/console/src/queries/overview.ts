import type pg from "pg";

export const statuses = ["unsent", "sending", "retrying", "sent", "failed"] as const;

export interface Sender {
  sender_id: string;
  hostname: string;
  process_id: number;
  version: string | null;
  started_at: string;
  last_heartbeat: string;
}

/** The delivery side: admins only (sysmail_help_queue_sp and sysmail_help_status_sp are theirs). */
export interface Delivery {
  status: string;
  state: string;
  senders: Sender[];
  stalled: boolean;
  oldestUnsent: Date | null;
  /** Items in each status (all of them: an admin sees everything). */
  counts: Record<string, number>;
}

export interface Overview {
  counts: Record<string, number>;
  oldestUnsent: Date | null;
  delivery: Delivery | undefined;
  failures: {
    mailitem_id: string;
    recipients: string | null;
    subject: string | null;
    sent_date: Date | null;
    last_error: string | null;
  }[];
}

/**
 * What the overview shows, read as the signed-in role (a dbmail_user counts its own mail only, reading
 * its visible rows; an admin's counts come from indexes, through sysmail_help_queue_sp). The queries
 * run side by side on the session's two connections.
 */
export async function readOverview(pool: pg.Pool, admin: boolean): Promise<Overview> {
  const [rows, oldest, failures, delivery] = await Promise.all([
    // An admin's counts come with sysmail_help_queue_sp (from indexes); a user's are of its own items.
    admin
      ? undefined
      : pool.query<{ sent_status: string; n: string }>(
          "SELECT sent_status, count(*) AS n FROM dbmail.sysmail_allitems GROUP BY sent_status",
        ),
    // An admin has it from sysmail_help_queue_sp, below.
    admin
      ? undefined
      : pool.query<{ oldest: Date | null }>(
          "SELECT min(send_request_date) AS oldest FROM dbmail.sysmail_unsentitems",
        ),
    pool.query<Overview["failures"][number]>(
      `SELECT mailitem_id, recipients, subject, sent_date, last_error FROM dbmail.sysmail_faileditems
       ORDER BY mailitem_id DESC LIMIT 10`,
    ),
    admin ? readDelivery(pool) : undefined,
  ]);
  const counts = Object.fromEntries(statuses.map((s) => [s, 0])) as Record<string, number>;
  for (const row of rows?.rows ?? []) counts[row.sent_status] = Number(row.n);
  if (delivery) Object.assign(counts, delivery.counts);
  return {
    counts,
    oldestUnsent: delivery ? delivery.oldestUnsent : (oldest?.rows[0]?.oldest ?? null),
    delivery,
    failures: failures.rows,
  };
}

async function readDelivery(pool: pg.Pool): Promise<Delivery> {
  const [status, queue] = await Promise.all([
    pool.query<{ status: string }>("SELECT dbmail.sysmail_help_status_sp() AS status"),
    pool.query<
      { state: string; senders: Sender[]; stalled: boolean; oldest_unsent_date: Date | null } & Record<
        (typeof statuses)[number],
        string
      >
    >(
      `SELECT state, senders, stalled, oldest_unsent_date, unsent, sending, retrying, sent, failed
       FROM dbmail.sysmail_help_queue_sp()`,
    ),
  ]);
  const row = queue.rows[0];
  return {
    status: status.rows[0]?.status ?? "",
    state: row?.state ?? "",
    senders: row?.senders ?? [],
    stalled: row?.stalled ?? false,
    oldestUnsent: row?.oldest_unsent_date ?? null,
    counts: Object.fromEntries(statuses.map((s) => [s, Number(row?.[s] ?? 0)])),
  };
}
