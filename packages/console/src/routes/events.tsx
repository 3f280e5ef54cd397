import { Hono } from "hono";
import type { ConsoleEnv } from "../context.js";
import { eventTypes, listEvents } from "../queries/events.js";
import { isId } from "../queries/item.js";
import { EventTable } from "../views/events.js";
import { Layout, Problems } from "../views/layout.js";
import { Pager } from "../views/pager.js";
import { requirePool } from "./pool.js";

/** GET /events: the event log as the role sees it (a dbmail_user: the events of its own items). */
export const eventRoutes = new Hono<ConsoleEnv>().get("/events", async (c) => {
  const session = c.get("session");
  const query = c.req.query();
  const problems: string[] = [];
  const type = query.type || undefined;
  if (type !== undefined && !(eventTypes as readonly string[]).includes(type)) {
    problems.push(`type: "${type}": not one of ${eventTypes.join(", ")}`);
  }
  const cursor: { before?: string; after?: string } = {};
  for (const key of ["before", "after"] as const) {
    const id = query[key];
    if (id === undefined || id === "") continue;
    if (isId(id)) cursor[key] = id;
    else problems.push(`${key}: "${id}": not a log id`);
  }
  const page = problems.length === 0 ? await listEvents(requirePool(session), type, cursor) : undefined;
  const rows = page?.rows ?? [];
  return c.html(
    <Layout title="Event log" session={session}>
      <form method="get" action="/events" class="filters">
        <label>
          Type
          <select name="type">
            <option value="">any</option>
            {eventTypes.map((t) => (
              <option value={t} selected={type === t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Filter</button>
      </form>
      <Problems messages={problems} />
      {page && (rows.length === 0 ? <p>No event.</p> : <EventTable events={rows} />)}
      {page && (
        <Pager
          path="/events"
          query={type ? { type } : {}}
          first={rows[0]?.log_id}
          last={rows.at(-1)?.log_id}
          newer={page.newer}
          older={page.older}
        />
      )}
    </Layout>,
  );
});
