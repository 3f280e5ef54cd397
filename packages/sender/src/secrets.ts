import { readFileSync } from "node:fs";

/**
 * An account's password as stored: a literal, or a reference resolved here, by the sender, so the secret
 * never has to be stored in the database: `env:NAME` (an environment variable of the sender) or
 * `file:/path` (a file's contents, without a trailing newline).
 */
export function resolvePassword(stored: string | null): string | undefined {
  if (stored === null) return undefined;
  if (stored.startsWith("env:")) {
    const name = stored.slice(4);
    const value = process.env[name];
    if (value === undefined)
      throw new Error(`the password is env:${name}, but the sender has no variable ${name}`);
    return value;
  }
  if (stored.startsWith("file:")) {
    const path = stored.slice(5);
    try {
      return readFileSync(path, "utf8").replace(/\r?\n$/, "");
    } catch (error) {
      throw new Error(
        `the password is file:${path}, which the sender cannot read: ${(error as Error).message}`,
      );
    }
  }
  return stored;
}
