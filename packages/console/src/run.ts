import { describeDatabaseUrl } from "@pg-dbmail/sender";
import type { ConsoleOptions } from "./options.js";
import { startConsole } from "./server.js";

/** `dbmail console`: serves until SIGINT or SIGTERM, then ends every session and exits. */
export async function runConsole(options: ConsoleOptions): Promise<void> {
  const running = await startConsole(options);
  console.log(`dbmail console on ${running.url} for ${describeDatabaseUrl(options.databaseUrl)}`);
  console.log("Sign in with your PostgreSQL role. Ctrl-C stops it.");
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await running.close();
}
