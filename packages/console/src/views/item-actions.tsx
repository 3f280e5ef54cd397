import { csrfField } from "../security/csrf.js";

/**
 * Retry for a failed item, Cancel for one still waiting. Each is a form POST (it works without
 * script too); htmx sends it and swaps in the page the answer is, with the result on top.
 */
export function ItemActions(props: { id: string; status: unknown; csrfToken: string }) {
  const { id, status } = props;
  const action =
    status === "failed" ? "retry" : status === "unsent" || status === "retrying" ? "cancel" : undefined;
  if (!action) return null;
  const path = `/items/${id}/${action}`;
  return (
    <form method="post" action={path} hx-post={path} hx-target="body" class="actions">
      <input type="hidden" name={csrfField} value={props.csrfToken} />
      <button type="submit">{action === "retry" ? "Retry" : "Cancel"}</button>
    </form>
  );
}

/** What an action did, shown above the page. */
export function Results(props: { messages: string[] }) {
  if (props.messages.length === 0) return null;
  return (
    <ul class="results" role="status">
      {props.messages.map((m) => (
        <li>{m}</li>
      ))}
    </ul>
  );
}
