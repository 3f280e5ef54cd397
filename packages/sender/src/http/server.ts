import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { listenAddress } from "../config/options.js";
import { CliError, ExitCode } from "../exit-codes.js";
import type { Logger } from "../log.js";
import type { HealthReport } from "../sender/health.js";

/** What the endpoints answer from. */
export interface MonitorSources {
  health: () => Promise<HealthReport>;
  metrics: () => Promise<{ contentType: string; body: string }>;
}

export interface MonitorServer {
  /** Where it listens (the port chosen, when 0 was asked for). */
  address: { host: string; port: number };
  close(): Promise<void>;
}

/** Why a listen failed, in words, by Node's error code. */
const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: "the port is in use (another process listens on it)",
  EADDRNOTAVAIL: "the address is not one of this host's",
  EACCES: "not allowed to listen there (ports below 1024 need privileges)",
  ENOTFOUND: "the host name is unknown",
  EAI_AGAIN: "the host name could not be resolved",
};

/**
 * `--http HOST:PORT`: the sender's health and metrics over plain HTTP (node:http), for Kubernetes probes
 * and Prometheus. GET (or HEAD) /livez: 200 while the process runs. /readyz: 200 when every served
 * database is ready, else 503; a JSON body names each database and what is wrong. /metrics: Prometheus'
 * text format. Nothing else is served and no request's input is echoed. A listen that fails (the port
 * in use) is a CliError with exit code 14.
 */
export async function startMonitorServer(
  address: string,
  sources: MonitorSources,
  log: Logger,
): Promise<MonitorServer> {
  const { host, port } = listenAddress(address);
  const server = createServer((request, response) => {
    void respond(request, response, sources).catch((error: Error) => {
      log.error({ err: error.message, path: pathOf(request) }, "http: request failed");
      if (!response.headersSent) send(response, 500, "text/plain; charset=utf-8", "internal error\n");
      else response.destroy();
    });
  });
  // A monitoring endpoint needs few connections and short requests: a client that trickles its headers
  // or opens connections by the thousand is cut off instead of holding the sender's sockets.
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.maxConnections = 64;
  await listen(server, host, port).catch((error: NodeJS.ErrnoException) => {
    const why = LISTEN_ERRORS[error.code ?? ""] ?? error.message;
    throw new CliError(`--http: "${address}": cannot listen: ${why}`, ExitCode.httpUnavailable, {
      cause: error,
    });
  });
  const bound = server.address() as AddressInfo;
  log.info({ http: `${host}:${bound.port}` }, "http: serving /livez, /readyz and /metrics");
  return {
    address: { host, port: bound.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections (Prometheus keeps its own open) would hold close() back.
        server.closeAllConnections();
      }),
  };
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

async function respond(request: IncomingMessage, response: ServerResponse, sources: MonitorSources) {
  const path = pathOf(request);
  if (!["/livez", "/readyz", "/metrics"].includes(path)) {
    send(response, 404, "text/plain; charset=utf-8", "not found: try /livez, /readyz or /metrics\n");
    return;
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    response.setHeader("Allow", "GET, HEAD");
    send(response, 405, "text/plain; charset=utf-8", "method not allowed\n");
    return;
  }
  if (path === "/livez") {
    send(response, 200, "text/plain; charset=utf-8", "ok\n");
  } else if (path === "/readyz") {
    const report = await sources.health();
    const body = `${JSON.stringify({ status: report.ready ? "ready" : "not ready", ...report }, null, 2)}\n`;
    send(response, report.ready ? 200 : 503, "application/json; charset=utf-8", body);
  } else {
    const { contentType, body } = await sources.metrics();
    send(response, 200, contentType, body);
  }
}

function pathOf(request: IncomingMessage): string {
  return (request.url ?? "/").split("?")[0] as string;
}

function send(response: ServerResponse, status: number, contentType: string, body: string): void {
  response.writeHead(status, {
    "Content-Type": contentType,
    "Content-Length": Buffer.byteLength(body),
    "Cache-Control": "no-store",
  });
  response.end(response.req.method === "HEAD" ? undefined : body);
}
