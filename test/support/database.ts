import { randomBytes } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";
import { withDatabase } from "./global-setup.js";

/** A login role made for one test file; dropped with the file's database. */
export interface TestRole {
  name: string;
  /** A connection URL that logs in as this role, to the test database. */
  url: string;
}

/**
 * A database of its own for one test file, cloned from the migrated template, with helpers to make roles
 * and to connect as them. Role names carry a random suffix because roles are cluster-wide.
 */
export class TestDatabase {
  private readonly roles: string[] = [];
  private readonly clients: pg.Client[] = [];
  private readonly suffix = randomBytes(3).toString("hex");
  private admin?: pg.Client;

  private constructor(
    readonly name: string,
    readonly adminUrl: string,
  ) {}

  /** A superuser URL for this database. */
  get url(): string {
    return withDatabase(this.adminUrl, this.name);
  }

  static async create(): Promise<TestDatabase> {
    const adminUrl = inject("adminUrl");
    const template = inject("templateDatabase");
    const name = `${template.replace(/_template$/, "")}_${randomBytes(4).toString("hex")}`;
    await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${template}`));
    return new TestDatabase(name, adminUrl);
  }

  /** Runs SQL as the superuser in this database (one shared connection). */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]) {
    if (!this.admin) this.admin = await this.connect();
    return this.admin.query<R>(sql, params);
  }

  /** A new connection, as the superuser or as a role made with createRole. Closed by drop(). */
  async connect(role?: TestRole): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: role ? role.url : this.url });
    await client.connect();
    this.clients.push(client);
    return client;
  }

  /** Creates a LOGIN role (name `base_<suffix>`), optionally a member of the given roles. */
  async createRole(base: string, options: { memberOf?: string[]; login?: boolean } = {}): Promise<TestRole> {
    const name = `${base}_${this.suffix}`;
    const password = "test";
    await this.query(
      `CREATE ROLE ${name} ${options.login === false ? "NOLOGIN" : "LOGIN"} PASSWORD '${password}'`,
    );
    this.roles.push(name);
    for (const group of options.memberOf ?? []) await this.query(`GRANT ${group} TO ${name}`);
    const url = new URL(this.url);
    url.username = name;
    url.password = password;
    return { name, url: url.toString() };
  }

  async drop(): Promise<void> {
    for (const client of this.clients) await client.end().catch(() => {});
    await withClient(this.adminUrl, async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${this.name} WITH (FORCE)`);
      for (const role of this.roles.reverse()) await c.query(`DROP ROLE IF EXISTS ${role}`);
    });
  }
}

export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** The error a promise rejects with (fails the test when it resolves). */
export async function errorOf(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return error as { code: string; message: string };
  }
  throw new Error("expected an error, but the call succeeded");
}
