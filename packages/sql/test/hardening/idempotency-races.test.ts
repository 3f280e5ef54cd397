// Issue 13, the database side: an idempotency_key replay raced by the deletion of its original is
// checked like a new mail, and a replayed item cannot be deleted under the replaying transaction
// (docs/sql-reference.md §2.5).
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, type TestDatabase, type TestRole } from "../../../../test/support/database.js";
import { type Args, first, type Queryable, send, withSettings } from "../../../../test/support/mail.js";
import { mailArgs, setUpHardening, untilBlocked } from "../support/boundaries.js";

const sendAs = (client: Queryable, args: Args) => send(client, mailArgs(args));

let db: TestDatabase;
let aliceRole: TestRole;
let alice: pg.Client;

beforeAll(async () => {
  ({ db, aliceRole, alice } = await setUpHardening());
});

afterAll(async () => {
  await db?.drop();
});

/** The backend pid of a connection, to wait until it is blocked. */
async function pidOf(client: pg.Client): Promise<number> {
  return first((await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows).pid;
}

/** Deletes alice's unsent mail in a transaction left open: its rows stay locked until it ends. */
async function beginDeletingUnsent(deleter: pg.Client): Promise<void> {
  await deleter.query("BEGIN");
  await deleter.query("SELECT dbmail.sysmail_delete_mailitems_sp(sent_status => 'unsent')");
}

describe("idempotency_key replays", () => {
  // Before: a replay that found the original skipped the limits, and queued a new, unchecked mail when
  // the original was deleted before its insert (5,000 recipients with MaxRecipientsPerMail 3).
  it("a replay raced by the deletion of the original is checked like a new mail", async () => {
    await withSettings(db, { MaxRecipientsPerMail: "3" }, async () => {
      await sendAs(alice, { idempotency_key: "race-1", body: "original" });
      const deleter = await db.connect(aliceRole);
      const replayer = await db.connect(aliceRole);
      const pid = await pidOf(replayer);
      try {
        await beginDeletingUnsent(deleter);
        const many = Array.from({ length: 5000 }, (_, i) => `r${i}@example.org`).join(";");
        const replay = errorOf(
          sendAs(replayer, { idempotency_key: "race-1", recipients: many, body: "flood" }),
        );
        await untilBlocked(db, pid);
        await deleter.query("COMMIT");
        const error = await replay;
        expect(error.code, error.message).toBe("54000");
        expect(error.message).toMatch(/^recipients: .*MaxRecipientsPerMail \(3\)/);
      } finally {
        await deleter.query("ROLLBACK").catch(() => {});
        await deleter.end();
        await replayer.end();
      }
      expect(
        first(
          (
            await db.query<{ n: number }>(
              "SELECT count(*)::int AS n FROM dbmail.mailitems WHERE body = 'flood'",
            )
          ).rows,
        ).n,
      ).toBe(0);
    });
  });

  it("a replay whose original survives (the deletion rolls back) returns the original", async () => {
    const original = await sendAs(alice, { idempotency_key: "race-2", body: "original" });
    const deleter = await db.connect(aliceRole);
    const replayer = await db.connect(aliceRole);
    const pid = await pidOf(replayer);
    try {
      await beginDeletingUnsent(deleter);
      const replay = sendAs(replayer, { idempotency_key: "race-2", body: "again" });
      await untilBlocked(db, pid);
      await deleter.query("ROLLBACK");
      expect(await replay).toBe(original);
    } finally {
      await deleter.end();
      await replayer.end();
    }
  });

  it("holds the replayed item until the replaying transaction ends, so it cannot be deleted under it", async () => {
    const original = await sendAs(alice, { idempotency_key: "race-3", body: "original" });
    const deleter = await db.connect(aliceRole);
    const pid = await pidOf(deleter);
    await alice.query("BEGIN");
    try {
      expect(await sendAs(alice, { idempotency_key: "race-3", body: "again" })).toBe(original);
      const deletion = deleter.query<{ n: string }>(
        "SELECT dbmail.sysmail_delete_mailitems_sp(sent_status => 'unsent') AS n",
      );
      await untilBlocked(db, pid);
      await alice.query("COMMIT");
      expect(Number(first((await deletion).rows).n)).toBeGreaterThanOrEqual(1);
    } finally {
      await alice.query("ROLLBACK").catch(() => {});
      await deleter.end();
    }
  });
});
