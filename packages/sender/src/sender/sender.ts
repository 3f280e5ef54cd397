import { EventEmitter } from "node:events";
import type { DatabaseTarget, SenderOptions } from "../config/options.js";
import type { Logger } from "../log.js";
import { DatabaseWorker, type WorkerState } from "./database-worker.js";

/**
 * A sender process: one DatabaseWorker per database it serves, each fully apart from the others (its
 * own connections, SMTP pools, caches and leases). start() and stop() are idempotent. Emits 'idle' when
 * started with exitWhenIdle and no database had mail for DatabaseMailExeMinimumLifeTime seconds.
 *
 * Serving one database, start() rejects with DatabaseRefusedError when that database refuses the sender
 * (login, role, schema): there is nothing else to do. Serving several, a database that refuses is
 * logged and retried with backoff while the others are served (see DatabaseWorker.start).
 */
export class Sender extends EventEmitter<{ idle: [] }> {
  private readonly workers = new Map<string, DatabaseWorker>();
  private starting?: Promise<void>;
  private stopping?: Promise<void>;
  /** The reload under way, if any: stop() waits for it, and reloads run one at a time. */
  private reloading: Promise<void> = Promise.resolve();
  private idleTimer?: NodeJS.Timeout;

  constructor(
    private readonly options: SenderOptions,
    private readonly log: Logger,
  ) {
    super();
    for (const target of options.databases) this.workers.set(target.name, this.workerFor(target));
  }

  start(): Promise<void> {
    this.starting ??= (async () => {
      const failFast = this.workers.size === 1;
      await Promise.all([...this.workers.values()].map((w) => w.start({ failFast })));
      if (this.options.exitWhenIdle) this.idleTimer = setInterval(() => this.checkIdle(), 1000);
    })();
    return this.starting;
  }

  /** Where each database's worker is, by database name. */
  databases(): Map<string, WorkerState> {
    return new Map([...this.workers].map(([name, worker]) => [name, worker.state]));
  }

  /**
   * Serves exactly `targets` from now on (a SIGHUP re-reading the config file): databases added are
   * started, databases removed (or whose URL changed) are stopped cleanly (their claimed items given
   * back), the others are left alone.
   */
  reload(targets: DatabaseTarget[]): Promise<void> {
    this.reloading = this.reloading.then(async () => {
      if (this.stopping) return;
      const wanted = new Map(targets.map((t) => [t.name, t]));
      for (const [name, worker] of this.workers) {
        if (wanted.get(name)?.url === worker.target.url) continue;
        this.workers.delete(name);
        await worker.stop(this.options.shutdownTimeoutMs);
        this.log.info({ database: name }, "no longer serving this database");
      }
      for (const target of targets) {
        if (this.workers.has(target.name)) continue;
        const worker = this.workerFor(target);
        this.workers.set(target.name, worker);
        await worker.start({ failFast: false });
      }
    });
    return this.reloading;
  }

  /** Stops claiming, waits up to timeoutMs for messages in flight, releases the rest, closes everything. */
  stop(timeoutMs = this.options.shutdownTimeoutMs): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.idleTimer);
      // A worker may still be waiting for its database to come up: stop that first.
      for (const worker of this.workers.values()) worker.halt();
      await this.starting?.catch(() => {});
      await this.reloading;
      await Promise.all([...this.workers.values()].map((w) => w.stop(timeoutMs)));
      this.log.info("stopped");
    })();
    return this.stopping;
  }

  private workerFor(target: DatabaseTarget): DatabaseWorker {
    return new DatabaseWorker(target, this.options, this.log);
  }

  private checkIdle(): void {
    const now = Date.now();
    const idle = [...this.workers.values()].every(
      (w) => now - w.lastActivity > w.minimumLifetimeSeconds * 1000,
    );
    if (idle) {
      clearInterval(this.idleTimer);
      this.log.info("idle for DatabaseMailExeMinimumLifeTime; exiting");
      this.emit("idle");
    }
  }
}
