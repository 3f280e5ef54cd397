import type pg from "pg";

export const demoProfile = "demo";

/**
 * Creates, once, a demo account pointing at the local mail catcher and a public default profile using it,
 * so that `SELECT dbmail.sp_send_dbmail(recipients => ..., ...)` works without naming a profile.
 */
export async function ensureDemoProfile(client: pg.Client, catcherPort: number): Promise<void> {
  const { rows } = await client.query("SELECT 1 FROM dbmail.sysmail_help_profile_sp() WHERE name = $1", [
    demoProfile,
  ]);
  if (rows.length > 0) {
    await client.query("SELECT dbmail.sysmail_update_account_sp(account_name => $1, port => $2)", [
      demoProfile,
      catcherPort,
    ]);
    return;
  }
  await client.query("BEGIN");
  try {
    await client.query(
      `SELECT dbmail.sysmail_add_account_sp(account_name => $1, email_address => 'dbmail@localhost',
         display_name => 'pg-dbmail (dev)', mailserver_name => '127.0.0.1', port => $2,
         description => 'dbmail dev: the local mail catcher')`,
      [demoProfile, catcherPort],
    );
    await client.query(
      "SELECT dbmail.sysmail_add_profile_sp(profile_name => $1, description => 'dbmail dev')",
      [demoProfile],
    );
    await client.query(
      "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => $1, account_name => $1, sequence_number => 1)",
      [demoProfile],
    );
    await client.query(
      "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => $1, is_default => true)",
      [demoProfile],
    );
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK");
    throw error;
  }
}
