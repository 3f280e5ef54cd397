import { type DatabaseTarget, type OptionSources, optionsHelp, resolveOptions } from "../config/options.js";
import { createLogger, type Logger } from "../log.js";
import { Sender } from "../sender/sender.js";

export const startHelp = `Usage: dbmail start [--database-url URL | --config FILE] [options]

Runs the sender: delivers the mail queued in one or more databases over SMTP, until SIGTERM or SIGINT
(a second signal exits at once). Connect as a login role that is a member of dbmail_sender.

Which database: --database-url, else DATABASE_URL, else libpq's PG* variables; or several, listed as
"databases" in the --config file (then giving --database-url or DATABASE_URL too is an error). Every
option below can be given as a flag, an environment variable, or a key of the --config JSON file
(e.g. {"databases": [{"name": "app", "url": "postgres://..."}], "concurrency": 10}); flag > environment
> config file > default. SIGHUP re-reads the config file's databases: added ones are served, removed
ones given back.

Options:
  --database-url URL       DATABASE_URL                   the database to serve
  --config FILE                                           a JSON config file
${optionsHelp()}
  -h, --help               show this help

Logs are JSON lines on stdout. Exit codes: 0 stopped cleanly, 2 bad options, 3 cannot log in or not a
member of dbmail_sender, 4 database newer than this sender, 9 schema missing or older (run dbmail
migrate), 14 cannot listen on the --http address (the port in use), 1 otherwise. Serving several
databases, a database that refuses is logged and retried instead, while the others are served; a
database that is starting up or unreachable is always waited for.
`;

export async function runStart(flags: Record<string, string | boolean | undefined>): Promise<void> {
  const sources = {
    flags,
    env: process.env,
    configFile: typeof flags.config === "string" ? flags.config : undefined,
  };
  const options = resolveOptions(sources);
  const log = createLogger(options.logLevel, { senderId: options.senderId });
  const sender = new Sender(options, log);
  process.on("SIGHUP", () => void reloadDatabases(sender, sources, log));
  let signals = 0;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        log.warn({ signal }, "second signal: exiting at once");
        process.exit(1);
      }
      log.info({ signal }, "stopping: finishing messages in flight");
      sender.stop().then(resolve, resolve);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
    sender.on("idle", () => sender.stop().then(resolve, resolve));
  });
  await sender.start();
  await stopped;
}

/**
 * SIGHUP: re-reads the config file's "databases" and serves exactly those from now on. A config file
 * that cannot be used is logged and changes nothing. Other options keep their values until a restart.
 */
async function reloadDatabases(sender: Sender, sources: OptionSources, log: Logger): Promise<void> {
  if (!sources.configFile) {
    log.warn("SIGHUP: there is no --config file to re-read; nothing changes");
    return;
  }
  let databases: DatabaseTarget[];
  try {
    databases = resolveOptions(sources).databases;
  } catch (error) {
    log.error(
      { err: (error as Error).message },
      "SIGHUP: the config file cannot be used; still serving the same databases",
    );
    return;
  }
  log.info({ databases: databases.map((d) => d.name) }, "SIGHUP: re-reading the config file's databases");
  await sender.reload(databases);
}
