import { type Context, Hono } from "hono";
import type { ConsoleEnv } from "../context.js";
import { NotFound } from "../not-found.js";
import { listAccounts } from "../queries/accounts.js";
import { type Args, callProcedure, isSmallId, refusal } from "../queries/procedure.js";
import { listProfiles, readProfile } from "../queries/profiles.js";
import { csrfField } from "../security/csrf.js";
import { Layout, Problems } from "../views/layout.js";
import { ProfileAccounts, ProfileForm, ProfileGrants } from "../views/profile.js";
import { adminOnly } from "./admin-only.js";
import { requirePool } from "./pool.js";

type C = Context<ConsoleEnv>;

async function listPage(c: C, problems: string[] = [], name = "", description = "") {
  const session = c.get("session");
  const profiles = await listProfiles(requirePool(session));
  return c.html(
    <Layout title="Profiles" session={session}>
      <Problems messages={problems} />
      {profiles.length === 0 ? (
        <p>No profile.</p>
      ) : (
        <table id="profiles">
          <thead>
            <tr>
              <th>Id</th>
              <th>Name</th>
              <th>Description</th>
              <th></th>
            </tr>
          </thead>
          <tbody>
            {profiles.map((p) => (
              <tr>
                <td>{p.profile_id}</td>
                <td class="wrap">
                  <a href={`/profiles/${p.profile_id}`}>{p.name}</a>
                </td>
                <td class="wrap">{p.description ?? ""}</td>
                <td>
                  <a href={`/profiles/${p.profile_id}/delete`}>Delete</a>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Add a profile</h2>
      <form method="post" action="/profiles/new" class="inline">
        <input type="hidden" name={csrfField} value={session.csrfToken} />
        <label>
          Name <input type="text" name="profile_name" value={name} required />
        </label>
        <label>
          Description <input type="text" name="description" value={description} />
        </label>
        <button type="submit">Add profile</button>
      </form>
    </Layout>,
    problems.length > 0 ? 422 : 200,
  );
}

/** The profile page: its name and description, its accounts and its grants; a refusal shown on top. */
async function profilePage(c: C, problems: string[] = []) {
  const session = c.get("session");
  const pool = requirePool(session);
  const id = c.req.param("id") ?? "";
  const found = isSmallId(id) ? await readProfile(pool, id) : undefined;
  if (!found) return c.html(<NotFound />, 404);
  const all = await listAccounts(pool);
  const { profile } = found;
  return c.html(
    <Layout title={`Profile ${profile.name}`} session={session}>
      <Problems messages={problems} />
      <ProfileForm csrf={session.csrfToken} profile={profile} />
      <ProfileAccounts
        csrf={session.csrfToken}
        profileId={profile.profile_id}
        accounts={found.accounts}
        all={all}
      />
      <ProfileGrants csrf={session.csrfToken} profileId={profile.profile_id} grants={found.grants} />
      <p>
        <a href={`/profiles/${profile.profile_id}/delete`}>Delete this profile</a>
      </p>
    </Layout>,
    problems.length > 0 ? 422 : 200,
  );
}

/** The posted text fields, by name ("" for a missing one). */
async function fields(c: C, ...names: string[]): Promise<Record<string, string>> {
  const form = await c.req.parseBody();
  return Object.fromEntries(names.map((n) => [n, typeof form[n] === "string" ? form[n] : ""]));
}

/**
 * Runs one procedure on the profile of the path; then back to the profile page (a GET), or the page
 * again with the procedure's refusal.
 */
async function change(c: C, procedure: string, args: Args) {
  const id = c.req.param("id") ?? "";
  if (!isSmallId(id)) return c.html(<NotFound />, 404);
  const numbers = ["account_id", "sequence_number", "principal_id"].filter((k) => k in args);
  const bad = numbers.filter((k) => !/^-?\d{1,10}$/.test(args[k] ?? ""));
  if (bad.length > 0)
    return profilePage(
      c,
      bad.map((k) => `${k}: "${args[k]}": not a whole number`),
    );
  try {
    await callProcedure(requirePool(c.get("session")), procedure, { profile_id: id, ...args });
  } catch (error) {
    const message = refusal(error);
    if (message === undefined) throw error;
    return profilePage(c, [message]);
  }
  return c.redirect(`/profiles/${id}`, 303);
}

/** /profiles: profiles, the accounts of each in failover order, and who may use it (admins only). */
export const profileRoutes = new Hono<ConsoleEnv>()
  .use("/profiles", adminOnly)
  .use("/profiles/*", adminOnly)
  .get("/profiles", (c) => listPage(c))
  .post("/profiles/new", async (c) => {
    const form = await fields(c, "profile_name", "description");
    try {
      const { rows } = await callProcedure<{ sysmail_add_profile_sp: number }>(
        requirePool(c.get("session")),
        "sysmail_add_profile_sp",
        form,
      );
      return c.redirect(`/profiles/${rows[0]?.sysmail_add_profile_sp}`, 303);
    } catch (error) {
      const message = refusal(error);
      if (message === undefined) throw error;
      return listPage(c, [message], form.profile_name, form.description);
    }
  })
  .get("/profiles/:id", (c) => profilePage(c))
  .post("/profiles/:id", async (c) => {
    const id = c.req.param("id");
    const found = isSmallId(id) ? await readProfile(requirePool(c.get("session")), id) : undefined;
    if (!found) return c.html(<NotFound />, 404);
    const form = await fields(c, "profile_name", "description");
    const args: Args = {};
    if (form.profile_name !== found.profile.name) args.profile_name = form.profile_name ?? "";
    if (form.description !== (found.profile.description ?? "")) args.description = form.description ?? "";
    // The procedure refuses a call that changes nothing; saving an unchanged form is no error.
    if (Object.keys(args).length === 0) return c.redirect(`/profiles/${found.profile.profile_id}`, 303);
    return change(c, "sysmail_update_profile_sp", args);
  })
  .get("/profiles/:id/delete", async (c) => {
    const session = c.get("session");
    const id = c.req.param("id");
    const found = isSmallId(id) ? await readProfile(requirePool(session), id) : undefined;
    if (!found) return c.html(<NotFound />, 404);
    return c.html(
      <Layout title={`Delete profile ${found.profile.name}?`} session={session}>
        <p>Its account links and grants go with it; the accounts stay.</p>
        <form method="post" action={`/profiles/${id}/delete`}>
          <input type="hidden" name={csrfField} value={session.csrfToken} />
          <label class="check">
            <input type="checkbox" name="force_delete" value="true" checked />
            fail its waiting mail (otherwise the deletion is refused while mail waits)
          </label>
          <button type="submit">Delete profile {found.profile.name}</button> <a href="/profiles">Cancel</a>
        </form>
      </Layout>,
    );
  })
  .post("/profiles/:id/delete", async (c) => {
    const form = await fields(c, "force_delete");
    const response = await change(c, "sysmail_delete_profile_sp", {
      force_delete: form.force_delete === "true" ? "true" : "false",
    });
    return response.status === 303 ? c.redirect("/profiles", 303) : response;
  })
  .post("/profiles/:id/accounts/:action{add|update}", async (c) => {
    const form = await fields(c, "account_id", "sequence_number");
    return change(c, `sysmail_${c.req.param("action")}_profileaccount_sp`, form);
  })
  .post("/profiles/:id/accounts/delete", async (c) =>
    change(c, "sysmail_delete_profileaccount_sp", await fields(c, "account_id")),
  )
  .post("/profiles/:id/grants/add", async (c) => {
    const form = await fields(c, "principal_name", "is_default");
    return change(c, "sysmail_add_principalprofile_sp", {
      principal_name: form.principal_name ?? "",
      is_default: form.is_default === "true" ? "true" : "false",
    });
  })
  .post("/profiles/:id/grants/update", async (c) => {
    const form = await fields(c, "principal_id", "is_default");
    return change(c, "sysmail_update_principalprofile_sp", {
      principal_id: form.principal_id ?? "",
      is_default: form.is_default === "true" ? "true" : "false",
    });
  })
  .post("/profiles/:id/grants/delete", async (c) =>
    change(c, "sysmail_delete_principalprofile_sp", await fields(c, "principal_id")),
  );
