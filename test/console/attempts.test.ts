// The SMTP attempts of an item on /items/<id> (sysmail_attempts): a failover shows both attempts, the
// first server's 451 and the second's acceptance; a server's reply is shown escaped, whatever it holds.
import type { RunningConsole } from "@pg-dbmail/console";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole } from "../support/database.js";
import { profileWith, send, unique, uniqueSubject } from "../support/mail.js";
import { addAccount } from "../support/sender.js";
import { TestSmtpServer } from "../support/smtp.js";
import { type Delivery, reaches, startDelivery } from "./delivery.js";
import { startTestConsole, Visitor } from "./support.js";

let db: TestDatabase;
let web: RunningConsole;
let delivery: Delivery;
let greylisting: TestSmtpServer;
let alice: TestRole;
let aliceDb: pg.Client;
let failover: string;

/** The cells of each row of the attempts table. */
function attemptRows(html: string): string[][] {
  const table = /<table id="attempts">([\s\S]*?)<\/table>/.exec(html)?.[1] ?? "";
  const body = /<tbody>([\s\S]*)<\/tbody>/.exec(table)?.[1] ?? "";
  return [...body.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((row) =>
    [...(row[1] ?? "").matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((cell) => cell[1] ?? ""),
  );
}

beforeAll(async () => {
  db = await TestDatabase.create();
  delivery = await startDelivery(db);
  greylisting = await TestSmtpServer.start({
    behaviour: { onMailFrom: () => ({ code: 451, message: "4.7.1 greylisted, come back later" }) },
  });
  const first = unique("grey");
  const second = unique("good");
  await addAccount(db, first, greylisting);
  await addAccount(db, second, delivery.smtp);
  failover = unique("failover");
  await profileWith(db, failover, [first, second], false);
  alice = await db.createRole("console_alice", { memberOf: ["dbmail_user"] });
  aliceDb = await db.connect(alice);
  web = await startTestConsole(db);
});

afterAll(async () => {
  await web?.close();
  await delivery?.stop();
  await greylisting?.stop();
  await db?.drop();
});

describe("an item's SMTP attempts in the console", () => {
  it("shows a failover's two attempts: the first server's 451, then the second accepting", async () => {
    const subject = uniqueSubject("failover");
    const id = await send(aliceDb, {
      profile_name: failover,
      recipients: "x@example.com",
      subject,
      body: "b",
    });
    await reaches(db, id, "sent");
    const visitor = new Visitor(web.url);
    await visitor.signIn(alice.name);
    const page = await visitor.get(`/items/${id}`);
    expect(page.status).toBe(200);
    const rows = attemptRows(page.text);
    expect(rows).toHaveLength(2);
    const [refused, accepted] = rows as [string[], string[]];
    expect(refused[5]).toBe("451");
    expect(refused[6]).toContain("greylisted, come back later");
    expect(accepted[4]).toMatch(/sent/);
    expect(accepted[5]).toBe("250");
    expect(refused[1]).not.toBe(accepted[1]);
  });

  it("escapes a server reply that carries markup", async () => {
    delivery.smtp.behaviour.onRcptTo = (address) =>
      address.startsWith("markup")
        ? { code: 550, message: '<script>alert("smtp")</script><img src=x onerror=alert(1)> no' }
        : undefined;
    const id = await send(aliceDb, {
      recipients: "markup@example.com",
      subject: uniqueSubject("markup"),
      body: "b",
    });
    await reaches(db, id, "failed");
    const visitor = new Visitor(web.url);
    await visitor.signIn(alice.name);
    const page = await visitor.get(`/items/${id}`);
    const rows = attemptRows(page.text);
    expect(rows).toHaveLength(1);
    expect(rows[0]?.[5]).toBe("550");
    expect(rows[0]?.[6]).toContain(
      "&lt;script&gt;alert(&quot;smtp&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;",
    );
    expect(page.text).not.toContain("<script>alert");
    expect(page.text).not.toContain("<img src=x");
  });
});
