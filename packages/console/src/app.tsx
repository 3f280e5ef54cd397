import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { ConsoleEnv } from "./context.js";
import { Cookies } from "./cookies.js";
import { NotFound } from "./not-found.js";
import type { DemoLogin } from "./options.js";
import { accountRoutes } from "./routes/accounts.js";
import { actionRoutes } from "./routes/actions.js";
import { assets } from "./routes/assets.js";
import { eventRoutes } from "./routes/events.js";
import { itemRoutes } from "./routes/item.js";
import { itemsRoutes } from "./routes/items.js";
import { loginRoutes } from "./routes/login.js";
import { overviewRoutes } from "./routes/overview.js";
import { profileRoutes } from "./routes/profiles.js";
import { sendTestRoutes } from "./routes/send-test.js";
import { settingRoutes } from "./routes/settings.js";
import { hasCsrfToken } from "./security/csrf.js";
import { securityHeaders } from "./security/headers.js";
import { hostCheck, originCheck } from "./security/origin.js";
import { SignInThrottle } from "./security/throttle.js";
import { SessionStore } from "./sessions.js";
import { Layout, Problems } from "./views/layout.js";

export interface AppConfig {
  databaseUrl: string | undefined;
  secure: boolean;
  loopback: boolean;
  idleTimeoutMs: number;
  signInDelayMs: number;
  demoLogin: DemoLogin | undefined;
}

/** The console's routes behind its checks; `sessions` is returned so the server can close them. */
export function createApp(config: AppConfig): { app: Hono<ConsoleEnv>; sessions: SessionStore } {
  const sessions = new SessionStore(config.idleTimeoutMs);
  const cookies = new Cookies(config.secure);
  const throttle = new SignInThrottle(config.signInDelayMs);
  const app = new Hono<ConsoleEnv>();

  app.use(securityHeaders, hostCheck(config.loopback), originCheck(config.secure));
  // The console's forms are small; a large body is refused before it is read into memory.
  app.use(bodyLimit({ maxSize: 64 * 1024, onError: (c) => c.text("Payload too large", 413) }));
  app.route("/assets", assets);
  // Browsers ask for it on their own; it is not a page to sign in for.
  app.get("/favicon.ico", (c) => c.body(null, 204));
  app.route(
    "/",
    loginRoutes({
      databaseUrl: config.databaseUrl,
      demoLogin: config.demoLogin,
      sessions,
      throttle,
      cookies,
    }),
  );

  // Everything below needs a live session, and every POST (any method but GET and HEAD) its CSRF token.
  app.use(async (c, next) => {
    const session = sessions.get(cookies.read(c, cookies.session));
    if (!session) {
      // htmx follows a redirect inside the page; this header makes it load the sign-in page instead.
      if (c.req.header("HX-Request")) {
        c.header("HX-Redirect", "/login");
        return c.body(null, 401);
      }
      return c.redirect("/login", 303);
    }
    if (c.req.method !== "GET" && c.req.method !== "HEAD" && !(await hasCsrfToken(c, session.csrfToken))) {
      return c.text("Forbidden: the form's CSRF token is missing or wrong; reload the page", 403);
    }
    c.set("session", session);
    await next();
  });

  app.post("/logout", (c) => {
    sessions.end(c.get("session"));
    cookies.clear(c, cookies.session);
    return c.redirect("/login", 303);
  });

  // A role without pg-dbmail rights is signed in, and told so on every page.
  app.use(async (c, next) => {
    const session = c.get("session");
    if (session.access === "user" || session.access === "admin") return next();
    return c.html(
      <Layout title="No access" session={session}>
        <p>
          {session.access === "none"
            ? `The role ${session.role} has no access to Database Mail: it is not a member of dbmail_user or dbmail_admin. Ask an administrator to grant one of them.`
            : "Database Mail is not installed in this database (no schema dbmail): run dbmail migrate."}
        </p>
      </Layout>,
      403,
    );
  });

  app.route("/", overviewRoutes);
  app.route("/", itemsRoutes);
  app.route("/", itemRoutes);
  app.route("/", eventRoutes);
  app.route("/", actionRoutes);
  app.route("/", sendTestRoutes);
  app.route("/", accountRoutes);
  app.route("/", profileRoutes);
  app.route("/", settingRoutes);
  app.notFound((c) => c.html(<NotFound />, 404));
  // A query the database refused or that failed: its message, escaped like everything else.
  app.onError((error, c) =>
    c.html(
      <Layout title="Something went wrong" session={c.get("session")}>
        <Problems messages={[error.message]} />
      </Layout>,
      500,
    ),
  );
  return { app, sessions };
}
