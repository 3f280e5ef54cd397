// `file_attachments` never reads outside AttachmentDirectories: NUL bytes, control characters, `..`
// however it is spelt, /proc and the server's own files, also through a direct call to queue_mail
// (SECURITY.md §3.6). Every refused attempt leaves schema dbmail unchanged.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestDatabase } from "../../../../test/support/database.js";
import {
  type Args,
  configure,
  first,
  type Queryable,
  refusedUnchanged,
  send,
} from "../../../../test/support/mail.js";
import { queueMailDirectly, setUpBoundaries } from "../support/boundaries.js";

let db: TestDatabase;
let aliceClient: pg.Client;
/** The directory named in AttachmentDirectories while the tests run, and one that is not. */
let allowed: string;
let outside: string;

beforeAll(async () => {
  ({ db, aliceClient } = await setUpBoundaries());
  allowed = makeDirectory();
  outside = makeDirectory();
});

afterAll(async () => {
  await db?.drop();
  for (const directory of [allowed, outside])
    if (directory) rmSync(directory, { recursive: true, force: true });
});

const sendAs = (client: Queryable, args: Args = {}) =>
  send(client, { recipients: "to@example.com", subject: "s", ...args });

function writeFile(path: string, content: string): void {
  writeFileSync(path, content);
  chmodSync(path, 0o644);
}

function makeDirectory(): string {
  const directory = mkdtempSync(join(tmpdir(), "dbmail-boundaries-"));
  chmodSync(directory, 0o755);
  return directory;
}

describe("file_attachments never reads outside AttachmentDirectories", () => {
  beforeAll(async () => {
    writeFile(join(allowed, "ok.txt"), "ok");
    writeFile(join(outside, "secret.txt"), "outside");
    await configure(db, "AttachmentDirectories", allowed);
  });

  afterAll(async () => {
    await configure(db, "AttachmentDirectories", "");
  });

  it("the control: a file of the allowed directory is attached", async () => {
    const id = await sendAs(aliceClient, { file_attachments: join(allowed, "ok.txt") });
    const { rows } = await db.query<{ filename: string }>(
      "SELECT filename FROM dbmail.attachments WHERE mailitem_id = $1",
      [id],
    );
    expect(rows.map((r) => r.filename)).toEqual(["ok.txt"]);
  });

  it("refuses a path with a NUL byte (PostgreSQL refuses NUL in text), nothing queued", async () => {
    for (const path of [`${join(allowed, "ok.txt")}\u0000../../etc/passwd`, `${outside}\u0000/secret.txt`]) {
      const error = await refusedUnchanged(db, () => sendAs(aliceClient, { file_attachments: path }));
      expect(["22021", "22P05", "22023"], `${error.code} ${error.message}`).toContain(error.code);
    }
  });

  it("refuses a CR, a CRLF and other control characters in a path, nothing queued", async () => {
    for (const path of [
      `${allowed}/ok.txt\r`,
      `${allowed}/ok\r\n.txt`,
      `${allowed}/\r/../${basename(outside)}/secret.txt`,
      `${allowed}/ok\u001b.txt`,
    ]) {
      const error = await refusedUnchanged(db, () => sendAs(aliceClient, { file_attachments: path }));
      expect(error.code, error.message).toBe("22023");
      expect(error.message).toMatch(/^file_attachments: /);
    }
  });

  it("refuses '..' however it is spelt: doubled slashes, after a file name, behind an allowed file", async () => {
    const outsideName = basename(outside);
    for (const path of [
      `${allowed}//..//${outsideName}/secret.txt`,
      `${allowed}/../${outsideName}/secret.txt`,
      `${allowed}/ok.txt/../../${outsideName}/secret.txt`,
      `${join(allowed, "ok.txt")};${allowed}/../${outsideName}/secret.txt`,
      `${allowed}/../${basename(allowed)}/ok.txt`,
    ]) {
      const error = await refusedUnchanged(db, () => sendAs(aliceClient, { file_attachments: path }));
      expect(error.code, `${path}: ${error.message}`).toBe("22023");
    }
  });

  it("refuses /proc/self/environ and the server's own files even next to an allowed file, nothing queued", async () => {
    const { rows } = await db.query<{ d: string }>("SELECT current_setting('data_directory') AS d");
    const dataDirectory = first(rows).d;
    for (const path of [
      "/proc/self/environ",
      "/proc/self/cmdline",
      `${dataDirectory}/postgresql.auto.conf`,
      `${dataDirectory}/PG_VERSION`,
    ]) {
      const error = await refusedUnchanged(db, () =>
        sendAs(aliceClient, { file_attachments: `${join(allowed, "ok.txt")};${path}` }),
      );
      expect(error.code, `${path}: ${error.message}`).toBe("42501");
      expect(error.message).toContain("AttachmentDirectories");
    }
  });

  it("a direct call to queue_mail (stamped by hand) is held to the same directories", async () => {
    for (const path of ["/proc/self/environ", `${allowed}/../${basename(outside)}/secret.txt`, "ok.txt"]) {
      const error = await refusedUnchanged(db, () =>
        queueMailDirectly(db, aliceClient, { file_attachments: path }),
      );
      expect(["42501", "22023"], `${path}: ${error.code} ${error.message}`).toContain(error.code);
    }
  });
});
