// Retry and cancel from the console (SPEC.md section 12), single and bulk, with a real sender delivering to
// a real SMTP server: a retried item arrives once, a cancelled one never; a user's bulk retry leaves
// another user's failed item alone; each new POST refuses a missing CSRF token and another site's Origin;
// another user's item is not found.
import type { RunningConsole } from "@pg-dbmail/console";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole } from "../support/database.js";
import { send, sleep, uniqueSubject } from "../support/mail.js";
import { type Delivery, reaches, startDelivery, statusOf, withSubject } from "./delivery.js";
import { startTestConsole, Visitor } from "./support.js";

let db: TestDatabase;
let web: RunningConsole;
let delivery: Delivery;
let alice: TestRole;
let bob: TestRole;
let aliceDb: pg.Client;
let bobDb: pg.Client;
/** Recipients the server refuses (550) for now: how an item comes to fail for real. */
const refusing = new Set<string>();

/** An item of `client` that the sender tried and failed (the server refused its recipient). */
async function failedItem(client: pg.Client, recipient: string, subject: string): Promise<string> {
  refusing.add(recipient);
  const id = await send(client, { recipients: recipient, subject, body: "try me again" });
  await reaches(db, id, "failed");
  refusing.delete(recipient);
  return id;
}

/** An item due in an hour: it waits unsent, so it can be cancelled before any sender takes it. */
function laterItem(client: pg.Client, recipient: string, subject: string): Promise<string> {
  return send(client, {
    recipients: recipient,
    subject,
    body: "later",
    send_at: new Date(Date.now() + 3_600_000),
  });
}

async function signedIn(role: TestRole): Promise<Visitor> {
  const visitor = new Visitor(web.url);
  expect((await visitor.signIn(role.name)).status).toBe(303);
  return visitor;
}

beforeAll(async () => {
  db = await TestDatabase.create();
  delivery = await startDelivery(db);
  delivery.smtp.behaviour.onRcptTo = (address) =>
    refusing.has(address) ? { code: 550, message: "5.1.1 no such mailbox" } : undefined;
  alice = await db.createRole("console_alice", { memberOf: ["dbmail_user"] });
  bob = await db.createRole("console_bob", { memberOf: ["dbmail_user"] });
  aliceDb = await db.connect(alice);
  bobDb = await db.connect(bob);
  web = await startTestConsole(db);
});

afterAll(async () => {
  await web?.close();
  await delivery?.stop();
  await db?.drop();
});

describe("retry and cancel in the console", () => {
  it("retries a failed item from its page: it is put back in the queue and arrives once", async () => {
    const subject = uniqueSubject("retried");
    const id = await failedItem(aliceDb, "retry-me@example.com", subject);
    expect(withSubject(delivery.smtp, subject)).toHaveLength(0);
    const visitor = await signedIn(alice);
    const page = await visitor.get(`/items/${id}`);
    expect(page.text).toContain(`hx-post="/items/${id}/retry"`);
    expect(page.text).not.toContain(`/items/${id}/cancel`);

    const result = await visitor.post(`/items/${id}/retry`, {});
    expect(result.status).toBe(200);
    expect(result.text).toContain("1 item put back in the queue");
    await reaches(db, id, "sent");
    await sleep(1000);
    const arrived = withSubject(delivery.smtp, subject);
    expect(arrived).toHaveLength(1);
    expect(arrived[0]?.envelope.to).toEqual(["retry-me@example.com"]);
    // Sent now: the page offers neither action any more.
    const after = await visitor.get(`/items/${id}`);
    expect(after.text).not.toContain(`/items/${id}/retry`);
  });

  it("cancels an unsent item: it fails as cancelled and is never sent", async () => {
    const subject = uniqueSubject("cancelled");
    const id = await laterItem(aliceDb, "cancel-me@example.com", subject);
    const visitor = await signedIn(alice);
    expect((await visitor.get(`/items/${id}`)).text).toContain(`hx-post="/items/${id}/cancel"`);
    const result = await visitor.post(`/items/${id}/cancel`, {});
    expect(result.status).toBe(200);
    expect(result.text).toContain("1 item cancelled");
    expect(await statusOf(db, id)).toEqual({ sent_status: "failed", last_error: "cancelled" });
    // The send time brought forward: a sender would take it now if the cancel had not held.
    await db.query("UPDATE dbmail.mailitems SET next_attempt_at = now() WHERE mailitem_id = $1", [id]);
    await sleep(1500);
    expect(withSubject(delivery.smtp, subject)).toHaveLength(0);
  });

  it("says what an item being sent keeps: the procedure's NOTICE", async () => {
    const id = await laterItem(aliceDb, "busy@example.com", uniqueSubject("busy"));
    // As a sender holding it would have left it.
    await db.query("UPDATE dbmail.mailitems SET sent_status = 'sending' WHERE mailitem_id = $1", [id]);
    const visitor = await signedIn(alice);
    const result = await visitor.post(`/items/${id}/cancel`, {});
    expect(result.text).toContain("0 items cancelled");
    expect(result.text).toContain("1 of these mail items are being sent right now and were not cancelled");
    await db.query("UPDATE dbmail.mailitems SET sent_status = 'failed' WHERE mailitem_id = $1", [id]);
  });

  it("retries all failed items of a filter after a confirmation, and never another user's", async () => {
    const recipient = "bulk-retry@example.com";
    const mine = [
      await failedItem(aliceDb, recipient, uniqueSubject("bulk 1")),
      await failedItem(aliceDb, recipient, uniqueSubject("bulk 2")),
    ];
    const bobs = await failedItem(bobDb, recipient, uniqueSubject("bulk bob"));
    const visitor = await signedIn(alice);
    const list = await visitor.get(`/items?recipient=bulk-retry&status=failed`);
    expect(list.text).toContain("Retry all failed matching this filter");

    const ask = await visitor.post("/items/retry-all", { recipient: "bulk-retry", status: "failed" });
    expect(ask.status).toBe(200);
    expect(ask.text).toContain("Retry 2 items?");
    expect(ask.text).toContain('name="confirm" value="yes"');
    // Nothing happens before the confirmation.
    for (const id of mine) expect((await statusOf(db, id)).sent_status).toBe("failed");

    const done = await visitor.post("/items/retry-all", {
      recipient: "bulk-retry",
      status: "failed",
      confirm: "yes",
    });
    expect(done.text).toContain("2 items put back in the queue");
    for (const id of mine) await reaches(db, id, "sent");
    expect((await statusOf(db, bobs)).sent_status).toBe("failed");
  });

  it("cancels all waiting items of a filter, and says when nothing matches", async () => {
    const ids = [
      await laterItem(aliceDb, "bulk-cancel@example.com", uniqueSubject("c1")),
      await laterItem(aliceDb, "bulk-cancel@example.com", uniqueSubject("c2")),
    ];
    const bobs = await laterItem(bobDb, "bulk-cancel@example.com", uniqueSubject("c bob"));
    const visitor = await signedIn(alice);
    expect((await visitor.post("/items/cancel-all", { recipient: "bulk-cancel" })).text).toContain(
      "Cancel 2 items?",
    );
    const done = await visitor.post("/items/cancel-all", { recipient: "bulk-cancel", confirm: "yes" });
    expect(done.text).toContain("2 items cancelled");
    for (const id of ids)
      expect(await statusOf(db, id)).toEqual({ sent_status: "failed", last_error: "cancelled" });
    expect((await statusOf(db, bobs)).sent_status).toBe("unsent");
    const again = await visitor.post("/items/cancel-all", { recipient: "bulk-cancel" });
    expect(again.text).toContain("No item matches: nothing to do.");
    await db.query("UPDATE dbmail.mailitems SET sent_status = 'failed' WHERE mailitem_id = $1", [bobs]);
  });

  it("refuses a bulk action over 10,000 items and a filter it cannot use", async () => {
    await aliceDb.query(
      `SELECT count(dbmail.sp_send_dbmail(recipients => 'many@example.com', subject => 'many', body => 'x',
         send_at => now() + interval '1 hour')) FROM generate_series(1, 10001)`,
    );
    const visitor = await signedIn(alice);
    const over = await visitor.post("/items/cancel-all", { recipient: "many@", confirm: "yes" });
    expect(over.status).toBe(422);
    expect(over.text).toContain("More than 10,000 items match: narrow the filter");
    const { rows } = await db.query<{ n: number }>(
      "SELECT count(*)::integer AS n FROM dbmail.mailitems WHERE recipients = 'many@example.com' AND sent_status = 'unsent'",
    );
    expect(rows[0]?.n).toBe(10001);
    await db.query(
      "UPDATE dbmail.mailitems SET sent_status = 'failed' WHERE recipients = 'many@example.com'",
    );

    const bad = await visitor.post("/items/retry-all", { status: "lost" });
    expect(bad.status).toBe(422);
    expect(bad.text).toContain(
      "status: &quot;lost&quot;: not one of unsent, sending, retrying, sent, failed",
    );
  });

  it("finds no other user's item to retry or cancel (404), and leaves it as it was", async () => {
    const failed = await failedItem(aliceDb, "alice-only@example.com", uniqueSubject("alice failed"));
    const waiting = await laterItem(aliceDb, "alice-only@example.com", uniqueSubject("alice waiting"));
    const visitor = await signedIn(bob);
    expect((await visitor.post(`/items/${failed}/retry`, {})).status).toBe(404);
    expect((await visitor.post(`/items/${waiting}/cancel`, {})).status).toBe(404);
    expect((await statusOf(db, failed)).sent_status).toBe("failed");
    expect((await statusOf(db, waiting)).sent_status).toBe("unsent");
    await db.query("UPDATE dbmail.mailitems SET sent_status = 'failed' WHERE mailitem_id = $1", [waiting]);
  });

  it("refuses every new POST without the CSRF token or from another site, changing nothing", async () => {
    const failed = await failedItem(aliceDb, "csrf@example.com", uniqueSubject("csrf failed"));
    const waiting = await laterItem(aliceDb, "csrf@example.com", uniqueSubject("csrf waiting"));
    const visitor = await signedIn(alice);
    const posts: [string, Record<string, string>][] = [
      [`/items/${failed}/retry`, {}],
      [`/items/${waiting}/cancel`, {}],
      ["/items/retry-all", { recipient: "csrf@", confirm: "yes" }],
      ["/items/cancel-all", { recipient: "csrf@", confirm: "yes" }],
      ["/send-test", { recipients: "csrf@example.com", subject: "forged", body: "x" }],
    ];
    for (const [path, fields] of posts) {
      expect((await visitor.post(path, fields, { csrf: null })).status, path).toBe(403);
      expect((await visitor.post(path, fields, { csrf: "wrong" })).status, path).toBe(403);
      expect((await visitor.post(path, fields, { origin: "http://evil.example" })).status, path).toBe(403);
      expect((await visitor.post(path, fields, { origin: null })).status, path).toBe(403);
    }
    expect((await statusOf(db, failed)).sent_status).toBe("failed");
    expect((await statusOf(db, waiting)).sent_status).toBe("unsent");
    const { rows } = await db.query("SELECT 1 FROM dbmail.mailitems WHERE subject = 'forged'");
    expect(rows).toHaveLength(0);
    await db.query("UPDATE dbmail.mailitems SET sent_status = 'failed' WHERE mailitem_id = $1", [waiting]);
  });
});
