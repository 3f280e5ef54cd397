import { EventEmitter } from "node:events";
import pg from "pg";
import { backoffMs } from "./backoff.js";
import { Wakeup } from "./wakeup.js";

export interface WakeListenerOptions {
  connectionString: string | undefined;
  /** The client class to connect with (connection.ts's, for several hosts); pg.Client by default. */
  Client?: typeof pg.Client;
  applicationName: string;
  channels: readonly string[];
  /** How often to check that the connection is alive and still listening. */
  checkIntervalMs: number;
}

/**
 * The LISTEN connection of one database. A notification is only a hint that something changed: its
 * payload is never read (anyone who may connect can NOTIFY any channel), so listeners get the channel
 * alone and read the state from the database. A dedicated client LISTENs on every channel; every
 * `checkIntervalMs` it asks pg_listening_channels(), since a connection can die without a word (a
 * firewall dropping it, a failover); when the connection is lost it reconnects with capped, jittered
 * backoff. 'connected' after every (re)connect: what was notified meanwhile was not heard, so look.
 *
 * One query at a time on the client, never two in flight (node-postgres deprecates that).
 */
export class WakeListener extends EventEmitter<{
  notification: [channel: string];
  connected: [];
  lost: [error: Error];
}> {
  private closed = false;
  private running?: Promise<void>;
  /** The waits between checks and between reconnects, which close() cuts short. */
  private readonly pause = new Wakeup();

  constructor(private readonly options: WakeListenerOptions) {
    super();
  }

  /** Starts listening in the background; returns at once. */
  start(): void {
    this.running ??= this.run();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.pause.wake();
    await this.running;
  }

  private async run(): Promise<void> {
    for (let failures = 0; !this.closed; ) {
      const client = new (this.options.Client ?? pg.Client)({
        connectionString: this.options.connectionString,
        application_name: this.options.applicationName,
        keepAlive: true,
      });
      // An error on an idle client is also reported here; without a listener it would crash the process.
      const lost = new Promise<never>((_, reject) => {
        client.on("error", reject);
        client.on("end", () => reject(new Error("the LISTEN connection ended")));
      });
      lost.catch(() => {});
      try {
        await Promise.race([client.connect(), lost]);
        client.on("notification", (n) => this.emit("notification", n.channel));
        await Promise.race([client.query(this.listenStatement()), lost]);
        failures = 0;
        this.emit("connected");
        while (!this.closed) {
          await Promise.race([this.pause.sleep(this.options.checkIntervalMs), lost]);
          if (this.closed) break;
          await Promise.race([this.checkListening(client), lost]);
        }
      } catch (error) {
        if (this.closed) break;
        this.emit("lost", error as Error);
        await this.pause.sleep(backoffMs(failures++));
      } finally {
        client.removeAllListeners("notification");
        await client.end().catch(() => {});
      }
    }
  }

  private listenStatement(): string {
    return this.options.channels.map((channel) => `LISTEN ${pg.escapeIdentifier(channel)}`).join("; ");
  }

  private async checkListening(client: pg.Client): Promise<void> {
    const { rows } = await client.query<{ channel: string }>("SELECT pg_listening_channels() AS channel");
    const listening = new Set(rows.map((r) => r.channel));
    const missing = this.options.channels.filter((channel) => !listening.has(channel));
    if (missing.length > 0) throw new Error(`no longer listening on ${missing.join(", ")}`);
  }
}
