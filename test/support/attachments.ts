// What every attachments test file shares: a database with a dbmail_user `app` (and `other`, to check who
// sees what), a default public profile on a real SMTP server, a running sender, and directories for
// file_attachments (the one to allow, one outside it, and one that merely shares its name as a prefix).
// The fixture is set up by setUpAttachments() per test file; its exports are live bindings.
import { createHash } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Sender } from "@pg-dbmail/sender";
import type { Attachment } from "mailparser";
import type pg from "pg";
import { afterAll, beforeAll, expect } from "vitest";
import { TestDatabase } from "./database.js";
import {
  type Args,
  configure,
  first,
  profileWith,
  type Refusal,
  refused,
  send,
  uniqueSubject,
} from "./mail.js";
import { addAccount, eventually, startSender } from "./sender.js";
import { type ReceivedMail, TestSmtpServer } from "./smtp.js";

export let db: TestDatabase;
export let smtp: TestSmtpServer;
/** A dbmail_user, who sends by default. */
export let app: pg.Client;
/** Another dbmail_user. */
export let other: pg.Client;
/** The directory to name in AttachmentDirectories. */
export let allowed: string;
/** A directory that is not. */
export let outside: string;
/** `${allowed}evil`: shares the allowed directory's name as a prefix. */
export let prefixTwin: string;
let sender: Sender;

/** Sets the fixture up before this file's tests, and removes it after them. */
export function setUpAttachments(): void {
  beforeAll(async () => {
    db = await TestDatabase.create();
    smtp = await TestSmtpServer.start();
    const senderRole = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
    app = await db.connect(await db.createRole("app", { memberOf: ["dbmail_user"] }));
    other = await db.connect(await db.createRole("other", { memberOf: ["dbmail_user"] }));
    await addAccount(db, "main", smtp);
    await profileWith(db, "p", ["main"], true);
    sender = await startSender(senderRole);

    allowed = makeDirectory();
    outside = makeDirectory();
    prefixTwin = makeDirectory(`${allowed}evil`);
  });

  afterAll(async () => {
    await sender?.stop();
    await smtp?.stop();
    await db?.drop();
    for (const directory of [allowed, outside, prefixTwin]) {
      if (directory) rmSync(directory, { recursive: true, force: true });
    }
  });
}

/** AttachmentDirectories names `allowed` for the tests of the enclosing describe, and is empty after. */
export function allowAttachmentDirectory(): void {
  beforeAll(async () => {
    await configure(db, "AttachmentDirectories", allowed);
  });
  afterAll(async () => {
    await configure(db, "AttachmentDirectories", "");
  });
}

export const sha256 = (data: Buffer | Uint8Array) => createHash("sha256").update(data).digest("hex");

/** A message to to@example.org with a subject of its own, and `args`. */
const mail = (args: Args): Args => ({
  recipients: "to@example.org",
  subject: uniqueSubject("mail"),
  ...args,
});

/** Sends (as `app` by default) a message to to@example.org; returns the mailitem_id. */
export function sendMail(args: Args, client: pg.Client = app): Promise<string> {
  return send(client, mail(args));
}

export function receivedWithSubject(subject: string): Promise<ReceivedMail> {
  return eventually(async () => smtp.received.find((m) => m.parsed.subject === subject));
}

/** Sends as `app` and waits for the message at the SMTP server. */
export async function sendAndReceive(args: Args): Promise<{ id: string; mail: ReceivedMail }> {
  const subject = uniqueSubject("attachments");
  const id = await sendMail({ ...args, subject });
  return { id, mail: await receivedWithSubject(subject) };
}

/**
 * The Content-Type a part was sent with (without parameters). mailparser's contentType replaces
 * application/octet-stream with a guess from the file name, so read the header itself.
 */
export function declaredType(attachment: Attachment): string | undefined {
  return (attachment.headers.get("content-type") as { value: string } | undefined)?.value;
}

/** The attachments of a received message, in order. */
export function attachmentsOf(mail: ReceivedMail): Attachment[] {
  return mail.parsed.attachments;
}

export interface StoredAttachment {
  filename: string;
  content_type: string | null;
  filesize: string;
  attachment: Buffer;
}

/** The stored attachments of an item, as the superuser, in order. */
export async function stored(id: string): Promise<StoredAttachment[]> {
  const { rows } = await db.query<StoredAttachment>(
    "SELECT filename, content_type, filesize, attachment FROM dbmail.attachments WHERE mailitem_id = $1 ORDER BY attachment_id",
    [id],
  );
  return rows;
}

/** How many mail items and attachments are stored. */
export async function counts(): Promise<{ items: number; attachments: number }> {
  const { rows } = await db.query<{ items: number; attachments: number }>(
    "SELECT (SELECT count(*) FROM dbmail.mailitems)::integer AS items, (SELECT count(*) FROM dbmail.attachments)::integer AS attachments",
  );
  return first(rows);
}

/** Sends expecting a refusal; asserts that neither a mail item nor an attachment was stored. */
export async function refusedMail(args: Args, client: pg.Client = app): Promise<Refusal> {
  const before = await counts();
  const error = await refused(db, client, mail(args));
  expect(await counts()).toEqual(before);
  return error;
}

/** Writes a file the postgres OS user can read (the test may run as another user). */
export function writeFile(path: string, content: Buffer | string, mode = 0o644): Buffer {
  const bytes = typeof content === "string" ? Buffer.from(content, "utf8") : content;
  writeFileSync(path, bytes);
  chmodSync(path, mode);
  return bytes;
}

/** A directory anyone may traverse: `path`, or a new temporary one. */
export function makeDirectory(path?: string): string {
  const directory = path ?? mkdtempSync(join(tmpdir(), "dbmail-attachments-"));
  if (path) mkdirSync(path);
  chmodSync(directory, 0o755);
  return directory;
}
