import type pg from "pg";
import type { Logger } from "../log.js";
import type { ClaimedItem, Outcome, ProfileAccount, StoredAttachment } from "../rows.js";
import { composeForSending, type MessageAttachment } from "../smtp/compose.js";
import { deliver, LeaseLostError, RateLimitedError, type SentInfo } from "../smtp/deliver.js";
import { type FinalCheck, withFinalCheck } from "../smtp/final-check.js";
import type { Transports } from "../smtp/transports.js";
import type { AccountsCache } from "./accounts-cache.js";
import { ATTACHMENT_CHUNK_BYTES, chunkedStream } from "./attachment-stream.js";
import type { DeliveryEvents } from "./delivery-events.js";
import type { Leases } from "./leases.js";
import type { OutcomeRecorder } from "./outcomes.js";
import * as q from "./queries.js";

/** What one delivery of an item found out: its outcome, and when its lease was last checked. */
export interface Delivered {
  outcome: Outcome;
  /** When (wall clock) the lease was last checked before the end of the message went out. */
  finalCheckAt?: number;
  /** The account that accepted the message, and how long that took over SMTP (seconds). */
  accountName?: string;
  smtpSeconds?: number;
}

export interface DeliveryParts {
  pool: pg.Pool;
  senderId: string;
  leases: Leases;
  accounts: AccountsCache;
  transports: Transports;
  outcomes: OutcomeRecorder;
  log: Logger;
  /** Told of each recorded outcome (the metrics). */
  events?: DeliveryEvents;
}

/**
 * One item, from claimed to recorded: send() makes one round over the profile's accounts (the SMTP part,
 * during which the item counts against the sender's concurrency), record() then records its outcome (in
 * a batch, while the next message takes its place) and logs it.
 */
export class ItemDelivery {
  constructor(private readonly parts: DeliveryParts) {}

  /** One round over the item's accounts; undefined when it was not sent (its lease was lost). */
  async send(item: ClaimedItem): Promise<Delivered | undefined> {
    const { accounts, transports, leases, log } = this.parts;
    let prepared: [ProfileAccount[], StoredAttachment[]];
    try {
      prepared = await Promise.all([
        accounts.forProfile(item.profile_id),
        item.attachment_count > 0
          ? q.attachments(
              this.parts.pool,
              this.parts.senderId,
              item.mailitem_id,
              leases.token(item.mailitem_id),
              ATTACHMENT_CHUNK_BYTES,
            )
          : [],
      ]);
    } catch (error) {
      // Nothing was sent: give the item back at once rather than letting its lease run out.
      await leases.release([item.mailitem_id]).catch(() => {});
      throw error;
    }
    const [profileAccounts, attachments] = prepared;
    const delivered: Delivered = { outcome: { status: "retrying", accountErrors: [] } };
    try {
      delivered.outcome = await deliver(item, profileAccounts, async (account, clock) => {
        await this.admit(item, account);
        // Only when a pooled connection is free, so the lease checks happen right before the message
        // goes out, not before it waits in nodemailer's queue (nor is that wait the attempt's time).
        return transports.withConnection(account, () => {
          clock.start();
          return this.sendThrough(item, account, attachments, delivered);
        });
      });
    } catch (error) {
      if (error instanceof RateLimitedError) {
        // The database gave the item back already, due when the account has room again. (An earlier
        // account's failure in this round is not recorded: the round did not happen, as far as retries go.)
        if (log.isLevelEnabled("debug")) {
          log.debug(
            { mailitemId: item.mailitem_id, dueAt: error.dueAt.toISOString() },
            "waiting for the account's rate limit",
          );
        }
        return undefined;
      }
      if (!(error instanceof LeaseLostError)) throw error;
      log.warn(
        { mailitemId: item.mailitem_id, reason: error.message },
        "not sent: the item is no longer this sender's",
      );
      // Nothing went out. Should the lease merely have been unconfirmable (the database unreachable),
      // give the item back rather than let it expire into an "outcome unknown"; a no-op for an item
      // another sender holds.
      await leases.release([item.mailitem_id]).catch(() => {});
      return undefined;
    }
    return delivered;
  }

  /** Records the outcome the SMTP servers gave (see OutcomeRecorder), and logs it. */
  async record(
    item: ClaimedItem,
    { outcome, finalCheckAt, accountName, smtpSeconds }: Delivered,
  ): Promise<void> {
    // Made only when needed: a child logger per message costs more than it is worth on the hot path.
    const log = () => this.parts.log.child({ mailitemId: item.mailitem_id });
    let status: string;
    try {
      status = await this.parts.outcomes.record(item.mailitem_id, outcome);
    } catch (error) {
      log().error(
        { outcome: outcome.status, err: (error as Error).message },
        "the outcome could not be recorded: the item will be claimed again after its lease (outcome unknown)",
      );
      return;
    }
    this.parts.events?.recorded({ outcome, status, accountName, smtpSeconds });
    if (outcome.status === "sent" && outcome.accountId !== undefined) {
      this.parts.accounts.markSuccess(item.profile_id, outcome.accountId);
    }
    if (status === "lease_lost") {
      log().warn(
        {
          outcome: outcome.status,
          // The last moment the lease was known to be held before the end of the message went out.
          leaseCheckedAt: finalCheckAt ? new Date(finalCheckAt).toISOString() : undefined,
        },
        "the item was reclaimed or deleted before its outcome was recorded",
      );
    } else if (this.parts.log.isLevelEnabled("info")) {
      log().info({ status, accountId: outcome.accountId, error: outcome.error }, `mail ${status}`);
    }
  }

  /**
   * An account with max_messages_per_minute sends only with a slot from the database, which counts for
   * all senders together (dbmail.take_send_slot). Throws RateLimitedError when there is none (the item
   * was given back), LeaseLostError when the item is no longer this sender's.
   */
  private async admit(item: ClaimedItem, account: ProfileAccount): Promise<void> {
    if (account.max_messages_per_minute === null) return;
    const id = item.mailitem_id;
    const slot = await q.takeSendSlot(
      this.parts.pool,
      this.parts.senderId,
      id,
      this.parts.leases.token(id),
      account.account_id,
    );
    if (slot.admitted) return;
    if (slot.due_at === null) throw new LeaseLostError("another sender took it over before it was sent");
    throw new RateLimitedError(slot.due_at);
  }

  /**
   * One attempt through one account. The lease is checked before the message starts and again right
   * before its end of DATA goes out (the final check), so a sender paused past its lease (SIGSTOP,
   * swap) aborts, rather than completes, a message another sender has taken over: the server discards
   * a message whose DATA never ended. The final check costs nothing while the local clock says the lease
   * is surely held; only past that does it ask the database. Throws LeaseLostError when the lease is lost.
   */
  private async sendThrough(
    item: ClaimedItem,
    account: ProfileAccount,
    stored: StoredAttachment[],
    delivered: Delivered,
  ): Promise<SentInfo> {
    const { leases } = this.parts;
    const id = item.mailitem_id;
    if (!(await leases.stillHeld(id))) {
      throw new LeaseLostError("another sender took it over before it was sent");
    }
    let lost: string | undefined;
    // A fresh stream per attempt: the next account, if this one fails, sends the whole attachment again.
    const attachments: MessageAttachment[] = stored.map((a) => ({
      filename: a.filename,
      contentType: a.content_type,
      content:
        a.content ??
        chunkedStream(a.size, async (offset, length) => {
          const piece = await q.attachmentChunk(
            this.parts.pool,
            this.parts.senderId,
            a.attachment_id,
            leases.token(id),
            offset,
            length,
          );
          if (piece === null) {
            lost = "another sender took it over while it was being sent";
            throw new LeaseLostError(lost);
          }
          return piece;
        }),
    }));
    const finalCheck: FinalCheck = () => {
      delivered.finalCheckAt = Date.now();
      if (leases.surelyHeld(id)) return true;
      return leases.stillHeld(id).then(
        (held) => {
          // Confirmed in the database, and no long pause since the question was asked.
          if (held && leases.surelyHeld(id)) return true;
          lost = held
            ? "this sender was paused while confirming its lease before the end of its message"
            : "another sender took it over before the end of its message";
          return false;
        },
        (error: Error) => {
          lost = `its lease could not be confirmed before the end of its message: ${error.message}`;
          return false;
        },
      );
    };
    try {
      const started = performance.now();
      const info = await this.parts.transports
        .get(account)
        .sendMail(withFinalCheck(composeForSending(item, account, attachments), finalCheck));
      delivered.accountName = account.account_name;
      delivered.smtpSeconds = (performance.now() - started) / 1000;
      return info;
    } catch (error) {
      if (lost !== undefined) throw new LeaseLostError(lost);
      throw error;
    }
  }
}
