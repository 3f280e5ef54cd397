// Scenario 6: one 20 MB attachment among 1,000 small mails. Everything is delivered (the big one intact)
// and the sender's peak resident memory (VmHWM of the spawned process) is reported.
import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import type { TestDatabase, TestRole } from "../support/database.js";
import type { TestSmtpServer } from "../support/smtp.js";
import {
  configure,
  drained,
  killAll,
  LONG,
  peakRssMiB,
  queue,
  recordResult,
  shortId,
  singleAccountFixture,
  spawnSender,
  tally,
} from "./support.js";

let db: TestDatabase;
let role: TestRole;
let smtp: TestSmtpServer;

beforeAll(async () => {
  ({ db, role, smtp } = await singleAccountFixture());
  await configure(db, "MaxFileSize", String(25 * 2 ** 20));
  await configure(db, "MaxMailSize", String(30 * 2 ** 20));
});

afterEach(async () => {
  await killAll();
});

afterAll(async () => {
  await smtp?.stop();
  await db?.drop();
});

it("6. a 20 MB attachment among 1,000 small mails: all delivered; peak RSS reported", {
  timeout: LONG ? 600_000 : 120_000,
}, async () => {
  const small = LONG ? 10_000 : 1000;
  const content = randomBytes(20 * 2 ** 20);
  const before = await queue(db, small / 2, "small-a");
  const { rows } = await db.query<{ id: string }>(
    `SELECT dbmail.sp_send_dbmail(profile_name => 'p', recipients => 'big@example.org', subject => 'big',
            body => 'see attachment', attachments => ARRAY[dbmail.attachment('big.bin', $1::bytea)]) AS id`,
    [content],
  );
  const bigId = String(rows[0]?.id);
  const after = await queue(db, small / 2, "small-b");
  const ids = [...before, bigId, ...after];
  const started = Date.now();
  const s = spawnSender(role.url, shortId("big"), ["--lease-seconds", "60"]);
  await drained(db, [smtp], ids, LONG ? 500_000 : 90_000);
  const seconds = (Date.now() - started) / 1000;
  const rss = peakRssMiB(s.pid);
  const t = tally([smtp], ids);
  const big = smtp.received.find((m) => String(m.parsed.headers.get("x-dbmail-mailitem-id")) === bigId);
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
