import { EventEmitter } from "node:events";
import type { SenderOptions } from "../config/options.js";
import type { Logger } from "../log.js";
import { Transports } from "../smtp/transports.js";
import { DatabaseWorker } from "./database-worker.js";

/**
 * A sender process: one worker per database it serves, sharing the SMTP connection pools. start() and
 * stop() are idempotent. Emits 'idle' when started with exitWhenIdle and no database had mail for
 * DatabaseMailExeMinimumLifeTime seconds.
 */
export class Sender extends EventEmitter<{ idle: [] }> {
  private readonly transports: Transports;
  private readonly workers: DatabaseWorker[];
  private starting?: Promise<void>;
  private stopping?: Promise<void>;
  private idleTimer?: NodeJS.Timeout;

  constructor(
    private readonly options: SenderOptions,
    private readonly log: Logger,
  ) {
    super();
    this.transports = new Transports({
      poolSize: options.smtpPoolSize,
      timeoutSeconds: options.smtpTimeoutSeconds,
      defaultCredentials: options.smtpUsername
        ? { user: options.smtpUsername, pass: options.smtpPassword ?? "" }
        : undefined,
    });
    this.workers = options.databases.map(
      (target) => new DatabaseWorker(target, options, this.transports, log),
    );
  }

  start(): Promise<void> {
    this.starting ??= (async () => {
      await Promise.all(this.workers.map((w) => w.start()));
      if (this.options.exitWhenIdle) this.idleTimer = setInterval(() => this.checkIdle(), 1000);
    })();
    return this.starting;
  }

  /** Stops claiming, waits up to timeoutMs for messages in flight, releases the rest, closes everything. */
  stop(timeoutMs = this.options.shutdownTimeoutMs): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.idleTimer);
      // A worker may still be waiting for its database to come up: stop that first.
      for (const worker of this.workers) worker.halt();
      await this.starting?.catch(() => {});
      await Promise.all(this.workers.map((w) => w.stop(timeoutMs)));
      this.transports.closeAll();
      this.log.info("stopped");
    })();
    return this.stopping;
  }

  private checkIdle(): void {
    const now = Date.now();
    const idle = this.workers.every((w) => now - w.lastActivity > w.minimumLifetimeSeconds * 1000);
    if (idle) {
      clearInterval(this.idleTimer);
      this.log.info("idle for DatabaseMailExeMinimumLifeTime; exiting");
      this.emit("idle");
    }
  }
}
