// The console started in this process on a free loopback port, and a small HTTP client that keeps
// cookies as a browser would and can forge what an attacker's page could send (another Origin, no
// CSRF token), for the console's tests.
import { type ConsoleOptions, type RunningConsole, startConsole } from "@pg-dbmail/console";
import { afterAll, beforeAll } from "vitest";
import { TestDatabase, type TestRole } from "../support/database.js";
import { addAccount, profileWith, unique } from "../support/mail.js";

export async function startTestConsole(
  db: TestDatabase,
  options: Partial<ConsoleOptions> = {},
): Promise<RunningConsole> {
  // The superuser's URL: the console takes only the server and database from it, never its user.
  return startConsole({ listen: "127.0.0.1:0", databaseUrl: db.url, signInDelayMs: 1000, ...options });
}

/** What useSignedInAdmin sets up: filled in before the file's tests run. */
export interface SignedInAdmin {
  db: TestDatabase;
  web: RunningConsole;
  admin: TestRole;
  visitor: Visitor;
}

/**
 * A database and console of the test file's own, with a dbmail_admin login (`<role>`, cluster-wide, so
 * named after the file) already signed in as `visitor`; all closed and dropped after the file.
 */
export function useSignedInAdmin(role: string): SignedInAdmin {
  const fixture = {} as SignedInAdmin;
  beforeAll(async () => {
    fixture.db = await TestDatabase.create();
    fixture.admin = await fixture.db.createRole(role, { memberOf: ["dbmail_admin"] });
    fixture.web = await startTestConsole(fixture.db);
    fixture.visitor = new Visitor(fixture.web.url);
    await fixture.visitor.signIn(fixture.admin.name);
  });
  afterAll(async () => {
    await fixture.web?.close();
    await fixture.db?.drop();
  });
  return fixture;
}

/** A public default profile, so that every dbmail_user of the database can send. */
export async function addPublicProfile(db: TestDatabase): Promise<void> {
  const account = await addAccount(db);
  await profileWith(db, unique("console"), [account.name], true);
}

export interface Page {
  status: number;
  headers: Headers;
  text: string;
}

/** One browser: its cookies, the console's origin, and the CSRF token of the last page it read. */
export class Visitor {
  private readonly cookies = new Map<string, string>();
  csrf: string | undefined;

  constructor(readonly base: string) {}

  get origin(): string {
    return new URL(this.base).origin;
  }

  cookie(name: string): string | undefined {
    return this.cookies.get(name);
  }

  /** Sets a cookie as another page of the same site could have (a planted session id, say). */
  plant(name: string, value: string): void {
    this.cookies.set(name, value);
  }

  async get(path: string, headers: Record<string, string> = {}): Promise<Page> {
    return this.request("GET", path, undefined, headers);
  }

  /** A form POST from the console's own page (its Origin, the page's token) unless told otherwise. */
  async post(
    path: string,
    fields: Record<string, string>,
    options: { origin?: string | null; csrf?: string | null } = {},
  ): Promise<Page> {
    const form = new URLSearchParams(fields);
    const csrf = options.csrf === undefined ? this.csrf : options.csrf;
    if (csrf !== null && csrf !== undefined) form.set("_csrf", csrf);
    const origin = options.origin === undefined ? this.origin : options.origin;
    const headers: Record<string, string> = { "Content-Type": "application/x-www-form-urlencoded" };
    if (origin !== null) headers.Origin = origin;
    return this.request("POST", path, form.toString(), headers);
  }

  /** Opens /login and signs in; the session's CSRF token is then read from the overview. */
  async signIn(username: string, password = "test"): Promise<Page> {
    await this.get("/login");
    const result = await this.post("/login", { username, password });
    if (result.status === 303) await this.get(result.headers.get("Location") ?? "/");
    return result;
  }

  private async request(
    method: string,
    path: string,
    body: string | undefined,
    headers: Record<string, string>,
  ): Promise<Page> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
    const response = await fetch(new URL(path, this.base), {
      method,
      body,
      redirect: "manual",
      headers: { ...headers, ...(cookie ? { Cookie: cookie } : {}) },
    });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const [name, value] = (pair ?? "").split("=") as [string, string];
      if (/max-age=0/i.test(line) || value === "") this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    const text = await response.text();
    const token = /name="_csrf" value="([^"]+)"/.exec(text);
    if (token) this.csrf = token[1];
    return { status: response.status, headers: response.headers, text };
  }
}
