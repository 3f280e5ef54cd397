import type pg from "pg";
import type { Session } from "../sessions.js";

/** The session's pool; the pages behind the access check always have one. */
export function requirePool(session: Session): pg.Pool {
  if (!session.pool) throw new Error(`session of ${session.role} has no connection`);
  return session.pool;
}
