import { Hono } from "hono";
import type { ConsoleEnv } from "../context.js";
import { attachmentDisposition } from "../download-name.js";
import { NotFound } from "../not-found.js";
import {
  isId,
  readAttachment,
  readAttachments,
  readHtmlBody,
  readItem,
  readItemEvents,
} from "../queries/item.js";
import { bodyPolicy } from "../security/headers.js";
import { EventTable } from "../views/events.js";
import { Layout, time } from "../views/layout.js";
import { requirePool } from "./pool.js";

/**
 * GET /items/<id>, its HTML body and its attachments. An item the role may not see is not found,
 * exactly like one that does not exist: the views' row filters decide, and nothing tells them apart.
 */
export const itemRoutes = new Hono<ConsoleEnv>()
  .get("/items/:id", async (c) => {
    const id = c.req.param("id");
    const session = c.get("session");
    const pool = requirePool(session);
    const item = isId(id) ? await readItem(pool, id) : undefined;
    if (!item) return c.html(<NotFound />, 404);
    const [attachments, events] = await Promise.all([readAttachments(pool, id), readItemEvents(pool, id)]);
    const { body, ...fields } = item;
    return c.html(
      <Layout title={`Mail item ${id}`} session={session}>
        <dl class="fields">
          {Object.entries(fields).map(([name, value]) => (
            <>
              <dt>{name}</dt>
              <dd>{shown(value)}</dd>
            </>
          ))}
        </dl>
        <h2>Body</h2>
        {item.body_format === "HTML" ? (
          // No allow-scripts, no allow-same-origin: the body runs nothing and reaches nothing of the
          // console; its own route adds a CSP that blocks scripts, requests and forms as well.
          <iframe class="body" sandbox="" src={`/items/${id}/body`} title="HTML body"></iframe>
        ) : (
          <pre class="body">{typeof body === "string" ? body : ""}</pre>
        )}
        <h2>Attachments</h2>
        {attachments.length === 0 ? (
          <p>None.</p>
        ) : (
          <ul>
            {attachments.map((a) => (
              <li>
                <a href={`/items/${id}/attachments/${a.attachment_id}`} download hx-boost="false">
                  {a.filename}
                </a>{" "}
                ({a.filesize} bytes{a.content_type ? `, ${a.content_type}` : ""})
              </li>
            ))}
          </ul>
        )}
        <h2>Events</h2>
        {events.length === 0 ? <p>None.</p> : <EventTable events={events} />}
      </Layout>,
    );
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

function shown(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (value instanceof Date) return time(value);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}
