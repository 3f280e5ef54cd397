import type { TestMail } from "../queries/send-test.js";
import { csrfField } from "../security/csrf.js";

/** The test mail form, filled with what was given (after an error, say). */
export function SendTestForm(props: { mail: TestMail; profiles: string[] | undefined; csrfToken: string }) {
  const { mail, profiles } = props;
  return (
    <form method="post" action="/send-test" class="send-test">
      <input type="hidden" name={csrfField} value={props.csrfToken} />
      {profiles ? (
        <label>
          Profile
          <select name="profile">
            <option value="">(my default profile)</option>
            {profiles.map((name) => (
              <option value={name} selected={mail.profile === name}>
                {name}
              </option>
            ))}
          </select>
        </label>
      ) : (
        <label>
          Profile
          <input name="profile" value={mail.profile} placeholder="empty: your default profile" />
        </label>
      )}
      <label>
        Recipient
        <input name="recipients" type="text" value={mail.recipients} required />
      </label>
      <label>
        Subject
        <input name="subject" value={mail.subject} />
      </label>
      <label>
        Body
        <textarea name="body" rows={6}>
          {mail.body}
        </textarea>
      </label>
      <button type="submit">Send</button>
    </form>
  );
}

const final = new Set(["sent", "failed"]);

/**
 * An item's status. Until it is sent or failed, htmx fetches it again a second later and puts the new
 * one in its place; the last one asks for nothing more.
 */
export function ItemStatus(props: { id: string; status: string; lastError: string | null }) {
  const done = final.has(props.status);
  return (
    <p
      id="status"
      class={`status ${props.status}`}
      hx-get={done ? undefined : `/items/${props.id}/status`}
      hx-trigger={done ? undefined : "load delay:1s"}
      hx-swap={done ? undefined : "outerHTML"}
    >
      Status: <b>{props.status}</b>
      {props.status === "failed" && props.lastError ? ` (${props.lastError})` : ""}
    </p>
  );
}
