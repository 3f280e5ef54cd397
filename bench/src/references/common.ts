// What the reference workers share: their configuration and the pooled SMTP transport.
import nodemailer from "nodemailer";

export interface WorkerConfig {
  /** The database of graphile-worker or pg-boss. */
  url?: string;
  smtpPort: number;
  /** SMTP connections: the pool's maxConnections. */
  connections: number;
  /** nodemailer alone: how many messages to send. */
  n?: number;
  /** System-specific settings (see each module). */
  settings: Record<string, number>;
}

export type System = "nodemailer" | "graphile-worker" | "pg-boss";

/** One pooled transport shared by all of a worker's jobs: plain SMTP to the sink. */
export function pooledTransport(config: WorkerConfig) {
  return nodemailer.createTransport({
    pool: true,
    maxConnections: config.connections,
    // maxMessages stays at nodemailer's default (a connection is renewed after 100 messages), as in the
    // sender, so both pay the same reconnects.
    host: "127.0.0.1",
    port: config.smtpPort,
    secure: false,
    ignoreTLS: true,
  });
}
