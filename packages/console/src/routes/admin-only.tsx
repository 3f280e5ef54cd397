import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { ConsoleEnv } from "../context.js";
import { Layout, Problems } from "../views/layout.js";

function adminsOnly(c: Context<ConsoleEnv>, refusal?: string) {
  const session = c.get("session");
  return c.html(
    <Layout title="Admins only" session={session}>
      <Problems messages={refusal ? [refusal] : []} />
      <p>
        This page is for Database Mail admins only (members of dbmail_admin, or of a role named in the
        AdminRoles setting). Your role, {session.role}, may send mail and see its own items.
      </p>
    </Layout>,
    403,
  );
}

/**
 * The admin pages (accounts, profiles, settings) and their POSTs, for admins only: anyone else gets a
 * page saying so before any procedure is called. Admin rights are read at sign-in; for a role that
 * lost them since, the sysmail_* procedures refuse (42501), and that refusal gets the same page.
 */
export const adminOnly = createMiddleware<ConsoleEnv>(async (c, next) => {
  if (c.get("session").access !== "admin") return adminsOnly(c);
  await next();
  const error = c.error as { code?: string; message?: string } | undefined;
  if (error?.code === "42501") {
    c.res = undefined;
    c.res = await adminsOnly(c, error.message);
  }
});
