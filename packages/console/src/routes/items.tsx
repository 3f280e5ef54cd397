import { Hono } from "hono";
import type { ConsoleEnv } from "../context.js";
import { type ItemFilter, listItems, resolveFilter } from "../queries/items.js";
import { statuses } from "../queries/overview.js";
import { BulkForms, filterQuery } from "../views/bulk.js";
import { Layout, Problems, time } from "../views/layout.js";
import { Pager } from "../views/pager.js";
import { requirePool } from "./pool.js";

/** GET /items: the mail items the role may see, filtered, 50 a page. */
export const itemsRoutes = new Hono<ConsoleEnv>().get("/items", async (c) => {
  const session = c.get("session");
  const pool = requirePool(session);
  const { filter, cursor, profileId, problems } = await resolveFilter(
    pool,
    c.req.query(),
    session.access === "admin",
  );
  const page = problems.length === 0 ? await listItems(pool, filter, cursor, profileId) : undefined;
  const rows = page?.rows ?? [];
  return c.html(
    <Layout title="Mail items" session={session}>
      <Filters filter={filter} />
      <Problems messages={problems} />
      {page && rows.length === 0 && <p>No mail item matches.</p>}
      {rows.length > 0 && (
        <table id="items">
          <thead>
            <tr>
              <th>Id</th>
              <th>Status</th>
              <th>Profile</th>
              <th>Recipients</th>
              <th>Subject</th>
              <th>Queued</th>
              <th>Sent or given up</th>
              <th>Queued by</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((item) => (
              <tr>
                <td>
                  <a href={`/items/${item.mailitem_id}`}>{item.mailitem_id}</a>
                </td>
                <td>{item.sent_status}</td>
                <td>{item.profile_id}</td>
                <td class="wrap">{item.recipients ?? "(bcc only)"}</td>
                <td class="wrap">{item.subject}</td>
                <td>{time(item.send_request_date)}</td>
                <td>{time(item.sent_date)}</td>
                <td>{item.send_request_user}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {page && (
        <Pager
          path="/items"
          query={filterQuery(filter)}
          first={rows[0]?.mailitem_id}
          last={rows.at(-1)?.mailitem_id}
          newer={page.newer}
          older={page.older}
        />
      )}
      {rows.length > 0 && <BulkForms filter={filter} csrfToken={session.csrfToken} />}
    </Layout>,
  );
});

function Filters({ filter }: { filter: ItemFilter }) {
  return (
    <form method="get" action="/items" class="filters">
      <label>
        Status
        <select name="status">
          <option value="">any</option>
          {statuses.map((s) => (
            <option value={s} selected={filter.status === s}>
              {s}
            </option>
          ))}
        </select>
      </label>
      <label>
        Profile (id or name)
        <input name="profile" value={filter.profile ?? ""} size={12} />
      </label>
      <label>
        Recipient contains
        <input name="recipient" value={filter.recipient ?? ""} />
      </label>
      <label>
        Queued from
        <input name="from" type="date" value={filter.from ?? ""} />
      </label>
      <label>
        Queued to
        <input name="to" type="date" value={filter.to ?? ""} />
      </label>
      <button type="submit">Filter</button>
      <a href="/items">Clear</a>
    </form>
  );
}
