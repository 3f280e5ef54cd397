// The console's security boundaries (SPEC.md section 12), each crossed over HTTP: a signed-out visitor,
// another site's POST, a POST without the CSRF token, a session after logout and after its idle time,
// guessed passwords, a role without dbmail rights, another role's item, and the cookie's flags.
import { get } from "node:http";
import type { RunningConsole } from "@pg-dbmail/console";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TestDatabase, type TestRole } from "../support/database.js";
import { send, sleep } from "../support/mail.js";
import { eventually } from "../support/sender.js";
import { addPublicProfile, startTestConsole, Visitor } from "./support.js";

let db: TestDatabase;
let web: RunningConsole;
let alice: TestRole;
let bob: TestRole;
let nobody: TestRole;
let aliceItem: string;

/** The console's connections open as `role`, seen from the server. */
async function connectionsOf(role: TestRole): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    "SELECT count(*)::integer AS n FROM pg_stat_activity WHERE usename = $1 AND application_name = 'dbmail console'",
    [role.name],
  );
  return rows[0]?.n ?? 0;
}

beforeAll(async () => {
  db = await TestDatabase.create();
  await addPublicProfile(db);
  alice = await db.createRole("console_alice", { memberOf: ["dbmail_user"] });
  bob = await db.createRole("console_bob", { memberOf: ["dbmail_user"] });
  nobody = await db.createRole("console_nobody");
  const client: pg.Client = await db.connect(alice);
  aliceItem = await send(client, { recipients: "alice@example.com", subject: "alice's own", body: "hi" });
  web = await startTestConsole(db);
});

afterAll(async () => {
  await web?.close();
  await db?.drop();
});

describe("the console's security", () => {
  it("sends a signed-out visitor to /login, for pages, bodies and attachments alike", async () => {
    const visitor = new Visitor(web.url);
    for (const path of ["/", "/items", `/items/${aliceItem}`, `/items/${aliceItem}/body`, "/events"]) {
      const page = await visitor.get(path);
      expect(page.status, path).toBe(303);
      expect(page.headers.get("Location"), path).toBe("/login");
    }
    // An htmx request is told to load the sign-in page rather than to swap it into the page.
    const htmx = await visitor.get("/items", { "HX-Request": "true" });
    expect(htmx.status).toBe(401);
    expect(htmx.headers.get("HX-Redirect")).toBe("/login");
    expect((await visitor.post("/logout", {})).headers.get("Location")).toBe("/login");
  });

  it("sets the session cookie HttpOnly, SameSite=Strict, Path=/ (not Secure over plain http), new at each sign-in", async () => {
    const visitor = new Visitor(web.url);
    await visitor.get("/login");
    const signedIn = await visitor.post("/login", { username: alice.name, password: "test" });
    expect(signedIn.status).toBe(303);
    const cookie = signedIn.headers.getSetCookie().find((c) => c.startsWith("dbmail_session="));
    expect(cookie).toBeDefined();
    const flags = (cookie ?? "").split(";").map((f) => f.trim().toLowerCase());
    expect(flags).toContain("httponly");
    expect(flags).toContain("samesite=strict");
    expect(flags).toContain("path=/");
    expect(flags).not.toContain("secure");
    // A session id planted before sign-in is not adopted: the id is new and random.
    const planted = new Visitor(web.url);
    planted.plant("dbmail_session", "planted-by-attacker");
    await planted.signIn(alice.name);
    expect(planted.cookie("dbmail_session")).toMatch(/^[\w-]{43}$/);
    expect(planted.cookie("dbmail_session")).not.toBe(visitor.cookie("dbmail_session"));
  });

  it("answers every page with the strict CSP, nosniff and no referrer to other sites", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(alice.name);
    const page = await visitor.get("/items");
    expect(page.status).toBe(200);
    const csp = page.headers.get("Content-Security-Policy") ?? "";
    for (const directive of [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "object-src 'none'",
      "base-uri 'none'",
      "form-action 'self'",
      "frame-ancestors 'none'",
    ]) {
      expect(csp).toContain(directive);
    }
    expect(csp).not.toContain("unsafe");
    expect(page.headers.get("X-Content-Type-Options")).toBe("nosniff");
    expect(page.headers.get("Referrer-Policy")).toBe("same-origin");
    // No inline script anywhere: the one script is htmx, from the console itself.
    expect([...page.text.matchAll(/<script[^>]*>/g)].map((m) => m[0])).toEqual([
      '<script src="/assets/htmx.min.js" defer="">',
    ]);
    const htmx = await visitor.get("/assets/htmx.min.js");
    expect(htmx.status).toBe(200);
    expect(htmx.text).toContain("htmx");
  });

  it("refuses a POST from another site (its Origin, or none), and the session goes on", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(alice.name);
    const crossSite = await visitor.post("/logout", {}, { origin: "https://evil.example" });
    expect(crossSite.status).toBe(403);
    expect(crossSite.text).toContain("did not come from a page of the console");
    expect((await visitor.post("/logout", {}, { origin: null })).status).toBe(403);
    expect((await visitor.get("/")).status).toBe(200);
    // Nor can another site sign a browser in.
    const other = new Visitor(web.url);
    await other.get("/login");
    const signIn = await other.post(
      "/login",
      { username: alice.name, password: "test" },
      { origin: "http://attacker.example" },
    );
    expect(signIn.status).toBe(403);
    expect(other.cookie("dbmail_session")).toBeUndefined();
  });

  it("refuses a POST without the session's CSRF token, or with another's", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(alice.name);
    const missing = await visitor.post("/logout", {}, { csrf: null });
    expect(missing.status).toBe(403);
    expect(missing.text).toContain("CSRF token is missing or wrong");
    const other = new Visitor(web.url);
    await other.signIn(bob.name);
    expect((await visitor.post("/logout", {}, { csrf: other.csrf ?? "" })).status).toBe(403);
    expect((await visitor.get("/")).status).toBe(200);
    // The sign-in form's token is checked too.
    const fresh = new Visitor(web.url);
    await fresh.get("/login");
    expect(
      (await fresh.post("/login", { username: alice.name, password: "test" }, { csrf: "x" })).status,
    ).toBe(403);
  });

  it("ends the session at logout: the old cookie is refused and its connections are closed", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(alice.name);
    const cookie = visitor.cookie("dbmail_session") as string;
    expect(await connectionsOf(alice)).toBeGreaterThan(0);
    const out = await visitor.post("/logout", {});
    expect(out.status).toBe(303);
    expect(out.headers.get("Location")).toBe("/login");
    const replay = await fetch(new URL("/", web.url), {
      redirect: "manual",
      headers: { Cookie: `dbmail_session=${cookie}` },
    });
    expect(replay.status).toBe(303);
    expect(replay.headers.get("Location")).toBe("/login");
    // Other tests' sessions of alice may still be open; sign them all out to count.
    await eventually(async () => {
      await web.close();
      return (await connectionsOf(alice)) === 0;
    });
    web = await startTestConsole(db);
  });

  it("ends a session idle longer than the idle timeout", async () => {
    const short = await startTestConsole(db, { idleTimeoutMs: 400 });
    try {
      const visitor = new Visitor(short.url);
      await visitor.signIn(bob.name);
      expect((await visitor.get("/")).status).toBe(200);
      await sleep(300);
      expect((await visitor.get("/")).status).toBe(200);
      await sleep(600);
      const expired = await visitor.get("/");
      expect(expired.status).toBe(303);
      expect(expired.headers.get("Location")).toBe("/login");
      await eventually(async () => (await connectionsOf(bob)) === 0);
    } finally {
      await short.close();
    }
  });

  it("slows down failed sign-ins: a retry before the wait is refused without trying", async () => {
    const visitor = new Visitor(web.url);
    // Another user name from the same address is not held up by the first failures.
    const neighbour = new Visitor(web.url);
    await visitor.get("/login");
    const wrong = await visitor.post("/login", { username: "no_such_role_console", password: "guess" });
    expect(wrong.status).toBe(401);
    expect(wrong.text).toContain("Sign-in failed: the user name or password is wrong.");
    const again = await visitor.post("/login", { username: "no_such_role_console", password: "guess2" });
    expect(again.status).toBe(429);
    expect(again.headers.get("Retry-After")).toBe("1");
    expect(again.text).toContain("Too many failed sign-ins: try again in 1 s.");
    // The wait doubles with the next failure.
    await sleep(1100);
    expect((await visitor.post("/login", { username: "no_such_role_console", password: "g3" })).status).toBe(
      401,
    );
    const later = await visitor.post("/login", { username: "no_such_role_console", password: "g4" });
    expect(later.status).toBe(429);
    expect(later.headers.get("Retry-After")).toBe("2");
    expect((await neighbour.signIn(alice.name)).status).toBe(303);
    // Guesses sent all at once get no further: one is tried, the others wait.
    const parallel = new Visitor(web.url);
    await parallel.get("/login");
    const guesses = await Promise.all(
      [1, 2, 3, 4, 5].map((n) =>
        parallel.post("/login", { username: "no_such_role_parallel", password: `g${n}` }),
      ),
    );
    expect(guesses.map((g) => g.status).sort()).toEqual([401, 429, 429, 429, 429]);
  });

  it("signs in a role without dbmail rights and tells it that it has no access, holding no connection", async () => {
    const visitor = new Visitor(web.url);
    const signedIn = await visitor.signIn(nobody.name);
    expect(signedIn.status).toBe(303);
    for (const path of ["/", "/items", `/items/${aliceItem}`, "/events"]) {
      const page = await visitor.get(path);
      expect(page.status, path).toBe(403);
      expect(page.text).toContain(`The role ${nobody.name} has no access to Database Mail`);
      expect(page.text).not.toContain("alice&#39;s own");
    }
    expect(await connectionsOf(nobody)).toBe(0);
    expect((await visitor.post("/logout", {})).status).toBe(303);
  });

  it("answers another role's item exactly as a missing one: 404, for the page, the body and attachments", async () => {
    const visitor = new Visitor(web.url);
    await visitor.signIn(bob.name);
    const missing = await visitor.get("/items/999999999");
    expect(missing.status).toBe(404);
    for (const path of [
      `/items/${aliceItem}`,
      `/items/${aliceItem}/body`,
      `/items/${aliceItem}/attachments/1`,
    ]) {
      const page = await visitor.get(path);
      expect(page.status, path).toBe(404);
      expect(page.text, path).toBe(missing.text);
    }
    expect((await visitor.get("/items")).text).not.toContain("alice&#39;s own");
    const owner = new Visitor(web.url);
    await owner.signIn(alice.name);
    expect((await owner.get(`/items/${aliceItem}`)).text).toContain("alice&#39;s own");
  });

  it("refuses a body larger than any of its forms before reading it", async () => {
    const visitor = new Visitor(web.url);
    await visitor.get("/login");
    const huge = await visitor.post("/login", { username: "x".repeat(100_000), password: "y" });
    expect(huge.status).toBe(413);
  });

  it("answers only to a loopback Host name while listening on loopback (no DNS rebinding)", async () => {
    // fetch() will not send another Host, so this is a plain http.get.
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const url = new URL("/login", web.url);
      get(url, { headers: { Host: `evil.example:${url.port}` } }, (response) => {
        response.resume();
        resolve(response.statusCode);
      }).on("error", reject);
    });
    expect(status).toBe(421);
  });
});
