import { Hono } from "hono";
import type { ConsoleEnv } from "../context.js";
import { type Delivery, readOverview, statuses } from "../queries/overview.js";
import { Layout, time } from "../views/layout.js";
import { requirePool } from "./pool.js";

/** GET /: the queue at a glance. */
export const overviewRoutes = new Hono<ConsoleEnv>().get("/", async (c) => {
  const session = c.get("session");
  const overview = await readOverview(requirePool(session), session.access === "admin");
  return c.html(
    <Layout title="Overview" session={session}>
      <section class="counts" aria-label="Items by status">
        {statuses.map((s) => (
          <div>
            <b>{overview.counts[s]}</b>
            <a href={`/items?status=${s}`}>{s}</a>
          </div>
        ))}
      </section>
      <p>
        Oldest mail still waiting:{" "}
        {overview.oldestUnsent ? <time>{time(overview.oldestUnsent)}</time> : "none"}
      </p>
      {overview.delivery ? (
        <DeliveryState delivery={overview.delivery} />
      ) : (
        <p>These are your role's mail items; the senders and the whole queue are shown to admins.</p>
      )}
      <h2>Recent failures</h2>
      {overview.failures.length === 0 ? (
        <p>No failed mail.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Id</th>
              <th>Recipients</th>
              <th>Subject</th>
              <th>Given up</th>
              <th>Last error</th>
            </tr>
          </thead>
          <tbody>
            {overview.failures.map((f) => (
              <tr>
                <td>
                  <a href={`/items/${f.mailitem_id}`}>{f.mailitem_id}</a>
                </td>
                <td class="wrap">{f.recipients ?? "(bcc only)"}</td>
                <td class="wrap">{f.subject}</td>
                <td>{time(f.sent_date)}</td>
                <td class="wrap">{f.last_error}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Layout>,
  );
});

function DeliveryState({ delivery }: { delivery: Delivery }) {
  return (
    <section>
      <h2>Delivery</h2>
      <p>
        Database Mail is {delivery.status}; the queue is {delivery.state}.
      </p>
      {delivery.stalled && (
        <p class="stalled">STALLED: mail is due and no sender is alive (start one: dbmail start).</p>
      )}
      <table>
        <caption>Live senders: {delivery.senders.length}</caption>
        <thead>
          <tr>
            <th>Sender</th>
            <th>Host</th>
            <th>Process</th>
            <th>Version</th>
            <th>Started</th>
            <th>Last heartbeat</th>
          </tr>
        </thead>
        <tbody>
          {delivery.senders.map((s) => (
            <tr>
              <td>{s.sender_id}</td>
              <td>{s.hostname}</td>
              <td>{s.process_id}</td>
              <td>{s.version}</td>
              <td>{s.started_at}</td>
              <td>{s.last_heartbeat}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
