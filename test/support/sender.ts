import { createLogger, senderDefaults as defaults, Sender, type SenderOptions } from "@pg-dbmail/sender";
import pino from "pino";
import type { TestDatabase, TestRole } from "./database.js";
import type { TestSmtpServer } from "./smtp.js";

/**
 * Starts an in-process sender against a test database, logged in as `role` (a dbmail_sender member), with
 * short poll and heartbeat intervals so tests run fast. Stop it with `sender.stop()`. With `logLines`,
 * every JSON line it logs (at debug level) is kept there instead of printed.
 */
export async function startSender(
  role: TestRole,
  overrides: Partial<SenderOptions> = {},
  logLines?: string[],
): Promise<Sender> {
  const options: SenderOptions = {
    ...defaults,
    databases: [{ name: "test", url: role.url }],
    senderId: `test-${Math.random().toString(36).slice(2, 8)}`,
    pollIntervalMs: 200,
    heartbeatIntervalMs: 500,
    shutdownTimeoutMs: 5000,
    smtpTimeoutSeconds: 5,
    logLevel: "error",
    ...overrides,
  };
  const log = logLines
    ? pino({ level: "debug" }, { write: (line: string) => void logLines.push(line) })
    : createLogger(options.logLevel);
  const sender = new Sender(options, log);
  await sender.start();
  return sender;
}

/** Configures, as superuser, an account on `server` and a public default profile using it. */
export async function addAccount(
  db: TestDatabase,
  name: string,
  server: TestSmtpServer | { port: number },
  extra: Record<string, unknown> = {},
): Promise<number> {
  const params = {
    account_name: name,
    email_address: `${name}@example.com`,
    mailserver_name: "127.0.0.1",
    port: server.port,
    ...extra,
  };
  const names = Object.keys(params);
  const { rows } = await db.query<{ id: number }>(
    `SELECT dbmail.sysmail_add_account_sp(${names.map((n, i) => `${n} => $${i + 1}`).join(", ")}) AS id`,
    Object.values(params),
  );
  return rows[0]?.id as number;
}

/** Waits until `check` returns a truthy value, polling every 50 ms; rejects after timeoutMs. */
export async function eventually<T>(check: () => Promise<T>, timeoutMs = 15_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last as NonNullable<T>;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`condition not met within ${timeoutMs} ms (last value: ${JSON.stringify(last)})`);
}
