// The database the tests of sp_send_dbmail and of its limits start from, one per test file: login roles,
// an account, and profiles granted in each way a profile can be (SPEC.md sections 3 and 5). Mail is sent as
// members of dbmail_user (alice unless a test says otherwise); the queue is read as the superuser.
import type pg from "pg";
import { afterAll, beforeAll } from "vitest";
import { TestDatabase, type TestRole } from "../../../../test/support/database.js";
import {
  type Args,
  addAccount,
  addProfile,
  call,
  first,
  type Queryable,
  queued,
  type Refusal,
  refused,
  send,
} from "../../../../test/support/mail.js";

interface Address {
  name: string | null;
  address: string;
}

/** A row of dbmail.mailitems. */
export interface MailItem {
  mailitem_id: string;
  profile_id: number;
  recipients: string | null;
  copy_recipients: string | null;
  blind_copy_recipients: string | null;
  envelope: { to: Address[]; cc: Address[]; bcc: Address[] };
  subject: string;
  body: string | null;
  body_format: string;
  importance: string;
  sensitivity: string;
  execute_query_database: string | null;
  query_result_width: number;
  query_result_separator: string;
  query_result_no_padding: boolean;
  query_no_truncate: boolean;
  query_result_format: string;
  from_address: string | null;
  reply_to: string | null;
  headers: Record<string, string> | null;
  send_at: Date | null;
  idempotency_key: string | null;
  /** NULL until the item's first claim fixes it. */
  message_id: string | null;
  send_request_date: Date;
  send_request_user: string;
  last_mod_user: string;
  sent_status: string;
  send_attempts: number;
  next_attempt_at: Date;
}

/** A message that passes every check: tests override what they are about. */
export const base: Args = {
  profile_name: "Main",
  recipients: "to@example.org",
  subject: "Test",
  body: "Body",
};
export const message = (overrides: Args = {}): Args => ({ ...base, ...overrides });

/**
 * Adds a profile that sends through `account` (sequence number 1), granted to `principal` when one is
 * given; returns the profile's id.
 */
export async function addSendingProfile(
  admin: Queryable,
  profile: string,
  account: string,
  principal?: string,
  isDefault = false,
): Promise<number> {
  const { id } = await addProfile(admin, { profile_name: profile });
  await call(admin, "sysmail_add_profileaccount_sp", {
    profile_name: profile,
    account_name: account,
    sequence_number: 1,
  });
  if (principal !== undefined) {
    await call(admin, "sysmail_add_principalprofile_sp", {
      principal_name: principal,
      profile_name: profile,
      is_default: isDefault,
    });
  }
  return id;
}

export interface SendDatabase {
  db: TestDatabase;
  aliceRole: TestRole;
  bobRole: TestRole;
  /** A dbmail_user through whom the group role sendersGroup is granted GroupOnly. */
  carolRole: TestRole;
  /** A dbmail_admin. */
  bossRole: TestRole;
  /** A login role with no dbmail role. */
  outsiderRole: TestRole;
  sendersGroup: TestRole;
  alice: pg.Client;
  bob: pg.Client;
  carol: pg.Client;
  boss: pg.Client;
  mainProfileId: number;
  /** The installation id without dashes, as Message-IDs carry it. */
  installationHex: string;
  /** Queues a message as `client` (alice); returns its mailitem_id. */
  send(args: Args, client?: pg.Client): Promise<string>;
  /** Sends as `client` (alice) expecting a refusal that queued nothing. */
  refused(args: Args, client?: pg.Client): Promise<Refusal>;
  queued(): Promise<number>;
  item(id: string): Promise<MailItem>;
  sendAndRead(args: Args, client?: pg.Client): Promise<MailItem>;
  /** The Message-ID the item's first claim fixes, claimed in a transaction rolled back (nothing changes). */
  messageId(id: string): Promise<string>;
}

/**
 * Makes the file's database before its tests and drops it after them. The helpers can be taken out of the
 * result at once; the roles, clients and ids are there once the tests run.
 */
export function useSendDatabase(): SendDatabase {
  const t = {
    send: (args: Args, client = t.alice) => send(client, args),
    refused: (args: Args, client = t.alice) => refused(t.db, client, args),
    queued: () => queued(t.db),
    item: async (id: string) =>
      first((await t.db.query<MailItem>("SELECT * FROM dbmail.mailitems WHERE mailitem_id = $1", [id])).rows),
    sendAndRead: async (args: Args, client = t.alice) => t.item(await t.send(args, client)),
    messageId: async (id: string) => {
      await t.db.query("BEGIN");
      try {
        const { rows } = await t.db.query<{ message_id: string }>(
          "SELECT c.message_id FROM dbmail.claim_mailitems('test-message-id', 10000) c WHERE c.mailitem_id = $1",
          [id],
        );
        return first(rows).message_id;
      } finally {
        await t.db.query("ROLLBACK");
      }
    },
  } as SendDatabase;
  beforeAll(async () => {
    const db = await TestDatabase.create();
    t.db = db;
    t.aliceRole = await db.createRole("alice", { memberOf: ["dbmail_user"] });
    t.bobRole = await db.createRole("bob", { memberOf: ["dbmail_user"] });
    t.sendersGroup = await db.createRole("senders", { login: false });
    t.carolRole = await db.createRole("carol", { memberOf: ["dbmail_user", t.sendersGroup.name] });
    t.bossRole = await db.createRole("boss", { memberOf: ["dbmail_admin"] });
    t.outsiderRole = await db.createRole("outsider");

    await addAccount(db, {
      account_name: "main_acct",
      email_address: "mailer@example.com",
      mailserver_name: "localhost",
    });
    t.mainProfileId = await addSendingProfile(db, "Main", "main_acct", "public");
    // Private: no grants at all (admins only).
    await addSendingProfile(db, "Secret", "main_acct");
    await addSendingProfile(db, "GroupOnly", "main_acct", t.sendersGroup.name);
    await addSendingProfile(db, "BobOnly", "main_acct", t.bobRole.name);

    const state = await db.query<{ hex: string }>(
      "SELECT replace(installation_id::text, '-', '') AS hex FROM dbmail.system_state",
    );
    t.installationHex = first(state.rows).hex;

    t.alice = await db.connect(t.aliceRole);
    t.bob = await db.connect(t.bobRole);
    t.carol = await db.connect(t.carolRole);
    t.boss = await db.connect(t.bossRole);
  });
  afterAll(async () => {
    await t.db?.drop();
  });
  return t;
}
