import nodemailer, { type Transporter } from "nodemailer";
import type SMTPPool from "nodemailer/lib/smtp-pool/index.js";
import type { ProfileAccount } from "../rows.js";
import { resolveSecret } from "../secrets.js";
import { type DkimKey, dkimPlugin } from "./dkim.js";
import { finalCheckPlugin } from "./final-check.js";
import { type OAuth2Client, OAuth2Tokens } from "./oauth2.js";
import { Slots } from "./slots.js";

export interface TransportSettings {
  poolSize: number;
  timeoutSeconds: number;
  defaultCredentials?: { user: string; pass: string };
}

type Transport = Transporter<SMTPPool.SentMessageInfo>;

/**
 * One pooled SMTP transport per account, reused across messages. A transport is rebuilt when its
 * account's connection settings (or resolved secrets) change, so configuration changes apply without a
 * restart.
 */
export class Transports {
  private readonly cache = new Map<number, { key: string; transport: Transport }>();
  private readonly slots = new Map<number, Slots>();
  private readonly byRow = new WeakMap<ProfileAccount, Transport>();
  private readonly tokens: OAuth2Tokens;

  constructor(private readonly settings: TransportSettings) {
    this.tokens = new OAuth2Tokens(settings.timeoutSeconds * 1000);
  }

  /**
   * The transport for an account. Throws (code ECONFIG: the account's verdict) when a secret reference
   * cannot be resolved or the DKIM key is unusable.
   */
  get(account: ProfileAccount): Transport {
    try {
      return this.transportFor(account);
    } catch (error) {
      throw Object.assign(error as Error, { code: "ECONFIG" });
    }
  }

  private transportFor(account: ProfileAccount): Transport {
    // The same account row as last time (the accounts cache keeps its rows until a configuration change
    // or 30 s have passed): no need to build and compare its options again for every message.
    const known = this.byRow.get(account);
    if (known && this.cache.get(account.account_id)?.transport === known) return known;
    const options = this.optionsFor(account);
    const oauth2 = oauth2ClientOf(account);
    const dkim = dkimKeyOf(account);
    // Functions (the OAuth2 provision callback) do not show in JSON: the client stands for it.
    const key = JSON.stringify({ options, oauth2, dkim });
    const cached = this.cache.get(account.account_id);
    if (cached?.key === key) {
      this.byRow.set(account, cached.transport);
      return cached.transport;
    }
    cached?.transport.close();
    if (oauth2) options.auth = this.oauth2Auth(account, oauth2);
    const transport = nodemailer.createTransport(options);
    // Signed first, so the final check still holds back the very end of what goes out.
    if (dkim) transport.use("stream", dkimPlugin(dkim));
    transport.use("stream", finalCheckPlugin);
    this.cache.set(account.account_id, { key, transport });
    this.byRow.set(account, transport);
    return transport;
  }

  /** Runs `send` when one of the account's pooled connections is free (see Slots). */
  withConnection<T>(account: ProfileAccount, send: () => Promise<T>): Promise<T> {
    let slots = this.slots.get(account.account_id);
    if (!slots) {
      slots = new Slots(this.settings.poolSize);
      this.slots.set(account.account_id, slots);
    }
    return slots.run(send);
  }

  closeAll(): void {
    for (const { transport } of this.cache.values()) transport.close();
    this.cache.clear();
  }

  /**
   * XOAUTH2 with a token from the account's endpoint, cached across connections (oauth2.ts). nodemailer
   * asks again with renew = true when the server refused the token (revoked, or expired early): the
   * cached one is dropped and a fresh one fetched, once per login.
   */
  private oauth2Auth(account: ProfileAccount, client: OAuth2Client): SMTPPool.Options["auth"] {
    const key = String(account.account_id);
    return {
      type: "OAuth2",
      user: account.username ?? "",
      provisionCallback: (_user, renew, callback) => {
        if (renew) this.tokens.forget(key);
        this.tokens.token(key, client).then(
          (token) => callback(null, token),
          (error: Error) => callback(error),
        );
      },
    };
  }

  private optionsFor(account: ProfileAccount): SMTPPool.Options {
    const timeoutMs = (account.timeout ?? this.settings.timeoutSeconds) * 1000;
    const auth =
      account.auth_method !== "password"
        ? undefined
        : account.use_default_credentials
          ? this.settings.defaultCredentials
          : { user: account.username ?? "", pass: resolveSecret("password", account.password) ?? "" };
    if (account.use_default_credentials && !auth) {
      throw new Error("the account uses default credentials, but the sender has no --smtp-username");
    }
    return {
      pool: true,
      maxConnections: this.settings.poolSize,
      host: account.mailserver_name,
      port: account.port,
      // tls: TLS from the first byte (port 465); starttls: upgrade or refuse; none: plain text only.
      secure: account.security === "tls",
      requireTLS: account.security === "starttls",
      ignoreTLS: account.security === "none",
      auth,
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
      // nodemailer sets the SNI name from the host itself (and leaves it out for an IP address).
      tls: { rejectUnauthorized: account.tls_reject_unauthorized },
    };
  }
}

/** The account's OAuth2 client with its secrets resolved, when it logs in with XOAUTH2. */
function oauth2ClientOf(account: ProfileAccount): OAuth2Client | undefined {
  if (account.auth_method !== "oauth2") return undefined;
  return {
    tokenUrl: account.oauth2_token_url ?? "",
    clientId: account.oauth2_client_id ?? "",
    clientSecret: resolveSecret("oauth2_client_secret", account.oauth2_client_secret),
    scope: account.oauth2_scope ?? undefined,
    refreshToken: resolveSecret("oauth2_refresh_token", account.oauth2_refresh_token),
  };
}

/** The account's DKIM key with the private key resolved, when it signs. */
function dkimKeyOf(account: ProfileAccount): DkimKey | undefined {
  if (!account.dkim_domain || !account.dkim_selector) return undefined;
  return {
    domainName: account.dkim_domain,
    keySelector: account.dkim_selector,
    privateKey: resolveSecret("dkim_private_key", account.dkim_private_key) ?? "",
  };
}
