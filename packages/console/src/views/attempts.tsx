import type { AttemptRow } from "../queries/attempts.js";
import { time } from "./layout.js";

/** An item's SMTP attempts; the server's reply is shown as text, like everything else. */
export function AttemptTable({ attempts }: { attempts: AttemptRow[] }) {
  return (
    <table id="attempts">
      <thead>
        <tr>
          <th>Attempt</th>
          <th>Account</th>
          <th>Started</th>
          <th>Duration</th>
          <th>Outcome</th>
          <th>SMTP code</th>
          <th>Reply</th>
        </tr>
      </thead>
      <tbody>
        {attempts.map((a) => (
          <tr>
            <td>{a.attempt}</td>
            <td>{a.account_id ?? ""}</td>
            <td>{time(a.started_at)}</td>
            <td>{a.duration_ms === null ? "" : `${a.duration_ms} ms`}</td>
            <td>{a.outcome}</td>
            <td>{a.smtp_code ?? ""}</td>
            <td class="wrap">{a.smtp_response ?? ""}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
