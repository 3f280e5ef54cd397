import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { checkedDatabaseUrl, databaseUrlFrom } from "../connection.js";
import { CliError, ExitCode } from "../exit-codes.js";

/** One database the sender serves. Without a url, libpq's PG* environment variables are used. */
export interface DatabaseTarget {
  name: string;
  url?: string;
}

type Kind = "integer" | "boolean" | "string" | "level" | "listen";

interface OptionSpec {
  kind: Kind;
  /** The value when neither a flag, the environment nor the config file gives one. */
  default?: number | boolean | string;
  min?: number;
  max?: number;
  description: string;
}

/**
 * Every option of `dbmail start`, once: its config-file key (the table's key), kind, range, default and
 * meaning. The flag (`--batch-size`), the environment variable (`DBMAIL_BATCH_SIZE`), the parser and the
 * `--help` lines are derived from it (see flagOf, envOf, optionsHelp).
 */
const OPTIONS = {
  senderId: {
    kind: "string",
    description: "this sender's id in dbmail.senders and sent_by (default: host:pid:random)",
  },
  batchSize: { kind: "integer", default: 20, min: 1, max: 1000, description: "items claimed per query" },
  concurrency: {
    kind: "integer",
    default: 20,
    min: 1,
    max: 1000,
    description: "messages in flight per database",
  },
  leaseSeconds: {
    kind: "integer",
    default: 300,
    min: 10,
    max: 86400,
    description: "how long a claimed item stays this sender's without renewal",
  },
  pollIntervalMs: {
    kind: "integer",
    default: 5000,
    min: 50,
    max: 3_600_000,
    description: "how often to look for due mail without a notification",
  },
  heartbeatIntervalMs: {
    kind: "integer",
    default: 5000,
    min: 100,
    max: 25_000,
    description: "how often to report liveness (a sender is dead after 30 s of silence)",
  },
  shutdownTimeoutMs: {
    kind: "integer",
    default: 30_000,
    min: 0,
    max: 600_000,
    description: "how long SIGTERM waits for messages in flight before releasing them",
  },
  exitWhenIdle: {
    kind: "boolean",
    default: false,
    description: "exit after DatabaseMailExeMinimumLifeTime seconds without mail",
  },
  smtpPoolSize: {
    kind: "integer",
    default: 5,
    min: 1,
    max: 100,
    description: "SMTP connections per account",
  },
  smtpTimeoutSeconds: {
    kind: "integer",
    default: 60,
    min: 1,
    max: 3600,
    description: "SMTP timeout for accounts without their own",
  },
  smtpUsername: { kind: "string", description: "credentials for accounts with use_default_credentials" },
  smtpPassword: { kind: "string", description: "password for accounts with use_default_credentials" },
  logLevel: { kind: "level", default: "info", description: "debug, info, warn or error" },
  http: {
    kind: "listen",
    description: "serve /livez, /readyz and /metrics on HOST:PORT (default: off)",
  },
} as const satisfies Record<string, OptionSpec>;

type OptionKey = keyof typeof OPTIONS;
type ValueOf<K extends Kind> = K extends "integer"
  ? number
  : K extends "boolean"
    ? boolean
    : K extends "level"
      ? "debug" | "info" | "warn" | "error"
      : string;
type WithDefault = {
  [K in OptionKey]: (typeof OPTIONS)[K] extends { default: unknown } ? K : never;
}[OptionKey];

/** Everything a sender process is configured with (see docs/sender.md). */
export type SenderOptions = { databases: DatabaseTarget[]; senderId: string } & {
  [K in WithDefault]: ValueOf<(typeof OPTIONS)[K]["kind"]>;
} & { [K in Exclude<OptionKey, WithDefault | "senderId">]?: ValueOf<(typeof OPTIONS)[K]["kind"]> };

const keys = Object.keys(OPTIONS) as OptionKey[];

/** `batchSize` -> `batch-size`. */
export function flagOf(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** `batchSize` -> `DBMAIL_BATCH_SIZE`. */
export function envOf(key: string): string {
  return `DBMAIL_${flagOf(key).replace(/-/g, "_").toUpperCase()}`;
}

/** The flags of `dbmail start`'s options, with their kind (for the command-line parser). */
export const optionFlags: { flag: string; boolean: boolean }[] = keys.map((key) => ({
  flag: flagOf(key),
  boolean: OPTIONS[key].kind === "boolean",
}));

/** The defaults of every option that has one. */
export const defaults = Object.fromEntries(
  keys.flatMap((key) => {
    const spec: OptionSpec = OPTIONS[key];
    return spec.default === undefined ? [] : [[key, spec.default]];
  }),
) as Omit<SenderOptions, "databases" | "senderId" | "smtpUsername" | "smtpPassword" | "http">;

export interface OptionSources {
  /** Parsed command-line flags, by flag name. */
  flags: Record<string, string | boolean | undefined>;
  env: NodeJS.ProcessEnv;
  configFile?: string;
}

/** Resolves every option: flag > environment > config file > default. */
export function resolveOptions(sources: OptionSources): SenderOptions {
  const file = sources.configFile ? readConfigFile(sources.configFile) : {};
  const resolved: Record<string, unknown> = { ...defaults };
  for (const key of keys) {
    const spec: OptionSpec = OPTIONS[key];
    const fromFlag = sources.flags[flagOf(key)];
    const fromEnv = sources.env[envOf(key)];
    const fromFile = file[key];
    if (fromFlag !== undefined) resolved[key] = parseValue(spec, fromFlag, `--${flagOf(key)}`);
    else if (fromEnv !== undefined && fromEnv !== "") resolved[key] = parseValue(spec, fromEnv, envOf(key));
    else if (fromFile !== undefined)
      resolved[key] = parseValue(spec, fromFile, `${sources.configFile}: ${key}`);
  }
  resolved.senderId ??= `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  resolved.databases = resolveDatabases(sources, file);
  return resolved as unknown as SenderOptions;
}

function resolveDatabases(sources: OptionSources, file: Record<string, unknown>): DatabaseTarget[] {
  const flag = sources.flags["database-url"];
  const url = databaseUrlFrom(typeof flag === "string" ? flag : undefined, sources.env, { writes: true });
  if (file.databases !== undefined) {
    // One URL and a list of databases: which was meant is anybody's guess, so neither wins silently.
    if (url) {
      const given = typeof flag === "string" ? "--database-url" : "DATABASE_URL";
      throw new CliError(
        `${given} and the "databases" of ${sources.configFile}: give one or the other ` +
          `(${given} serves one database; the config file's list serves several)`,
        ExitCode.usage,
      );
    }
    return databasesOfConfig(file.databases, sources.configFile as string);
  }
  if (url) return [{ name: nameOf(url), url }];
  // No URL anywhere: node-postgres reads PGHOST, PGDATABASE, ... itself.
  return [{ name: process.env.PGDATABASE ?? "default" }];
}

/** The config file's "databases": a non-empty list of URLs or {name, url}, names and URLs each once. */
function databasesOfConfig(list: unknown, configFile: string): DatabaseTarget[] {
  const where = `${configFile}: databases`;
  if (!Array.isArray(list) || list.length === 0) {
    throw new CliError(
      `${where}: must be a non-empty list of database URLs or {"name", "url"} objects`,
      ExitCode.usage,
    );
  }
  const targets = list.map((entry: unknown, i) => {
    const given =
      typeof entry === "object" && entry !== null ? (entry as { name?: unknown; url?: unknown }) : {};
    const url = typeof entry === "string" ? entry : given.url;
    if (typeof url !== "string" || url === "") {
      throw new CliError(`${where}[${i}]: needs a "url"`, ExitCode.usage);
    }
    checkedDatabaseUrl(url, `${where}[${i}].url`, { writes: true });
    if (given.name !== undefined && (typeof given.name !== "string" || given.name.trim() === "")) {
      throw new CliError(`${where}[${i}].name: must be a non-empty string`, ExitCode.usage);
    }
    return { name: (given.name as string | undefined) ?? nameOf(url), url };
  });
  targets.forEach((target, i) => {
    const first = targets.findIndex((t) => t.name === target.name || t.url === target.url);
    if (first < i) {
      const what = targets[first]?.name === target.name ? `the name "${target.name}"` : "the same URL";
      throw new CliError(
        `${where}[${i}]: ${what} as databases[${first}]; each database once`,
        ExitCode.usage,
      );
    }
  });
  return targets;
}

function nameOf(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}${parsed.pathname}`;
  } catch {
    // Several hosts (h1:5432,h2:5433) are not a WHATWG URL: name it after them all.
    const hosts = /^[a-z]+:\/\/(?:[^@/?]*@)?([^/?]*)(\/[^?]*)?/i.exec(url);
    return hosts?.[1] ? `${hosts[1].replace(/:\d+/g, "")}${hosts[2] ?? ""}` : "database";
  }
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new CliError(`--config: "${path}": cannot be read (${(error as Error).message})`, ExitCode.usage);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      throw new Error("not a JSON object");
    return parsed as Record<string, unknown>;
  } catch (error) {
    throw new CliError(`--config: "${path}": not valid JSON (${(error as Error).message})`, ExitCode.usage);
  }
}

function parseValue(spec: OptionSpec, raw: unknown, where: string): unknown {
  const text = String(raw);
  switch (spec.kind) {
    case "boolean":
      if (raw === true || raw === false) return raw;
      if (/^(1|true|yes|on)$/i.test(text)) return true;
      if (/^(0|false|no|off)$/i.test(text)) return false;
      throw new CliError(`${where}: "${text}": must be true or false`, ExitCode.usage);
    case "integer": {
      const value = Number(text);
      if (
        !/^\d+$/.test(text.trim()) ||
        value < (spec.min ?? 0) ||
        value > (spec.max ?? Number.MAX_SAFE_INTEGER)
      ) {
        throw new CliError(
          `${where}: "${text}": must be a whole number from ${spec.min} to ${spec.max}`,
          ExitCode.usage,
        );
      }
      return value;
    }
    case "listen":
      listenAddress(text, where);
      return text;
    case "level":
      if (!["debug", "info", "warn", "error"].includes(text)) {
        throw new CliError(`${where}: "${text}": must be debug, info, warn or error`, ExitCode.usage);
      }
      return text;
    default:
      return text;
  }
}

/**
 * HOST:PORT (an IPv6 host in brackets, `[::1]:9465`) as host and port; port 0 picks a free one.
 * Throws a usage error naming `where` when it is not one.
 */
export function listenAddress(text: string, where = "--http"): { host: string; port: number } {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(match?.[3]);
  if (!match || port > 65535) {
    throw new CliError(
      `${where}: "${text}": must be HOST:PORT, e.g. 127.0.0.1:9465, 0.0.0.0:9465 or [::1]:9465`,
      ExitCode.usage,
    );
  }
  return { host: (match[1] ?? match[2]) as string, port };
}

/** The options part of `dbmail start --help`, generated from the table so it cannot drift. */
export function optionsHelp(): string {
  return keys
    .map((key) => {
      const spec: OptionSpec = OPTIONS[key];
      const fallback = spec.default === undefined ? "" : ` (default ${String(spec.default)})`;
      return `  --${flagOf(key).padEnd(22)} ${envOf(key).padEnd(30)} ${spec.description}${fallback}`;
    })
    .join("\n");
}
