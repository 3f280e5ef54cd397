import type pg from "pg";
import { type Args, callProcedure, isUnknownObject } from "./procedure.js";

/** A row of sysmail_help_account_sp: every setting of an account, and of each secret only its source. */
export interface Account {
  account_id: number;
  name: string;
  description: string | null;
  email_address: string;
  display_name: string | null;
  replyto_address: string | null;
  servertype: string;
  servername: string;
  port: number;
  username: string | null;
  use_default_credentials: boolean;
  enable_ssl: boolean;
  security: string;
  timeout: number | null;
  tls_reject_unauthorized: boolean;
  password_source: string;
  auth_method: string;
  oauth2_token_url: string | null;
  oauth2_client_id: string | null;
  oauth2_scope: string | null;
  oauth2_client_secret_source: string;
  oauth2_refresh_token_source: string;
  dkim_domain: string | null;
  dkim_selector: string | null;
  dkim_private_key_source: string;
  max_messages_per_minute: number | null;
}

/** The form's text fields: each a parameter of sysmail_add/update_account_sp, and its help column. */
export const textFields = {
  account_name: "name",
  email_address: "email_address",
  display_name: "display_name",
  replyto_address: "replyto_address",
  description: "description",
  mailserver_name: "servername",
  mailserver_type: "servertype",
  username: "username",
  security: "security",
  auth_method: "auth_method",
  oauth2_token_url: "oauth2_token_url",
  oauth2_client_id: "oauth2_client_id",
  oauth2_scope: "oauth2_scope",
  dkim_domain: "dkim_domain",
  dkim_selector: "dkim_selector",
} as const satisfies Record<string, keyof Account>;
export const numberFields = ["port", "timeout", "max_messages_per_minute"] as const;
export const booleanFields = ["use_default_credentials", "enable_ssl", "tls_reject_unauthorized"] as const;
/** Never shown, never filled back into a form: only their `<secret>_source` column is. */
export const secretFields = [
  "password",
  "oauth2_client_secret",
  "oauth2_refresh_token",
  "dkim_private_key",
] as const;
export type Secret = (typeof secretFields)[number];
export const sourceOf = (secret: Secret) => `${secret}_source` as const;

/** What a form shows: the non-secret fields as text ("on" for a ticked box). */
export type FormValues = Record<string, string>;

export async function listAccounts(pool: pg.Pool): Promise<Account[]> {
  return (await callProcedure<Account>(pool, "sysmail_help_account_sp", {}, true)).rows;
}

/** The account with this id, or undefined when there is none. */
export async function readAccount(pool: pg.Pool, id: string): Promise<Account | undefined> {
  try {
    return (await callProcedure<Account>(pool, "sysmail_help_account_sp", { account_id: id }, true)).rows[0];
  } catch (error) {
    if (isUnknownObject(error)) return undefined;
    throw error;
  }
}

/** An account's settings as the edit form shows them. */
export function accountValues(account: Account): FormValues {
  const values: FormValues = {};
  for (const [field, column] of Object.entries(textFields)) values[field] = String(account[column] ?? "");
  for (const field of numberFields) values[field] = String(account[field] ?? "");
  for (const field of booleanFields) values[field] = account[field] ? "on" : "";
  return values;
}

/** The form's non-secret fields as posted, to show again next to an error. */
export function postedValues(form: Record<string, unknown>): FormValues {
  const values: FormValues = {};
  for (const field of [...Object.keys(textFields), ...numberFields, ...booleanFields]) {
    const value = form[field];
    values[field] = typeof value === "string" ? value : "";
  }
  return values;
}

/**
 * The arguments of the add (no `current`) or update call for a posted form. On add, an empty field is
 * left out (the procedure's default applies). On update only what changed is passed, since NULL keeps
 * the stored value; an empty secret keeps the stored one, and its "clear" box passes ''.
 */
export function accountArgs(
  form: Record<string, unknown>,
  current?: Account,
): { args: Args; problems: string[] } {
  const posted = postedValues(form);
  const before = current ? accountValues(current) : undefined;
  const args: Args = current ? { account_id: String(current.account_id) } : {};
  const problems: string[] = [];
  for (const field of Object.keys(textFields)) {
    const value = posted[field] ?? "";
    if (before ? value !== before[field] : value !== "") args[field] = value;
  }
  for (const field of numberFields) {
    const value = (posted[field] ?? "").trim();
    if (before ? value === before[field] : value === "") continue;
    if (value === "" && field === "max_messages_per_minute") args[field] = "0";
    else if (!/^\d{1,9}$/.test(value)) problems.push(`${field}: "${value}": not a whole number`);
    else args[field] = value;
  }
  for (const field of booleanFields) {
    const on = posted[field] === "on";
    if (before) {
      if (on !== (before[field] === "on")) args[field] = String(on);
    } else if (on !== (field === "tls_reject_unauthorized")) args[field] = String(on);
  }
  for (const secret of secretFields) {
    const value = form[secret];
    if (current && form[`clear_${secret}`] === "on") args[secret] = "";
    else if (typeof value === "string" && value !== "") args[secret] = value;
  }
  return { args, problems };
}
