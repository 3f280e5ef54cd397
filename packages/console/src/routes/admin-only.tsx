import { createMiddleware } from "hono/factory";
import type { ConsoleEnv } from "../context.js";
import { Layout } from "../views/layout.js";

/**
 * The admin pages (accounts, profiles, settings) and their POSTs, for admins only. The sysmail_*
 * procedures refuse anyone else anyway; this answers with a page saying so before any is called.
 */
export const adminOnly = createMiddleware<ConsoleEnv>(async (c, next) => {
  const session = c.get("session");
  if (session.access === "admin") return next();
  return c.html(
    <Layout title="Admins only" session={session}>
      <p>
        This page is for Database Mail admins only (members of dbmail_admin, or of a role named in the
        AdminRoles setting). Your role, {session.role}, may send mail and see its own items.
      </p>
    </Layout>,
    403,
  );
});
