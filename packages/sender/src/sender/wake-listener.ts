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
 * The connection also carries this sender's part of the wake-up protocol (000017): while it listens it
 * holds the "someone listens" lock (dbmail.sender_listening), and it holds the watch (watch()/unwatch())
 * while the sender is awake, so both end with the connection.
 *
 * One query at a time on the client, never two in flight (node-postgres deprecates that): every query
 * goes through `exec`, in turn.
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
  /** The connected client, listening; undefined while (re)connecting. */
  private client?: pg.Client;
  /** The last query queued on the client: the next one waits for it. */
  private turn: Promise<unknown> = Promise.resolve();
  /** Whether this connection holds the watch. */
  private watching = false;

  constructor(private readonly options: WakeListenerOptions) {
    super();
  }

  /** Starts listening in the background; returns at once. */
  start(): void {
    this.running ??= this.run();
  }

  /** Whether this sender holds the watch (on the current connection). */
  get watched(): boolean {
    return this.watching;
  }

  /**
   * Takes the watch if no sender holds it (never waits): calls that queue mail then count on this sender
   * to look again, and send no NOTIFY. True when held. Not listening: false.
   */
  async watch(): Promise<boolean> {
    if (this.watching) return true;
    const client = this.client;
    if (!client) return false;
    const { rows } = await this.exec(client, "SELECT dbmail.sender_watch() AS held").catch(() => ({
      rows: [{ held: false }],
    }));
    // The connection may have been replaced meanwhile: the watch went with the old one.
    this.watching = Boolean(rows[0]?.held) && this.client === client;
    return this.watching;
  }

  /**
   * Gives the watch back. True when it was held: the caller must then settle (dbmail.sender_settle) and
   * look once more, for the mail of the calls that counted on it. Calls notify from now on.
   */
  async unwatch(): Promise<boolean> {
    if (!this.watching) return false;
    this.watching = false;
    const client = this.client;
    // Lost with its connection otherwise: either way it is given back.
    if (client) await this.exec(client, "SELECT dbmail.sender_unwatch()").catch(() => {});
    return true;
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
        // Queries of an earlier connection end with it: none waits for them.
        this.turn = Promise.resolve();
        client.on("notification", (n) => this.emit("notification", n.channel));
        await Promise.race([this.exec(client, this.listenStatement()), lost]);
        this.client = client;
        failures = 0;
        this.emit("connected");
        while (!this.closed) {
          await Promise.race([this.pause.sleep(this.options.checkIntervalMs), lost]);
          if (this.closed) break;
          await Promise.race([this.checkListening(client), lost]);
        }
      } catch (error) {
        this.client = undefined;
        this.watching = false;
        if (this.closed) break;
        this.emit("lost", error as Error);
        await this.pause.sleep(backoffMs(failures++));
      } finally {
        this.client = undefined;
        this.watching = false;
        client.removeAllListeners("notification");
        await client.end().catch(() => {});
      }
    }
  }

  /**
   * LISTEN on every channel, then say so to the senders' wake-up protocol. The server probes this
   * connection after 30 s of silence: should the sender vanish without closing it (its host lost, a
   * network cut), the server ends the session within about a minute, and with it the watch it may hold
   * (until then calls count on it and mail waits for the other senders' poll).
   */
  private listenStatement(): string {
    const listen = this.options.channels.map((channel) => `LISTEN ${pg.escapeIdentifier(channel)}`);
    const keepalive = [
      "SET tcp_keepalives_idle = 30",
      "SET tcp_keepalives_interval = 10",
      "SET tcp_keepalives_count = 3",
    ];
    return [...listen, ...keepalive, "SELECT dbmail.sender_listening()"].join("; ");
  }

  /** Runs `sql` on `client` once every query queued before it has finished. */
  private exec<R extends pg.QueryResultRow = pg.QueryResultRow>(client: pg.Client, sql: string) {
    const result = this.turn.then(() => client.query<R>(sql));
    this.turn = result.catch(() => {});
    return result;
  }

  private async checkListening(client: pg.Client): Promise<void> {
    const { rows } = await this.exec<{ channel: string }>(
      client,
      "SELECT pg_listening_channels() AS channel",
    );
    const listening = new Set(rows.map((r) => r.channel));
    const missing = this.options.channels.filter((channel) => !listening.has(channel));
    if (missing.length > 0) throw new Error(`no longer listening on ${missing.join(", ")}`);
  }
}
