// Attachments of dbmail.sp_send_dbmail (SPEC.md sections 3 and 4): in-memory `attachments` and
// `file_attachments` read by the database server from the AttachmentDirectories only, every one checked
// against MaxFileSize and ProhibitedExtensions, stored with the item and delivered byte-exact by the sender
// to a real SMTP server.
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  closeSync,
  constants,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Sender } from "@pg-dbmail/sender";
import type { Attachment } from "mailparser";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, TestDatabase, type TestRole } from "./support/database.js";
import { addAccount, eventually, startSender } from "./support/sender.js";
import { type ReceivedMail, TestSmtpServer } from "./support/smtp.js";

/** A literal SQL expression for an argument, instead of a bound parameter. */
class Raw {
  constructor(readonly sql: string) {}
}

/** One in-memory attachment; contentType undefined calls dbmail.attachment with two arguments. */
interface NewAttachment {
  filename: string | null;
  content: Buffer | null;
  contentType?: string | null;
}

type Args = Record<string, unknown>;

let db: TestDatabase;
let smtp: TestSmtpServer;
let sender: Sender;
let senderRole: TestRole;
let appRole: TestRole;
let otherRole: TestRole;
let app: pg.Client;
let other: pg.Client;
/** The directory named in AttachmentDirectories. */
let allowed: string;
/** A directory that is not. */
let outside: string;
/** `${allowed}evil`: shares the allowed directory's name as a prefix. */
let prefixTwin: string;

const sha256 = (data: Buffer | Uint8Array) => createHash("sha256").update(data).digest("hex");

function first<T>(rows: T[]): T {
  const row = rows[0];
  if (row === undefined) throw new Error("expected a row");
  return row;
}

/** `SELECT dbmail.sp_send_dbmail(name => $1, ...)` in named notation; attachments as dbmail.attachment(...). */
function sendCall(args: Args): { text: string; values: unknown[] } {
  const parts: string[] = [];
  const values: unknown[] = [];
  const param = (value: unknown, cast = "") => {
    values.push(value);
    return `$${values.length}${cast}`;
  };
  for (const [name, value] of Object.entries(args)) {
    if (value === undefined) continue;
    if (value instanceof Raw) {
      parts.push(`${name} => ${value.sql}`);
    } else if (name === "attachments" && Array.isArray(value)) {
      const items = (value as NewAttachment[]).map((a) => {
        const filename = param(a.filename, "::text");
        const content = param(a.content, "::bytea");
        return a.contentType === undefined
          ? `dbmail.attachment(${filename}, ${content})`
          : `dbmail.attachment(${filename}, ${content}, ${param(a.contentType, "::text")})`;
      });
      parts.push(`attachments => ARRAY[${items.join(", ")}]::dbmail.attachment[]`);
    } else {
      parts.push(`${name} => ${param(value, name === "send_at" ? "::timestamptz" : "")}`);
    }
  }
  return { text: `SELECT dbmail.sp_send_dbmail(${parts.join(", ")}) AS id`, values };
}

let counter = 0;
/** A subject no other test uses, so a test finds its own message among all received. */
function uniqueSubject(label: string): string {
  counter += 1;
  return `${label} #${counter} ${randomBytes(3).toString("hex")}`;
}

/** Sends (as the app role by default) a message to to@example.org; returns the mailitem_id. */
async function send(args: Args, client: pg.Client = app): Promise<string> {
  const { text, values } = sendCall({
    recipients: "to@example.org",
    subject: uniqueSubject("mail"),
    ...args,
  });
  const { rows } = await client.query<{ id: string }>(text, values);
  return String(first(rows).id);
}

function receivedWithSubject(subject: string): Promise<ReceivedMail> {
  return eventually(async () => smtp.received.find((m) => m.parsed.subject === subject));
}

/** Sends as the app role and waits for the message at the SMTP server. */
async function sendAndReceive(args: Args): Promise<{ id: string; mail: ReceivedMail }> {
  const subject = uniqueSubject("attachments");
  const id = await send({ ...args, subject });
  return { id, mail: await receivedWithSubject(subject) };
}

/**
 * The Content-Type a part was sent with (without parameters). mailparser's contentType replaces
 * application/octet-stream with a guess from the file name, so read the header itself.
 */
function declaredType(attachment: Attachment): string | undefined {
  return (attachment.headers.get("content-type") as { value: string } | undefined)?.value;
}

/** The attachments of a received message, in order. */
function attachmentsOf(mail: ReceivedMail): Attachment[] {
  return mail.parsed.attachments;
}

interface StoredAttachment {
  filename: string;
  content_type: string | null;
  filesize: string;
  attachment: Buffer;
}

/** The stored attachments of an item, as the superuser, in order. */
async function stored(id: string): Promise<StoredAttachment[]> {
  const { rows } = await db.query<StoredAttachment>(
    "SELECT filename, content_type, filesize, attachment FROM dbmail.attachments WHERE mailitem_id = $1 ORDER BY attachment_id",
    [id],
  );
  return rows;
}

async function counts(): Promise<{ items: number; attachments: number }> {
  const { rows } = await db.query<{ items: number; attachments: number }>(
    "SELECT (SELECT count(*) FROM dbmail.mailitems)::integer AS items, (SELECT count(*) FROM dbmail.attachments)::integer AS attachments",
  );
  return first(rows);
}

/** Sends expecting an error; asserts that neither a mail item nor an attachment was stored. */
async function refused(args: Args, client: pg.Client = app): Promise<{ code: string; message: string }> {
  const before = await counts();
  const error = await errorOf(send(args, client));
  expect(await counts()).toEqual(before);
  return error;
}

/** How dbmail.show_value shows a value in an error message. */
function shown(value: string | null): string {
  if (value === null) return "NULL";
  const short = value.length > 200 ? `${value.slice(0, 200)}…` : value;
  return `"${short.replace(/\r/g, "\\r").replace(/\n/g, "\\n").replace(/\t/g, "\\t")}"`;
}

/** The error has the SQLSTATE and reads `<parameter>: <value>: ...`. */
function expectError(
  error: { code: string; message: string },
  code: string,
  parameter: string,
  value: string | null,
): void {
  expect(error.code).toBe(code);
  expect(error.message.startsWith(`${parameter}: ${shown(value)}: `), error.message).toBe(true);
}

async function configure(name: string, value: string): Promise<void> {
  await db.query("SELECT dbmail.sysmail_configure_sp(parameter_name => $1, parameter_value => $2)", [
    name,
    value,
  ]);
}

async function setting(name: string): Promise<string> {
  const { rows } = await db.query<{ v: string }>(
    "SELECT paramvalue AS v FROM dbmail.settings WHERE paramname = $1",
    [name],
  );
  return first(rows).v;
}

/** Runs `fn` with a setting changed, restoring the previous value afterwards. */
async function withSetting(name: string, value: string, fn: () => Promise<void>): Promise<void> {
  const previous = await setting(name);
  await configure(name, value);
  try {
    await fn();
  } finally {
    await configure(name, previous);
  }
}

/** Writes a file the postgres OS user can read (the test may run as another user). */
function writeFile(path: string, content: Buffer | string, mode = 0o644): Buffer {
  const bytes = typeof content === "string" ? Buffer.from(content, "utf8") : content;
  writeFileSync(path, bytes);
  chmodSync(path, mode);
  return bytes;
}

function makeDirectory(path?: string): string {
  const directory = path ?? mkdtempSync(join(tmpdir(), "dbmail-attachments-"));
  if (path) mkdirSync(path);
  chmodSync(directory, 0o755);
  return directory;
}

beforeAll(async () => {
  db = await TestDatabase.create();
  smtp = await TestSmtpServer.start();
  senderRole = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
  appRole = await db.createRole("app", { memberOf: ["dbmail_user"] });
  otherRole = await db.createRole("other", { memberOf: ["dbmail_user"] });
  app = await db.connect(appRole);
  other = await db.connect(otherRole);
  await addAccount(db, "main", smtp);
  await db.query("SELECT dbmail.sysmail_add_profile_sp(profile_name => 'p')");
  await db.query(
    "SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'p', account_name => 'main', sequence_number => 1)",
  );
  await db.query(
    "SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'p', is_default => true)",
  );
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

describe("in-memory attachments", () => {
  it("delivers a CSV built in SQL byte-exact, as text/csv, and stores it", async () => {
    const csv = 'id,name,city\r\n1,Müller,Köln\r\n2,"Doe, Jane",Zürich\r\n';
    const expected = Buffer.from(csv, "utf8");
    const { id, mail } = await sendAndReceive({
      body: "see attached",
      attachments: new Raw(
        `ARRAY[dbmail.attachment('report.csv', convert_to('id,name,city' || E'\\r\\n' || '1,Müller,Köln' || E'\\r\\n' || '2,"Doe, Jane",Zürich' || E'\\r\\n', 'UTF8'))]`,
      ),
    });
    const [stored1] = await stored(id);
    expect(stored1?.filename).toBe("report.csv");
    expect(stored1?.content_type).toBe("text/csv");
    expect(Number(stored1?.filesize)).toBe(expected.length);
    expect(sha256(stored1?.attachment ?? Buffer.alloc(0))).toBe(sha256(expected));

    const received = attachmentsOf(mail);
    expect(received).toHaveLength(1);
    expect(received[0]?.filename).toBe("report.csv");
    expect(received.map((a) => declaredType(a))).toEqual(["text/csv"]);
    expect(sha256(received[0]?.content ?? Buffer.alloc(0))).toBe(sha256(expected));
    expect(mail.parsed.text?.trim()).toBe("see attached");
  });

  it("delivers a binary with all 256 byte values byte-exact", async () => {
    const expected = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const { id, mail } = await sendAndReceive({
      attachments: new Raw(
        `ARRAY[dbmail.attachment('bytes.bin', (SELECT string_agg(decode(lpad(to_hex(i), 2, '0'), 'hex'), ''::bytea ORDER BY i) FROM generate_series(0, 255) AS i))]`,
      ),
    });
    const [row] = await stored(id);
    expect(row?.attachment.equals(expected)).toBe(true);
    expect(row?.content_type).toBe("application/octet-stream");
    const [received] = attachmentsOf(mail);
    expect(received?.filename).toBe("bytes.bin");
    expect(received?.content.length).toBe(256);
    expect(received && declaredType(received)).toBe("application/octet-stream");
    expect(sha256(received?.content ?? Buffer.alloc(0))).toBe(sha256(expected));
  });

  it("delivers a 500 KB random bytea byte-exact", async () => {
    const content = randomBytes(500 * 1024);
    const { id, mail } = await sendAndReceive({
      attachments: [{ filename: "random.bin", content }],
    });
    const [row] = await stored(id);
    expect(Number(row?.filesize)).toBe(500 * 1024);
    const [received] = attachmentsOf(mail);
    expect(received?.filename).toBe("random.bin");
    expect(sha256(received?.content ?? Buffer.alloc(0))).toBe(sha256(content));
  });

  it("keeps the order of several attachments, a given content type, and guesses a missing one", async () => {
    const files: (NewAttachment & { content: Buffer; filename: string; expectedType: string })[] = [
      { filename: "report.csv", content: Buffer.from("a,b\r\n1,2\r\n"), expectedType: "text/csv" },
      { filename: "x.pdf", content: Buffer.from("%PDF-1.4\n%âãÏÓ\n"), expectedType: "application/pdf" },
      { filename: "unknown.xyz", content: randomBytes(100), expectedType: "application/octet-stream" },
      {
        filename: "custom.dat",
        content: randomBytes(50),
        contentType: "application/x-custom",
        expectedType: "application/x-custom",
      },
      {
        filename: "data.csv",
        content: Buffer.from("not really csv"),
        contentType: "text/plain",
        expectedType: "text/plain",
      },
      {
        filename: "empty-type.pdf",
        content: randomBytes(20),
        contentType: null,
        expectedType: "application/pdf",
      },
      {
        filename: "Bericht für März.csv",
        content: Buffer.from("Monat;Umsatz\r\nMärz;100\r\n", "utf8"),
        expectedType: "text/csv",
      },
    ];
    const { id, mail } = await sendAndReceive({ body: "several", attachments: files });

    const rows = await stored(id);
    expect(rows.map((r) => r.filename)).toEqual(files.map((f) => f.filename));
    expect(rows.map((r) => r.content_type)).toEqual(files.map((f) => f.expectedType));
    expect(rows.map((r) => Number(r.filesize))).toEqual(files.map((f) => f.content.length));

    const received = attachmentsOf(mail);
    expect(received.map((a) => a.filename)).toEqual(files.map((f) => f.filename));
    expect(received.map((a) => declaredType(a))).toEqual(files.map((f) => f.expectedType));
    expect(received.map((a) => sha256(a.content))).toEqual(files.map((f) => sha256(f.content)));
  });

  it("guesses content types from the last extension, case-insensitively", async () => {
    const { rows } = await db.query<{ name: string; type: string }>(
      `SELECT n AS name, dbmail.content_type_for(n) AS type
       FROM unnest(ARRAY['report.csv', 'x.pdf', 'unknown.xyz', 'REPORT.CSV', 'archive.tar.gz', 'noextension', 'notes.txt', 'image.JPG']) n`,
    );
    expect(Object.fromEntries(rows.map((r) => [r.name, r.type]))).toEqual({
      "report.csv": "text/csv",
      "x.pdf": "application/pdf",
      "unknown.xyz": "application/octet-stream",
      "REPORT.CSV": "text/csv",
      "archive.tar.gz": "application/gzip",
      noextension: "application/octet-stream",
      "notes.txt": "text/plain",
      "image.JPG": "image/jpeg",
    });
  });

  it("lists the attachments in sysmail_mailattachments for their owner only", async () => {
    const content = randomBytes(300);
    const id = await send({ attachments: [{ filename: "private.bin", content }] });

    const mine = await app.query<{
      filename: string;
      filesize: string;
      attachment: Buffer;
      content_type: string;
    }>(
      "SELECT filename, filesize, attachment, content_type FROM dbmail.sysmail_mailattachments WHERE mailitem_id = $1",
      [id],
    );
    expect(mine.rows).toHaveLength(1);
    expect(mine.rows[0]?.filename).toBe("private.bin");
    expect(Number(mine.rows[0]?.filesize)).toBe(300);
    expect(mine.rows[0]?.attachment.equals(content)).toBe(true);
    expect(mine.rows[0]?.content_type).toBe("application/octet-stream");

    const theirs = await other.query(
      "SELECT filename FROM dbmail.sysmail_mailattachments WHERE mailitem_id = $1 OR filename = 'private.bin'",
      [id],
    );
    expect(theirs.rows).toHaveLength(0);
    // Nor through the table itself.
    expect((await errorOf(other.query("SELECT count(*) FROM dbmail.attachments"))).code).toBe("42501");
    expect((await errorOf(app.query("SELECT count(*) FROM dbmail.attachments"))).code).toBe("42501");
  });

  it("takes part in the caller's transaction: a rollback stores no attachment", async () => {
    const before = await counts();
    await app.query("BEGIN");
    try {
      await send({ attachments: [{ filename: "rolled-back.txt", content: Buffer.from("x") }] });
    } finally {
      await app.query("ROLLBACK");
    }
    expect(await counts()).toEqual(before);
  });
});

describe("in-memory attachment refusals", () => {
  it("refuses a prohibited extension, case-insensitively, naming the file", async () => {
    const error = await refused({ attachments: [{ filename: "evil.EXE", content: Buffer.from("MZ") }] });
    expectError(error, "22023", "attachments", "evil.EXE");
    expect(error.message).toContain("exe");
    expect(error.message).toContain("ProhibitedExtensions");
    for (const filename of ["lib.dll", "script.Vbs", "app.js"]) {
      expectError(
        await refused({ attachments: [{ filename, content: Buffer.from("x") }] }),
        "22023",
        "attachments",
        filename,
      );
    }
  });

  it("checks the last extension: report.pdf.vbs is refused, report.exe.txt is allowed", async () => {
    expectError(
      await refused({ attachments: [{ filename: "report.pdf.vbs", content: Buffer.from("x") }] }),
      "22023",
      "attachments",
      "report.pdf.vbs",
    );
    const id = await send({ attachments: [{ filename: "report.exe.txt", content: Buffer.from("fine") }] });
    expect((await stored(id)).map((r) => [r.filename, r.content_type])).toEqual([
      ["report.exe.txt", "text/plain"],
    ]);
  });

  it("refuses a prohibited extension hidden behind surrounding spaces (the stored name is trimmed)", async () => {
    // The name is stored trimmed ('evil.exe'), so the check must not let the trailing space hide 'exe'.
    const error = await refused({ attachments: [{ filename: "evil.exe ", content: Buffer.from("MZ") }] });
    expectError(error, "22023", "attachments", "evil.exe ");
  });

  // Issue 13: before the hardening each of these passed ProhibitedExtensions (the last extension was "exe.",
  // "exe\u00a0", "exe::$data", ...), and a receiver saved the file as x.exe.
  it.each([
    ["a trailing dot", "evil.exe.", "end with a dot"],
    ["trailing dots and spaces", "evil.exe . .", "end with a dot"],
    ["a no-break space after the extension", "evil.exe\u00a0", "invisible, space-like or control characters"],
    [
      "a zero-width space after the extension",
      "evil.exe\u200b",
      "invisible, space-like or control characters",
    ],
    ["NEL (U+0085) after the extension", "evil.exe\u0085", "invisible, space-like or control characters"],
    ["a tab inside the name", "evil\t.exe.txt", "invisible, space-like or control characters"],
    ["a right-to-left override", "invoice\u202etxt.exe", "invisible, space-like or control characters"],
    ["an NTFS alternate data stream", "evil.exe::$DATA", "a colon"],
    ["a colon and a stream name", "evil.exe:stream.txt", "a colon"],
  ])(
    "refuses a name a receiver reads differently: %s, naming the file",
    async (_label, filename, problem) => {
      const error = await refused({ attachments: [{ filename, content: Buffer.from("MZ") }] });
      expectError(error, "22023", "attachments", filename);
      expect(error.message).toContain(problem);
      const query = await refused({
        query: "SELECT 1",
        attach_query_result_as_file: true,
        query_attachment_filename: filename,
      });
      expectError(query, "22023", "query_attachment_filename", filename);
    },
  );

  it("still accepts plain spaces, inner dots and non-ASCII letters in a name", async () => {
    const names = ["my report.final.pdf", "Bericht für März.csv", "東京 データ.txt"];
    const id = await send({
      attachments: names.map((filename) => ({ filename, content: Buffer.from("x") })),
    });
    expect((await stored(id)).map((r) => r.filename)).toEqual(names);
  });

  it("refuses the whole message when one attachment of several is bad", async () => {
    const error = await refused({
      attachments: [
        { filename: "good.txt", content: Buffer.from("good") },
        { filename: "bad.vbs", content: Buffer.from("bad") },
      ],
    });
    expectError(error, "22023", "attachments", "bad.vbs");
  });

  it("follows a changed ProhibitedExtensions setting", async () => {
    await withSetting("ProhibitedExtensions", "csv, .BAT", async () => {
      expectError(
        await refused({ attachments: [{ filename: "report.csv", content: Buffer.from("a,b") }] }),
        "22023",
        "attachments",
        "report.csv",
      );
      expectError(
        await refused({ attachments: [{ filename: "run.bat", content: Buffer.from("x") }] }),
        "22023",
        "attachments",
        "run.bat",
      );
      const id = await send({ attachments: [{ filename: "tool.exe", content: Buffer.from("MZ") }] });
      expect((await stored(id)).map((r) => r.filename)).toEqual(["tool.exe"]);
    });
    expect(await setting("ProhibitedExtensions")).toBe("exe,dll,vbs,js");
  });

  it("refuses an attachment larger than MaxFileSize (54000) and accepts exactly MaxFileSize", async () => {
    await withSetting("MaxFileSize", "1000", async () => {
      const error = await refused({ attachments: [{ filename: "big.bin", content: randomBytes(1001) }] });
      expectError(error, "54000", "attachments", "big.bin");
      expect(error.message).toContain("1001");
      expect(error.message).toContain("MaxFileSize");
      const id = await send({ attachments: [{ filename: "exact.bin", content: randomBytes(1000) }] });
      expect((await stored(id)).map((r) => Number(r.filesize))).toEqual([1000]);
      // Each attachment is checked on its own: two of 1000 bytes are fine.
      const two = await send({
        attachments: [
          { filename: "one.bin", content: randomBytes(1000) },
          { filename: "two.bin", content: randomBytes(1000) },
        ],
      });
      expect((await stored(two)).map((r) => Number(r.filesize))).toEqual([1000, 1000]);
    });
  });

  it("refuses NULL content, naming the file", async () => {
    const error = await refused({ attachments: [{ filename: "nothing.txt", content: null }] });
    expectError(error, "22004", "attachments", "nothing.txt");
    expect(error.message).toContain("content");
  });

  it("refuses a NULL attachment in the array", async () => {
    const error = await refused({ attachments: new Raw("ARRAY[NULL::dbmail.attachment]") });
    expect(error.code).toBe("22004");
    expect(error.message.startsWith("attachments: ")).toBe(true);
  });

  it("refuses an empty, blank or NULL file name", async () => {
    for (const filename of ["", "   ", null]) {
      const error = await refused({ attachments: [{ filename, content: Buffer.from("x") }] });
      expectError(error, "22004", "attachments", filename);
      expect(error.message).toContain("file name");
    }
  });

  it("refuses a file name with a slash or a backslash (a path)", async () => {
    for (const filename of ["dir/report.txt", "/etc/passwd", "..\\report.txt"]) {
      const error = await refused({ attachments: [{ filename, content: Buffer.from("x") }] });
      expectError(error, "22023", "attachments", filename);
    }
  });

  it("refuses a file name with a line break or another control character", async () => {
    for (const filename of ["report\r\nBcc: victim@example.org.txt", "two\nlines.txt", "nul\u0001.txt"]) {
      const error = await refused({ attachments: [{ filename, content: Buffer.from("x") }] });
      expectError(error, "22023", "attachments", filename);
    }
  });

  it("refuses a 256-character file name and accepts 255 characters", async () => {
    const long = `${"a".repeat(252)}.txt`;
    expect(long).toHaveLength(256);
    const error = await refused({ attachments: [{ filename: long, content: Buffer.from("x") }] });
    expectError(error, "22023", "attachments", long);
    expect(error.message).toContain("255");
    const fits = `${"ä".repeat(251)}.txt`;
    expect(fits).toHaveLength(255);
    const id = await send({ attachments: [{ filename: fits, content: Buffer.from("x") }] });
    expect((await stored(id)).map((r) => r.filename)).toEqual([fits]);
  });

  it("refuses a content type with a line break (it ends up in the part's Content-Type header)", async () => {
    const error = await refused({
      attachments: [
        { filename: "report.txt", content: Buffer.from("x"), contentType: "text/plain\r\nX-Injected: yes" },
      ],
    });
    expect(error.code).toBe("22023");
    expect(error.message.startsWith("attachments: "), error.message).toBe(true);
  });
});

describe("file attachments while AttachmentDirectories is empty", () => {
  it("refuses file attachments with 42501, explaining how to enable them", async () => {
    expect(await setting("AttachmentDirectories")).toBe("");
    const path = join(allowed, "disabled.txt");
    writeFile(path, "not to be read");
    for (const client of [app, await db.connect()]) {
      const error = await refused({ file_attachments: path }, client);
      expectError(error, "42501", "file_attachments", path);
      expect(error.message).toContain("AttachmentDirectories");
      expect(error.message).toContain("sysmail_configure_sp");
    }
  });
});

describe("file attachments", () => {
  beforeAll(async () => {
    await configure("AttachmentDirectories", allowed);
  });

  afterAll(async () => {
    await configure("AttachmentDirectories", "");
  });

  it("attaches a file of the allowed directory with its base name, byte-exact", async () => {
    const content = writeFile(join(allowed, "data.bin"), randomBytes(64 * 1024));
    const { id, mail } = await sendAndReceive({ body: "file", file_attachments: join(allowed, "data.bin") });
    const rows = await stored(id);
    expect(rows.map((r) => [r.filename, r.content_type, Number(r.filesize)])).toEqual([
      ["data.bin", "application/octet-stream", content.length],
    ]);
    expect(sha256(rows[0]?.attachment ?? Buffer.alloc(0))).toBe(sha256(content));
    const received = attachmentsOf(mail);
    expect(received.map((a) => a.filename)).toEqual(["data.bin"]);
    expect(sha256(received[0]?.content ?? Buffer.alloc(0))).toBe(sha256(content));
    // The item keeps the list as given.
    const { rows: items } = await db.query<{ file_attachments: string }>(
      "SELECT file_attachments FROM dbmail.mailitems WHERE mailitem_id = $1",
      [id],
    );
    expect(first(items).file_attachments).toBe(join(allowed, "data.bin"));
  });

  it("attaches two ';'-separated files in order, tolerating spaces and a trailing ';'", async () => {
    const csv = writeFile(join(allowed, "Bericht für März.csv"), "Monat;Umsatz\r\nMärz;100\r\n");
    const pdf = writeFile(join(allowed, "summary.pdf"), randomBytes(2048));
    const list = ` ${join(allowed, "Bericht für März.csv")} ;${join(allowed, "summary.pdf")};`;
    const { id, mail } = await sendAndReceive({ file_attachments: list });
    expect((await stored(id)).map((r) => [r.filename, r.content_type])).toEqual([
      ["Bericht für März.csv", "text/csv"],
      ["summary.pdf", "application/pdf"],
    ]);
    const received = attachmentsOf(mail);
    expect(received.map((a) => a.filename)).toEqual(["Bericht für März.csv", "summary.pdf"]);
    expect(received.map((a) => declaredType(a))).toEqual(["text/csv", "application/pdf"]);
    expect(received.map((a) => sha256(a.content))).toEqual([sha256(csv), sha256(pdf)]);
  });

  it("combines file attachments with in-memory attachments", async () => {
    const file = writeFile(join(allowed, "combined.txt"), "from disk\n");
    const memory = randomBytes(10);
    const { mail } = await sendAndReceive({
      file_attachments: join(allowed, "combined.txt"),
      attachments: [{ filename: "memory.bin", content: memory }],
    });
    const received = attachmentsOf(mail);
    expect(received.map((a) => a.filename).sort()).toEqual(["combined.txt", "memory.bin"]);
    expect(sha256(received.find((a) => a.filename === "combined.txt")?.content ?? Buffer.alloc(0))).toBe(
      sha256(file),
    );
    expect(sha256(received.find((a) => a.filename === "memory.bin")?.content ?? Buffer.alloc(0))).toBe(
      sha256(memory),
    );
  });

  it("accepts doubled slashes and a directory configured with a trailing slash", async () => {
    writeFile(join(allowed, "slashes.txt"), "slashes");
    const id = await send({ file_attachments: `${allowed}//slashes.txt` });
    expect((await stored(id)).map((r) => r.filename)).toEqual(["slashes.txt"]);
    await withSetting("AttachmentDirectories", `${outside};${allowed}/`, async () => {
      expect(await setting("AttachmentDirectories")).toBe(`${outside};${allowed}`);
      const again = await send({ file_attachments: join(allowed, "slashes.txt") });
      expect((await stored(again)).map((r) => r.filename)).toEqual(["slashes.txt"]);
    });
  });

  it("reads files in subdirectories of an allowed directory", async () => {
    const sub = makeDirectory(join(allowed, "nested"));
    const content = writeFile(join(sub, "deep.txt"), "deep");
    const id = await send({ file_attachments: join(sub, "deep.txt") });
    const rows = await stored(id);
    expect(rows.map((r) => r.filename)).toEqual(["deep.txt"]);
    expect(rows[0]?.attachment.equals(content)).toBe(true);
  });

  it("refuses a relative path", async () => {
    writeFile(join(allowed, "relative.txt"), "x");
    for (const path of ["relative.txt", "./relative.txt", "~/relative.txt"]) {
      const error = await refused({ file_attachments: path });
      expectError(error, "22023", "file_attachments", path);
      expect(error.message).toContain("absolute");
    }
  });

  it("refuses '..' and '.' components", async () => {
    for (const path of [`${allowed}/../../etc/passwd`, `${allowed}/..`, `${allowed}/./data.bin`]) {
      const error = await refused({ file_attachments: path });
      expect(error.code).toBe("22023");
      expect(error.message.startsWith(`file_attachments: ${shown(path)}: `), error.message).toBe(true);
    }
  });

  it("refuses a file outside the allowed directories", async () => {
    const path = join(outside, "secret.txt");
    writeFile(path, "secret");
    const error = await refused({ file_attachments: path });
    expectError(error, "42501", "file_attachments", path);
    expect(error.message).toContain("AttachmentDirectories");
    // Also when it comes after an allowed file: the whole message is refused.
    writeFile(join(allowed, "ok.txt"), "ok");
    expectError(
      await refused({ file_attachments: `${join(allowed, "ok.txt")};${path}` }),
      "42501",
      "file_attachments",
      path,
    );
  });

  it("refuses a directory that merely shares the allowed directory's name as a prefix", async () => {
    const path = join(prefixTwin, "file.txt");
    expect(path.startsWith(allowed)).toBe(true);
    writeFile(path, "prefix trick");
    expectError(await refused({ file_attachments: path }), "42501", "file_attachments", path);
  });

  it("refuses /proc/self/environ and /etc/passwd (outside)", async () => {
    for (const path of ["/proc/self/environ", "/etc/passwd"]) {
      expectError(await refused({ file_attachments: path }), "42501", "file_attachments", path);
    }
  });

  it("refuses a missing file with 58P01 'no such file'", async () => {
    const path = join(allowed, "missing.txt");
    const error = await refused({ file_attachments: path });
    expectError(error, "58P01", "file_attachments", path);
    expect(error.message).toContain("no such file");
    const inMissingDirectory = join(allowed, "no-such-directory", "file.txt");
    expectError(
      await refused({ file_attachments: inMissingDirectory }),
      "58P01",
      "file_attachments",
      inMissingDirectory,
    );
  });

  it("refuses a directory", async () => {
    const directory = makeDirectory(join(allowed, "a-directory"));
    const error = await refused({ file_attachments: directory });
    expectError(error, "22023", "file_attachments", directory);
    expect(error.message).toContain("directory");
    expectError(
      await refused({ file_attachments: `${directory}/` }),
      "22023",
      "file_attachments",
      `${directory}/`,
    );
  });

  it("refuses a file over MaxFileSize before reading it, and accepts exactly MaxFileSize", async () => {
    // Unreadable by the server: a 54000 (not 58030) shows the size was checked before any read.
    writeFile(join(allowed, "big.bin"), randomBytes(1001), 0o000);
    const exact = writeFile(join(allowed, "exact.bin"), randomBytes(1000));
    await withSetting("MaxFileSize", "1000", async () => {
      const error = await refused({ file_attachments: join(allowed, "big.bin") });
      expectError(error, "54000", "file_attachments", "big.bin");
      expect(error.message).toContain("MaxFileSize");
      const id = await send({ file_attachments: join(allowed, "exact.bin") });
      const rows = await stored(id);
      expect(rows.map((r) => Number(r.filesize))).toEqual([1000]);
      expect(rows[0]?.attachment.equals(exact)).toBe(true);
    });
  });

  it("refuses a file the server cannot read (58030), naming it", async () => {
    const path = join(allowed, "unreadable.txt");
    writeFile(path, "no access", 0o000);
    const error = await refused({ file_attachments: path });
    expectError(error, "58030", "file_attachments", path);
  });

  it("refuses a file with a prohibited extension", async () => {
    for (const name of ["tool.exe", "payload.pdf.vbs", "Setup.EXE"]) {
      writeFile(join(allowed, name), "MZ");
      const error = await refused({ file_attachments: join(allowed, name) });
      expectError(error, "22023", "file_attachments", name);
      expect(error.message).toContain("ProhibitedExtensions");
    }
    writeFile(join(allowed, "report.exe.txt"), "fine");
    const id = await send({ file_attachments: join(allowed, "report.exe.txt") });
    expect((await stored(id)).map((r) => r.filename)).toEqual(["report.exe.txt"]);
  });

  it("refuses a file whose name a receiver reads differently (evil.exe., evil.exe::$DATA, a no-break space)", async () => {
    for (const name of ["evil.exe.", "evil.exe::$DATA", "evil.exe\u00a0"]) {
      const path = join(allowed, name);
      writeFile(path, "MZ");
      expectError(await refused({ file_attachments: path }), "22023", "file_attachments", name);
    }
  });

  // Issue 13: before the hardening a FIFO was opened, which blocks the backend in the kernel until a writer
  // comes, beyond statement_timeout, pg_cancel_backend and pg_terminate_backend; here a writer comes,
  // so the attack ends, and its data was attached.
  it("refuses a FIFO at once, without opening it", async () => {
    const fifo = join(allowed, "pipe.txt");
    execFileSync("mkfifo", ["-m", "666", fifo]);
    try {
      let settled = false;
      const attempt = refused({ file_attachments: fifo }).finally(() => {
        settled = true;
      });
      while (!settled) {
        try {
          // Succeeds only while a reader has the FIFO open: then the database is blocked reading it.
          const fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
          writeSync(fd, "data from the pipe");
          closeSync(fd);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "ENXIO") throw error;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const error = await attempt;
      expectError(error, "22023", "file_attachments", fifo);
      expect(error.message).toContain("not a regular file");
    } finally {
      rmSync(fifo, { force: true });
    }
  });

  // Before: a device (a symbolic link to one) was read to its end, or to 1 GB, past MaxFileSize; a file
  // that the kernel makes up (in /proc) shows size 0 too, and was read.
  it("refuses a device and a /proc file, both of size 0, without reading them; and an empty file", async () => {
    symlinkSync("/dev/null", join(allowed, "device.txt"));
    symlinkSync("/proc/self/status", join(allowed, "status.txt"));
    writeFile(join(allowed, "empty.txt"), "");
    for (const name of ["device.txt", "status.txt", "empty.txt"]) {
      const path = join(allowed, name);
      const error = await refused({ file_attachments: path });
      expectError(error, "22023", "file_attachments", path);
      expect(error.message).toContain("is empty, or not a regular file");
    }
  });

  it("refuses a path with a line break", async () => {
    const path = `${allowed}/line\nbreak.txt`;
    expectError(await refused({ file_attachments: path }), "22023", "file_attachments", path);
  });

  it("stores the content read at call time: later changes to the file are not delivered", async () => {
    const path = join(allowed, "snapshot.txt");
    const original = writeFile(path, "original content\n");
    const subject = uniqueSubject("snapshot");
    const id = await send({
      subject,
      file_attachments: path,
      send_at: new Date(Date.now() + 3_600_000).toISOString(),
    });
    // Change, then remove the file before the sender may deliver.
    writeFile(path, "changed content, which must not be sent\n");
    expect(first(await stored(id)).attachment.equals(original)).toBe(true);
    rmSync(path);
    await db.query("UPDATE dbmail.mailitems SET next_attempt_at = now() WHERE mailitem_id = $1", [id]);
    const mail = await receivedWithSubject(subject);
    const received = attachmentsOf(mail);
    expect(received.map((a) => a.filename)).toEqual(["snapshot.txt"]);
    expect(received[0]?.content.equals(original)).toBe(true);
  });
});

describe("AttachmentDirectories setting", () => {
  it("refuses a relative directory or one with '.' or '..', keeping the old value", async () => {
    const before = await setting("AttachmentDirectories");
    for (const value of ["reports", "srv/reports", "/srv/../etc", "/srv/./reports", `${allowed};../x`]) {
      const error = await errorOf(configure("AttachmentDirectories", value));
      expect(error.code).toBe("22023");
      expect(error.message).toContain("AttachmentDirectories");
      expect(await setting("AttachmentDirectories")).toBe(before);
    }
  });

  it("cannot be changed by a dbmail_user", async () => {
    const error = await errorOf(
      app.query("SELECT dbmail.sysmail_configure_sp('AttachmentDirectories', '/')"),
    );
    expect(error.code).toBe("42501");
    expect(await setting("AttachmentDirectories")).toBe("");
  });

  it("is empty again after the file tests (file attachments disabled)", async () => {
    expect(await setting("AttachmentDirectories")).toBe("");
    writeFile(join(allowed, "after.txt"), "x");
    expectError(
      await refused({ file_attachments: join(allowed, "after.txt") }),
      "42501",
      "file_attachments",
      join(allowed, "after.txt"),
    );
  });
});
