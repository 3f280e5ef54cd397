import type pg from "pg";
import type { ProfileAccount } from "../rows.js";
import { profileAccounts } from "./queries.js";

// Also reload now and then, in case a dbmail_config notification was missed while disconnected.
const MAX_AGE_MS = 30_000;

/** Every profile's accounts, reloaded after a configuration change (NOTIFY dbmail_config). */
export class AccountsCache {
  private byProfile?: Map<number, ProfileAccount[]>;
  private loadedAt = 0;
  private loading?: Promise<Map<number, ProfileAccount[]>>;

  constructor(private readonly pool: pg.Pool) {}

  invalidate(): void {
    this.byProfile = undefined;
  }

  /** The profile's next new mail starts at this account (what record_outcome stored, without a reload). */
  markSuccess(profileId: number, accountId: number): void {
    for (const account of this.byProfile?.get(profileId) ?? [])
      account.is_last_success = account.account_id === accountId;
  }

  async forProfile(profileId: number): Promise<ProfileAccount[]> {
    if (!this.byProfile || Date.now() - this.loadedAt > MAX_AGE_MS) this.byProfile = await this.load();
    return this.byProfile.get(profileId) ?? [];
  }

  // One query however many deliveries ask at once.
  private load(): Promise<Map<number, ProfileAccount[]>> {
    this.loading ??= profileAccounts(this.pool)
      .then((rows) => {
        const map = new Map<number, ProfileAccount[]>();
        for (const row of rows) map.set(row.profile_id, [...(map.get(row.profile_id) ?? []), row]);
        this.loadedAt = Date.now();
        return map;
      })
      .finally(() => {
        this.loading = undefined;
      });
    return this.loading;
  }
}
