// sender_accounts and sender_attachments (SPEC.md sections 5 and 7): each profile's accounts in
// failover order with their secrets, and an item's attachments only for the sender holding it.
import { describe, expect, it } from "vitest";
import {
  A,
  type AccountRow,
  B,
  backupId,
  claim,
  db,
  plainId,
  primaryId,
  profileId,
  recordOutcome,
  s1,
  send,
  tokenOf,
  useSenderProtocol,
} from "../support/sender-protocol.js";

useSenderProtocol();

describe("sender_accounts and sender_attachments", () => {
  it("lists each profile's accounts in sequence order, with passwords and connection settings", async () => {
    const { rows } = await s1.query<AccountRow>("SELECT * FROM dbmail.sender_accounts()");
    const p = rows.filter((r) => r.profile_name === "p");
    expect(p.map((r) => [r.account_name, r.sequence_number])).toEqual([
      ["primary", 1],
      ["backup", 2],
    ]);
    expect(p[0]).toMatchObject({
      profile_id: profileId,
      account_id: primaryId,
      email_address: "one@example.org",
      mailserver_name: "localhost",
      port: 587,
      username: "u1",
      password: "secret-1",
      security: "starttls",
      timeout: 30,
      use_default_credentials: false,
      tls_reject_unauthorized: true,
      is_last_success: false,
    });
    expect(p[1]).toMatchObject({
      account_id: backupId,
      mailserver_name: "smtp2.example.org",
      port: 465,
      username: "u2",
      password: "env:SMTP_PASSWORD",
      security: "tls",
      timeout: null,
    });
    const q = rows.filter((r) => r.profile_name === "q");
    expect(q).toHaveLength(1);
    expect(q[0]).toMatchObject({
      account_id: plainId,
      username: null,
      password: null,
      security: "none",
      port: 25,
    });
  });

  it("returns an item's attachments only to the sender holding it", async () => {
    const id = await send();
    const other = await send();
    await db.query(
      `INSERT INTO dbmail.attachments (mailitem_id, filename, content_type, filesize, attachment, last_mod_user)
       VALUES ($1, 'report.csv', 'text/csv', 6, convert_to('a,b\n1,', 'UTF8'), 'postgres'),
              ($1, 'logo.png', 'image/png', 3, '\\x010203'::bytea, 'postgres'),
              ($2, 'other.txt', NULL, 1, 'x'::bytea, 'postgres')`,
      [id, other],
    );
    const attachments = (sender: string, mailitem: string) =>
      s1
        .query<{
          attachment_id: string;
          filename: string;
          content_type: string | null;
          filesize: string;
          attachment: Buffer;
        }>("SELECT * FROM dbmail.sender_attachments($1, $2, $3)", [
          sender,
          mailitem,
          tokenOf(sender, mailitem),
        ])
        .then((r) => r.rows);

    expect(await attachments(A, id)).toEqual([]);
    const claimed = await claim(s1, A, 1);
    expect(claimed.map((c) => [c.mailitem_id, c.attachment_count])).toEqual([[id, 2]]);
    const mine = await attachments(A, id);
    expect(mine.map((a) => [a.filename, a.content_type, a.filesize])).toEqual([
      ["report.csv", "text/csv", "6"],
      ["logo.png", "image/png", "3"],
    ]);
    expect(mine[0]?.attachment.toString("utf8")).toBe("a,b\n1,");
    expect([...(mine[1]?.attachment ?? [])]).toEqual([1, 2, 3]);
    expect(await attachments(B, id)).toEqual([]);
    expect(await attachments(A, other)).toEqual([]);
    await recordOutcome(s1, id, A, "sent", { accountId: primaryId });
    expect(await attachments(A, id)).toEqual([]);
  });
});
