import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";

/** A `file:` secret larger than this is refused: secrets are short, and the sender reads them often. */
const MAX_SECRET_FILE_BYTES = 64 * 1024;

/**
 * An account's secret (`what`: password, oauth2_client_secret, ...) as stored: a literal, or a reference
 * resolved here, by the sender, so the secret never has to be stored in the database: `env:NAME` (an
 * environment variable of the sender) or `file:/path` (a file's contents, without a trailing newline).
 * Errors name the setting and the reference, never a secret.
 */
export function resolveSecret(what: string, stored: string | null): string | undefined {
  if (stored === null) return undefined;
  if (stored.startsWith("env:")) {
    const name = stored.slice(4);
    const value = process.env[name];
    if (value === undefined)
      throw new Error(`the ${what} is env:${name}, but the sender has no variable ${name}`);
    return value;
  }
  if (stored.startsWith("file:")) return readSecretFile(what, stored.slice(5));
  return stored;
}

/**
 * Reads a `file:` secret. The path is set by an admin in the database, so the sender does not trust it:
 * only a regular file of at most MAX_SECRET_FILE_BYTES is read. It is opened without blocking and
 * checked through the open descriptor, so a FIFO or a device (which would block the sender, or never
 * end) is refused, including one swapped in between a check and the read.
 */
function readSecretFile(what: string, path: string): string {
  const problem = (why: string) => new Error(`the ${what} is file:${path}, which ${why}`);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (error) {
    throw problem(`the sender cannot read: ${(error as Error).message}`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw problem("is not a regular file");
    if (stat.size > MAX_SECRET_FILE_BYTES) {
      throw problem(`is ${stat.size} bytes; a secret file may have at most ${MAX_SECRET_FILE_BYTES}`);
    }
    const buffer = Buffer.alloc(stat.size);
    const read = readSync(fd, buffer, 0, stat.size, 0);
    return buffer
      .subarray(0, read)
      .toString("utf8")
      .replace(/\r?\n$/, "");
  } finally {
    closeSync(fd);
  }
}
