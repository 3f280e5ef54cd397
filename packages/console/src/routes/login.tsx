import { getConnInfo } from "@hono/node-server/conninfo";
import { type Context, Hono } from "hono";
import type { ConsoleEnv } from "../context.js";
import type { Cookies } from "../cookies.js";
import { type DemoLogin, isLoopback } from "../options.js";
import { csrfField, hasCsrfToken } from "../security/csrf.js";
import type { SignInThrottle } from "../security/throttle.js";
import { randomToken, type SessionStore } from "../sessions.js";
import { signIn } from "../sign-in.js";
import { Layout, Problems } from "../views/layout.js";

export interface SignInDeps {
  databaseUrl: string | undefined;
  /** dbmail dev's password-less sign-in (only ever set on loopback: checkOptions refuses it elsewhere). */
  demoLogin: DemoLogin | undefined;
  sessions: SessionStore;
  throttle: SignInThrottle;
  cookies: Cookies;
}

/** GET and POST /login: a sign-in with the person's own PostgreSQL role. */
export function loginRoutes({ databaseUrl, demoLogin, sessions, throttle, cookies }: SignInDeps) {
  // The form carries a token that must match a cookie set with it, so another site cannot sign a
  // browser in under the attacker's role (there is no session yet to hold a token). The cookie is
  // kept while it lasts: a second tab, or the browser's own request for a favicon, must not make the
  // token of a form already shown stale.
  const form = (c: Context, status: 200 | 400 | 401 | 403 | 429 | 503, problems: string[] = []) => {
    const token = cookies.read(c, cookies.signIn) ?? randomToken();
    cookies.write(c, cookies.signIn, token);
    return c.html(
      <Layout title="Sign in">
        <Problems messages={problems} />
        <p>Sign in with your PostgreSQL role: you see what it may see in psql.</p>
        <form method="post" action="/login" class="login">
          <input type="hidden" name={csrfField} value={token} />
          <label>
            User name <input name="username" autocomplete="username" required />
          </label>
          <label>
            Password <input name="password" type="password" autocomplete="current-password" required />
          </label>
          <button type="submit">Sign in</button>
        </form>
        {demoLogin && <DemoSignIn role={demoLogin.role} token={token} />}
      </Layout>,
      status,
    );
  };

  return new Hono<ConsoleEnv>()
    .get("/login", (c) => {
      if (sessions.get(cookies.read(c, cookies.session))) return c.redirect("/", 303);
      return form(c, 200);
    })
    .post("/login", async (c) => {
      const expected = cookies.read(c, cookies.signIn);
      if (expected === undefined || !(await hasCsrfToken(c, expected))) {
        return form(c, 403, ["The sign-in form had expired: please sign in again."]);
      }
      const body = await c.req.parseBody();
      const username = typeof body.username === "string" ? body.username : "";
      const address = getConnInfo(c).remote.address ?? "unknown";
      let password = typeof body.password === "string" ? body.password : "";
      // The demo role signs in without a password, and only from this machine.
      if (password === "" && demoLogin && username === demoLogin.role && isLoopback(address)) {
        password = demoLogin.password;
      }
      if (username === "" || password === "") {
        return form(c, 400, [`${username === "" ? "username" : "password"}: required`]);
      }
      const wait = throttle.wait(username, address);
      if (wait > 0) {
        const seconds = Math.ceil(wait / 1000);
        c.header("Retry-After", String(seconds));
        return form(c, 429, [`Too many failed sign-ins: try again in ${seconds} s.`]);
      }
      if (!throttle.begin(username)) {
        c.header("Retry-After", "1");
        return form(c, 429, ["Another sign-in for this user name is under way: try again in 1 s."]);
      }
      let result: Awaited<ReturnType<typeof signIn>>;
      try {
        result = await signIn(databaseUrl, username, password);
        if (!result.ok && result.reason === "credentials") throttle.failed(username, address);
      } finally {
        throttle.finish(username);
      }
      if (!result.ok) {
        if (result.reason === "unreachable") {
          return form(c, 503, [`The database cannot be reached: ${result.message}`]);
        }
        return form(c, 401, [`Sign-in failed: ${result.message}.`]);
      }
      throttle.succeeded(username);
      // A new session id at every sign-in (never one that was set before), and the old session ends.
      const previous = sessions.get(cookies.read(c, cookies.session));
      if (previous) sessions.end(previous);
      const canRead = result.access === "user" || result.access === "admin";
      // A role that may see nothing keeps no connection open.
      if (!canRead) await result.pool.end();
      const session = sessions.create(result.role, result.access, canRead ? result.pool : undefined);
      cookies.clear(c, cookies.signIn);
      cookies.write(c, cookies.session, session.id);
      return c.redirect("/", 303);
    });
}

/** dbmail dev's sign-in as its demo role: a button, no password (the console holds it). */
function DemoSignIn(props: { role: string; token: string }) {
  return (
    <section class="demo-login">
      <p>{`Development mode: sign in as ${props.role} without a password (only on this machine)`}</p>
      <form method="post" action="/login">
        <input type="hidden" name={csrfField} value={props.token} />
        <input type="hidden" name="username" value={props.role} />
        <button type="submit">{`Sign in as ${props.role}`}</button>
      </form>
    </section>
  );
}
