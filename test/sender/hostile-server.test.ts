// An SMTP server may say anything: NUL (which PostgreSQL cannot store), terminal escape sequences,
// bytes that are not UTF-8, megabytes. Once it has accepted a message, the outcome must be recorded
// (made safe) so the item is never sent again; before, a NUL in the reply failed the whole outcome
// batch, and its items were resent after every lease expiry. A raw TCP server speaks the SMTP here, so
// that the test controls every byte of its replies.
import { createServer, type Server, type Socket } from "node:net";
import type { Sender } from "@pg-dbmail/sender";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase } from "../support/database.js";
import { configure, profileWith, sleep } from "../support/mail.js";
import { addAccount, eventually, startSender } from "../support/sender.js";

/** What the server answers at the end of DATA, and to RCPT TO for addresses starting with "bad". */
const HOSTILE = Buffer.concat([
  Buffer.from("queued \u0000 as "),
  Buffer.from([0x1b]),
  Buffer.from("[31mred"),
  Buffer.from([0xff, 0xfe, 0xc3]),
  Buffer.from(` \u202e evil ${"A".repeat(100_000)}`),
]);

class HostileSmtpServer {
  messages = 0;
  private readonly server: Server;
  port = 0;

  constructor() {
    this.server = createServer((socket) => this.converse(socket));
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private converse(socket: Socket): void {
    const reply = (code: number, text: Buffer | string) =>
      socket.write(Buffer.concat([Buffer.from(`${code} `), Buffer.from(text), Buffer.from("\r\n")]));
    let buffer = Buffer.alloc(0);
    let inData = false;
    socket.write("220 hostile ESMTP\r\n");
    socket.on("error", () => {});
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (inData) {
          const end = buffer.indexOf("\r\n.\r\n");
          if (end < 0) return;
          buffer = buffer.subarray(end + 5);
          inData = false;
          this.messages++;
          reply(250, HOSTILE);
          continue;
        }
        const eol = buffer.indexOf("\r\n");
        if (eol < 0) return;
        const line = buffer.subarray(0, eol).toString("latin1");
        buffer = buffer.subarray(eol + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === "EHLO") socket.write("250-hostile\r\n250 8BITMIME\r\n");
        else if (verb === "RCPT" && /<bad/i.test(line)) reply(550, HOSTILE);
        else if (verb === "DATA") {
          inData = true;
          reply(354, "go ahead");
        } else if (verb === "QUIT") {
          reply(221, "bye");
          socket.end();
        } else reply(250, "OK");
      }
    });
  }
}

let db: TestDatabase;
let server: HostileSmtpServer;
let sender: Sender | undefined;

beforeAll(async () => {
  db = await TestDatabase.create();
  server = new HostileSmtpServer();
  await server.listen();
  await addAccount(db, "hostile", server, { security: "none" });
  await profileWith(db, "p", ["hostile"], true);
  await configure(db, "LoggingLevel", "3");
  const role = await db.createRole("hostile", { memberOf: ["dbmail_sender"] });
  sender = await startSender(role, { leaseSeconds: 10 });
});

afterAll(async () => {
  await sender?.stop();
  await server?.close();
  await db?.drop();
});

describe("a hostile SMTP server's replies", () => {
  it("are stored made safe, every outcome of the batch recorded, nothing sent twice", async () => {
    const { rows } = await db.query<{ id: string }>(
      `SELECT dbmail.sp_send_dbmail(recipients => 'ok@example.org' || CASE WHEN i = 2 THEN '; bad@example.org' ELSE '' END,
         subject => 'hostile ' || i, body => 'x') AS id
       FROM generate_series(1, 3) i`,
    );
    const ids = rows.map((r) => r.id);
    const items = await eventually(async () => {
      const { rows: found } = await db.query<{
        mailitem_id: string;
        sent_status: string;
        smtp_response: string;
      }>(
        "SELECT mailitem_id, sent_status, smtp_response FROM dbmail.sysmail_allitems WHERE mailitem_id = ANY($1) ORDER BY mailitem_id",
        [ids],
      );
      return found.every((r) => r.sent_status === "sent") ? found : undefined;
    });
    expect(server.messages).toBe(3);
    for (const item of items) {
      // The reply as the server gave it, with every control character visible and the length cut.
      expect(item.smtp_response).toMatch(
        /^250 queued \\x00 as \\x1b\[31mred\uFFFD+ \\u202e evil A+… \(\d+ more characters\)/,
      );
    }
    // Cut: the reply to at most 2,000 characters, the refusals of recipients to 4,000 more.
    expect(items.map((i) => i.smtp_response.length <= 2100)).toEqual([true, false, true]);
    expect(items[1]?.smtp_response.length).toBeLessThan(6200);
    // The recipient the server refused, with its reply made safe too.
    expect(items[1]?.smtp_response).toMatch(
      /refused recipients: bad@example\.org \(.*550 queued \\x00 as \\x1b/,
    );
    const { rows: events } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM dbmail.sysmail_event_log WHERE mailitem_id = ANY($1) AND event_type = 'success'",
      [ids],
    );
    expect(events[0]?.n).toBe(3);
    // Outcomes recorded: nothing is left 'sending' to be sent again when a lease runs out.
    await sleep(1000);
    expect(server.messages).toBe(3);
  });
});
