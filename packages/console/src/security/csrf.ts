import { timingSafeEqual } from "node:crypto";
import type { Context } from "hono";

/** The form field and the header (for htmx requests) that carry a CSRF token. */
export const csrfField = "_csrf";
export const csrfHeader = "X-CSRF-Token";

/** Whether the POST carries `expected` in its header or form field. */
export async function hasCsrfToken(c: Context, expected: string): Promise<boolean> {
  let given = c.req.header(csrfHeader);
  if (given === undefined) {
    const type = c.req.header("Content-Type") ?? "";
    if (type.startsWith("application/x-www-form-urlencoded") || type.startsWith("multipart/form-data")) {
      const value = (await c.req.parseBody())[csrfField];
      if (typeof value === "string") given = value;
    }
  }
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
