import type { EventRow } from "../queries/item.js";
import { time } from "./layout.js";

export function EventTable({ events }: { events: EventRow[] }) {
  return (
    <table id="events">
      <thead>
        <tr>
          <th>Log id</th>
          <th>Type</th>
          <th>When</th>
          <th>Mail item</th>
          <th>Account</th>
          <th>Sender</th>
          <th>Description</th>
        </tr>
      </thead>
      <tbody>
        {events.map((e) => (
          <tr>
            <td>{e.log_id}</td>
            <td>{e.event_type}</td>
            <td>{time(e.log_date)}</td>
            <td>{e.mailitem_id && <a href={`/items/${e.mailitem_id}`}>{e.mailitem_id}</a>}</td>
            <td>{e.account_id}</td>
            <td>{e.sender_id}</td>
            <td class="wrap">{e.description}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
