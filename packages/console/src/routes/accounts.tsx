import { type Context, Hono } from "hono";
import type { ConsoleEnv } from "../context.js";
import { NotFound } from "../not-found.js";
import {
  type Account,
  accountArgs,
  accountValues,
  listAccounts,
  postedValues,
  readAccount,
} from "../queries/accounts.js";
import { callProcedure, isSmallId, refusal } from "../queries/procedure.js";
import { csrfField } from "../security/csrf.js";
import { AccountForm, secretSources } from "../views/account-form.js";
import { Layout, Problems } from "../views/layout.js";
import { Notices } from "../views/notices.js";
import { adminOnly } from "./admin-only.js";
import { requirePool } from "./pool.js";

type C = Context<ConsoleEnv>;

async function listPage(c: C, done?: string, warnings?: string[]) {
  const session = c.get("session");
  const accounts = await listAccounts(requirePool(session));
  return c.html(
    <Layout title="Accounts" session={session}>
      <Notices done={done} warnings={warnings} />
      <p>
        <a href="/accounts/new">Add an account</a>
      </p>
      {accounts.length === 0 ? <p>No account.</p> : <AccountTable accounts={accounts} />}
    </Layout>,
  );
}

function AccountTable({ accounts }: { accounts: Account[] }) {
  return (
    <table id="accounts">
      <thead>
        <tr>
          <th>Name</th>
          <th>Address</th>
          <th>Server</th>
          <th>Port</th>
          <th>Security</th>
          <th>Auth</th>
          <th>Username</th>
          <th>Secrets (how stored)</th>
          <th>DKIM</th>
          <th>Per minute</th>
          <th></th>
        </tr>
      </thead>
      <tbody>
        {accounts.map((a) => (
          <tr>
            <td class="wrap">
              <a href={`/accounts/${a.account_id}`}>{a.name}</a>
            </td>
            <td class="wrap">{a.email_address}</td>
            <td class="wrap">{a.servername}</td>
            <td>{a.port}</td>
            <td>{a.security}</td>
            <td>{a.auth_method}</td>
            <td class="wrap">{a.username ?? ""}</td>
            <td class="wrap">{secretSources(a)}</td>
            <td class="wrap">{a.dkim_domain ? `${a.dkim_domain} (${a.dkim_selector})` : ""}</td>
            <td>{a.max_messages_per_minute ?? ""}</td>
            <td>
              <a href={`/accounts/${a.account_id}/delete`}>Delete</a>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function formPage(c: C, values: Record<string, string>, account?: Account, problems: string[] = []) {
  const session = c.get("session");
  return c.html(
    <Layout title={account ? `Account ${account.name}` : "Add an account"} session={session}>
      <Problems messages={problems} />
      <AccountForm csrf={session.csrfToken} values={values} account={account} />
    </Layout>,
    problems.length > 0 ? 422 : 200,
  );
}

/** Runs the add or update call; a refusal is shown next to the form, with the posted values but no secret. */
async function save(c: C, account?: Account) {
  const form = await c.req.parseBody();
  const { args, problems } = accountArgs(form, account);
  if (problems.length > 0) return formPage(c, postedValues(form), account, problems);
  const name = account ? "sysmail_update_account_sp" : "sysmail_add_account_sp";
  try {
    const { warnings } = await callProcedure(requirePool(c.get("session")), name, args);
    const shown = args.account_name ?? account?.name ?? "";
    return listPage(c, `Account ${shown} ${account ? "saved" : "added"}.`, warnings);
  } catch (error) {
    const message = refusal(error);
    if (message === undefined) throw error;
    return formPage(c, postedValues(form), account, [message]);
  }
}

/** The account of the path, for admins; undefined (a 404) for a bad or unknown id. */
async function pathAccount(c: C): Promise<Account | undefined> {
  const id = c.req.param("id") ?? "";
  return isSmallId(id) ? readAccount(requirePool(c.get("session")), id) : undefined;
}

/** /accounts: the SMTP accounts, their add and edit forms and deletion (admins only). */
export const accountRoutes = new Hono<ConsoleEnv>()
  .use("/accounts", adminOnly)
  .use("/accounts/*", adminOnly)
  .get("/accounts", (c) => listPage(c))
  .get("/accounts/new", (c) =>
    formPage(c, { mailserver_type: "SMTP", port: "25", tls_reject_unauthorized: "on" }),
  )
  .post("/accounts/new", (c) => save(c))
  .get("/accounts/:id", async (c) => {
    const account = await pathAccount(c);
    return account ? formPage(c, accountValues(account), account) : c.html(<NotFound />, 404);
  })
  .post("/accounts/:id", async (c) => {
    const account = await pathAccount(c);
    return account ? save(c, account) : c.html(<NotFound />, 404);
  })
  .get("/accounts/:id/delete", async (c) => {
    const account = await pathAccount(c);
    if (!account) return c.html(<NotFound />, 404);
    const session = c.get("session");
    return c.html(
      <Layout title={`Delete account ${account.name}?`} session={session}>
        <p>
          The account and its secrets are deleted, and it leaves every profile. Mail already sent through it
          keeps its account id.
        </p>
        <form method="post" action={`/accounts/${account.account_id}/delete`}>
          <input type="hidden" name={csrfField} value={session.csrfToken} />
          <button type="submit">Delete account {account.name}</button> <a href="/accounts">Cancel</a>
        </form>
      </Layout>,
    );
  })
  .post("/accounts/:id/delete", async (c) => {
    const account = await pathAccount(c);
    if (!account) return c.html(<NotFound />, 404);
    await callProcedure(requirePool(c.get("session")), "sysmail_delete_account_sp", {
      account_id: String(account.account_id),
    });
    return c.redirect("/accounts", 303);
  });
