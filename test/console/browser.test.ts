// The console in a real browser (Debian's chromium driven by playwright-core; no browser download):
// sign in, filter the items, open an HTML mail whose script must not run, sign out; retry a failed item
// and send a test e-mail, both arriving at a real SMTP server through a real sender; as an admin, add an
// account through the form and find it listed. The pages load
// htmx and the style sheet under the strict CSP without a single violation. Skipped, saying why, when
// /usr/bin/chromium is missing (apt-get install chromium); under CI=true it must run.
import { existsSync } from "node:fs";
import type { RunningConsole } from "@pg-dbmail/console";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole } from "../support/database.js";
import { send, sleep, uniqueSubject } from "../support/mail.js";
import { eventually } from "../support/sender.js";
import { type Delivery, startDelivery, withSubject } from "./delivery.js";
import { addPublicProfile, startTestConsole } from "./support.js";

const chromiumPath = "/usr/bin/chromium";
const hasChromium = existsSync(chromiumPath);
if (!hasChromium && process.env.CI === "true") {
  throw new Error(`${chromiumPath} is missing: CI must run the browser test (apt-get install chromium)`);
}

describe.skipIf(!hasChromium)(
  hasChromium ? "the console in a browser" : `the console in a browser: SKIPPED, ${chromiumPath} is missing`,
  () => {
    let db: TestDatabase;
    let web: RunningConsole;
    let browser: Browser;
    let frank: TestRole;
    let grace: TestRole;
    let htmlItem: string;
    let delivery: Delivery | undefined;

    beforeAll(async () => {
      db = await TestDatabase.create();
      await addPublicProfile(db);
      frank = await db.createRole("console_frank", { memberOf: ["dbmail_user"] });
      grace = await db.createRole("console_grace", { memberOf: ["dbmail_admin"] });
      const client = await db.connect(frank);
      await send(client, { recipients: "a@example.com", subject: "plain one", body: "text" });
      htmlItem = await send(client, {
        recipients: "b@example.com",
        subject: "html one",
        body: '<p id="greeting">Hello from the body</p><script>alert("pwned"); document.body.dataset.ran = "yes"</script>',
        body_format: "HTML",
      });
      await db.query(
        "UPDATE dbmail.mailitems SET sent_status = 'sent', sent_date = now() WHERE mailitem_id = $1",
        [htmlItem],
      );
      web = await startTestConsole(db);
      // As root, chromium runs only without its own sandbox (the page's iframe sandbox is another matter).
      browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
    });

    afterAll(async () => {
      await browser?.close();
      await delivery?.stop();
      await web?.close();
      await db?.drop();
    });

    it("signs in, filters the items, opens an HTML mail without running its script, and signs out", async () => {
      const page = await browser.newPage();
      const violations: string[] = [];
      page.on("console", (message) => {
        if (/Content.Security.Policy/i.test(message.text())) violations.push(message.text());
      });
      const dialogs: string[] = [];
      page.on("dialog", async (dialog) => {
        dialogs.push(dialog.message());
        await dialog.dismiss();
      });

      await page.goto(`${web.url}/items`);
      expect(new URL(page.url()).pathname).toBe("/login");
      await page.fill('input[name="username"]', frank.name);
      await page.fill('input[name="password"]', "test");
      await page.click('button[type="submit"]');
      await page.waitForURL(`${web.url}/`);
      expect(await page.textContent("h1")).toBe("Overview");
      expect(await page.evaluate(() => typeof (globalThis as { htmx?: unknown }).htmx)).toBe("object");

      await page.click('nav a[href="/items"]');
      await page.waitForURL(`${web.url}/items`);
      expect(await page.locator("#items tbody tr").count()).toBe(2);
      await page.selectOption('select[name="status"]', "sent");
      await page.click('form.filters button[type="submit"]');
      await page.waitForURL(/status=sent/);
      await expect.poll(() => page.locator("#items tbody tr").count()).toBe(1);
      expect(await page.locator("#items tbody").textContent()).toContain("html one");
      expect(violations).toEqual([]);

      await page.click(`a[href="/items/${htmlItem}"]`);
      await page.waitForURL(`${web.url}/items/${htmlItem}`);
      const body = page.frameLocator("iframe.body");
      expect(await body.locator("#greeting").textContent()).toBe("Hello from the body");
      expect(await body.locator("body").getAttribute("data-ran")).toBeNull();
      expect(dialogs).toEqual([]);

      await page.click('button:has-text("Sign out")');
      await page.waitForURL(`${web.url}/login`);
      await page.goto(`${web.url}/`);
      expect(new URL(page.url()).pathname).toBe("/login");
      await page.close();
    });

    it("retries a failed item and sends a test e-mail, both arriving at the SMTP server", async () => {
      // The first test's items name a placeholder server: out of the way before a sender starts.
      await db.query("UPDATE dbmail.mailitems SET sent_status = 'failed' WHERE sent_status = 'unsent'");
      delivery = await startDelivery(db);
      const smtp = delivery.smtp;
      const client = await db.connect(frank);
      const retried = uniqueSubject("browser retry");
      const failed = await send(client, {
        recipients: "r@example.com",
        subject: retried,
        body: "again",
        send_at: new Date(Date.now() + 3_600_000),
      });
      await db.query(
        "UPDATE dbmail.mailitems SET sent_status = 'failed', sent_date = now() WHERE mailitem_id = $1",
        [failed],
      );

      const page = await browser.newPage();
      const violations: string[] = [];
      page.on("console", (message) => {
        if (/Content.Security.Policy/i.test(message.text())) violations.push(message.text());
      });
      await page.goto(`${web.url}/login`);
      await page.fill('input[name="username"]', frank.name);
      await page.fill('input[name="password"]', "test");
      await page.click('button[type="submit"]');
      await page.waitForURL(`${web.url}/`);

      await page.goto(`${web.url}/items/${failed}`);
      await page.click('form.actions button:has-text("Retry")');
      await expect
        .poll(() => page.locator(".results").textContent())
        .toContain("1 item put back in the queue");
      await eventually(async () => withSubject(smtp, retried).length > 0);
      await sleep(500);
      expect(withSubject(smtp, retried)).toHaveLength(1);

      await page.click('nav a[href="/send-test"]');
      await page.waitForURL(`${web.url}/send-test`);
      const subject = uniqueSubject("browser test mail");
      await page.fill('input[name="recipients"]', "browser@example.com");
      await page.fill('input[name="subject"]', subject);
      await page.click('form.send-test button[type="submit"]');
      // The status fragment polls once a second until the sender has sent it.
      await expect.poll(() => page.locator("#status b").textContent(), { timeout: 15_000 }).toBe("sent");
      const [mail] = withSubject(smtp, subject);
      expect(mail?.envelope.to).toEqual(["browser@example.com"]);
      expect(violations).toEqual([]);
      await page.close();
    });

    it("as an admin, adds an account through the form, sees it listed, and its secret never comes back", async () => {
      const page = await browser.newPage();
      const violations: string[] = [];
      page.on("console", (message) => {
        if (/Content.Security.Policy/i.test(message.text())) violations.push(message.text());
      });
      await page.goto(`${web.url}/login`);
      await page.fill('input[name="username"]', grace.name);
      await page.fill('input[name="password"]', "test");
      await page.click('button[type="submit"]');
      await page.waitForURL(`${web.url}/`);

      await page.click('nav a[href="/accounts"]');
      await page.waitForURL(`${web.url}/accounts`);
      await page.click('a[href="/accounts/new"]');
      await page.waitForURL(`${web.url}/accounts/new`);
      await page.fill('input[name="account_name"]', "browser-added");
      await page.fill('input[name="email_address"]', "ops@example.com");
      await page.fill('input[name="mailserver_name"]', "smtp.example.com");
      await page.fill('input[name="port"]', "587");
      await page.selectOption('select[name="security"]', "starttls");
      await page.fill('input[name="username"]', "ops@example.com");
      await page.fill('input[name="password"]', "browser-secret-77");
      await page.click('button:has-text("Add account")');
      await expect.poll(() => page.textContent("p.done")).toBe("Account browser-added added.");
      const row = page.locator("#accounts tbody tr", { hasText: "browser-added" });
      expect(await row.locator("td").nth(4).textContent()).toBe("starttls");
      expect(await row.textContent()).toContain("password: literal");

      await row.locator('a:has-text("browser-added")').click();
      await page.waitForURL(/\/accounts\/\d+$/);
      expect(await page.inputValue('input[name="password"]')).toBe("");
      expect(await page.content()).not.toContain("browser-secret-77");
      expect(violations).toEqual([]);
      await page.close();
    });
  },
);
