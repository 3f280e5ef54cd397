// sysmail_retry_mailitems_sp and sysmail_cancel_mailitems_sp (SPEC section 12): what they change, the
// visibility rule of sysmail_delete_mailitems_sp (a dbmail_user touches only its own items; others' are
// not matched), their refusals (each changes nothing), and that a cancelled item is never claimed nor
// brought back by a sender's late outcome. With a real sender: test/sender/retry-cancel.test.ts.
import type pg from "pg";
import { beforeAll, describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import { addProfile, call, first } from "../../../../test/support/mail.js";
import {
  admin,
  db,
  expectRefused,
  expectRefusedWith,
  grant,
  queueMessage,
  setStatus,
  su,
  useDatabase,
  user,
  userRole,
} from "../support/configuration.js";

useDatabase("retry_cancel");

let profile: { id: number; name: string };
let other: { id: number; name: string };
let bob: pg.Client;
let sender: pg.Client;

beforeAll(async () => {
  profile = await addProfile(admin);
  other = await addProfile(admin);
  const bobRole = await db.createRole("retry_bob", { memberOf: ["dbmail_user"] });
  bob = await db.connect(bobRole);
  for (const role of [userRole.name, bobRole.name]) {
    await grant(role, profile.id, false);
    await grant(role, other.id, false);
  }
  sender = await db.connect(await db.createRole("retry_sender", { memberOf: ["dbmail_sender"] }));
});

interface Item {
  sent_status: string;
  send_attempts: number;
  last_error: string | null;
  sent_date: Date | null;
  due: boolean;
}

async function item(id: number): Promise<Item> {
  return first(
    await su(
      `SELECT sent_status, send_attempts, last_error, sent_date, next_attempt_at <= now() AS due
       FROM dbmail.mailitems WHERE mailitem_id = $1`,
      [id],
    ),
  ) as unknown as Item;
}

/** A mail of `client` with `profileName` that failed after two rounds. */
async function failedMail(client: pg.Client = user, profileName = profile.name): Promise<number> {
  const id = await queueMessage(profileName, client);
  await su(
    `UPDATE dbmail.mailitems SET sent_status = 'failed', send_attempts = 2, sent_date = now(),
       last_error = 'account 1: 451 try later', next_attempt_at = now() + interval '1 hour'
     WHERE mailitem_id = $1`,
    [id],
  );
  return id;
}

const retry = async (client: pg.Client, args: Record<string, unknown>) =>
  Number(first(await call(client, "sysmail_retry_mailitems_sp", args)).sysmail_retry_mailitems_sp);
const cancel = async (client: pg.Client, ids: number[] | null) =>
  Number(
    first(await call(client, "sysmail_cancel_mailitems_sp", { mailitem_ids: ids }))
      .sysmail_cancel_mailitems_sp,
  );

describe("sysmail_retry_mailitems_sp", () => {
  it("puts the caller's failed items back in the queue, due now, with every round again", async () => {
    const id = await failedMail();
    expect(await retry(user, { mailitem_ids: [id] })).toBe(1);
    expect(await item(id)).toEqual({
      sent_status: "unsent",
      send_attempts: 0,
      // Kept until a new attempt says something else.
      last_error: "account 1: 451 try later",
      sent_date: null,
      due: true,
    });
    const { rows } = await user.query(
      "SELECT event_type, description FROM dbmail.sysmail_event_log WHERE mailitem_id = $1",
      [id],
    );
    expect(rows).toEqual([
      {
        event_type: "information",
        description: `Mail Id ${id} was put back in the queue by ${userRole.name}`,
      },
    ]);
  });

  it("wakes the senders (NOTIFY dbmail_queue)", async () => {
    const id = await failedMail();
    const listener = await db.connect();
    await listener.query("LISTEN dbmail_queue");
    const heard = new Promise<string>((resolve) => listener.on("notification", (n) => resolve(n.channel)));
    await retry(user, { mailitem_ids: [id] });
    expect(await heard).toBe("dbmail_queue");
  });

  it("matches only failed items, by ids, sent_before and profile_name together", async () => {
    const old = await failedMail();
    const recent = await failedMail();
    const otherProfile = await failedMail(user, other.name);
    const waiting = await queueMessage(profile.name, user);
    await su("UPDATE dbmail.mailitems SET send_request_date = '2001-01-01' WHERE mailitem_id = ANY($1)", [
      [old, otherProfile, waiting],
    ]);
    const ids = [old, recent, otherProfile, waiting];
    expect(
      await retry(user, {
        mailitem_ids: ids,
        sent_before: "2010-01-01",
        profile_name: profile.name.toUpperCase(),
      }),
    ).toBe(1);
    expect((await item(old)).sent_status).toBe("unsent");
    expect((await item(recent)).sent_status).toBe("failed");
    expect((await item(otherProfile)).sent_status).toBe("failed");
    expect((await item(waiting)).send_attempts).toBe(0);
    // Without ids: every failed item of the caller that the other filters match.
    expect(await retry(user, { profile_name: other.name, sent_status: " FAILED " })).toBeGreaterThanOrEqual(
      1,
    );
    expect((await item(otherProfile)).sent_status).toBe("unsent");
  });

  it("does not match another user's items; an admin's call matches any", async () => {
    const bobs = await failedMail(bob);
    expect(await retry(user, { mailitem_ids: [bobs] })).toBe(0);
    expect((await item(bobs)).sent_status).toBe("failed");
    expect(await retry(user, {})).toBeGreaterThanOrEqual(0);
    expect((await item(bobs)).sent_status).toBe("failed");
    expect(await retry(admin, { mailitem_ids: [bobs] })).toBe(1);
    expect((await item(bobs)).sent_status).toBe("unsent");
  });

  it.each([
    ["sent", "sent"],
    ["unsent", "unsent"],
    ["NULL", null],
  ])("refuses sent_status %s", async (_label, status) => {
    const id = await failedMail();
    await expectRefused(() => retry(user, { mailitem_ids: [id], sent_status: status }), {
      code: "22023",
      parameter: "sent_status",
      value: status,
      problem: "must be failed",
    });
  });

  it("refuses an empty mailitem_ids, and one holding NULL", async () => {
    await expectRefused(() => retry(user, { mailitem_ids: [] }), {
      code: "22023",
      parameter: "mailitem_ids",
      value: "{}",
      problem: "is empty",
    });
    const id = await failedMail();
    await expectRefused(() => retry(user, { mailitem_ids: [id, null] }), {
      code: "22004",
      parameter: "mailitem_ids",
      value: `{${id},NULL}`,
      problem: "holds NULL",
    });
  });

  it("refuses an unknown profile_name", async () => {
    await failedMail();
    await expectRefused(() => retry(user, { profile_name: "no such profile here" }), {
      code: "42704",
      parameter: "profile_name",
      value: "no such profile here",
      problem: "no such profile",
    });
  });

  it("is not the sender's, nor callable through its internal half", async () => {
    const id = await failedMail();
    await expectRefusedWith(
      () => retry(sender, { mailitem_ids: [id] }),
      "42501",
      /permission denied for function sysmail_retry_mailitems_sp/,
    );
    // The definer half wants the caller's stamp: a direct call cannot claim to be someone else.
    await expectRefusedWith(
      () => user.query("SELECT dbmail.retry_mailitems(ARRAY[$1]::bigint[], 'failed', NULL, NULL)", [id]),
      "42501",
      /call dbmail\.sysmail_retry_mailitems_sp/,
    );
  });
});

describe("sysmail_cancel_mailitems_sp", () => {
  it("fails the caller's unsent and retrying items with last_error 'cancelled'", async () => {
    const unsent = await queueMessage(profile.name, user);
    const retrying = await queueMessage(profile.name, user);
    await setStatus(retrying, "retrying");
    const sent = await queueMessage(profile.name, user);
    await setStatus(sent, "sent");
    expect(await cancel(user, [unsent, retrying, sent])).toBe(2);
    for (const id of [unsent, retrying]) {
      expect(await item(id)).toMatchObject({ sent_status: "failed", last_error: "cancelled" });
      expect((await item(id)).sent_date).toBeInstanceOf(Date);
    }
    expect((await item(sent)).sent_status).toBe("sent");
    const { rows } = await user.query(
      "SELECT description FROM dbmail.sysmail_event_log WHERE mailitem_id = $1",
      [unsent],
    );
    expect(rows).toEqual([{ description: `Mail Id ${unsent} was cancelled by ${userRole.name}` }]);
  });

  it("leaves an item being sent alone and says so; its sender's outcome is recorded as usual", async () => {
    const id = await queueMessage(profile.name, user);
    await su(
      "UPDATE dbmail.mailitems SET sent_status = 'failed' WHERE sent_status IN ('unsent', 'retrying') AND mailitem_id <> $1",
      [id],
    );
    const { rows: claimed } = await sender.query(
      "SELECT mailitem_id, lease_token FROM dbmail.claim_mailitems('s-1', 10, 60)",
    );
    expect(claimed.map((r) => Number(r.mailitem_id))).toEqual([id]);
    const notices: string[] = [];
    const onNotice = (n: { message?: string }) => notices.push(n.message ?? "");
    user.on("notice", onNotice);
    expect(await cancel(user, [id])).toBe(0);
    user.off("notice", onNotice);
    expect(notices).toEqual(["1 of these mail items are being sent right now and were not cancelled"]);
    expect((await item(id)).sent_status).toBe("sending");
  });

  it("cannot be undone by a sender that held the item before: its late outcome is lease_lost", async () => {
    const id = await queueMessage(profile.name, user);
    await su(
      "UPDATE dbmail.mailitems SET sent_status = 'failed' WHERE sent_status IN ('unsent', 'retrying') AND mailitem_id <> $1",
      [id],
    );
    const { rows } = await sender.query("SELECT lease_token FROM dbmail.claim_mailitems('s-2', 10, 60)");
    const token = first(rows).lease_token as string;
    // The sender gives it back (a rate limit, a shutdown), then it is cancelled.
    await sender.query("SELECT dbmail.release_mailitems('s-2', ARRAY[$1]::bigint[], ARRAY[$2]::uuid[])", [
      id,
      token,
    ]);
    expect(await cancel(user, [id])).toBe(1);
    const late = await sender.query(
      "SELECT dbmail.record_outcome($1, 's-2', $2, 'retrying', error => '451 try later') AS s",
      [id, token],
    );
    expect(first(late.rows).s).toBe("lease_lost");
    expect((await item(id)).sent_status).toBe("failed");
    const again = await sender.query("SELECT mailitem_id FROM dbmail.claim_mailitems('s-2', 10, 60)");
    expect(again.rows).toEqual([]);
  });

  it("does not match another user's items; an admin's call matches any", async () => {
    const bobs = await queueMessage(profile.name, bob);
    expect(await cancel(user, [bobs])).toBe(0);
    expect((await item(bobs)).sent_status).toBe("unsent");
    expect(await cancel(admin, [bobs])).toBe(1);
    expect((await item(bobs)).last_error).toBe("cancelled");
  });

  it("refuses NULL, an empty list and a list holding NULL", async () => {
    await expectRefused(() => cancel(user, null), {
      code: "22004",
      parameter: "mailitem_ids",
      value: null,
      problem: "name the mail items",
    });
    await expectRefused(() => cancel(user, []), {
      code: "22023",
      parameter: "mailitem_ids",
      value: "{}",
      problem: "is empty",
    });
    const id = await queueMessage(profile.name, user);
    const error = await errorOf(
      user.query("SELECT dbmail.sysmail_cancel_mailitems_sp(ARRAY[$1, NULL]::bigint[])", [id]),
    );
    expect(error.code).toBe("22004");
    expect((await item(id)).sent_status).toBe("unsent");
  });

  it("is not the sender's", async () => {
    const id = await queueMessage(profile.name, user);
    await expectRefusedWith(
      () => cancel(sender, [id]),
      "42501",
      /permission denied for function sysmail_cancel_mailitems_sp/,
    );
  });
});
