// The public API of @pg-dbmail/sender: for programs that embed a sender, and for @pg-dbmail/dev, which
// `dbmail dev` loads (so these are what that package builds on; keep them few and stable).
export type { DevModule, DevOptions } from "./commands/dev.js";
export { migrateOrExplain } from "./commands/migrate.js";
export { type DatabaseTarget, defaults as senderDefaults, type SenderOptions } from "./config/options.js";
export { connect, databaseUrlFrom, describe as describeDatabaseUrl } from "./connection.js";
export { CliError, ExitCode } from "./exit-codes.js";
export { createLogger, type Logger } from "./log.js";
export type { WorkerState } from "./sender/database-worker.js";
export { DatabaseRefusedError, type RefusalCode } from "./sender/errors.js";
export type { DatabaseHealth, HealthReport } from "./sender/health.js";
export { Sender } from "./sender/sender.js";
