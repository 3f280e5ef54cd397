/**
 * libpq's connection URI with several hosts, which node-postgres does not parse:
 * `postgres://user@h1:5432,h2:5433/app?target_session_attrs=read-write`. Hosts may also come as
 * `?host=h1,h2&port=5432,5433` (libpq's query form, where a host may be a socket directory). The result
 * names every host and one URL per host that node-postgres can use as it is (the same user, password,
 * database and options, target_session_attrs removed); which host is connected to is multi-host.ts's.
 */

/** libpq's target_session_attrs: which host of the list a session may use. */
export const TARGET_SESSION_ATTRS = [
  "any",
  "read-write",
  "read-only",
  "primary",
  "standby",
  "prefer-standby",
] as const;
export type TargetSessionAttrs = (typeof TARGET_SESSION_ATTRS)[number];

export interface HostPort {
  /** A name, an IP address (IPv6 without brackets), or a socket directory (starting with /). */
  host: string;
  port: number;
}

export interface DatabaseUrl {
  hosts: HostPort[];
  targetSessionAttrs: TargetSessionAttrs;
  /** Milliseconds to wait for each host to answer a connect (libpq's connect_timeout), if given. */
  connectTimeoutMs?: number;
  /** A URL node-postgres can use, for the host at `index` of `hosts`. */
  urlFor(index: number): string;
}

const DEFAULT_PORT = 5432;
const URI = /^(postgres(?:ql)?:\/\/)([^/?#]*)([^?#]*)(\?[^#]*)?$/i;

/**
 * Parses a postgres:// URL of one host or several; throws an Error saying what is wrong. A URL of one
 * host and no target_session_attrs parses too (hosts of length 1, "any"), so callers need not tell the
 * two forms apart.
 */
export function parseDatabaseUrl(url: string): DatabaseUrl {
  const match = URI.exec(url);
  if (!match) throw new Error("must start with postgres:// or postgresql://");
  const [, scheme = "", authority = "", path = "", query = ""] = match;
  const at = authority.lastIndexOf("@");
  const userinfo = at >= 0 ? authority.slice(0, at + 1) : "";
  const hostList = authority.slice(at + 1);

  const params = new URLSearchParams(query.slice(1));
  const attrs = params.get("target_session_attrs") ?? "any";
  if (!(TARGET_SESSION_ATTRS as readonly string[]).includes(attrs)) {
    throw new Error(`target_session_attrs=${attrs}: must be one of ${TARGET_SESSION_ATTRS.join(", ")}`);
  }
  const timeout = params.get("connect_timeout");
  const connectTimeoutSeconds = timeout === null ? undefined : Number(timeout);
  if (
    connectTimeoutSeconds !== undefined &&
    !(Number.isInteger(connectTimeoutSeconds) && connectTimeoutSeconds >= 0)
  ) {
    throw new Error(`connect_timeout=${timeout}: must be a whole number of seconds`);
  }

  const hosts = hostsOf(hostList, params.get("host"), params.get("port"));
  // What node-postgres is given: one host in the authority, no host/port/target_session_attrs options.
  const rest = new URLSearchParams(params);
  for (const name of ["target_session_attrs", "host", "port"]) rest.delete(name);
  const restQuery = rest.toString() ? `?${rest.toString()}` : "";
  return {
    hosts,
    targetSessionAttrs: attrs as TargetSessionAttrs,
    connectTimeoutMs: connectTimeoutSeconds ? connectTimeoutSeconds * 1000 : undefined,
    urlFor(index) {
      // One host: the URL as given (an empty host still means PGHOST, a missing port PGPORT).
      if (hosts.length === 1) {
        const given = new URLSearchParams(params);
        given.delete("target_session_attrs");
        return `${scheme}${authority}${path}${given.toString() ? `?${given.toString()}` : ""}`;
      }
      const { host, port } = hosts[index] as HostPort;
      if (host.startsWith("/")) {
        // node-postgres takes a socket directory as ?host=, with an empty authority host.
        const socket = new URLSearchParams(rest);
        socket.set("host", host);
        socket.set("port", String(port));
        return `${scheme}${userinfo}${path}?${socket.toString()}`;
      }
      const name = host.includes(":") ? `[${host}]` : encodeURIComponent(host);
      return `${scheme}${userinfo}${name}:${port}${path}${restQuery}`;
    },
  };
}

/** The hosts of `h1:p1,h2` (the URL's authority) or of host=/port= (libpq's query form, which wins). */
function hostsOf(authority: string, hostParam: string | null, portParam: string | null): HostPort[] {
  const fromAuthority = authority === "" ? [] : splitHosts(authority).map(hostPort);
  const names =
    hostParam !== null ? hostParam.split(",").map((h) => h.trim()) : fromAuthority.map((h) => h.host);
  if (names.length === 0) names.push("");
  let ports: (number | undefined)[] =
    portParam !== null
      ? portParam.split(",").map((p) => portNumber(p.trim()))
      : fromAuthority.map((h) => h.port);
  // libpq: one port for every host, or one per host.
  if (ports.length === 1 && names.length > 1) ports = names.map(() => ports[0]);
  if (ports.length > 0 && ports.length !== names.length) {
    throw new Error(`${names.length} hosts and ${ports.length} ports: give one port, or one per host`);
  }
  return names.map((name, i) => ({
    host: name === "" ? "localhost" : name,
    port: ports[i] ?? DEFAULT_PORT,
  }));
}

/** Splits at commas that are not inside an IPv6 address's brackets. */
function splitHosts(list: string): string[] {
  const parts: string[] = [];
  let current = "";
  let inBrackets = false;
  for (const char of list) {
    if (char === "[") inBrackets = true;
    else if (char === "]") inBrackets = false;
    if (char === "," && !inBrackets) {
      parts.push(current);
      current = "";
    } else current += char;
  }
  parts.push(current);
  return parts;
}

function hostPort(spec: string): { host: string; port?: number } {
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(spec);
  if (bracketed) {
    return { host: bracketed[1] ?? "", port: bracketed[2] ? portNumber(bracketed[2]) : undefined };
  }
  if (spec.startsWith("[")) throw new Error(`host "${spec}": an IPv6 address needs its closing ]`);
  const colon = spec.lastIndexOf(":");
  if (colon < 0) return { host: decodeURIComponent(spec) };
  const port = spec.slice(colon + 1);
  return {
    host: decodeURIComponent(spec.slice(0, colon)),
    port: port === "" ? undefined : portNumber(port),
  };
}

function portNumber(text: string): number | undefined {
  if (text === "") return undefined;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1 || port > 65535) {
    throw new Error(`port "${text}": must be a number from 1 to 65535`);
  }
  return port;
}

/** Whether node-postgres can take `url` as it is: one host, and no target_session_attrs to honour. */
export function isPlainUrl(parsed: DatabaseUrl): boolean {
  return parsed.hosts.length === 1 && parsed.targetSessionAttrs === "any";
}

/** The hosts as `h1:5432, h2:5433`, for messages. */
export function describeHosts(hosts: HostPort[]): string {
  return hosts.map(hostLabel).join(", ");
}

export function hostLabel({ host, port }: HostPort): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
