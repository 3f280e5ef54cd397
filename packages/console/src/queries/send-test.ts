import type pg from "pg";

/** The test mail's fields as the form gives them (an empty profile: the sender's default profile). */
export interface TestMail {
  profile: string;
  recipients: string;
  subject: string;
  body: string;
}

/**
 * The profiles to offer. Admins may send with any profile, and list them with sysmail_help_profile_sp;
 * a dbmail_user may call neither that nor sysmail_help_principalprofile_sp, so it types the name (or
 * leaves it empty for its default profile) and sp_send_dbmail says whether it may use it.
 */
export async function profileChoices(pool: pg.Pool, admin: boolean): Promise<string[] | undefined> {
  if (!admin) return undefined;
  const { rows } = await pool.query<{ name: string }>(
    "SELECT name FROM dbmail.sysmail_help_profile_sp() ORDER BY lower(name)",
  );
  return rows.map((row) => row.name);
}

/** Queues the test mail with sp_send_dbmail as the signed-in role; returns its mailitem_id. */
export async function sendTestMail(pool: pg.Pool, mail: TestMail): Promise<string> {
  const { rows } = await pool.query<{ id: string }>(
    `SELECT dbmail.sp_send_dbmail(profile_name => $1, recipients => $2, subject => $3, body => $4) AS id`,
    [mail.profile || null, mail.recipients, mail.subject, mail.body],
  );
  return String(rows[0]?.id);
}

/** An item's status and last error, or undefined when the role may not see it. */
export async function readStatus(
  pool: pg.Pool,
  id: string,
): Promise<{ sent_status: string; last_error: string | null } | undefined> {
  const { rows } = await pool.query<{ sent_status: string; last_error: string | null }>(
    "SELECT sent_status, last_error FROM dbmail.sysmail_allitems WHERE mailitem_id = $1",
    [id],
  );
  return rows[0];
}
