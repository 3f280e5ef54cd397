// What the sender's end-to-end tests (test/sender) and the fault suite (test/faults) share: a database
// with one account ready to deliver, spawned `dbmail start` processes, and
// counting what the SMTP servers received per X-DBMail-Mailitem-Id.
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { TestDatabase, type TestRole } from "../support/database.js";
import { profileWith, type Queryable } from "../support/mail.js";
import { addAccount } from "../support/sender.js";
import { type ReceivedMail, TestSmtpServer } from "../support/smtp.js";

export const cli = fileURLToPath(new URL("../../packages/sender/dist/cli.js", import.meta.url));

/** A sender id that says which test started it: `<prefix>-<random>`. */
export const shortId = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`;

/** A test database with a dbmail_sender login, and profile "p" whose one account sends to a new SMTP server. */
export async function singleAccountFixture(): Promise<{
  db: TestDatabase;
  role: TestRole;
  smtp: TestSmtpServer;
}> {
  const db = await TestDatabase.create();
  const role = await db.createRole("sender", { memberOf: ["dbmail_sender"] });
  const smtp = await TestSmtpServer.start();
  await addAccount(db, "acct", smtp);
  await profileWith(db, "p", ["acct"]);
  return { db, role, smtp };
}

/** A spawned `dbmail start`. */
export interface Spawned {
  child: ChildProcess;
  pid: number;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** What it wrote to stdout and stderr (the last 2,000,000 characters). */
  output: () => string;
  alive: () => boolean;
}

const spawned: Spawned[] = [];

/**
 * Spawns `dbmail start` against `url` with short poll and heartbeat intervals; killSpawned() ends it.
 * DATABASE_URL is emptied so that only `url` can be meant.
 */
export function spawnStart(url: string, args: string[] = []): Spawned {
  const child = spawn(
    process.execPath,
    [
      cli,
      "start",
      "--database-url",
      url,
      "--poll-interval-ms",
      "200",
      "--heartbeat-interval-ms",
      "500",
      ...args,
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, DATABASE_URL: "" } },
  );
  let output = "";
  const keep = (chunk: Buffer) => {
    // Enough for every warning of a long run at --log-level warn (the SIGSTOP scenario reads them).
    output = (output + chunk.toString()).slice(-2_000_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const s: Spawned = {
    child,
    pid: child.pid as number,
    exit,
    output: () => output,
    alive: () => child.exitCode === null && child.signalCode === null,
  };
  spawned.push(s);
  return s;
}

/** SIGKILLs every spawned sender that still runs (SIGCONT first, in case one is stopped). */
export async function killSpawned(): Promise<void> {
  for (const s of spawned.splice(0)) {
    if (!s.alive()) continue;
    s.child.kill("SIGCONT");
    s.child.kill("SIGKILL");
    await s.exit;
  }
}

const idOf = new WeakMap<ReceivedMail, { id: string; messageId: string }>();
function identify(mail: ReceivedMail): { id: string; messageId: string } {
  let known = idOf.get(mail);
  if (!known) {
    known = {
      id: String(mail.parsed.headers.get("x-dbmail-mailitem-id") ?? ""),
      messageId: String(mail.parsed.messageId ?? ""),
    };
    idOf.set(mail, known);
  }
  return known;
}

/** The X-DBMail-Mailitem-Id of a received message. */
export function mailitemIdOf(mail: ReceivedMail): string {
  return identify(mail).id;
}

export interface Tally {
  /** How many copies of each wanted id arrived, over all servers. */
  times: Map<string, number>;
  arrived: number;
  missing: string[];
  /** Ids that arrived more than once. */
  duplicates: string[];
  /** Extra copies (sum of times - 1 over duplicated ids). */
  extraCopies: number;
  /** Ids whose copies did not all carry the same Message-ID. */
  messageIdMismatch: string[];
}

/** What the servers received of `ids`, counted by X-DBMail-Mailitem-Id. */
export function tally(servers: TestSmtpServer[], ids: string[]): Tally {
  const wanted = new Set(ids);
  const times = new Map<string, number>();
  const messageIds = new Map<string, Set<string>>();
  for (const server of servers) {
    for (const mail of server.received) {
      const { id, messageId } = identify(mail);
      if (!wanted.has(id)) continue;
      times.set(id, (times.get(id) ?? 0) + 1);
      const set = messageIds.get(id) ?? new Set<string>();
      set.add(messageId);
      messageIds.set(id, set);
    }
  }
  const duplicates = [...times].filter(([, n]) => n > 1).map(([id]) => id);
  return {
    times,
    arrived: times.size,
    missing: ids.filter((id) => !times.has(id)),
    duplicates,
    extraCopies: duplicates.reduce((sum, id) => sum + (times.get(id) ?? 1) - 1, 0),
    messageIdMismatch: [...messageIds].filter(([, set]) => set.size !== 1).map(([id]) => id),
  };
}

/** Counts per sent_status of `ids`, read as superuser. */
export async function statusCounts(db: Queryable, ids: string[]): Promise<Record<string, number>> {
  const { rows } = await db.query<{ sent_status: string; n: string }>(
    `SELECT sent_status, count(*) AS n FROM dbmail.mailitems WHERE mailitem_id = ANY($1::bigint[])
      GROUP BY sent_status`,
    [ids],
  );
  return Object.fromEntries(rows.map((r) => [r.sent_status, Number(r.n)]));
}

/** Queues `count` mails through `profile` in one statement; returns their mailitem_ids. */
export async function queue(db: Queryable, count: number, tag: string, profile = "p"): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT dbmail.sp_send_dbmail(profile_name => $3, recipients => 'r' || i || '@example.org',
              subject => $1 || ' ' || i, body => 'b') AS id
       FROM generate_series(1, $2::integer) i`,
    [tag, count, profile],
  );
  return rows.map((r) => String(r.id));
}
