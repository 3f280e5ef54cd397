import type pg from "pg";
import { callProcedure, isUnknownObject } from "./procedure.js";

export interface Profile {
  profile_id: number;
  name: string;
  description: string | null;
}

export interface ProfileAccount {
  account_id: number;
  account_name: string;
  sequence_number: number;
}

export interface Grant {
  principal_id: string;
  /** NULL for a role dropped since the grant was made. */
  principal_name: string | null;
  is_default: boolean;
}

export async function listProfiles(pool: pg.Pool): Promise<Profile[]> {
  return (await callProcedure<Profile>(pool, "sysmail_help_profile_sp", {}, true)).rows;
}

/** The profile with this id, its accounts in failover order and its grants; undefined when there is none. */
export async function readProfile(
  pool: pg.Pool,
  id: string,
): Promise<{ profile: Profile; accounts: ProfileAccount[]; grants: Grant[] } | undefined> {
  const args = { profile_id: id };
  try {
    const profile = (await callProcedure<Profile>(pool, "sysmail_help_profile_sp", args, true)).rows[0];
    if (!profile) return undefined;
    const [accounts, grants] = await Promise.all([
      callProcedure<ProfileAccount>(pool, "sysmail_help_profileaccount_sp", args, true),
      callProcedure<Grant>(pool, "sysmail_help_principalprofile_sp", args, true),
    ]);
    return { profile, accounts: accounts.rows, grants: grants.rows };
  } catch (error) {
    if (isUnknownObject(error)) return undefined;
    throw error;
  }
}
