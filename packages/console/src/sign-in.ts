import pg from "pg";
import { parseIntoClientConfig } from "pg-connection-string";

/** What the signed-in role may see: nothing of pg-dbmail, its own mail (dbmail_user), or all (admin). */
export type Access = "none" | "no-schema" | "user" | "admin";

export type SignInResult =
  | { ok: true; role: string; pool: pg.Pool; access: Access }
  | { ok: false; reason: "credentials" | "unreachable"; message: string };

/** SQLSTATEs of a refused login: wrong password, unknown role, a role without LOGIN, no pg_hba line. */
const refusedLogin = new Set(["28P01", "28000"]);

/**
 * Connects as the person: the database URL gives the server and database, the form the user and
 * password. Each session gets a small pool of its own, so every query runs with that role's rights
 * and row filters, and the console holds no connection of its own.
 */
export async function signIn(
  databaseUrl: string | undefined,
  username: string,
  password: string,
): Promise<SignInResult> {
  // Only the server and the database come from the URL: pg would let a connectionString override the
  // user and password given here, and an empty password would fall back to PGPASSWORD or ~/.pgpass.
  const server = databaseUrl ? parseIntoClientConfig(databaseUrl) : {};
  const pool = new pg.Pool({
    ...server,
    user: username,
    password,
    max: 2,
    idleTimeoutMillis: 60_000,
    statement_timeout: 30_000,
    application_name: "dbmail console",
    // No JIT: the views' admin branch is costed as a scan of every item even when a user's branch is
    // the one that runs, which pushes small queries over jit_above_cost and adds ~100 ms of
    // compilation to a 30 ms page. No console query reads enough rows for JIT to pay.
    options: [server.options, "-c jit=off"].filter(Boolean).join(" "),
  });
  // An idle connection that the server closes must not crash the process.
  pool.on("error", () => {});
  try {
    const client = await pool.connect();
    try {
      const { role, access } = await accessOf(client);
      return { ok: true, role, pool, access };
    } finally {
      client.release();
    }
  } catch (error) {
    await pool.end().catch(() => {});
    const { code, message } = error as { code?: string; message?: string };
    if (code !== undefined && refusedLogin.has(code)) {
      return { ok: false, reason: "credentials", message: "the user name or password is wrong" };
    }
    return { ok: false, reason: "unreachable", message: message ?? String(error) };
  }
}

async function accessOf(client: pg.PoolClient): Promise<{ role: string; access: Access }> {
  const row = (
    await client.query<{ role: string; installed: boolean; member: boolean }>(
      `SELECT current_user AS role,
              pg_catalog.to_regnamespace('dbmail') IS NOT NULL AS installed,
              CASE WHEN pg_catalog.to_regrole('dbmail_user') IS NULL THEN false
                   ELSE pg_catalog.pg_has_role('dbmail_user', 'USAGE') END AS member`,
    )
  ).rows[0] as { role: string; installed: boolean; member: boolean };
  if (!row.member) return { role: row.role, access: "none" };
  if (!row.installed) return { role: row.role, access: "no-schema" };
  const admin = (await client.query<{ admin: boolean }>("SELECT dbmail.is_admin(current_user) AS admin"))
    .rows[0]?.admin;
  return { role: row.role, access: admin ? "admin" : "user" };
}
