import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { CliError, ExitCode } from "@pg-dbmail/sender";
import { createApp } from "./app.js";
import { type ConsoleOptions, checkOptions } from "./options.js";

export interface RunningConsole {
  /** The console's address, say http://127.0.0.1:8025. */
  url: string;
  /** Stops listening, ends every session and closes their connections. */
  close(): Promise<void>;
}

/** Checks the options, then serves the console until close(). */
export async function startConsole(options: ConsoleOptions): Promise<RunningConsole> {
  const config = checkOptions(options);
  const { app, sessions } = createApp({
    databaseUrl: config.databaseUrl,
    secure: config.tls !== undefined,
    loopback: config.loopback,
    idleTimeoutMs: config.idleTimeoutMs,
    signInDelayMs: config.signInDelayMs,
    demoLogin: config.demoLogin,
  });
  const server = serve({
    fetch: app.fetch,
    hostname: config.host,
    port: config.port,
    // The console may run inside another program (the tests): leave its global Request and Response be.
    overrideGlobalObjects: false,
    ...(config.tls
      ? { createServer: createHttpsServer, serverOptions: { cert: config.tls.cert, key: config.tls.key } }
      : {}),
  });
  const address = await new Promise<AddressInfo>((resolve, reject) => {
    server.once("listening", () => resolve(server.address() as AddressInfo));
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        new CliError(
          `--listen: "${options.listen}": cannot listen there (${error.code ?? error.message})`,
          ExitCode.usage,
          {
            cause: error,
          },
        ),
      ),
    );
  });
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `${config.tls ? "https" : "http"}://${host}:${address.port}`,
    close: async () => {
      await sessions.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        if ("closeAllConnections" in server) server.closeAllConnections();
      });
    },
  };
}
