import { raw } from "hono/html";
import type { Child } from "hono/jsx";
import { csrfField, csrfHeader } from "../security/csrf.js";
import type { Session } from "../sessions.js";

// htmx reads its configuration from this meta tag: no eval, no script tags from responses, and no
// style element of its own (the CSP allows none).
const htmxConfig = JSON.stringify({
  allowEval: false,
  allowScriptTags: false,
  includeIndicatorStyles: false,
  selfRequestsOnly: true,
  historyCacheSize: 0,
});

export function Layout(props: { title: string; session?: Session | undefined; children: Child }) {
  const { session } = props;
  // The doctype is the one raw string of the console: a constant, never user data.
  return (
    <>
      {raw("<!DOCTYPE html>")}
      <html lang="en">
        <head>
          <meta charset="utf-8" />
          <meta name="viewport" content="width=device-width, initial-scale=1" />
          <meta name="htmx-config" content={htmxConfig} />
          <title>{`${props.title} · dbmail console`}</title>
          <link rel="stylesheet" href="/assets/console.css" />
          <script src="/assets/htmx.min.js" defer></script>
        </head>
        <body hx-headers={session ? JSON.stringify({ [csrfHeader]: session.csrfToken }) : undefined}>
          <header>
            <strong>dbmail console</strong>
            {session && session.access !== "none" && session.access !== "no-schema" && (
              <nav hx-boost="true">
                <a href="/">Overview</a>
                <a href="/items">Items</a>
                <a href="/events">Events</a>
                <a href="/send-test">Send test e-mail</a>
                {session.access === "admin" && <a href="/accounts">Accounts</a>}
                {session.access === "admin" && <a href="/profiles">Profiles</a>}
                {session.access === "admin" && <a href="/settings">Settings</a>}
              </nav>
            )}
            {session && (
              <form method="post" action="/logout" class="signout">
                <span class="who">{session.role}</span>
                <input type="hidden" name={csrfField} value={session.csrfToken} />
                <button type="submit">Sign out</button>
              </form>
            )}
          </header>
          <main>
            <h1>{props.title}</h1>
            {props.children}
          </main>
        </body>
      </html>
    </>
  );
}

/** A problem with what was asked (a bad filter, a refusal from the database), shown above the results. */
export function Problems(props: { messages: string[] }) {
  if (props.messages.length === 0) return null;
  return (
    <ul class="problems" role="alert">
      {props.messages.map((m) => (
        <li>{m}</li>
      ))}
    </ul>
  );
}

/** A timestamp as ISO 8601 in UTC, to the second; empty for none. */
export function time(value: Date | null | undefined): string {
  return value ? value.toISOString().replace(/\.\d{3}Z$/, "Z") : "";
}
