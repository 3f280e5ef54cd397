// Slow and rude SMTP servers (SPEC section 7), end to end: a server that never greets, takes DATA and
// never answers, or cuts the connection mid-DATA is given up on after the account's timeout, the mail
// goes to the next account (a streamed attachment in full) or to the next round, and the sender is
// never stuck.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { mailitemIds, useFailover } from "./support.js";

const { smtp, startProfile, send, failover, waitForStatus, events, withSettings } = useFailover();

/** The first account's timeout: 2 s, so a hung server is given up on quickly. */
const firstAccount = { timeout: 2 };

describe("slow and rude servers", () => {
  it.each([
    ["never greets", { stallGreeting: true }],
    ["takes DATA and never answers", { stallData: true }],
  ])(
    "gives up on a server that %s after the account's timeout, and is not stuck",
    async (_what, behaviour) => {
      const hung = await smtp(behaviour);
      const second = await smtp();
      const { a1, a2, name } = await startProfile([hung, second], { firstAccount });
      const started = Date.now();
      const id1 = await send(name);

      const row = await waitForStatus(id1, "sent", 10_000);
      expect(Date.now() - started).toBeLessThan(8000);
      expect(row.sent_account_id).toBe(a2);
      const warnings = await events(id1, "warning");
      expect(warnings.map((w) => w.account_id)).toEqual([a1]);

      const id2 = await send(name);
      expect((await waitForStatus(id2, "sent", 10_000)).sent_account_id).toBe(a2);
      expect(mailitemIds(second)).toEqual([id1, id2]);
    },
  );

  it("fails over from a server that drops the connection mid-DATA", async () => {
    const rude = await smtp({ dropData: true });
    const second = await smtp();
    const { a1, a2, id } = await failover([rude, second], { firstAccount });

    const row = await waitForStatus(id, "sent", 10_000);
    expect(row.sent_account_id).toBe(a2);
    expect(mailitemIds(second)).toEqual([id]);
    // (The test server may still record the dropped message: it read it all before cutting the line. The
    // sender never got a reply, so for it the message was not accepted.)
    const warnings = await events(id, "warning");
    expect(warnings.map((w) => w.account_id)).toEqual([a1]);
  });

  it("fails over mid-DATA with a streamed attachment: the next account gets all of it, byte-exact", async () => {
    // Larger than a streamed piece and not a multiple of one, so it is read from the database in pieces.
    const content = randomBytes(3 * 2 ** 20 + 12_345);
    const rude = await smtp({ dropData: true });
    const second = await smtp();
    await withSettings({ MaxFileSize: String(8 * 2 ** 20) }, async () => {
      const { a2, name } = await startProfile([rude, second], { firstAccount });
      const id = await send(name, { subject: "big", attachments: [{ filename: "big.bin", content }] });

      const row = await waitForStatus(id, "sent", 15_000);
      expect(row.sent_account_id).toBe(a2);
      expect(mailitemIds(second)).toEqual([id]);
      const [attachment] = second.received[0]?.parsed.attachments ?? [];
      expect(attachment?.filename).toBe("big.bin");
      expect(attachment?.content.equals(content)).toBe(true);
    });
  });

  it("retries a mail whose only server drops mid-DATA, and delivers it once the server behaves", async () => {
    const rude = await smtp({ dropData: true });
    const { a1, id } = await failover([rude], {
      firstAccount,
      settings: { AccountRetryAttempts: "3", AccountRetryDelay: "2" },
    });

    const retrying = await waitForStatus(id, "retrying", 10_000);
    expect(retrying.send_attempts).toBe(1);
    expect(retrying.last_error).toContain(`account ${a1}`);

    const dropped = rude.received.length; // read in full before the line was cut, never acknowledged
    rude.behaviour = {};
    const row = await waitForStatus(id, "sent", 10_000);
    expect(row.sent_account_id).toBe(a1);
    expect(row.send_attempts).toBe(2);
    expect(mailitemIds(rude).slice(dropped)).toEqual([id]);
  });
});
