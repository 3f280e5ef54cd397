import type pg from "pg";

export interface AttemptRow {
  attempt: number;
  account_id: number | null;
  started_at: Date;
  duration_ms: number | null;
  outcome: string;
  smtp_code: number | null;
  smtp_response: string | null;
}

/** The SMTP attempts of one item, oldest first (the view shows a dbmail_user its own items' only). */
export async function readAttempts(pool: pg.Pool, id: string): Promise<AttemptRow[]> {
  const result = await pool.query<AttemptRow>(
    `SELECT attempt, account_id, started_at, duration_ms, outcome, smtp_code, smtp_response
     FROM dbmail.sysmail_attempts WHERE mailitem_id = $1 ORDER BY started_at, attempt`,
    [id],
  );
  return result.rows;
}
