import type pg from "pg";
import { connect, databaseUrlFrom } from "../connection.js";
import { CliError, ExitCode } from "../exit-codes.js";
import { safeText } from "../safe-text.js";
import { requireRole } from "./require-role.js";

export const sendTestHelp = `Usage: dbmail send-test --to ADDRESS [--profile NAME] [--subject TEXT] [--body TEXT]
                       [--timeout SECONDS] [--database-url URL]

Sends a test mail through a profile (SSMS's "Send Test E-Mail") and waits for its outcome: exit 0 when
it was sent, 10 when it failed, 11 when no sender reported an outcome within the timeout (is one
running? see dbmail status).

Options:
  --to ADDRESS         the recipient (required)
  --profile NAME       the profile (default: your default profile)
  --subject TEXT       default: "Database Mail test"
  --body TEXT          default: a line naming the profile and the time
  --timeout SECONDS    how long to wait for the outcome (default 60)
  --database-url URL   the database (default: DATABASE_URL, else libpq PG* variables)
  -h, --help           show this help
`;

export interface SendTestOptions {
  databaseUrl?: string;
  to?: string;
  profile?: string;
  subject?: string;
  body?: string;
  timeout?: string;
}

export async function runSendTest(options: SendTestOptions): Promise<void> {
  if (!options.to) throw new CliError("--to: missing: name the test mail's recipient", ExitCode.usage);
  const timeoutSeconds = Number(options.timeout ?? 60);
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1) {
    throw new CliError(`--timeout: "${options.timeout}": must be a whole number of seconds`, ExitCode.usage);
  }
  const url = databaseUrlFrom(options.databaseUrl, process.env, { writes: true });
  const client = await connect(url, "dbmail send-test");
  try {
    await requireRole(client, url, "dbmail_user", "send-test");
    const { rows } = await client
      .query<{ id: string }>(
        `SELECT dbmail.sp_send_dbmail(profile_name => $1, recipients => $2, subject => $3, body => $4) AS id`,
        [
          options.profile ?? null,
          options.to,
          options.subject ?? "Database Mail test",
          options.body ?? `This is a test mail from pg-dbmail, sent at ${new Date().toISOString()}.`,
        ],
      )
      .catch((error: Error) => {
        throw new CliError(error.message, ExitCode.failure, { cause: error });
      });
    const id = rows[0]?.id as string;
    console.log(`mail ${id} queued; waiting for a sender (up to ${timeoutSeconds} s) ...`);
    const deadline = Date.now() + timeoutSeconds * 1000;
    let lastError: string | null = null;
    while (Date.now() < deadline) {
      const item = (
        await client.query<{
          sent_status: string;
          sent_account_id: number | null;
          smtp_response: string | null;
          last_error: string | null;
        }>(
          "SELECT sent_status, sent_account_id, smtp_response, last_error FROM dbmail.sysmail_allitems WHERE mailitem_id = $1",
          [id],
        )
      ).rows[0];
      if (item?.sent_status === "sent") {
        console.log(
          `mail ${id} sent through account ${item.sent_account_id}: ${safeText(item.smtp_response ?? "accepted")}`,
        );
        const settings = await accountSettings(client, item.sent_account_id);
        if (settings) console.log(settings);
        return;
      }
      if (item?.sent_status === "failed") {
        throw new CliError(
          `mail ${id} failed: ${safeText(item.last_error ?? "no reason recorded")}`,
          ExitCode.testMailFailed,
        );
      }
      if (item?.last_error && item.last_error !== lastError) {
        lastError = item.last_error;
        console.log(`mail ${id} is ${item.sent_status}: ${safeText(item.last_error)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    throw new CliError(
      `mail ${id}: no outcome within ${timeoutSeconds} s; is a sender running? (dbmail status)`,
      ExitCode.testMailTimeout,
    );
  } finally {
    await client.end();
  }
}

/**
 * How the account that sent logs in, signs and is limited, for an admin (who may read the account;
 * never a secret, only how each is given). Nothing for a dbmail_user, who may not see accounts.
 */
async function accountSettings(client: pg.Client, accountId: number | null): Promise<string | undefined> {
  if (accountId === null) return undefined;
  const { rows } = await client
    .query<{
      name: string;
      auth_method: string;
      username: string | null;
      oauth2_token_url: string | null;
      dkim_domain: string | null;
      dkim_selector: string | null;
      max_messages_per_minute: number | null;
    }>("SELECT * FROM dbmail.sysmail_help_account_sp(account_id => $1)", [accountId])
    .catch(() => ({ rows: [] }));
  const account = rows[0];
  if (!account) return undefined;
  const login =
    account.auth_method === "oauth2"
      ? `OAuth2 (XOAUTH2) as ${account.username}, tokens from ${account.oauth2_token_url}`
      : account.auth_method === "password"
        ? `a password login${account.username ? ` as ${account.username}` : ""}`
        : "no login";
  const dkim = account.dkim_domain
    ? `DKIM-signed as d=${account.dkim_domain} s=${account.dkim_selector}`
    : "not DKIM-signed";
  const rate = account.max_messages_per_minute
    ? `at most ${account.max_messages_per_minute} mails a minute`
    : "no rate limit";
  return safeText(`account ${accountId} (${account.name}): ${login}; ${dkim}; ${rate}`);
}
