// dbmail dev's password-less sign-in (SPEC.md section 12, issue 16): with `demoLogin` the console signs
// its demo role in without a typed password, on loopback only. Refused for any other role, from a
// foreign page, with --allow-remote or a non-loopback address; `dbmail console` never offers it.
// (This file's PostgreSQL trusts local connections: that the stored password is the one used is shown by
// test/cli/dev.test.ts, against dbmail dev's own PostgreSQL, which checks passwords.)
import type { RunningConsole } from "@pg-dbmail/console";
import { startConsole } from "@pg-dbmail/console";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanUpProcessesAndFiles, launch, stop } from "../support/cli.js";
import { TestDatabase, type TestRole } from "../support/database.js";
import { startTestConsole, Visitor } from "./support.js";

cleanUpProcessesAndFiles();

const notice = (role: string) =>
  `Development mode: sign in as ${role} without a password (only on this machine)`;

describe("the console's demo sign-in (dbmail dev)", () => {
  let db: TestDatabase;
  let demo: TestRole;
  let other: TestRole;
  let dev: RunningConsole;
  let plain: RunningConsole;

  beforeAll(async () => {
    db = await TestDatabase.create();
    demo = await db.createRole("console_demo", { memberOf: ["dbmail_admin"] });
    other = await db.createRole("console_other", { memberOf: ["dbmail_admin"] });
    dev = await startTestConsole(db, { demoLogin: { role: demo.name, password: "test" } });
    plain = await startTestConsole(db);
  });

  afterAll(async () => {
    await dev?.close();
    await plain?.close();
    await db?.drop();
  });

  it("on loopback, says so on /login and signs the demo role in without a password", async () => {
    const visitor = new Visitor(dev.url);
    const login = await visitor.get("/login");
    expect(login.status).toBe(200);
    expect(login.text).toContain(notice(demo.name));
    expect(login.text).toContain(`<input type="hidden" name="username" value="${demo.name}"/>`);
    const signIn = await visitor.post("/login", { username: demo.name });
    expect(signIn.status).toBe(303);
    expect(signIn.headers.get("Location")).toBe("/");
    const overview = await visitor.get("/");
    expect(overview.status).toBe(200);
    expect(overview.text).toContain("<h1>Overview</h1>");
    expect(overview.text).toContain(`<span class="who">${demo.name}</span>`);
  });

  it("signs no other role in without a password", async () => {
    const visitor = new Visitor(dev.url);
    await visitor.get("/login");
    const refused = await visitor.post("/login", { username: other.name, password: "" });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain("password: required");
    expect((await visitor.get("/")).status).toBe(303);
  });

  it("refuses the demo sign-in from another site's page (Origin) or without the form's token", async () => {
    for (const options of [{ origin: "http://evil.example" }, { origin: null }, { csrf: null }]) {
      const visitor = new Visitor(dev.url);
      await visitor.get("/login");
      const refused = await visitor.post("/login", { username: demo.name }, options);
      expect(refused.status, JSON.stringify(options)).toBe(403);
      expect(visitor.cookie("dbmail_session")).toBeUndefined();
      expect((await visitor.get("/")).status).toBe(303);
    }
  });

  it("without dev mode, /login does not offer it and an empty password is refused", async () => {
    const visitor = new Visitor(plain.url);
    const login = await visitor.get("/login");
    expect(login.text).not.toContain("Development mode");
    const refused = await visitor.post("/login", { username: demo.name });
    expect(refused.status).toBe(400);
    expect(refused.text).toContain("password: required");
  });

  it("is refused with --allow-remote or a non-loopback address, even when configured", async () => {
    const demoLogin = { role: demo.name, password: "test" };
    for (const [listen, allowRemote] of [
      ["127.0.0.1:0", true],
      ["0.0.0.0:0", true],
    ] as const) {
      await expect(startConsole({ listen, allowRemote, databaseUrl: db.url, demoLogin })).rejects.toThrow(
        `--listen: "${listen}": the password-less sign-in of dbmail dev is only for a console on loopback ` +
          "without --allow-remote",
      );
    }
  });

  it("the production `dbmail console` never offers it", async () => {
    const proc = launch(["console", "--listen", "127.0.0.1:0", "--database-url", db.url]);
    const printed = await proc.waitForOutput(/dbmail console on (http:\/\/\S+)/);
    const url = /dbmail console on (\S+)/.exec(printed)?.[1] as string;
    const visitor = new Visitor(url);
    const login = await visitor.get("/login");
    expect(login.status).toBe(200);
    expect(login.text).not.toContain("Development mode");
    expect((await visitor.post("/login", { username: demo.name })).status).toBe(400);
    expect((await stop(proc)).code).toBe(0);
  });
});
