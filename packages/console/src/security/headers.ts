import type { MiddlewareHandler } from "hono";

/** The console's pages: scripts and styles from the console itself only, no inline script. */
export const pagePolicy = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "frame-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/**
 * A mail's HTML body: no script, no request anywhere (its remote images stay unloaded), no form
 * submission; framed by the console only, and a sandbox even when opened on its own.
 */
export const bodyPolicy = [
  "default-src 'none'",
  "style-src 'unsafe-inline'",
  "img-src data:",
  "form-action 'none'",
  "base-uri 'none'",
  "frame-ancestors 'self'",
  "sandbox",
].join("; ");

/** Headers on every response; a route that serves something else (a mail body) sets its own policy. */
export const securityHeaders: MiddlewareHandler = async (c, next) => {
  await next();
  if (!c.res.headers.has("Content-Security-Policy")) c.header("Content-Security-Policy", pagePolicy);
  c.header("X-Content-Type-Options", "nosniff");
  // Not no-referrer: under it browsers send "Origin: null" with the console's own form POSTs, which
  // the Origin check must then refuse. same-origin gives other sites no referrer either.
  c.header("Referrer-Policy", "same-origin");
  c.header("Cross-Origin-Opener-Policy", "same-origin");
  c.header("Cache-Control", "no-store");
};
