export { MigrationError, type MigrationErrorCode } from "./errors.js";
export {
  bundledExtensionDir,
  EXTENSION_NAME,
  type ExtensionFile,
  type ExtensionRelease,
  extensionFiles,
  extensionReleases,
} from "./extension.js";
export { type MigrateOptions, type MigrateResult, migrate } from "./migrate.js";
export {
  bundledMigrationsDir,
  checksumOf,
  type MigrationFile,
  readMigrationFiles,
} from "./migration-files.js";
