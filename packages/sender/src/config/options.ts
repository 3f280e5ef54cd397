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

/** Everything a sender process is configured with (see docs/sender.md). */
export interface SenderOptions {
  databases: DatabaseTarget[];
  senderId: string;
  batchSize: number;
  concurrency: number;
  leaseSeconds: number;
  pollIntervalMs: number;
  heartbeatIntervalMs: number;
  shutdownTimeoutMs: number;
  exitWhenIdle: boolean;
  smtpPoolSize: number;
  smtpTimeoutSeconds: number;
  smtpUsername?: string;
  smtpPassword?: string;
  logLevel: "debug" | "info" | "warn" | "error";
}

type Scalar = Exclude<keyof SenderOptions, "databases">;

interface OptionSpec {
  key: Scalar;
  flag: string;
  env: string;
  kind: "integer" | "boolean" | "string" | "level";
  min?: number;
  max?: number;
  description: string;
}

/** The one table of options: flag, environment variable, config-file key (= key), default, meaning. */
export const optionSpecs: OptionSpec[] = [
  {
    key: "senderId",
    flag: "sender-id",
    env: "DBMAIL_SENDER_ID",
    kind: "string",
    description: "this sender's id in dbmail.senders and sent_by (default: host:pid:random)",
  },
  {
    key: "batchSize",
    flag: "batch-size",
    env: "DBMAIL_BATCH_SIZE",
    kind: "integer",
    min: 1,
    max: 1000,
    description: "items claimed per query",
  },
  {
    key: "concurrency",
    flag: "concurrency",
    env: "DBMAIL_CONCURRENCY",
    kind: "integer",
    min: 1,
    max: 1000,
    description: "messages in flight per database",
  },
  {
    key: "leaseSeconds",
    flag: "lease-seconds",
    env: "DBMAIL_LEASE_SECONDS",
    kind: "integer",
    min: 10,
    max: 86400,
    description: "how long a claimed item stays this sender's without renewal",
  },
  {
    key: "pollIntervalMs",
    flag: "poll-interval-ms",
    env: "DBMAIL_POLL_INTERVAL_MS",
    kind: "integer",
    min: 50,
    max: 3_600_000,
    description: "how often to look for due mail without a notification",
  },
  {
    key: "heartbeatIntervalMs",
    flag: "heartbeat-interval-ms",
    env: "DBMAIL_HEARTBEAT_INTERVAL_MS",
    kind: "integer",
    min: 100,
    max: 25_000,
    description: "how often to report liveness (a sender is dead after 30 s of silence)",
  },
  {
    key: "shutdownTimeoutMs",
    flag: "shutdown-timeout-ms",
    env: "DBMAIL_SHUTDOWN_TIMEOUT_MS",
    kind: "integer",
    min: 0,
    max: 600_000,
    description: "how long SIGTERM waits for messages in flight before releasing them",
  },
  {
    key: "exitWhenIdle",
    flag: "exit-when-idle",
    env: "DBMAIL_EXIT_WHEN_IDLE",
    kind: "boolean",
    description: "exit after DatabaseMailExeMinimumLifeTime seconds without mail",
  },
  {
    key: "smtpPoolSize",
    flag: "smtp-pool-size",
    env: "DBMAIL_SMTP_POOL_SIZE",
    kind: "integer",
    min: 1,
    max: 100,
    description: "SMTP connections per account",
  },
  {
    key: "smtpTimeoutSeconds",
    flag: "smtp-timeout-seconds",
    env: "DBMAIL_SMTP_TIMEOUT_SECONDS",
    kind: "integer",
    min: 1,
    max: 3600,
    description: "SMTP timeout for accounts without their own",
  },
  {
    key: "smtpUsername",
    flag: "smtp-username",
    env: "DBMAIL_SMTP_USERNAME",
    kind: "string",
    description: "credentials for accounts with use_default_credentials",
  },
  {
    key: "smtpPassword",
    flag: "smtp-password",
    env: "DBMAIL_SMTP_PASSWORD",
    kind: "string",
    description: "password for accounts with use_default_credentials",
  },
  {
    key: "logLevel",
    flag: "log-level",
    env: "DBMAIL_LOG_LEVEL",
    kind: "level",
    description: "debug, info, warn or error",
  },
];

export const defaults: Omit<SenderOptions, "databases" | "senderId"> = {
  batchSize: 20,
  concurrency: 20,
  leaseSeconds: 300,
  pollIntervalMs: 5000,
  heartbeatIntervalMs: 5000,
  shutdownTimeoutMs: 30_000,
  exitWhenIdle: false,
  smtpPoolSize: 5,
  smtpTimeoutSeconds: 60,
  logLevel: "info",
};

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
  for (const spec of optionSpecs) {
    const fromFlag = sources.flags[spec.flag];
    const fromEnv = sources.env[spec.env];
    const fromFile = file[spec.key];
    if (fromFlag !== undefined) resolved[spec.key] = parseValue(spec, fromFlag, `--${spec.flag}`);
    else if (fromEnv !== undefined && fromEnv !== "")
      resolved[spec.key] = parseValue(spec, fromEnv, spec.env);
    else if (fromFile !== undefined)
      resolved[spec.key] = parseValue(spec, fromFile, `${sources.configFile}: ${spec.key}`);
  }
  resolved.senderId ??= `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}`;
  resolved.databases = resolveDatabases(sources, file);
  return resolved as unknown as SenderOptions;
}

function resolveDatabases(sources: OptionSources, file: Record<string, unknown>): DatabaseTarget[] {
  const flag = sources.flags["database-url"];
  const url = databaseUrlFrom(typeof flag === "string" ? flag : undefined, sources.env);
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
    checkedDatabaseUrl(url, `${where}[${i}].url`);
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
    return "database";
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
    case "level":
      if (!["debug", "info", "warn", "error"].includes(text)) {
        throw new CliError(`${where}: "${text}": must be debug, info, warn or error`, ExitCode.usage);
      }
      return text;
    default:
      return text;
  }
}

/** The options part of `dbmail start --help`, generated from the table so it cannot drift. */
export function optionsHelp(): string {
  return optionSpecs
    .map((spec) => {
      const fallback =
        spec.key in defaults ? ` (default ${String(defaults[spec.key as keyof typeof defaults])})` : "";
      return `  --${spec.flag.padEnd(22)} ${spec.env.padEnd(30)} ${spec.description}${fallback}`;
    })
    .join("\n");
}
