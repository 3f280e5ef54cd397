import type { Child } from "hono/jsx";
import type { Account } from "../queries/accounts.js";
import type { Grant, Profile, ProfileAccount } from "../queries/profiles.js";
import { csrfField } from "../security/csrf.js";

/** A POST form of the profile page: its CSRF token, its fields and one button. */
function Post(props: { action: string; csrf: string; children: Child; button: string }) {
  return (
    <form method="post" action={props.action} class="inline">
      <input type="hidden" name={csrfField} value={props.csrf} />
      {props.children}
      <button type="submit">{props.button}</button>
    </form>
  );
}

export function ProfileForm(props: { csrf: string; profile: Profile }) {
  const { profile } = props;
  return (
    <Post action={`/profiles/${profile.profile_id}`} csrf={props.csrf} button="Save">
      <label>
        Name <input type="text" name="profile_name" value={profile.name} required />
      </label>
      <label>
        Description <input type="text" name="description" value={profile.description ?? ""} />
      </label>
    </Post>
  );
}

/** The profile's accounts in failover order: change a sequence number, remove one, add one. */
export function ProfileAccounts(props: {
  csrf: string;
  profileId: number;
  accounts: ProfileAccount[];
  all: Account[];
}) {
  const base = `/profiles/${props.profileId}/accounts`;
  const linked = new Set(props.accounts.map((a) => a.account_id));
  return (
    <section>
      <h2>Accounts (failover order)</h2>
      <table id="profile-accounts">
        <thead>
          <tr>
            <th>Account</th>
            <th>Sequence number</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {props.accounts.map((a) => (
            <tr>
              <td class="wrap">{a.account_name}</td>
              <td>
                <Post action={`${base}/update`} csrf={props.csrf} button="Change">
                  <input type="hidden" name="account_id" value={String(a.account_id)} />
                  <input type="number" name="sequence_number" value={String(a.sequence_number)} required />
                </Post>
              </td>
              <td>
                <Post action={`${base}/delete`} csrf={props.csrf} button="Remove">
                  <input type="hidden" name="account_id" value={String(a.account_id)} />
                </Post>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Post action={`${base}/add`} csrf={props.csrf} button="Add account">
        <select name="account_id" required>
          {props.all
            .filter((a) => !linked.has(a.account_id))
            .map((a) => (
              <option value={String(a.account_id)}>{a.name}</option>
            ))}
        </select>
        <label>
          Sequence number <input type="number" name="sequence_number" required />
        </label>
      </Post>
    </section>
  );
}

/** Who may use the profile: make one the default or not, remove a grant, add one. */
export function ProfileGrants(props: { csrf: string; profileId: number; grants: Grant[] }) {
  const base = `/profiles/${props.profileId}/grants`;
  return (
    <section>
      <h2>Grants</h2>
      <table id="grants">
        <thead>
          <tr>
            <th>Principal</th>
            <th>Default</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {props.grants.map((g) => (
            <tr>
              <td class="wrap">{g.principal_name ?? `(dropped role ${g.principal_id})`}</td>
              <td>
                <Post
                  action={`${base}/update`}
                  csrf={props.csrf}
                  button={g.is_default ? "Default: make it not" : "Make it the default"}
                >
                  <input type="hidden" name="principal_id" value={String(g.principal_id)} />
                  <input type="hidden" name="is_default" value={String(!g.is_default)} />
                </Post>
              </td>
              <td>
                <Post action={`${base}/delete`} csrf={props.csrf} button="Remove">
                  <input type="hidden" name="principal_id" value={String(g.principal_id)} />
                </Post>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Post action={`${base}/add`} csrf={props.csrf} button="Grant">
        <label>
          Principal (a role, or public) <input type="text" name="principal_name" required />
        </label>
        <label class="check">
          <input type="checkbox" name="is_default" value="true" /> default profile
        </label>
      </Post>
    </section>
  );
}
