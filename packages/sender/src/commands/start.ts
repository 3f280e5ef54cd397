import { optionsHelp, resolveOptions } from "../config/options.js";
import { createLogger } from "../log.js";
import { Sender } from "../sender/sender.js";

export const startHelp = `Usage: dbmail start [--database-url URL | --config FILE] [options]

Runs the sender: delivers the mail queued in one or more databases over SMTP, until SIGTERM or SIGINT
(a second signal exits at once). Connect as a login role that is a member of dbmail_sender.

Which database: --database-url, else DATABASE_URL, else the "databases" list of --config, else libpq's
PG* variables. Every option below can be given as a flag, an environment variable, or a key of the
--config JSON file (e.g. {"databases": [{"name": "app", "url": "postgres://..."}], "concurrency": 10});
flag > environment > config file > default.

Options:
  --database-url URL       DATABASE_URL                   the database to serve
  --config FILE                                           a JSON config file
${optionsHelp()}
  -h, --help               show this help

Logs are JSON lines on stdout. Exit codes: 0 stopped cleanly, 3 cannot log in, 4 database newer than
this sender, 9 schema missing or older (run dbmail migrate), 1 otherwise.
`;

export async function runStart(flags: Record<string, string | boolean | undefined>): Promise<void> {
  const options = resolveOptions({
    flags,
    env: process.env,
    configFile: typeof flags.config === "string" ? flags.config : undefined,
  });
  const log = createLogger(options.logLevel, { senderId: options.senderId });
  const sender = new Sender(options, log);
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
