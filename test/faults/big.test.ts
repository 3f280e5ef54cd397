// Scenario 6: one 20 MB attachment among 1,000 small mails. Everything is delivered (the big one intact)
// and the sender's peak resident memory (VmHWM of the spawned process) is reported.
import { randomBytes } from "node:crypto";
import { expect, it } from "vitest";
import { mailitemIdOf, queue, shortId, tally } from "../sender/support.js";
import { configure } from "../support/mail.js";
import { drained, LONG, peakRssMiB, recordResult, singleAccountSuite, spawnSender } from "./support.js";

const fx = singleAccountSuite(async ({ db }) => {
  await configure(db, "MaxFileSize", String(25 * 2 ** 20));
  await configure(db, "MaxMailSize", String(30 * 2 ** 20));
});

it("6. a 20 MB attachment among 1,000 small mails: all delivered; peak RSS reported", {
  timeout: LONG ? 600_000 : 120_000,
}, async () => {
  const small = LONG ? 10_000 : 1000;
  const content = randomBytes(20 * 2 ** 20);
  const before = await queue(fx.db, small / 2, "small-a");
  const { rows } = await fx.db.query<{ id: string }>(
    `SELECT dbmail.sp_send_dbmail(profile_name => 'p', recipients => 'big@example.org', subject => 'big',
            body => 'see attachment', attachments => ARRAY[dbmail.attachment('big.bin', $1::bytea)]) AS id`,
    [content],
  );
  const bigId = String(rows[0]?.id);
  const after = await queue(fx.db, small / 2, "small-b");
  const ids = [...before, bigId, ...after];
  const started = Date.now();
  const s = spawnSender(fx.role.url, shortId("big"), ["--lease-seconds", "60"]);
  await drained(fx.db, [fx.smtp], ids, LONG ? 500_000 : 90_000);
  const seconds = (Date.now() - started) / 1000;
  const rss = peakRssMiB(s.pid);
  const t = tally([fx.smtp], ids);
  const big = fx.smtp.received.find((m) => mailitemIdOf(m) === bigId);
  const attachment = big?.parsed.attachments[0];
  expect(attachment?.filename).toBe("big.bin");
  expect(attachment?.content.equals(content)).toBe(true);
  recordResult({
    scenario: "6. 20 MB attachment among small mails",
    mails: ids.length,
    lost: t.missing.length,
    duplicates: t.extraCopies,
    maxRecoverySeconds: null,
    notes: `drained in ${seconds.toFixed(1)} s; attachment arrived byte-identical (raw message ${(big?.raw.length ?? 0) / 2 ** 20 > 0 ? ((big?.raw.length ?? 0) / 2 ** 20).toFixed(1) : "?"} MiB); sender peak RSS (VmHWM) ${rss} MiB`,
  });
  expect({ lost: t.missing.length, duplicates: t.extraCopies }).toEqual({ lost: 0, duplicates: 0 });
});
