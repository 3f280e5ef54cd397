export { MigrationError, type MigrationErrorCode } from "./errors.js";
export { type MigrateOptions, type MigrateResult, migrate } from "./migrate.js";
export {
  bundledMigrationsDir,
  checksumOf,
  type MigrationFile,
  readMigrationFiles,
} from "./migration-files.js";
