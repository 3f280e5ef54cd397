import { fileURLToPath } from "node:url";
import { migrate } from "@pg-dbmail/sql";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { providePostgres } from "./postgres.js";

declare module "vitest" {
  export interface ProvidedContext {
    adminUrl: string;
    templateDatabase: string;
  }
}

export const migrationsDir = fileURLToPath(new URL("../../sql/migrations", import.meta.url));

/**
 * Starts (or finds) one PostgreSQL for the whole run and migrates a template database once; each test file
 * then clones the template (test/support/database.ts), so files are isolated and run in parallel.
 */
export default async function setup(project: TestProject) {
  const postgres = await providePostgres();
  const templateDatabase = `dbmail_test_${process.pid}_template`;
  const admin = new pg.Client({ connectionString: postgres.adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${templateDatabase}`);
  await admin.query(`CREATE DATABASE ${templateDatabase}`);
  const templateUrl = withDatabase(postgres.adminUrl, templateDatabase);
  await migrate(templateUrl, { migrationsDir });
  project.provide("adminUrl", postgres.adminUrl);
  project.provide("templateDatabase", templateDatabase);

  return async () => {
    // Test files drop their own databases; this catches what a crashed file left behind.
    const { rows } = await admin.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname LIKE $1",
      [`dbmail_test_${process.pid}_%`],
    );
    for (const { datname } of rows) await admin.query(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`);
    await admin.end();
    await postgres.stop();
  };
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
