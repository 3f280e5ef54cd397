// sender_heartbeat and sender_stopped (SPEC.md sections 7 and 12): registering a sender, the settings
// it is handed, and how sysmail_help_queue_sp shows live senders and a stalled queue.
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import { configure, first } from "../../../../test/support/mail.js";
import {
  A,
  B,
  claim,
  db,
  expireLease,
  heartbeat,
  queue,
  s1,
  s2,
  send,
  useSenderProtocol,
} from "../support/sender-protocol.js";

useSenderProtocol();

describe("sender_heartbeat and sender_stopped", () => {
  it("removes caller stamps left committed by ended transactions", async () => {
    await db.query("INSERT INTO dbmail.caller_stamps DEFAULT VALUES");
    expect(Number((await db.query("SELECT count(*) AS n FROM dbmail.caller_stamps")).rows[0]?.n)).toBe(1);
    await heartbeat(s1, A);
    expect(Number((await db.query("SELECT count(*) AS n FROM dbmail.caller_stamps")).rows[0]?.n)).toBe(0);
  });

  it("restarts started_at when a stopped sender's id is used again", async () => {
    await heartbeat(s1, A);
    await db.query("UPDATE dbmail.senders SET started_at = now() - interval '1 day' WHERE sender_id = $1", [
      A,
    ]);
    await heartbeat(s1, A);
    const kept = (
      await db.query(
        "SELECT started_at > now() - interval '1 hour' AS fresh FROM dbmail.senders WHERE sender_id = $1",
        [A],
      )
    ).rows[0];
    expect(kept?.fresh).toBe(false);
    await s1.query("SELECT dbmail.sender_stopped($1)", [A]);
    await heartbeat(s1, A);
    const restarted = (
      await db.query(
        "SELECT started_at > now() - interval '1 hour' AS fresh FROM dbmail.senders WHERE sender_id = $1",
        [A],
      )
    ).rows[0];
    expect(restarted?.fresh).toBe(true);
  });

  it("registers the sender and returns started and the fourteen settings", async () => {
    const beat = await heartbeat(s1, A, "mail-host", 1234, "0.9.0");
    expect(beat.started).toBe(true);
    expect(Object.keys(beat.settings).sort()).toEqual(
      [
        "AccountRetryAttempts",
        "AccountRetryDelay",
        "AdminRoles",
        "AttachmentDirectories",
        "DatabaseMailExeMinimumLifeTime",
        "DefaultAttachmentEncoding",
        "LoggingLevel",
        "MaxFileSize",
        "MaxMailSize",
        "MaxMailsPerUserPerDay",
        "MaxRecipientsPerMail",
        "ProhibitedExtensions",
        "SenderRoles",
        "UnknownOutcomePolicy",
      ].sort(),
    );
    expect(beat.settings).toMatchObject({
      AccountRetryAttempts: "1",
      AccountRetryDelay: "60",
      LoggingLevel: "2",
      DefaultAttachmentEncoding: "MIME",
    });
    const { rows } = await db.query(
      "SELECT hostname, process_id, version, stopped_at FROM dbmail.senders WHERE sender_id = $1",
      [A],
    );
    expect(rows).toEqual([{ hostname: "mail-host", process_id: 1234, version: "0.9.0", stopped_at: null }]);
  });

  it("returns started false while stopped and the settings as changed", async () => {
    await db.query("SELECT dbmail.sysmail_stop_sp()");
    await configure(db, "LoggingLevel", "3");
    const beat = await heartbeat(s1, A);
    expect(beat.started).toBe(false);
    expect(beat.settings.LoggingLevel).toBe("3");
    await db.query("SELECT dbmail.sysmail_start_sp()");
    expect((await heartbeat(s1, A)).started).toBe(true);
  });

  it("refreshes the heartbeat and details of a known sender", async () => {
    await heartbeat(s1, A, "h1", 1, "1.0.0");
    await db.query("UPDATE dbmail.senders SET last_heartbeat = now() - interval '20 seconds'");
    await heartbeat(s1, A, "h2", 2, "1.0.1");
    const { rows } = await db.query<{ hostname: string; process_id: number; age: number }>(
      `SELECT hostname, process_id, extract(epoch FROM now() - last_heartbeat)::float8 AS age
       FROM dbmail.senders WHERE sender_id = $1`,
      [A],
    );
    expect(first(rows)).toMatchObject({ hostname: "h2", process_id: 2 });
    expect(first(rows).age).toBeLessThan(5);
  });

  it.each([null, "", "   "])("refuses sender_id %j with 22004", async (senderId) => {
    const error = await errorOf(s1.query("SELECT * FROM dbmail.sender_heartbeat($1)", [senderId]));
    expect(error.code).toBe("22004");
    expect(error.message).toMatch(/^sender_id: /);
  });

  it("shows a live sender in sysmail_help_queue_sp, and not after sender_stopped", async () => {
    await heartbeat(s1, A, "mail-host", 1234, "0.9.0");
    let q = await queue();
    expect(q.live_senders).toBe(1);
    expect(q.state).toBe("RECEIVES_OCCURRING");
    expect(q.senders).toHaveLength(1);
    expect(q.senders[0]).toMatchObject({
      sender_id: A,
      hostname: "mail-host",
      process_id: 1234,
      version: "0.9.0",
    });
    await s1.query("SELECT dbmail.sender_stopped($1)", [A]);
    q = await queue();
    expect(q.live_senders).toBe(0);
    expect(q.senders).toEqual([]);
    expect(q.state).toBe("INACTIVE");
    await heartbeat(s1, A);
    expect((await queue()).live_senders).toBe(1);
  });

  it("does not count a sender whose last heartbeat is older than 30 seconds", async () => {
    await heartbeat(s1, A);
    await heartbeat(s2, B);
    expect((await queue()).live_senders).toBe(2);
    await db.query(
      "UPDATE dbmail.senders SET last_heartbeat = now() - interval '31 seconds' WHERE sender_id = $1",
      [A],
    );
    const q = await queue();
    expect(q.live_senders).toBe(1);
    expect(q.senders.map((s) => s.sender_id)).toEqual([B]);
  });

  it("reports stalled when due mail waits and no sender is live", async () => {
    await send();
    let q = await queue();
    expect(q).toMatchObject({ length: "1", live_senders: 0, state: "INACTIVE", stalled: true });
    expect(q.oldest_unsent_date).toBeInstanceOf(Date);
    await heartbeat(s1, A);
    q = await queue();
    expect(q).toMatchObject({ live_senders: 1, stalled: false });
    await db.query("UPDATE dbmail.senders SET last_heartbeat = now() - interval '31 seconds'");
    expect((await queue()).stalled).toBe(true);
  });

  it("reports stalled when the only sender holding mail died, before its lease runs out", async () => {
    await send();
    await heartbeat(s1, A);
    await claim(s1, A, 20, 300);
    expect(await queue()).toMatchObject({ live_senders: 1, stalled: false });
    await db.query("UPDATE dbmail.senders SET last_heartbeat = now() - interval '31 seconds'");
    expect(await queue()).toMatchObject({ live_senders: 0, stalled: true });
  });

  it("does not report stalled while Database Mail is stopped", async () => {
    await send();
    await db.query("SELECT dbmail.sysmail_stop_sp()");
    expect(await queue()).toMatchObject({ state: "STOPPED", live_senders: 0, stalled: false });
  });

  it("does not report stalled when nothing is due yet", async () => {
    await send({ send_at: new Date(Date.now() + 3_600_000).toISOString() });
    expect(await queue()).toMatchObject({ length: "1", live_senders: 0, stalled: false });
  });

  it("reports stalled when a dead sender's expired lease waits and no sender is live", async () => {
    const id = await send();
    await heartbeat(s1, A);
    await claim(s1, A);
    await db.query("UPDATE dbmail.senders SET last_heartbeat = now() - interval '5 minutes'");
    await expireLease(id);
    expect(await queue()).toMatchObject({ live_senders: 0, stalled: true });
  });
});
