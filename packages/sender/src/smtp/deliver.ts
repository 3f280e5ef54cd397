import type Mail from "nodemailer/lib/mailer/index.js";
import type { Attempt, ClaimedItem, Outcome, ProfileAccount } from "../rows.js";
import { safeText } from "../safe-text.js";
import { describeSmtpError, type SmtpError, serverText, verdictOf } from "./classify.js";

export interface SentInfo {
  response: string;
  rejected?: (string | Mail.Address)[];
  rejectedErrors?: SmtpError[];
}

/**
 * When one attempt's SMTP conversation began, and how long it has taken. It starts when the attempt is
 * made; a SendThrough that first waits (for a free pooled connection) starts it again when it is done
 * waiting, so the time recorded is the server's and the network's, not the sender's queue.
 */
export class AttemptClock {
  startedAt = new Date();
  private began = performance.now();

  start(): void {
    this.startedAt = new Date();
    this.began = performance.now();
  }

  elapsedMs(): number {
    return Math.max(0, Math.round(performance.now() - this.began));
  }
}

/** Sends one composed message through one account. */
export type SendThrough = (account: ProfileAccount, clock: AttemptClock) => Promise<SentInfo>;

/** Thrown by a SendThrough when the item is no longer this sender's: the delivery stops at once. */
export class LeaseLostError extends Error {
  override name = "LeaseLostError";
}

/**
 * Thrown by a SendThrough when the account's max_messages_per_minute has no room: the database gave the
 * item back, due at `dueAt`, and the delivery stops at once (a wait, not a failure: no round is used).
 */
export class RateLimitedError extends Error {
  override name = "RateLimitedError";
  constructor(readonly dueAt: Date) {
    super(`the account's max_messages_per_minute is reached; due again at ${dueAt.toISOString()}`);
  }
}

/**
 * The accounts one round tries, in order. Per sequence number one account is used (a random one when
 * several share it, which spreads load). The first round of a new message starts at the sequence number
 * of the account that last sent successfully for the profile; later rounds start from the lowest.
 */
export function accountsForRound(accounts: ProfileAccount[], firstRound: boolean): ProfileAccount[] {
  const groups = new Map<number, ProfileAccount[]>();
  for (const account of [...accounts].sort((a, b) => a.sequence_number - b.sequence_number)) {
    const group = groups.get(account.sequence_number) ?? [];
    group.push(account);
    groups.set(account.sequence_number, group);
  }
  const chosen = [...groups.values()].map(
    (group) => group[Math.floor(Math.random() * group.length)] as ProfileAccount,
  );
  const stickySequence = firstRound ? accounts.find((a) => a.is_last_success)?.sequence_number : undefined;
  const start = chosen.findIndex((a) => a.sequence_number === stickySequence);
  return start > 0 ? chosen.slice(start) : chosen;
}

/**
 * One round over the profile's accounts for one item: the first account that accepts the message wins.
 * If every account refused the recipients or the message permanently, the item fails at once;
 * otherwise it waits for the next round (AccountRetryDelay, decided in SQL).
 */
export async function deliver(
  item: ClaimedItem,
  accounts: ProfileAccount[],
  sendThrough: SendThrough,
): Promise<Outcome> {
  const round = accountsForRound(accounts, item.send_attempts === 0);
  if (round.length === 0) {
    return { status: "retrying", error: `profile ${item.profile_id} has no accounts`, accountErrors: [] };
  }
  const accountErrors: Outcome["accountErrors"] = [];
  const attempts: Attempt[] = [];
  let allPermanent = true;
  for (const account of round) {
    const clock = new AttemptClock();
    try {
      const info = await sendThrough(account, clock);
      const smtpResponse = responseOf(info);
      attempts.push(attemptOf(account, clock, "sent", replyCode(info.response), smtpResponse));
      return { status: "sent", accountId: account.account_id, smtpResponse, accountErrors, attempts };
    } catch (error) {
      if (error instanceof LeaseLostError || error instanceof RateLimitedError) throw error;
      const smtpError = error as SmtpError;
      const permanent = verdictOf(smtpError) === "permanent";
      allPermanent &&= permanent;
      const described = describeSmtpError(smtpError);
      accountErrors.push({ account_id: account.account_id, error: described });
      const code = typeof smtpError.responseCode === "number" ? smtpError.responseCode : null;
      attempts.push(attemptOf(account, clock, permanent ? "refused" : "failed", code, described));
    }
  }
  const error = accountErrors.map((e) => `account ${e.account_id}: ${e.error}`).join("; ");
  return { status: allPermanent ? "failed" : "retrying", error, accountErrors, attempts };
}

function attemptOf(
  account: ProfileAccount,
  clock: AttemptClock,
  outcome: Attempt["outcome"],
  smtpCode: number | null,
  smtpResponse: string,
): Attempt {
  return {
    account_id: account.account_id,
    started_at: clock.startedAt.toISOString(),
    duration_ms: clock.elapsedMs(),
    outcome,
    smtp_code: smtpCode,
    smtp_response: smtpResponse,
  };
}

/** The reply code a server's final answer starts with ("250 2.0.0 Ok: queued"), if it has one. */
function replyCode(response: string | undefined): number | null {
  const code = /^([2-5]\d\d)(?:[ -]|$)/.exec(response ?? "")?.[1];
  return code === undefined ? null : Number(code);
}

/** The server's reply (made safe to store), plus the recipients it refused when it accepted the others. */
function responseOf(info: SentInfo): string {
  const response = serverText(info.response ?? "");
  const rejected = (info.rejected ?? []).map((r) => (typeof r === "string" ? r : r.address));
  if (rejected.length === 0) return response;
  // Each part is safe already; the reasons are cut as a whole, so the list of refused recipients stays.
  const reasons = safeText((info.rejectedErrors ?? []).map(describeSmtpError).join("; "), 4000);
  return `${response}; refused recipients: ${rejected.join(", ")}${reasons ? ` (${reasons})` : ""}`;
}
