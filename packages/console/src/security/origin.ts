import type { MiddlewareHandler } from "hono";
import { isLoopback } from "../options.js";

/**
 * On loopback, the Host header must name a loopback address: a page elsewhere whose name an attacker
 * points at 127.0.0.1 (DNS rebinding) reaches the port, but not under its own name.
 */
export function hostCheck(loopback: boolean): MiddlewareHandler {
  return async (c, next) => {
    if (loopback) {
      const host = hostName(c.req.header("Host") ?? "");
      if (!isLoopback(host)) return c.text("Misdirected request: the console answers on loopback only", 421);
    }
    await next();
  };
}

function hostName(hostHeader: string): string {
  const bracketed = /^\[([^\]]+)\]/.exec(hostHeader);
  if (bracketed) return bracketed[1] as string;
  return hostHeader.replace(/:\d+$/, "");
}

/**
 * Every POST must come from a page of the console: its Origin header names the console's own origin
 * (the scheme it serves and the Host asked for). Browsers send Origin on every cross-origin POST and
 * on same-origin ones too, so a missing Origin is refused as well.
 */
export function originCheck(secure: boolean): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      const expected = `${secure ? "https" : "http"}://${c.req.header("Host") ?? ""}`;
      if (c.req.header("Origin") !== expected) {
        return c.text("Forbidden: this request did not come from a page of the console", 403);
      }
    }
    await next();
  };
}
