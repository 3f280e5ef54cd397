import { Hono } from "hono";
import type { ConsoleEnv } from "../context.js";
import { attachmentDisposition } from "../download-name.js";
import { NotFound } from "../not-found.js";
import { isId, readAttachment, readHtmlBody, readItemPage } from "../queries/item.js";
import { bodyPolicy } from "../security/headers.js";
import { ItemPage } from "../views/item.js";
import { requirePool } from "./pool.js";

/**
 * GET /items/<id>, its HTML body and its attachments. An item the role may not see is not found,
 * exactly like one that does not exist: the views' row filters decide, and nothing tells them apart.
 */
export const itemRoutes = new Hono<ConsoleEnv>()
  .get("/items/:id", async (c) => {
    const session = c.get("session");
    const data = await readItemPage(requirePool(session), c.req.param("id"));
    if (!data) return c.html(<NotFound />, 404);
    return c.html(<ItemPage data={data} session={session} />);
  })
  .get("/items/:id/body", async (c) => {
    const id = c.req.param("id");
    const html = isId(id) ? await readHtmlBody(requirePool(c.get("session")), id) : undefined;
    if (html === undefined) return c.html(<NotFound />, 404);
    c.header("Content-Security-Policy", bodyPolicy);
    return c.body(html, 200, { "Content-Type": "text/html; charset=utf-8" });
  })
  .get("/items/:id/attachments/:attachmentId", async (c) => {
    const { id, attachmentId } = c.req.param();
    const pool = requirePool(c.get("session"));
    const file = isId(id) && isId(attachmentId) ? await readAttachment(pool, id, attachmentId) : undefined;
    if (!file) return c.html(<NotFound />, 404);
    // Downloaded, never rendered: a stored content type could be text/html.
    c.header("Content-Security-Policy", "default-src 'none'; sandbox");
    return c.body(new Uint8Array(file.attachment), 200, {
      "Content-Type": "application/octet-stream",
      "Content-Disposition": attachmentDisposition(file.filename),
    });
  });
