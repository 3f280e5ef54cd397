import type { ItemPageData } from "../queries/item.js";
import type { Session } from "../sessions.js";
import { AttemptTable } from "./attempts.js";
import { EventTable } from "./events.js";
import { ItemActions, Results } from "./item-actions.js";
import { Layout, Problems, time } from "./layout.js";

/** /items/<id>: every field, the body, attachments, SMTP attempts and events; `results` of an action on top. */
export function ItemPage(props: {
  data: ItemPageData;
  session: Session;
  results?: string[];
  problems?: string[];
}) {
  const { id, item, attachments, events, attempts } = props.data;
  const { body, ...fields } = item;
  return (
    <Layout title={`Mail item ${id}`} session={props.session}>
      <Results messages={props.results ?? []} />
      <Problems messages={props.problems ?? []} />
      <ItemActions id={id} status={item.sent_status} csrfToken={props.session.csrfToken} />
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
      <h2>Attempts</h2>
      {attempts.length === 0 ? <p>None.</p> : <AttemptTable attempts={attempts} />}
      <h2>Events</h2>
      {events.length === 0 ? <p>None.</p> : <EventTable events={events} />}
    </Layout>
  );
}

function shown(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (value instanceof Date) return time(value);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}
