import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { CliError, ExitCode } from "@pg-dbmail/sender";

/** What `dbmail console` is given (the command line and environment, not yet checked). */
export interface ConsoleOptions {
  /** HOST:PORT to listen on; a non-loopback host needs allowRemote. */
  listen: string;
  /** The database (host, port, name); its user and password, if any, are never used. */
  databaseUrl?: string;
  allowRemote?: boolean;
  tlsCert?: string;
  tlsKey?: string;
  /** Idle minutes after which a session ends (30; the tests shorten it). */
  idleTimeoutMs?: number;
  /** The first wait after a failed sign-in; it doubles with each further failure. */
  signInDelayMs?: number;
  /** dbmail dev only: a role that may sign in without typing its password (on loopback alone). */
  demoLogin?: DemoLogin;
}

/**
 * The development mode's sign-in: the console signs in as `role` with `password` on the person's
 * behalf. dbmail dev creates the role and sets a random password; `dbmail console` never sets this.
 */
export interface DemoLogin {
  role: string;
  password: string;
}

/** The options checked and read: where to listen, and the TLS key pair when given. */
export interface ConsoleConfig {
  host: string;
  port: number;
  loopback: boolean;
  databaseUrl: string | undefined;
  tls: { cert: Buffer; key: Buffer } | undefined;
  idleTimeoutMs: number;
  signInDelayMs: number;
  demoLogin: DemoLogin | undefined;
}

export const defaultListen = "127.0.0.1:8025";

const usage = (message: string) => new CliError(message, ExitCode.usage);

/** HOST:PORT, with an IPv6 host in brackets ([::1]:8025); PORT 0 asks for a free port. */
export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(listen);
  const port = Number(match?.[3]);
  if (!match || port > 65535) {
    throw usage(`--listen: "${listen}": not HOST:PORT (say 127.0.0.1:8025, or [::1]:8025)`);
  }
  return { host: (match[1] ?? match[2]) as string, port };
}

/** Whether `host` names this machine's loopback interface only. */
export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1";
}

export function checkOptions(options: ConsoleOptions): ConsoleConfig {
  const { host, port } = parseListen(options.listen);
  const loopback = isLoopback(host);
  if (!loopback && !options.allowRemote) {
    throw usage(
      `--listen: "${options.listen}": not a loopback address; the console listens on 127.0.0.1, ::1 or ` +
        "localhost unless --allow-remote is given (then serve it with --tls-cert and --tls-key)",
    );
  }
  // Anyone who reaches the console could take the demo role: only this machine may reach it.
  if (options.demoLogin && (!loopback || options.allowRemote)) {
    throw usage(
      `--listen: "${options.listen}": the password-less sign-in of dbmail dev is only for a console ` +
        "on loopback without --allow-remote",
    );
  }
  if ((options.tlsCert === undefined) !== (options.tlsKey === undefined)) {
    const missing = options.tlsCert === undefined ? "--tls-cert" : "--tls-key";
    throw usage(`${missing}: missing: --tls-cert and --tls-key go together`);
  }
  const tls =
    options.tlsCert !== undefined && options.tlsKey !== undefined
      ? { cert: readPem("--tls-cert", options.tlsCert), key: readPem("--tls-key", options.tlsKey) }
      : undefined;
  return {
    host,
    port,
    loopback,
    databaseUrl: options.databaseUrl,
    tls,
    idleTimeoutMs: options.idleTimeoutMs ?? 30 * 60_000,
    signInDelayMs: options.signInDelayMs ?? 1000,
    demoLogin: options.demoLogin,
  };
}

function readPem(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw usage(`${flag}: "${path}": cannot be read (${(error as NodeJS.ErrnoException).code ?? error})`);
  }
}
