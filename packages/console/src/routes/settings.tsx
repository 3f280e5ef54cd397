import { type Context, Hono } from "hono";
import type { ConsoleEnv } from "../context.js";
import { callProcedure, refusal } from "../queries/procedure.js";
import { csrfField } from "../security/csrf.js";
import { Layout, Problems } from "../views/layout.js";
import { adminOnly } from "./admin-only.js";
import { requirePool } from "./pool.js";

type C = Context<ConsoleEnv>;

interface Setting {
  paramname: string;
  paramvalue: string;
  description: string | null;
}

/** The settings (sysmail_help_configure_sp) and whether delivery is started (sysmail_help_status_sp). */
async function settingsPage(c: C, problems: string[] = []) {
  const session = c.get("session");
  const pool = requirePool(session);
  const [settings, status] = await Promise.all([
    callProcedure<Setting>(pool, "sysmail_help_configure_sp", {}, true),
    callProcedure<{ sysmail_help_status_sp: string }>(pool, "sysmail_help_status_sp", {}),
  ]);
  const started = status.rows[0]?.sysmail_help_status_sp ?? "";
  const token = <input type="hidden" name={csrfField} value={session.csrfToken} />;
  return c.html(
    <Layout title="Settings" session={session}>
      <Problems messages={problems} />
      <section>
        <h2>Delivery</h2>
        <p id="delivery">Database Mail is {started}.</p>
        <form method="post" action={started === "STARTED" ? "/settings/stop" : "/settings/start"}>
          {token}
          <button type="submit">{started === "STARTED" ? "Stop delivery" : "Start delivery"}</button>
        </form>
        <p class="hint">
          While stopped, mail is still queued; senders send nothing until delivery starts again.
        </p>
      </section>
      <table id="settings">
        <thead>
          <tr>
            <th>Setting</th>
            <th>Value</th>
            <th>Description</th>
          </tr>
        </thead>
        <tbody>
          {settings.rows.map((s) => (
            <tr>
              <td>{s.paramname}</td>
              <td>
                <form method="post" action="/settings" class="inline">
                  {token}
                  <input type="hidden" name="parameter_name" value={s.paramname} />
                  <input type="text" name="parameter_value" value={s.paramvalue} aria-label={s.paramname} />
                  <button type="submit">Save</button>
                </form>
              </td>
              <td class="wrap">{s.description ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Layout>,
    problems.length > 0 ? 422 : 200,
  );
}

/** Runs a procedure, then shows the settings again: after a redirect, or with its refusal. */
async function change(c: C, procedure: string, args: Record<string, string>) {
  try {
    await callProcedure(requirePool(c.get("session")), procedure, args);
  } catch (error) {
    const message = refusal(error);
    if (message === undefined) throw error;
    return settingsPage(c, [message]);
  }
  return c.redirect("/settings", 303);
}

/** /settings: the settings, one value at a time, and starting or stopping delivery (admins only). */
export const settingRoutes = new Hono<ConsoleEnv>()
  .use("/settings", adminOnly)
  .use("/settings/*", adminOnly)
  .get("/settings", (c) => settingsPage(c))
  .post("/settings", async (c) => {
    const form = await c.req.parseBody();
    const text = (name: string) => (typeof form[name] === "string" ? (form[name] as string) : "");
    return change(c, "sysmail_configure_sp", {
      parameter_name: text("parameter_name"),
      parameter_value: text("parameter_value"),
    });
  })
  .post("/settings/start", (c) => change(c, "sysmail_start_sp", {}))
  .post("/settings/stop", (c) => change(c, "sysmail_stop_sp", {}));
