// When a queued item becomes due (send_at) and becomes visible: only when the caller's transaction
// commits, which is also when NOTIFY dbmail_queue wakes the sender (SPEC.md section 9), when one listens
// and none is awake (the wake-up protocol of 000017; test/sender/wakeups.test.ts runs it with senders).
import type pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { first, sleep } from "../../../../test/support/mail.js";
import { message, useSendDatabase } from "../support/send.js";

const t = useSendDatabase();
const { send, refused, sendAndRead, item, queued } = t;

describe("send_at", () => {
  it("stores a future send_at and makes the item due then", async () => {
    const at = new Date(Date.now() + 24 * 3600 * 1000);
    const stored = await sendAndRead(message({ send_at: at }));
    expect(stored.send_at?.getTime()).toBe(at.getTime());
    expect(stored.next_attempt_at.getTime()).toBe(at.getTime());
    const { rows } = await t.alice.query<{ next_attempt_at: Date }>(
      "SELECT next_attempt_at FROM dbmail.sysmail_allitems WHERE mailitem_id = $1",
      [stored.mailitem_id],
    );
    expect(first(rows).next_attempt_at.getTime()).toBe(at.getTime());
  });

  it("makes an item with a past send_at due at once", async () => {
    const at = new Date(Date.now() - 24 * 3600 * 1000);
    const stored = await sendAndRead(message({ send_at: at }));
    expect(stored.send_at?.getTime()).toBe(at.getTime());
    expect(stored.next_attempt_at.getTime()).toBe(stored.send_request_date.getTime());
  });

  it("makes an item without send_at due at once", async () => {
    const stored = await sendAndRead(message());
    expect(stored.send_at).toBeNull();
    expect(stored.next_attempt_at.getTime()).toBe(stored.send_request_date.getTime());
  });
});

describe("transactions and NOTIFY", () => {
  // Advisory locks belong to sessions: each test's listeners, watchers and callers end with it.
  const opened: pg.Client[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((c) => c.end()));
  });
  async function connect(role?: Parameters<typeof t.db.connect>[0]): Promise<pg.Client> {
    const client = await t.db.connect(role);
    opened.push(client);
    return client;
  }
  /** A superuser connection listening on dbmail_queue as an idle sender does, and what it has received. */
  async function listener(): Promise<pg.Notification[]> {
    const client = await connect();
    const received: pg.Notification[] = [];
    client.on("notification", (n) => received.push(n));
    await client.query("LISTEN dbmail_queue; SELECT dbmail.sender_listening()");
    return received;
  }

  async function waitFor(received: pg.Notification[], ms = 3000): Promise<void> {
    const deadline = Date.now() + ms;
    while (received.length === 0 && Date.now() < deadline) await sleep(20);
  }

  it("queues nothing when the caller's transaction rolls back", async () => {
    const client = await connect(t.aliceRole);
    const before = await queued();
    await client.query("BEGIN");
    const id = await send(message(), client);
    await client.query("ROLLBACK");
    expect(await queued()).toBe(before);
    const { rows } = await t.db.query("SELECT 1 FROM dbmail.mailitems WHERE mailitem_id = $1", [id]);
    expect(rows).toEqual([]);
  });

  it("queues the item when the caller's transaction commits", async () => {
    const client = await connect(t.aliceRole);
    await client.query("BEGIN");
    const id = await send(message(), client);
    const { rows: during } = await t.db.query("SELECT 1 FROM dbmail.mailitems WHERE mailitem_id = $1", [id]);
    expect(during).toEqual([]);
    await client.query("COMMIT");
    expect((await item(id)).sent_status).toBe("unsent");
  });

  it("notifies dbmail_queue when a send commits", async () => {
    const received = await listener();
    await send(message());
    await waitFor(received);
    expect(received).toHaveLength(1);
    expect(received[0]?.channel).toBe("dbmail_queue");
  });

  it("notifies only at commit", async () => {
    const received = await listener();
    const client = await connect(t.aliceRole);
    await client.query("BEGIN");
    await send(message(), client);
    await sleep(300);
    expect(received).toEqual([]);
    await client.query("COMMIT");
    await waitFor(received);
    expect(received.map((n) => n.channel)).toEqual(["dbmail_queue"]);
  });

  it("does not notify when the transaction rolls back", async () => {
    const received = await listener();
    const client = await connect(t.aliceRole);
    await client.query("BEGIN");
    await send(message(), client);
    await client.query("ROLLBACK");
    await sleep(300);
    expect(received).toEqual([]);
  });

  it("does not notify for a future send_at", async () => {
    const received = await listener();
    await send(message({ send_at: new Date(Date.now() + 3600 * 1000) }));
    await sleep(300);
    expect(received).toEqual([]);
  });

  it("notifies for a past send_at", async () => {
    const received = await listener();
    await send(message({ send_at: new Date(Date.now() - 3600 * 1000) }));
    await waitFor(received);
    expect(received.map((n) => n.channel)).toEqual(["dbmail_queue"]);
  });

  it("does not notify for a refused send", async () => {
    const received = await listener();
    await refused(message({ recipients: "nobody" }));
    await sleep(300);
    expect(received).toEqual([]);
  });

  it("does not notify while nobody listens as a sender does (a sender looks when it starts listening)", async () => {
    const client = await connect();
    const received: pg.Notification[] = [];
    client.on("notification", (n) => received.push(n));
    await client.query("LISTEN dbmail_queue");
    await send(message());
    await sleep(300);
    expect(received).toEqual([]);
  });

  it("does not notify while a sender watches, and again once it gives the watch back", async () => {
    const received = await listener();
    const watcher = await connect();
    expect((await watcher.query("SELECT dbmail.sender_watch() AS held")).rows[0].held).toBe(true);
    await send(message());
    await sleep(300);
    expect(received).toEqual([]);
    await watcher.query("SELECT dbmail.sender_unwatch()");
    await send(message());
    await waitFor(received);
    expect(received.map((n) => n.channel)).toEqual(["dbmail_queue"]);
  });

  it("a sender settling waits for the transactions that counted on its watch, and calls meanwhile notify", async () => {
    const received = await listener();
    const watcher = await connect();
    await watcher.query("SELECT dbmail.sender_watch()");
    const caller = await connect(t.aliceRole);
    await caller.query("BEGIN");
    await send(message(), caller);
    await watcher.query("SELECT dbmail.sender_unwatch()");
    const settler = await connect();
    expect((await settler.query("SELECT dbmail.sender_settle(200) AS ok")).rows[0].ok).toBe(false);
    const settled = settler.query("SELECT dbmail.sender_settle(5000) AS ok");
    await sleep(100);
    await send(message());
    await waitFor(received);
    expect(received.map((n) => n.channel)).toEqual(["dbmail_queue"]);
    await caller.query("COMMIT");
    expect((await settled).rows[0].ok).toBe(true);
  });

  it("does not notify when an idempotency key replays an existing item", async () => {
    await send(message({ idempotency_key: "notify-once" }));
    const received = await listener();
    await send(message({ idempotency_key: "notify-once" }));
    await sleep(300);
    expect(received).toEqual([]);
  });
});
