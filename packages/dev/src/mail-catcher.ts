import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { simpleParser } from "mailparser";
import { SMTPServer } from "smtp-server";

/** What `dbmail dev` shows of a caught message. */
export interface CaughtMail {
  file: string;
  from: string;
  to: string;
  subject: string;
}

/** The running catcher. */
export interface MailCatcher {
  port: number;
  stop(): Promise<void>;
}

/**
 * A local SMTP server that accepts every message and keeps it as an .eml file in `dir`, so mail sent
 * through the demo profile can be opened with any mail client or read as text.
 */
export async function startMailCatcher(options: {
  dir: string;
  port: number;
  onMessage: (mail: CaughtMail) => void;
}): Promise<MailCatcher> {
  mkdirSync(options.dir, { recursive: true });
  let count = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        const raw = Buffer.concat(chunks);
        const file = join(options.dir, `${new Date().toISOString().replace(/[:.]/g, "-")}-${++count}.eml`);
        writeFileSync(file, raw);
        summarise(file, raw).then(options.onMessage, () => {});
        callback();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, "127.0.0.1", () => resolve());
  });
  return { port: options.port, stop: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** The messages caught so far, oldest first. */
export async function listCaughtMail(dir: string): Promise<CaughtMail[]> {
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((f) => f.endsWith(".eml"))
      .sort();
  } catch {
    return [];
  }
  return Promise.all(files.map((f) => summarise(join(dir, f), readFileSync(join(dir, f)))));
}

async function summarise(file: string, raw: Buffer): Promise<CaughtMail> {
  const parsed = await simpleParser(raw, {
    skipHtmlToText: true,
    skipTextToHtml: true,
    skipImageLinks: true,
  });
  const addresses = (value: typeof parsed.to) =>
    (Array.isArray(value) ? value : value ? [value] : []).map((a) => a.text).join(", ");
  return { file, from: addresses(parsed.from), to: addresses(parsed.to), subject: parsed.subject ?? "" };
}
