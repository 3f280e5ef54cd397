import pg from "pg";
import {
  type DatabaseUrl,
  describeHosts,
  type HostPort,
  hostLabel,
  type TargetSessionAttrs,
} from "./database-url.js";
import { isTransient } from "./sender/transient-errors.js";

/**
 * Connecting as libpq does with several hosts and target_session_attrs, for node-postgres, which knows
 * neither: try the hosts in order, ask each whether it is in recovery and whether its sessions are
 * read-only, and use the first that fits. The host found is remembered, so a pool's next connection
 * goes straight there; every connection checks its own session again, and a host that fails or no
 * longer fits is forgotten, so the next connection looks again (a failover: the old primary refuses,
 * the promoted standby now fits).
 */

/**
 * No host fits (all down, or all standbys when a primary is wanted). Its SQLSTATE, 08001 ("the client
 * could not establish a connection"), is transient for the sender: waited out with backoff, never an
 * exit.
 */
export class NoSuitableHostError extends Error {
  readonly code = "08001";
  /** Every host answered, and every one is in recovery or read-only. */
  readonly onlyStandbys: boolean;

  constructor(message: string, onlyStandbys: boolean) {
    super(message);
    this.name = "NoSuitableHostError";
    this.onlyStandbys = onlyStandbys;
  }
}

interface SessionState {
  inRecovery: boolean;
  readOnly: boolean;
}

/** Why a host with `state` does not fit `attrs`; undefined when it does. */
function mismatch(attrs: TargetSessionAttrs, state: SessionState): string | undefined {
  switch (attrs) {
    case "read-write":
      return state.readOnly ? readOnlyReason(state) : undefined;
    case "primary":
      return state.inRecovery ? "in recovery (a standby)" : undefined;
    case "read-only":
      return state.readOnly ? undefined : "read-write";
    case "standby":
    case "prefer-standby":
      return state.inRecovery ? undefined : "not in recovery (a primary)";
    default:
      return undefined;
  }
}

function readOnlyReason(state: SessionState): string {
  return state.inRecovery ? "in recovery (read-only)" : "read-only (default_transaction_read_only)";
}

async function sessionState(client: pg.Client): Promise<SessionState> {
  const { rows } = await client.query<{ in_recovery: boolean; read_only: boolean }>(
    "SELECT pg_is_in_recovery() AS in_recovery, current_setting('transaction_read_only') = 'on' AS read_only",
  );
  return { inRecovery: rows[0]?.in_recovery === true, readOnly: rows[0]?.read_only === true };
}

/** Which host of one URL to connect to: the one last found to fit, or the first that fits now. */
class HostFinder {
  private known?: number;
  private finding?: Promise<number>;

  constructor(
    private readonly url: DatabaseUrl,
    private readonly attrs: TargetSessionAttrs,
  ) {}

  pick(config: pg.ClientConfig): Promise<number> {
    if (this.known !== undefined) return Promise.resolve(this.known);
    // One search at a time: a pool opening ten connections at once probes the hosts once.
    this.finding ??= this.find(config).finally(() => {
      this.finding = undefined;
    });
    return this.finding;
  }

  forget(index: number): void {
    if (this.known === index) this.known = undefined;
  }

  /** Whether a connected session fits; throws (and forgets its host) when it does not. */
  async check(client: pg.Client, index: number): Promise<void> {
    if (this.attrs === "any" || this.attrs === "prefer-standby") return;
    const why = mismatch(this.attrs, await sessionState(client));
    if (why === undefined) return;
    this.forget(index);
    const host = this.url.hosts[index] as HostPort;
    throw new NoSuitableHostError(
      this.url.hosts.length === 1
        ? `${hostLabel(host)} is ${why}`
        : `${hostLabel(host)} is ${why} (no longer usable); looking again`,
      // With one host, that is all there is to wait on; with several, the next connection looks again.
      this.url.hosts.length === 1 && (why.includes("recovery") || why.startsWith("read-only")),
    );
  }

  private async find(config: pg.ClientConfig): Promise<number> {
    const { hosts } = this.url;
    if (hosts.length === 1) return 0;
    const reports: string[] = [];
    let misfits = 0;
    let fallback: number | undefined;
    let refusal: unknown;
    for (let index = 0; index < hosts.length; index++) {
      const label = hostLabel(hosts[index] as HostPort);
      const probe = new pg.Client({
        ...config,
        connectionString: this.url.urlFor(index),
        connectionTimeoutMillis: this.url.connectTimeoutMs ?? config.connectionTimeoutMillis ?? 10_000,
      });
      probe.on("error", () => {});
      try {
        await probe.connect();
        const why = mismatch(this.attrs, await sessionState(probe));
        if (why === undefined) {
          this.known = index;
          return index;
        }
        // prefer-standby: a primary will do when no standby answers.
        if (this.attrs === "prefer-standby") fallback ??= index;
        misfits++;
        reports.push(`${label} is ${why}`);
      } catch (error) {
        if (!isTransient(error)) refusal ??= error;
        reports.push(`${label}: ${(error as Error).message || (error as { code?: string }).code}`);
      } finally {
        await probe.end().catch(() => {});
      }
    }
    if (fallback !== undefined) return fallback;
    // A wrong password or a missing database is a refusal to report as such, not a wait for a host.
    if (refusal !== undefined && misfits === 0) throw refusal;
    const onlyStandbys = misfits === hosts.length && this.attrs !== "standby" && this.attrs !== "read-only";
    throw new NoSuitableHostError(
      onlyStandbys
        ? `every host (${describeHosts(hosts)}) is in recovery (read-only)`
        : `no host of ${describeHosts(hosts)} is usable as target_session_attrs=${this.attrs}: ${reports.join("; ")}`,
      onlyStandbys,
    );
  }
}

/**
 * A pg.Client class for `url` (pass it as a pg.Pool's `Client`, or construct it as pg.Client is): it
 * connects to the host that fits `attrs`. The connectionString given to it is ignored for the host;
 * every other option (application_name, keepAlive, timeouts) is used.
 */
export function multiHostClient(url: DatabaseUrl, attrs: TargetSessionAttrs): typeof pg.Client {
  const finder = new HostFinder(url, attrs);
  class MultiHostClient extends pg.Client {
    private readonly options: pg.ClientConfig;

    constructor(config?: string | pg.ClientConfig) {
      const options = typeof config === "string" ? {} : { ...config };
      super({ ...options, connectionString: url.urlFor(0) });
      this.options = options;
    }

    // pg-pool connects with a callback; everyone else awaits.
    override connect(): Promise<pg.Client>;
    override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
    override connect(
      callback?: ((err: Error) => void) | ((err: null, c: pg.Client) => void),
    ): Promise<pg.Client> | undefined {
      const connected = this.connectToFittingHost();
      if (!callback) return connected;
      const done = callback as (err: Error | null, c?: pg.Client) => void;
      connected.then(
        (client) => done(null, client),
        (error: Error) => done(error),
      );
      return undefined;
    }

    private async connectToFittingHost(): Promise<pg.Client> {
      const index = await finder.pick(this.options);
      if (url.hosts.length > 1) {
        const { host, port } = url.hosts[index] as HostPort;
        // Where pg.Client connects (and sends a cancel) to: set before its connect reads them.
        this.host = host;
        this.port = port;
      }
      try {
        await super.connect();
      } catch (error) {
        finder.forget(index);
        throw error;
      }
      try {
        await finder.check(this, index);
      } catch (error) {
        await this.end().catch(() => {});
        throw error;
      }
      return this;
    }
  }
  return MultiHostClient;
}
