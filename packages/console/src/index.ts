// The public API of @pg-dbmail/console: what `dbmail console` loads, and what a program (or a test)
// uses to serve the console itself.
export type { ConsoleOptions, DemoLogin } from "./options.js";
export { runConsole } from "./run.js";
export { type RunningConsole, startConsole } from "./server.js";
