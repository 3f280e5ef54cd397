export { CliError, ExitCode } from "./exit-codes.js";
