// sp_send_dbmail's idempotency_key: a replay returns the item already queued, per user, also when two
// calls race (SPEC.md section 9).
import { describe, expect, it } from "vitest";
import { expectError, first, sleep } from "../../../../test/support/mail.js";
import { message, useSendDatabase } from "../support/send.js";

const t = useSendDatabase();
const { send, refused, item, queued } = t;

describe("idempotency_key", () => {
  it("returns the same mailitem_id for the same key from the same user, queuing one item", async () => {
    const before = await queued();
    const original = await send(message({ idempotency_key: "order-42" }));
    const replay = await send(message({ idempotency_key: "order-42", subject: "Changed" }));
    expect(replay).toBe(original);
    expect(await queued()).toBe(before + 1);
    const stored = await item(original);
    expect(stored.idempotency_key).toBe("order-42");
    expect(stored.subject).toBe("Test");
  });

  it("queues a separate item for the same key from another user", async () => {
    const fromAlice = await send(message({ idempotency_key: "shared-key" }));
    const fromBob = await send(message({ idempotency_key: "shared-key" }), t.bob);
    expect(fromBob).not.toBe(fromAlice);
    expect((await item(fromAlice)).send_request_user).toBe(t.aliceRole.name);
    expect((await item(fromBob)).send_request_user).toBe(t.bobRole.name);
    const { rows } = await t.db.query<{ n: number }>(
      "SELECT count(*)::integer AS n FROM dbmail.mailitems WHERE idempotency_key = 'shared-key'",
    );
    expect(first(rows).n).toBe(2);
  });

  it("returns the committed item to a concurrent call with the same key", async () => {
    const one = await t.db.connect(t.aliceRole);
    const two = await t.db.connect(t.aliceRole);
    await one.query("BEGIN");
    const id = await send(message({ idempotency_key: "concurrent" }), one);
    const pending = send(message({ idempotency_key: "concurrent" }), two);
    await sleep(200);
    await one.query("COMMIT");
    expect(await pending).toBe(id);
    const { rows } = await t.db.query<{ n: number }>(
      "SELECT count(*)::integer AS n FROM dbmail.mailitems WHERE idempotency_key = 'concurrent'",
    );
    expect(first(rows).n).toBe(1);
  });

  it.each([
    ["empty", ""],
    ["blank", "   "],
    ["256 characters", "k".repeat(256)],
  ])("refuses a key that is %s", async (_label, key) => {
    const error = await refused(message({ idempotency_key: key }));
    expectError(error, "22023", "idempotency_key", key, "must be 1 to 255 characters, not blank");
  });
});
