import { connect, databaseUrlFrom, describe } from "../connection.js";
import { safeText } from "../safe-text.js";
import { requireRole } from "./require-role.js";

export const statusHelp = `Usage: dbmail status [--database-url URL] [--json]

Shows the queue (length, state, oldest waiting mail, whether delivery is stalled), the live senders,
and the latest failures. Needs a login in dbmail_admin (or a superuser).

Options:
  --database-url URL   the database (default: DATABASE_URL, else libpq PG* variables)
  --json               print one JSON object instead of text
  -h, --help           show this help
`;

interface QueueRow {
  length: string;
  state: string;
  live_senders: number;
  senders: { sender_id: string; hostname: string; process_id: number; last_heartbeat: string }[];
  oldest_unsent_date: Date | null;
  stalled: boolean;
}

export async function runStatus(options: { databaseUrl?: string; json?: boolean }): Promise<void> {
  const url = databaseUrlFrom(options.databaseUrl);
  const client = await connect(url, "dbmail status", { writes: false });
  try {
    await requireRole(client, url, "dbmail_admin", "status");
    const status = (
      await client.query<{ status: string }>("SELECT dbmail.sysmail_help_status_sp() AS status")
    ).rows[0]?.status;
    const queue = (await client.query<QueueRow>("SELECT * FROM dbmail.sysmail_help_queue_sp()"))
      .rows[0] as QueueRow;
    const failures = (
      await client.query(
        `SELECT mailitem_id, recipients, subject, sent_date, last_error FROM dbmail.sysmail_faileditems
         ORDER BY sent_date DESC NULLS LAST, mailitem_id DESC LIMIT 10`,
      )
    ).rows;
    if (options.json) {
      // bigint columns arrive as strings (node-postgres keeps them exact); these counts and ids fit a number.
      const json = {
        status,
        queue: { ...queue, length: Number(queue.length) },
        failures: failures.map((f) => ({ ...f, mailitem_id: Number(f.mailitem_id) })),
      };
      console.log(JSON.stringify(json, null, 2));
      return;
    }
    console.log(`${describe(url)}: Database Mail is ${status}`);
    console.log(
      `queue: ${queue.length} waiting or being sent, state ${queue.state}` +
        (queue.oldest_unsent_date ? `, oldest since ${queue.oldest_unsent_date.toISOString()}` : ""),
    );
    if (queue.stalled) console.log("STALLED: mail is due and no sender is alive (start one: dbmail start)");
    console.log(`live senders: ${queue.live_senders}`);
    for (const s of queue.senders) {
      console.log(
        safeText(
          `  ${s.sender_id} on ${s.hostname} (pid ${s.process_id}), last heartbeat ${s.last_heartbeat}`,
        ),
      );
    }
    console.log(failures.length === 0 ? "no failed mail" : "latest failures:");
    // What is shown comes from users and SMTP servers: never let it drive the terminal.
    for (const f of failures) {
      const line = `${f.mailitem_id} to ${f.recipients ?? "(bcc only)"} "${f.subject}": ${f.last_error ?? "no error recorded"}`;
      console.log(`  ${safeText(line)}`);
    }
  } finally {
    await client.end();
  }
}
