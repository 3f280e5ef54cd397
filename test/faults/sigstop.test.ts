// Scenario 8: a sender frozen with SIGSTOP for longer than its lease. Another sender reclaims and sends
// its items. After SIGCONT the frozen one must not send again what was reclaimed: it checks its lease
// when a pooled connection frees up, and again right before the end of DATA of every message (aborting
// the message, so the server discards it), and record_outcome answers lease_lost. The only copies it may
// still complete are of messages whose lease it had confirmed before it froze, i.e. whose end of DATA was
// already on its way. The test checks exactly that, from the sender's own log.
import { expect, it } from "vitest";
import { mailitemIdOf, queue, shortId, tally } from "../sender/support.js";
import { sleep } from "../support/mail.js";
import {
  drained,
  LONG,
  leasedBy,
  logLines,
  recordResult,
  singleAccountSuite,
  spawnSender,
  until,
} from "./support.js";

const fx = singleAccountSuite();
// The shortest lease the sender accepts.
const LEASE = 10;

/** Copies per id among fx.smtp.received[from, to). */
function copies(ids: Set<string>, from: number, to: number): Map<string, number> {
  const n = new Map<string, number>();
  for (let i = from; i < to; i++) {
    const mail = fx.smtp.received[i];
    const id = mail ? mailitemIdOf(mail) : "";
    if (ids.has(id)) n.set(id, (n.get(id) ?? 0) + 1);
  }
  return n;
}

it("8. a sender paused (SIGSTOP) beyond its lease does not double-send what another reclaimed", {
  timeout: LONG ? 600_000 : 90_000,
}, async () => {
  const mails = LONG ? 10_000 : 2000;
  const ids = await queue(fx.db, mails, "stop");
  const args = ["--lease-seconds", String(LEASE)];
  const paused = spawnSender(fx.role.url, shortId("paused"), args);
  const other = spawnSender(fx.role.url, shortId("other"), args);
  await until(
    async () => tally([fx.smtp], ids).arrived >= mails * 0.1 && (await leasedBy(fx.db, paused.id)).length > 0,
    30_000,
    () => `arrived ${tally([fx.smtp], ids).arrived}`,
    20,
  );
  paused.child.kill("SIGSTOP");
  const stoppedAt = Date.now();
  await sleep(300);
  const inFlight = await leasedBy(fx.db, paused.id);
  const wanted = new Set(inFlight);
  // The other sender takes over once the lease has expired and sends them.
  await until(
    async () => {
      const { rows } = await fx.db.query<{ n: string }>(
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
  const resumedIndex = fx.smtp.received.length;
  const resumedAt = Date.now();
  paused.child.kill("SIGCONT");
  await drained(fx.db, [fx.smtp], ids, 60_000);
  await sleep(2000); // anything the resumed sender still had in hand has gone out by now
  const t = tally([fx.smtp], ids);
  // Every in-flight item was sent once by the other sender; any further copy is the paused sender's.
  const beforeResume = copies(wanted, 0, resumedIndex);
  const afterResume = copies(wanted, resumedIndex, fx.smtp.received.length);
  const completedBeforeStop = [...beforeResume].filter(([, n]) => n > 1).map(([id]) => id);
  const outsideInFlight = t.duplicates.filter((id) => !wanted.has(id));
  const { rows: sentBy } = await fx.db.query<{ n: string }>(
    "SELECT count(*) AS n FROM dbmail.mailitems WHERE mailitem_id = ANY($1::bigint[]) AND sent_by = $2",
    [inFlight, paused.id],
  );
  // What the paused sender says: each message it completed but could not record, with the last moment
  // its lease was confirmed before the end of DATA went out; each item it did not (finish to) send.
  const lines = () => logLines(paused).filter((l) => wanted.has(String(l.mailitemId)));
  await until(
    () => {
      const logged = new Set(lines().map((l) => String(l.mailitemId)));
      return t.duplicates.every((id) => logged.has(id));
    },
    10_000,
    () => `the paused sender logged nothing about some duplicates: ${t.duplicates.join(",")}`,
  );
  const completedLate = new Map(
    lines()
      .filter((l) => l.outcome === "sent")
      .map((l) => [String(l.mailitemId), Date.parse(String(l.leaseCheckedAt))] as const),
  );
  const notSent = lines().filter((l) => typeof l.reason === "string");
  const abortedMidMessage = notSent.filter((l) => !/before it was sent/.test(String(l.reason))).length;
  const droppedBeforeStart = notSent.length - abortedMidMessage;
  recordResult({
    scenario: "8. SIGSTOP beyond the lease, SIGCONT",
    mails,
    lost: t.missing.length,
    duplicates: t.extraCopies,
    maxRecoverySeconds: Math.round(takeover * 10) / 10,
    notes: `lease ${LEASE} s (minimum); ${inFlight.length} in flight at SIGSTOP: ${completedBeforeStop.length} had completed DATA before SIGSTOP (the server had them; the other sender resent them: the duplicates), ${afterResume.size} completed by the paused sender after SIGCONT (lease confirmed before the pause, end of DATA after it), ${abortedMidMessage} aborted mid-DATA after SIGCONT (lease check before the end of DATA), ${droppedBeforeStart} dropped before starting; ${sentBy[0]?.n} recorded as sent by the paused sender; recovery = SIGSTOP to all reclaimed items sent by the other`,
  });
  expect(t.missing, "lost").toEqual([]);
  expect(t.messageIdMismatch).toEqual([]);
  expect(outsideInFlight, "duplicates outside the paused sender's in-flight set").toEqual([]);
  expect(
    [...t.times].filter(([id, n]) => wanted.has(id) && n > 2),
    "more than one extra copy",
  ).toEqual([]);
  // Recorded outcomes stay the other sender's: the paused one gets lease_lost.
  expect(Number(sentBy[0]?.n)).toBe(0);
  // The precise guarantee: every copy the paused sender completed was of a message whose lease it had
  // confirmed before it froze (it cannot run between SIGSTOP and SIGCONT, so "before SIGCONT" is
  // "before SIGSTOP"). A message whose lease was lost by then was aborted before its end of DATA.
  const unexplained = t.duplicates.filter(
    (id) => !((completedLate.get(id) ?? Number.POSITIVE_INFINITY) < resumedAt),
  );
  expect(unexplained, "copies the paused sender completed without a lease confirmed before SIGSTOP").toEqual(
    [],
  );
});
