// What sp_send_dbmail refuses in `file_attachments` with an allowed directory, storing nothing (SPEC.md
// sections 3 and 4): relative paths, '.' and '..', files outside AttachmentDirectories (also behind a
// shared name prefix), missing or unreadable files, directories, FIFOs, devices and /proc files, files over
// MaxFileSize (before reading them) and prohibited or disguised extensions.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, constants, openSync, rmSync, symlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  allowAttachmentDirectory,
  allowed,
  db,
  makeDirectory,
  outside,
  prefixTwin,
  refusedMail,
  sendMail,
  setUpAttachments,
  stored,
  writeFile,
} from "../support/attachments.js";
import { expectError, shown, withSettings } from "../support/mail.js";

setUpAttachments();

describe("file attachments", () => {
  allowAttachmentDirectory();

  it("refuses a relative path", async () => {
    writeFile(join(allowed, "relative.txt"), "x");
    for (const path of ["relative.txt", "./relative.txt", "~/relative.txt"]) {
      const error = await refusedMail({ file_attachments: path });
      expectError(error, "22023", "file_attachments", path);
      expect(error.message).toContain("absolute");
    }
  });

  it("refuses '..' and '.' components", async () => {
    for (const path of [`${allowed}/../../etc/passwd`, `${allowed}/..`, `${allowed}/./data.bin`]) {
      const error = await refusedMail({ file_attachments: path });
      expect(error.code).toBe("22023");
      expect(error.message.startsWith(`file_attachments: ${shown(path)}: `), error.message).toBe(true);
    }
  });

  it("refuses a file outside the allowed directories", async () => {
    const path = join(outside, "secret.txt");
    writeFile(path, "secret");
    const error = await refusedMail({ file_attachments: path });
    expectError(error, "42501", "file_attachments", path);
    expect(error.message).toContain("AttachmentDirectories");
    // Also when it comes after an allowed file: the whole message is refused.
    writeFile(join(allowed, "ok.txt"), "ok");
    expectError(
      await refusedMail({ file_attachments: `${join(allowed, "ok.txt")};${path}` }),
      "42501",
      "file_attachments",
      path,
    );
  });

  it("refuses a directory that merely shares the allowed directory's name as a prefix", async () => {
    const path = join(prefixTwin, "file.txt");
    expect(path.startsWith(allowed)).toBe(true);
    writeFile(path, "prefix trick");
    expectError(await refusedMail({ file_attachments: path }), "42501", "file_attachments", path);
  });

  it("refuses /proc/self/environ and /etc/passwd (outside)", async () => {
    for (const path of ["/proc/self/environ", "/etc/passwd"]) {
      expectError(await refusedMail({ file_attachments: path }), "42501", "file_attachments", path);
    }
  });

  it("refuses a missing file with 58P01 'no such file'", async () => {
    const path = join(allowed, "missing.txt");
    const error = await refusedMail({ file_attachments: path });
    expectError(error, "58P01", "file_attachments", path);
    expect(error.message).toContain("no such file");
    const inMissingDirectory = join(allowed, "no-such-directory", "file.txt");
    expectError(
      await refusedMail({ file_attachments: inMissingDirectory }),
      "58P01",
      "file_attachments",
      inMissingDirectory,
    );
  });

  it("refuses a directory", async () => {
    const directory = makeDirectory(join(allowed, "a-directory"));
    const error = await refusedMail({ file_attachments: directory });
    expectError(error, "22023", "file_attachments", directory);
    expect(error.message).toContain("directory");
    expectError(
      await refusedMail({ file_attachments: `${directory}/` }),
      "22023",
      "file_attachments",
      `${directory}/`,
    );
  });

  it("refuses a file over MaxFileSize before reading it, and accepts exactly MaxFileSize", async () => {
    // Unreadable by the server: a 54000 (not 58030) shows the size was checked before any read.
    writeFile(join(allowed, "big.bin"), randomBytes(1001), 0o000);
    const exact = writeFile(join(allowed, "exact.bin"), randomBytes(1000));
    await withSettings(db, { MaxFileSize: "1000" }, async () => {
      const error = await refusedMail({ file_attachments: join(allowed, "big.bin") });
      expectError(error, "54000", "file_attachments", "big.bin");
      expect(error.message).toContain("MaxFileSize");
      const id = await sendMail({ file_attachments: join(allowed, "exact.bin") });
      const rows = await stored(id);
      expect(rows.map((r) => Number(r.filesize))).toEqual([1000]);
      expect(rows[0]?.attachment.equals(exact)).toBe(true);
    });
  });

  it("refuses a file the server cannot read (58030), naming it", async () => {
    const path = join(allowed, "unreadable.txt");
    writeFile(path, "no access", 0o000);
    const error = await refusedMail({ file_attachments: path });
    expectError(error, "58030", "file_attachments", path);
  });

  it("refuses a file with a prohibited extension", async () => {
    for (const name of ["tool.exe", "payload.pdf.vbs", "Setup.EXE"]) {
      writeFile(join(allowed, name), "MZ");
      const error = await refusedMail({ file_attachments: join(allowed, name) });
      expectError(error, "22023", "file_attachments", name);
      expect(error.message).toContain("ProhibitedExtensions");
    }
    writeFile(join(allowed, "report.exe.txt"), "fine");
    const id = await sendMail({ file_attachments: join(allowed, "report.exe.txt") });
    expect((await stored(id)).map((r) => r.filename)).toEqual(["report.exe.txt"]);
  });

  it("refuses a file whose name a receiver reads differently (evil.exe., evil.exe::$DATA, a no-break space)", async () => {
    for (const name of ["evil.exe.", "evil.exe::$DATA", "evil.exe\u00a0"]) {
      const path = join(allowed, name);
      writeFile(path, "MZ");
      expectError(await refusedMail({ file_attachments: path }), "22023", "file_attachments", name);
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
      const attempt = refusedMail({ file_attachments: fifo }).finally(() => {
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
      const error = await refusedMail({ file_attachments: path });
      expectError(error, "22023", "file_attachments", path);
      expect(error.message).toContain("is empty, or not a regular file");
    }
  });

  it("refuses a path with a line break", async () => {
    const path = `${allowed}/line\nbreak.txt`;
    expectError(await refusedMail({ file_attachments: path }), "22023", "file_attachments", path);
  });
});
