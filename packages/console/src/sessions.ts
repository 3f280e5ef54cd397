import { randomBytes } from "node:crypto";
import type pg from "pg";
import type { Access } from "./sign-in.js";

/** One signed-in person: their role's pool (none without access) and the CSRF token of their forms. */
export interface Session {
  readonly id: string;
  readonly csrfToken: string;
  readonly role: string;
  readonly access: Access;
  readonly pool: pg.Pool | undefined;
  lastSeen: number;
}

export const randomToken = () => randomBytes(32).toString("base64url");

/**
 * The sessions, in memory: a restart signs everyone out. A session idle longer than `idleTimeoutMs`
 * is gone: the next request finds nothing, and a sweep closes its pool soon after.
 */
export class SessionStore {
  private readonly sessions = new Map<string, Session>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly idleTimeoutMs: number) {
    this.sweeper = setInterval(() => this.sweep(), Math.min(idleTimeoutMs, 60_000));
    this.sweeper.unref();
  }

  create(role: string, access: Access, pool: pg.Pool | undefined): Session {
    const session = { id: randomToken(), csrfToken: randomToken(), role, access, pool, lastSeen: Date.now() };
    this.sessions.set(session.id, session);
    return session;
  }

  /** The live session with this id, its idle clock restarted; undefined when unknown or expired. */
  get(id: string | undefined): Session | undefined {
    if (id === undefined) return undefined;
    const session = this.sessions.get(id);
    if (!session) return undefined;
    if (this.expired(session)) {
      this.end(session);
      return undefined;
    }
    session.lastSeen = Date.now();
    return session;
  }

  end(session: Session): void {
    this.sessions.delete(session.id);
    void session.pool?.end().catch(() => {});
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map((s) => s.pool?.end().catch(() => {})));
  }

  private expired(session: Session): boolean {
    return Date.now() - session.lastSeen > this.idleTimeoutMs;
  }

  private sweep(): void {
    for (const session of this.sessions.values()) if (this.expired(session)) this.end(session);
  }
}
