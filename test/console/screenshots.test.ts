// The pictures of docs/console.md: a real sender delivers a few mails through a real SMTP server (one
// accepted with an attachment, one refused for good, one put off), then chromium signs in as dbmail
// dev does (the demo role, without a password) and takes a PNG of each page into docs/console/.
// Only with UPDATE_CONSOLE_SCREENSHOTS=1, so that test runs never rewrite the committed pictures; the
// check that docs/console.md shows each picture, and only pictures that exist, runs always.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import type { RunningConsole } from "@pg-dbmail/console";
import type { Sender } from "@pg-dbmail/sender";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, withClient } from "../support/database.js";
import { profileWith, send } from "../support/mail.js";
import { addAccount, eventually, startSender } from "../support/sender.js";
import { TestSmtpServer } from "../support/smtp.js";
import { startTestConsole } from "./support.js";

const docs = new URL("../../docs/", import.meta.url).pathname;
const pictures = `${docs}console/`;
const chromiumPath = "/usr/bin/chromium";
const demoRole = "dbmail_demo";
const update = process.env.UPDATE_CONSOLE_SCREENSHOTS === "1";
const skipReason = !update
  ? "set UPDATE_CONSOLE_SCREENSHOTS=1 to retake them"
  : existsSync(chromiumPath)
    ? undefined
    : `${chromiumPath} is missing (apt-get install chromium)`;

describe("docs/console.md", () => {
  it("shows every picture of docs/console/, and each one it shows is a PNG there", () => {
    const text = readFileSync(`${docs}console.md`, "utf8");
    const shown = [...text.matchAll(/!\[[^\]]+\]\(console\/([\w-]+\.png)\)/g)].map((m) => m[1]).sort();
    const files = readdirSync(pictures)
      .filter((f) => f.endsWith(".png"))
      .sort();
    expect(shown).toEqual(files);
    for (const file of files) {
      expect(readFileSync(`${pictures}${file}`).subarray(0, 8).toString("hex"), file).toBe(
        "89504e470d0a1a0a",
      );
    }
  });
});

describe.skipIf(skipReason !== undefined)(
  skipReason ? `the console's screenshots: SKIPPED, ${skipReason}` : "the console's screenshots",
  () => {
    let db: TestDatabase;
    let smtp: TestSmtpServer;
    let sender: Sender;
    let web: RunningConsole;
    let browser: Browser;
    let report: string;

    beforeAll(async () => {
      db = await TestDatabase.create();
      smtp = await TestSmtpServer.start({
        behaviour: {
          onRcptTo: (address) =>
            address === "former.colleague@example.com"
              ? { code: 550, message: "5.1.1 <former.colleague@example.com>: mailbox unavailable" }
              : address === "busy@example.com"
                ? { code: 451, message: "4.2.1 mailbox busy, try again later" }
                : undefined,
        },
      });
      await addAccount(db, "ops", smtp, { display_name: "Operations", description: "the office relay" });
      await profileWith(db, "ops", ["ops"], true);
      // The role dbmail dev signs in, by its own name (roles are cluster-wide: the name is taken for
      // the test's length; test roles otherwise carry a suffix).
      await db.query(`CREATE ROLE ${demoRole} LOGIN PASSWORD 'test' IN ROLE dbmail_admin`);
      const app = await db.connect(await db.createRole("app", { memberOf: ["dbmail_user"] }));
      await send(app, {
        recipients: "dba@example.com",
        subject: "Backup done",
        body: "Nightly backup finished in 12 min.",
      });
      report = await send(app, {
        recipients: "finance@example.com",
        copy_recipients: "cfo@example.com",
        subject: "Monthly invoices",
        body: "<h2>Invoices, November</h2><p>42 invoices, 18,430.00 EUR in total. The list is attached.</p>",
        body_format: "HTML",
        attachments: [
          { filename: "invoices-2026-11.csv", content: Buffer.from("number,amount\n1042,310.00\n") },
        ],
      });
      await send(app, {
        recipients: "former.colleague@example.com",
        subject: "Weekly report",
        body: "The report.",
      });
      await send(app, { recipients: "busy@example.com", subject: "Disk 90% full on db1", body: "/data" });
      sender = await startSender(await db.createRole("sender", { memberOf: ["dbmail_sender"] }));
      await eventually(async () => {
        const { rows } = await db.query("SELECT sent_status FROM dbmail.sysmail_allitems");
        const statuses = rows.map((r) => r.sent_status).sort();
        return statuses.join() === "failed,retrying,sent,sent";
      }, 30_000);
      web = await startTestConsole(db, { demoLogin: { role: demoRole, password: "test" } });
      browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
    }, 60_000);

    afterAll(async () => {
      await browser?.close();
      await web?.close();
      await sender?.stop(5000);
      await smtp?.stop();
      await db?.drop();
      if (db) await withClient(db.adminUrl, (c) => c.query(`DROP ROLE IF EXISTS ${demoRole}`));
    });

    it("signs in as the demo role and takes a picture of each page", async () => {
      const page = await browser.newPage({ viewport: { width: 1200, height: 760 } });
      // The whole page, through a viewport as tall as it: a full-page capture leaves the sandboxed
      // iframe of an HTML body blank.
      const shoot = async (name: string) => {
        const height = await page.evaluate<number>("document.documentElement.scrollHeight");
        await page.setViewportSize({ width: 1200, height: Math.max(760, height) });
        await page.screenshot({ path: `${pictures}${name}.png` });
        await page.setViewportSize({ width: 1200, height: 760 });
      };
      await page.goto(`${web.url}/login`);
      await shoot("login");
      await page.click(`button:has-text("Sign in as ${demoRole}")`);
      await page.waitForURL(`${web.url}/`);
      expect(await page.textContent("h1")).toBe("Overview");
      await shoot("overview");
      await page.click('nav a[href="/items"]');
      await page.waitForURL(`${web.url}/items`);
      expect(await page.locator("#items tbody tr").count()).toBe(4);
      await shoot("items");
      await page.click(`a[href="/items/${report}"]`);
      await page.waitForURL(`${web.url}/items/${report}`);
      await page.frameLocator("iframe.body").locator("h2").waitFor();
      await shoot("item");
      await page.click('nav a[href="/events"]');
      await page.waitForURL(`${web.url}/events`);
      await shoot("events");
      for (const [path, name] of [
        ["/send-test", "send-test"],
        ["/accounts", "accounts"],
        ["/profiles", "profiles"],
        ["/settings", "settings"],
      ]) {
        await page.click(`nav a[href="${path}"]`);
        await page.waitForURL(`${web.url}${path}`);
        await shoot(name as string);
      }
      await page.close();
    });
  },
);
