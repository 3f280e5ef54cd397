import { EventEmitter } from "node:events";
import type { DatabaseTarget, SenderOptions } from "../config/options.js";
import { type DatabaseSnapshot, SenderMetrics } from "../http/metrics.js";
import { type MonitorServer, startMonitorServer } from "../http/server.js";
import type { Logger } from "../log.js";
import { DatabaseWorker, type WorkerState } from "./database-worker.js";
import type { HealthReport } from "./health.js";

/**
 * A sender process: one DatabaseWorker per database it serves, each fully apart from the others (its
 * own connections, SMTP pools, caches and leases). start() and stop() are idempotent. Emits 'idle' when
 * started with exitWhenIdle and no database had mail for DatabaseMailExeMinimumLifeTime seconds.
 *
 * Serving one database, start() rejects with DatabaseRefusedError when that database refuses the sender
 * (login, role, schema): there is nothing else to do. Serving several, a database that refuses is
 * logged and retried with backoff while the others are served (see DatabaseWorker.start).
 *
 * With `http` (--http HOST:PORT), start() first listens there (a port in use rejects with a CliError)
 * and serves /livez, /readyz and /metrics until stop() is done.
 */
export class Sender extends EventEmitter<{ idle: [] }> {
  private readonly workers = new Map<string, DatabaseWorker>();
  private starting?: Promise<void>;
  private stopping?: Promise<void>;
  /** The reload under way, if any: stop() waits for it, and reloads run one at a time. */
  private reloading: Promise<void> = Promise.resolve();
  private idleTimer?: NodeJS.Timeout;
  private readonly metrics?: SenderMetrics;
  private monitor?: MonitorServer;

  constructor(
    private readonly options: SenderOptions,
    private readonly log: Logger,
  ) {
    super();
    if (options.http) this.metrics = new SenderMetrics();
    for (const target of options.databases) this.workers.set(target.name, this.workerFor(target));
  }

  start(): Promise<void> {
    this.starting ??= (async () => {
      if (this.options.http) await this.serveHttp(this.options.http);
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

  /** Whether each database is ready (/readyz): none is while the sender stops. */
  async health(): Promise<HealthReport> {
    const entries = await Promise.all(
      [...this.workers].map(async ([name, worker]) => [name, await worker.health()] as const),
    );
    const databases = Object.fromEntries(entries);
    if (this.stopping) {
      for (const health of Object.values(databases)) {
        health.ready = false;
        health.problems.push("the sender is stopping");
      }
    }
    return { ready: entries.every(([, health]) => health.ready) && !this.stopping, databases };
  }

  /** Where --http listens, once started with it. */
  httpAddress(): { host: string; port: number } | undefined {
    return this.monitor?.address;
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
      await this.monitor?.close();
      this.log.info("stopped");
    })();
    return this.stopping;
  }

  private workerFor(target: DatabaseTarget): DatabaseWorker {
    return new DatabaseWorker(target, this.options, this.log, this.metrics?.forDatabase(target.name));
  }

  private async serveHttp(address: string): Promise<void> {
    const metrics = this.metrics as SenderMetrics;
    this.monitor = await startMonitorServer(
      address,
      {
        health: () => this.health(),
        metrics: async () => ({
          contentType: metrics.contentType,
          body: await metrics.render(await this.snapshots()),
        }),
      },
      this.log,
    );
  }

  /** Each database at scrape time: up or not, and its queue when it could be read. */
  private snapshots(): Promise<DatabaseSnapshot[]> {
    return Promise.all(
      [...this.workers].map(async ([database, worker]) => {
        const up = (await worker.health()).connected;
        if (!up) return { database, up };
        const queue = await worker.queueStats().catch((error: Error) => {
          this.log.warn({ database, err: error.message }, "the queue's figures could not be read");
          return undefined;
        });
        return { database, up, queue };
      }),
    );
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
