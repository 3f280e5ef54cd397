import nodemailer, { type Transporter } from "nodemailer";
import type SMTPPool from "nodemailer/lib/smtp-pool/index.js";
import type { ProfileAccount } from "../rows.js";
import { resolvePassword } from "../secrets.js";
import { finalCheckPlugin } from "./final-check.js";
import { Slots } from "./slots.js";

export interface TransportSettings {
  poolSize: number;
  timeoutSeconds: number;
  defaultCredentials?: { user: string; pass: string };
}

type Transport = Transporter<SMTPPool.SentMessageInfo>;

/**
 * One pooled SMTP transport per account, reused across messages. A transport is rebuilt when its
 * account's connection settings (or resolved password) change, so configuration changes apply without a
 * restart.
 */
export class Transports {
  private readonly cache = new Map<number, { key: string; transport: Transport }>();
  private readonly slots = new Map<number, Slots>();
  private readonly byRow = new WeakMap<ProfileAccount, Transport>();

  constructor(private readonly settings: TransportSettings) {}

  /** The transport for an account; throws when its password reference cannot be resolved. */
  get(account: ProfileAccount): Transport {
    // The same account row as last time (the accounts cache keeps its rows until a configuration change
    // or 30 s have passed): no need to build and compare its options again for every message.
    const known = this.byRow.get(account);
    if (known && this.cache.get(account.account_id)?.transport === known) return known;
    const options = this.optionsFor(account);
    const key = JSON.stringify(options);
    const cached = this.cache.get(account.account_id);
    if (cached?.key === key) {
      this.byRow.set(account, cached.transport);
      return cached.transport;
    }
    cached?.transport.close();
    const transport = nodemailer.createTransport(options);
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

  private optionsFor(account: ProfileAccount): SMTPPool.Options {
    const timeoutMs = (account.timeout ?? this.settings.timeoutSeconds) * 1000;
    const auth = account.use_default_credentials
      ? this.settings.defaultCredentials
      : account.username
        ? { user: account.username, pass: resolvePassword(account.password) ?? "" }
        : undefined;
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
