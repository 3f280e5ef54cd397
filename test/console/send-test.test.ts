// "Send test e-mail" (/send-test): a dbmail_user's test mail goes through sp_send_dbmail as that user
// and arrives at the SMTP server; the page follows its status until it is sent. A refusal from
// sp_send_dbmail is shown as it reads, escaped; admins choose among all profiles; another user's item
// status is not found.
import type { RunningConsole } from "@pg-dbmail/console";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole } from "../support/database.js";
import { uniqueSubject } from "../support/mail.js";
import { eventually } from "../support/sender.js";
import { type Delivery, reaches, startDelivery, withSubject } from "./delivery.js";
import { startTestConsole, Visitor } from "./support.js";

let db: TestDatabase;
let web: RunningConsole;
let delivery: Delivery;
let alice: TestRole;
let bob: TestRole;
let admin: TestRole;

beforeAll(async () => {
  db = await TestDatabase.create();
  delivery = await startDelivery(db);
  alice = await db.createRole("console_alice", { memberOf: ["dbmail_user"] });
  bob = await db.createRole("console_bob", { memberOf: ["dbmail_user"] });
  admin = await db.createRole("console_admin", { memberOf: ["dbmail_admin"] });
  web = await startTestConsole(db);
});

afterAll(async () => {
  await web?.close();
  await delivery?.stop();
  await db?.drop();
});

describe("send test e-mail", () => {
  it("queues a dbmail_user's test mail, which arrives, and follows its status until sent", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(alice.name);
    const form = await visitor.get("/send-test");
    expect(form.status).toBe(200);
    expect(form.text).toContain('placeholder="empty: your default profile"');
    const subject = uniqueSubject("console test");
    const sent = await visitor.post("/send-test", {
      profile: "",
      recipients: "tester@example.com",
      subject,
      body: "hello from the console",
    });
    expect(sent.status).toBe(200);
    const id = /href="\/items\/(\d+)">mail item \1</.exec(sent.text)?.[1] as string;
    expect(id).toBeDefined();
    expect(sent.text).toContain(`hx-get="/items/${id}/status"`);
    expect(sent.text).toContain('hx-trigger="load delay:1s"');

    const [mail] = await eventually(async () => {
      const found = withSubject(delivery.smtp, subject);
      return found.length > 0 ? found : undefined;
    });
    expect(mail?.envelope.to).toEqual(["tester@example.com"]);
    expect(mail?.parsed.text?.trim()).toBe("hello from the console");
    const { rows } = await db.query("SELECT send_request_user FROM dbmail.mailitems WHERE mailitem_id = $1", [
      id,
    ]);
    expect(rows[0]?.send_request_user).toBe(alice.name);

    await reaches(db, id, "sent");
    const status = await visitor.get(`/items/${id}/status`);
    expect(status.text).toContain("<b>sent</b>");
    // Final: the fragment asks for nothing more.
    expect(status.text).not.toContain("hx-get");
    expect(status.text).not.toContain("<html");
  });

  it("shows sp_send_dbmail's refusal next to the form, escaped, with the fields kept", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(alice.name);
    const refused = await visitor.post("/send-test", {
      profile: "<b>nope</b>",
      recipients: "tester@example.com",
      subject: "kept subject",
      body: "b",
    });
    expect(refused.status).toBe(422);
    expect(refused.text).toMatch(
      /<ul class="problems" role="alert"><li>profile_name: &quot;&lt;b&gt;nope&lt;\/b&gt;&quot;/,
    );
    expect(refused.text).toContain('value="kept subject"');
    expect(refused.text).not.toContain("<b>nope</b>");
  });

  it("lets an admin choose among all profiles", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(admin.name);
    const form = await visitor.get("/send-test");
    expect(form.text).toContain(`<option value="${delivery.profile}">${delivery.profile}</option>`);
    const subject = uniqueSubject("admin test");
    const sent = await visitor.post("/send-test", {
      profile: delivery.profile,
      recipients: "a@example.com",
      subject,
    });
    expect(sent.status).toBe(200);
    await eventually(async () => withSubject(delivery.smtp, subject).length === 1);
  });

  it("does not show another user's item status", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(alice.name);
    const sent = await visitor.post("/send-test", {
      recipients: "t@example.com",
      subject: "mine",
      body: "b",
    });
    const id = /href="\/items\/(\d+)"/.exec(sent.text)?.[1] as string;
    const other = new Visitor(web.url);
    await other.signIn(bob.name);
    expect((await other.get(`/items/${id}/status`)).status).toBe(404);
    expect((await other.get("/items/x1/status")).status).toBe(404);
  });
});
