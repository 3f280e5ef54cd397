// Scenarios 1 and 2: senders killed with SIGKILL mid-drain. Lost mail is never allowed; a duplicate may
// only be an item the killed sender held in flight when it died, and it carries the same Message-ID.

import { expect, it } from "vitest";
import { queue, shortId, tally } from "../sender/support.js";
import {
  drained,
  kill9,
  LONG,
  leasedBy,
  recordResult,
  type SpawnedSender,
  secondsUntilSent,
  singleAccountSuite,
  spawnSender,
  until,
} from "./support.js";

const fx = singleAccountSuite();

const LEASE_SECONDS = "10";
const LEASE = ["--lease-seconds", LEASE_SECONDS];

/** `n` random fractions of the way through, sorted, between 5 % and 85 %. */
function randomMoments(n: number): number[] {
  return Array.from({ length: n }, () => 0.05 + Math.random() * 0.8).sort((a, b) => a - b);
}

interface Kill {
  /** The items the killed sender held under lease when it died. */
  inFlight: Set<string>;
  killedAt: Date;
}

/** Once `victim` is delivering (it holds leases) and `count` of `ids` arrived, SIGKILLs it. */
async function killWhenDelivering(victim: SpawnedSender, ids: string[], count: number, what: string) {
  await until(
    async () => {
      if (!victim.alive()) throw new Error(`sender exited: ${victim.output().slice(-1000)}`);
      return tally([fx.smtp], ids).arrived >= count && (await leasedBy(fx.db, victim.id)).length > 0;
    },
    60_000,
    () => `${what}: arrived ${tally([fx.smtp], ids).arrived}; ${victim.output().slice(-500)}`,
    20,
  );
  await kill9(victim);
  const killedAt = new Date();
  return { inFlight: new Set(await leasedBy(fx.db, victim.id)), killedAt } satisfies Kill;
}

/** Adds to `recoveries`, in the background, how long the items held at `kill` took to be sent. */
function watchRecovery({ inFlight, killedAt }: Kill, recoveries: number[]): void {
  void until(async () => {
    const { rows } = await fx.db.query<{ n: string }>(
      "SELECT count(*) AS n FROM dbmail.mailitems WHERE mailitem_id = ANY($1::bigint[]) AND sent_status <> 'sent'",
      [[...inFlight]],
    );
    return Number(rows[0]?.n) === 0;
  }, 120_000)
    .then(async () => recoveries.push(await secondsUntilSent(fx.db, [...inFlight], killedAt)))
    .catch(() => recoveries.push(Number.NaN));
}

/** Checks the duplicates against the in-flight sets at the kills; returns the extra copies. */
function checkDuplicates(ids: string[], inFlightAtKills: Set<string>[]) {
  const t = tally([fx.smtp], ids);
  expect(t.missing, "lost mail").toEqual([]);
  expect(t.messageIdMismatch, "a duplicate with another Message-ID").toEqual([]);
  for (const id of t.duplicates) {
    const kills = inFlightAtKills.filter((set) => set.has(id)).length;
    expect(kills, `item ${id} duplicated but in flight at no kill`).toBeGreaterThan(0);
    expect(t.times.get(id), `item ${id}: copies`).toBeLessThanOrEqual(1 + kills);
  }
  return t;
}

it("1. kill -9 the sender mid-drain, repeatedly: nothing lost, duplicates only from in-flight", {
  timeout: LONG ? 1_500_000 : 120_000,
}, async () => {
  const mails = LONG ? 20_000 : 2500;
  const kills = LONG ? 20 : 5;
  const ids = await queue(fx.db, mails, "kill");
  const moments = randomMoments(kills);
  const inFlightAtKills: Set<string>[] = [];
  const recoveries: number[] = [];
  let current = spawnSender(fx.role.url, shortId("k0"), LEASE);
  for (const [k, moment] of moments.entries()) {
    // A random moment, once this sender is delivering (it holds leases).
    const kill = await killWhenDelivering(current, ids, moment * mails, `kill ${k}`);
    inFlightAtKills.push(kill.inFlight);
    current = spawnSender(fx.role.url, shortId(`k${k + 1}`), LEASE);
    // Recovery: how long until everything the dead sender held is sent (lease expiry + resend).
    watchRecovery(kill, recoveries);
  }
  await drained(fx.db, [fx.smtp], ids, LONG ? 900_000 : 60_000);
  await until(() => recoveries.length === kills, 20_000);
  const t = checkDuplicates(ids, inFlightAtKills);
  const inFlightCounts = inFlightAtKills.map((s) => s.size);
  recordResult({
    scenario: "1. kill -9 sender mid-drain",
    mails,
    lost: t.missing.length,
    duplicates: t.extraCopies,
    maxRecoverySeconds: Math.max(...recoveries),
    notes: `${kills} kills, in flight at each kill ${inFlightCounts.join("/")} (bound ${inFlightCounts.reduce((a, b) => a + b, 0)}); lease ${LEASE_SECONDS} s; every duplicate same Message-ID and in flight at a kill`,
  });
  expect(recoveries.every((r) => Number.isFinite(r))).toBe(true);
});

it("1b. kill -9 with the default 300 s lease: the dead sender's items are taken over once it is known dead", {
  timeout: 180_000,
}, async () => {
  const mails = LONG ? 5000 : 1000;
  const ids = await queue(fx.db, mails, "dead");
  const victim = spawnSender(fx.role.url, shortId("dead"));
  const { inFlight, killedAt } = await killWhenDelivering(victim, ids, mails / 4, "kill");
  const survivor = spawnSender(fx.role.url, shortId("survivor"));
  await drained(fx.db, [fx.smtp], ids, 150_000);
  const recovery = await secondsUntilSent(fx.db, [...inFlight], killedAt);
  const t = checkDuplicates(ids, [inFlight]);
  recordResult({
    scenario: "1b. kill -9, default 300 s lease",
    mails,
    lost: t.missing.length,
    duplicates: t.extraCopies,
    maxRecoverySeconds: recovery,
    notes: `${inFlight.size} in flight at the kill; taken over by ${survivor.id} once the killed sender's heartbeat was 30 s old, not when its leases ran out (300 s)`,
  });
  // 30 s until the heartbeat says dead, then a poll (5 s) and the resend: far below the 300 s lease.
  expect(recovery).toBeLessThan(60);
});

it("2. three senders, one killed and restarted repeatedly: no duplicates from the live ones", {
  timeout: LONG ? 1_500_000 : 120_000,
}, async () => {
  const mails = LONG ? 20_000 : 3000;
  const kills = LONG ? 12 : 4;
  const ids = await queue(fx.db, mails, "three");
  const a = spawnSender(fx.role.url, shortId("live-a"), LEASE);
  const b = spawnSender(fx.role.url, shortId("live-b"), LEASE);
  let victim = spawnSender(fx.role.url, shortId("victim0"), LEASE);
  const victims = [victim.id];
  const inFlightAtKills: Set<string>[] = [];
  const recoveries: number[] = [];
  for (const [k, moment] of randomMoments(kills).entries()) {
    const kill = await killWhenDelivering(victim, ids, moment * mails, `kill ${k}`);
    inFlightAtKills.push(kill.inFlight);
    victim = spawnSender(fx.role.url, shortId(`victim${k + 1}`), LEASE);
    victims.push(victim.id);
    watchRecovery(kill, recoveries);
  }
  await drained(fx.db, [fx.smtp], ids, LONG ? 900_000 : 60_000);
  await until(() => recoveries.length === kills, 20_000);
  const t = checkDuplicates(ids, inFlightAtKills);
  const { rows } = await fx.db.query<{ sent_by: string; n: string }>(
    `SELECT sent_by, count(*) AS n FROM dbmail.mailitems WHERE mailitem_id = ANY($1::bigint[]) GROUP BY sent_by`,
    [ids],
  );
  const by = Object.fromEntries(rows.map((r) => [r.sent_by, Number(r.n)]));
  const byVictims = victims.reduce((sum, v) => sum + (by[v] ?? 0), 0);
  // Work spread across the survivors: each live sender did a fair part.
  expect(by[a.id] ?? 0).toBeGreaterThan(mails * 0.15);
  expect(by[b.id] ?? 0).toBeGreaterThan(mails * 0.15);
  expect((by[a.id] ?? 0) + (by[b.id] ?? 0) + byVictims).toBe(mails);
  recordResult({
    scenario: "2. three senders, one killed repeatedly",
    mails,
    lost: t.missing.length,
    duplicates: t.extraCopies,
    maxRecoverySeconds: Math.max(...recoveries),
    notes: `${kills} kills of one sender, in flight at kills ${inFlightAtKills.map((s) => s.size).join("/")}; sent by live A ${by[a.id] ?? 0}, live B ${by[b.id] ?? 0}, killed ones ${byVictims}; no duplicate outside a killed sender's in-flight set`,
  });
});
