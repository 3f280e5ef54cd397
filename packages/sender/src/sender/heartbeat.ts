import { hostname } from "node:os";
import type pg from "pg";
import type { Logger } from "../log.js";
import { packageVersion } from "../version.js";
import type { Leases } from "./leases.js";
import * as q from "./queries.js";

/**
 * This sender's row in dbmail.senders, kept fresh: the heartbeat says the sender is alive (a sender silent
 * for 30 seconds is taken for dead) and answers whether delivery is started and what the settings are.
 * One heartbeat at a time, and none once stopping has begun (it would count the sender live again).
 */
export class Heartbeat {
  /** Whether delivery is started (sysmail_start_sp / sysmail_stop_sp), as last read. */
  started = true;
  /** DatabaseMailExeMinimumLifeTime, in seconds, as last read. */
  minimumLifetimeSeconds = 600;
  private beating?: Promise<void>;
  private stopped = false;
  /** Whether a heartbeat got through: the sender is in dbmail.senders, and must say when it stops. */
  private registered = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly senderId: string,
    private readonly leases: Leases,
    private readonly log: Logger,
    /** Delivery was started or stopped. */
    private readonly onStartedChange: (started: boolean) => void,
  ) {}

  beat(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.beating ??= this.beatOnce().finally(() => {
      this.beating = undefined;
    });
    return this.beating;
  }

  /** No more heartbeats; then, once the last one is done, the sender's row says it stopped. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.beating;
    if (this.registered) await q.senderStopped(this.pool, this.senderId).catch(() => {});
  }

  private async beatOnce(): Promise<void> {
    try {
      const asked = performance.now();
      const state = await q.heartbeat(this.pool, this.senderId, hostname(), packageVersion);
      this.registered = true;
      this.leases.markAlive(asked);
      this.minimumLifetimeSeconds = Number(state.settings.DatabaseMailExeMinimumLifeTime ?? 600);
      if (state.started !== this.started) {
        this.started = state.started;
        this.log.info(this.started ? "delivery started" : "delivery stopped");
        this.onStartedChange(this.started);
      }
    } catch (error) {
      this.log.warn({ err: (error as Error).message }, "heartbeat failed");
    }
  }
}
