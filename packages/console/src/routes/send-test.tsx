import { Hono } from "hono";
import type { ConsoleEnv } from "../context.js";
import { NotFound } from "../not-found.js";
import { isId } from "../queries/item.js";
import { profileChoices, readStatus, sendTestMail, type TestMail } from "../queries/send-test.js";
import { Layout, Problems } from "../views/layout.js";
import { ItemStatus, SendTestForm } from "../views/send-test.js";
import { requirePool } from "./pool.js";

const blank: TestMail = {
  profile: "",
  recipients: "",
  subject: "Test e-mail from the dbmail console",
  body: "This is a test e-mail sent from the dbmail console.",
};

/**
 * GET and POST /send-test: a test mail through sp_send_dbmail as the signed-in role, then its status,
 * which GET /items/<id>/status keeps up to date.
 */
export const sendTestRoutes = new Hono<ConsoleEnv>()
  .get("/send-test", async (c) => {
    const session = c.get("session");
    const profiles = await profileChoices(requirePool(session), session.access === "admin");
    return c.html(
      <Layout title="Send test e-mail" session={session}>
        <SendTestForm mail={blank} profiles={profiles} csrfToken={session.csrfToken} />
      </Layout>,
    );
  })
  .post("/send-test", async (c) => {
    const session = c.get("session");
    const pool = requirePool(session);
    const form = await c.req.parseBody();
    const field = (name: keyof TestMail) => (typeof form[name] === "string" ? (form[name] as string) : "");
    const mail: TestMail = {
      profile: field("profile").trim(),
      recipients: field("recipients").trim(),
      subject: field("subject"),
      body: field("body"),
    };
    let id: string;
    try {
      id = await sendTestMail(pool, mail);
    } catch (error) {
      const profiles = await profileChoices(pool, session.access === "admin");
      return c.html(
        <Layout title="Send test e-mail" session={session}>
          <Problems messages={[(error as Error).message]} />
          <SendTestForm mail={mail} profiles={profiles} csrfToken={session.csrfToken} />
        </Layout>,
        422,
      );
    }
    const status = await readStatus(pool, id);
    return c.html(
      <Layout title="Send test e-mail" session={session}>
        <p>
          Queued as <a href={`/items/${id}`}>mail item {id}</a>.
        </p>
        <ItemStatus id={id} status={status?.sent_status ?? "unsent"} lastError={status?.last_error ?? null} />
        <p>
          <a href="/send-test">Send another</a>
        </p>
      </Layout>,
    );
  })
  .get("/items/:id/status", async (c) => {
    const id = c.req.param("id");
    const status = isId(id) ? await readStatus(requirePool(c.get("session")), id) : undefined;
    if (!status) return c.html(<NotFound />, 404);
    return c.html(<ItemStatus id={id} status={status.sent_status} lastError={status.last_error} />);
  });
