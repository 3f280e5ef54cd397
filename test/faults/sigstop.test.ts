// Scenario 8: a sender frozen with SIGSTOP for longer than its lease. Another sender reclaims and sends
// its items; after SIGCONT the frozen one must not send again what was reclaimed (it checks its lease
// before recording: record_outcome answers lease_lost). Duplicates are counted and reported.
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import type { TestDatabase, TestRole } from "../support/database.js";
import type { TestSmtpServer } from "../support/smtp.js";
import {
  drained,
  killAll,
  LONG,
  leasedBy,
  queue,
  recordResult,
  shortId,
  singleAccountFixture,
  sleep,
  spawnSender,
  tally,
  until,
} from "./support.js";

let db: TestDatabase;
let role: TestRole;
let smtp: TestSmtpServer;
// The shortest lease the sender accepts.
const LEASE = 10;

beforeAll(async () => {
  ({ db, role, smtp } = await singleAccountFixture());
});

afterEach(async () => {
  await killAll();
});

afterAll(async () => {
  await smtp?.stop();
  await db?.drop();
});

function idAt(index: number): string {
  return String(smtp.received[index]?.parsed.headers.get("x-dbmail-mailitem-id") ?? "");
}

it("8. a sender paused (SIGSTOP) beyond its lease does not double-send what another reclaimed", {
  timeout: LONG ? 600_000 : 90_000,
}, async () => {
  const mails = LONG ? 10_000 : 2000;
  const ids = await queue(db, mails, "stop");
  const args = ["--lease-seconds", String(LEASE)];
  const paused = spawnSender(role.url, shortId("paused"), args);
  const other = spawnSender(role.url, shortId("other"), args);
  await until(
    async () => tally([smtp], ids).arrived >= mails * 0.1 && (await leasedBy(db, paused.id)).length > 0,
    30_000,
    () => `arrived ${tally([smtp], ids).arrived}`,
    20,
  );
  paused.child.kill("SIGSTOP");
  const stoppedAt = Date.now();
  await sleep(300);
  const inFlight = await leasedBy(db, paused.id);
  const arrivedBefore = new Set(tally([smtp], inFlight).times.keys());
  // The other sender takes over once the lease has expired and sends them.
  await until(
    async () => {
      const { rows } = await db.query<{ n: string }>(
        `SELECT count(*) AS n FROM dbmail.mailitems WHERE mailitem_id = ANY($1::bigint[])
          AND sent_status = 'sent' AND sent_by = $2`,
        [inFlight, other.id],
      );
      return Number(rows[0]?.n) === inFlight.length;
    },
    (LEASE + 20) * 1000,
    () => "the other sender did not take over",
  );
  const takeover = (Date.now() - stoppedAt) / 1000;
  await sleep(500);
  const resumedIndex = smtp.received.length;
  paused.child.kill("SIGCONT");
  await drained(db, [smtp], ids, 60_000);
  await sleep(2000); // anything the resumed sender still had in hand has gone out by now
  const t = tally([smtp], ids);
  const wanted = new Set(inFlight);
  const afterResume = new Set<string>();
  for (let i = resumedIndex; i < smtp.received.length; i++) if (wanted.has(idAt(i))) afterResume.add(idAt(i));
  const outsideInFlight = t.duplicates.filter((id) => !wanted.has(id));
  const { rows: sentBy } = await db.query<{ n: string }>(
    "SELECT count(*) AS n FROM dbmail.mailitems WHERE mailitem_id = ANY($1::bigint[]) AND sent_by = $2",
    [inFlight, paused.id],
  );
  recordResult({
    scenario: "8. SIGSTOP beyond the lease, SIGCONT",
    mails,
    lost: t.missing.length,
    duplicates: t.extraCopies,
    maxRecoverySeconds: Math.round(takeover * 10) / 10,
    notes: `lease ${LEASE} s (minimum); ${inFlight.length} in flight at SIGSTOP (${arrivedBefore.size} of them had already reached the server before the other sender resent them); ${afterResume.size} sent AGAIN by the paused sender after SIGCONT; ${sentBy[0]?.n} recorded as sent by the paused sender; recovery = SIGSTOP to all reclaimed items sent by the other`,
  });
  expect(t.missing, "lost").toEqual([]);
  expect(t.messageIdMismatch).toEqual([]);
  expect(outsideInFlight, "duplicates outside the paused sender's in-flight set").toEqual([]);
  expect(t.extraCopies).toBeLessThanOrEqual(2 * inFlight.length);
  // Recorded outcomes stay the other sender's: the paused one gets lease_lost.
  expect(Number(sentBy[0]?.n)).toBe(0);
  // Only messages already in an SMTP conversation when the process froze can still complete: at most one
  // per pooled connection (--smtp-pool-size, default 5). Every other one is checked against its lease when
  // a connection frees up, and dropped.
  expect(afterResume.size, "items the paused sender sent again after SIGCONT").toBeLessThanOrEqual(5);
});
