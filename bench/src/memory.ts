// Memory: the sender's peak RSS (VmHWM) with one 20 MB attachment among 1,000 small mails. (The plain
// 20,000-mail case is read from the drain runs themselves.)
import { randomBytes } from "node:crypto";
import { createBenchDatabase, withClient } from "./database.js";
import {
  type DrainRun,
  queueMails,
  type SenderSettings,
  settle,
  startSender,
  timeDrain,
  untilExited,
} from "./drain.js";
import type { Sink } from "./sink-client.js";

export const ATTACHMENT_BYTES = 20 * 2 ** 20;
export const SMALL_MAILS = 1000;

export async function attachmentRun(
  adminUrl: string,
  sink: Sink,
  settings: SenderSettings,
): Promise<DrainRun> {
  const db = await createBenchDatabase(adminUrl, { smtpPort: sink.port, tag: "memory" });
  try {
    await withClient(db.url, async (client) => {
      // The defaults (1 MB per file, 10 MiB per mail) would refuse it.
      await client.query(`SELECT dbmail.sysmail_configure_sp('MaxFileSize', $1)`, [String(25 * 2 ** 20)]);
      await client.query(`SELECT dbmail.sysmail_configure_sp('MaxMailSize', $1)`, [String(30 * 2 ** 20)]);
    });
    // Half the small mails before the big one and half after, so it is sent while others flow.
    await queueMails(db.url, SMALL_MAILS / 2, 1);
    await withClient(db.url, (client) =>
      client.query(
        `SELECT dbmail.sp_send_dbmail(recipients => 'big@example.org', subject => 'Bench big attachment',
           body => 'See the attachment.', attachments => ARRAY[dbmail.attachment('big.bin', $1::bytea)])`,
        [randomBytes(ATTACHMENT_BYTES)],
      ),
    );
    await queueMails(db.url, SMALL_MAILS / 2, SMALL_MAILS / 2 + 1);
    await settle(db.url);
    return await timeDrain(
      sink,
      SMALL_MAILS + 1,
      () => [startSender(db.url, settings, true)],
      untilExited,
      300_000,
    );
  } finally {
    await db.drop();
  }
}
