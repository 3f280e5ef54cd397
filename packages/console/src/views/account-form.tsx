import { type Account, type FormValues, type Secret, secretFields, sourceOf } from "../queries/accounts.js";
import { csrfField } from "../security/csrf.js";

const secretLabels: Record<Secret, string> = {
  password: "Password",
  oauth2_client_secret: "OAuth2 client secret",
  oauth2_refresh_token: "OAuth2 refresh token",
  dkim_private_key: "DKIM private key (PEM, or env:NAME / file:/path)",
};

function Text(props: { name: string; label: string; values: FormValues; type?: string; required?: boolean }) {
  return (
    <label>
      {props.label}
      <input
        type={props.type ?? "text"}
        name={props.name}
        value={props.values[props.name] ?? ""}
        required={props.required}
      />
    </label>
  );
}

function Choice(props: { name: string; label: string; values: FormValues; options: string[]; add: boolean }) {
  const current = props.values[props.name] ?? "";
  return (
    <label>
      {props.label}
      <select name={props.name}>
        {props.add && <option value="">(default)</option>}
        {props.options.map((o) => (
          <option value={o} selected={current === o}>
            {o}
          </option>
        ))}
      </select>
    </label>
  );
}

function Check(props: { name: string; label: string; values: FormValues }) {
  return (
    <label class="check">
      <input type="checkbox" name={props.name} checked={props.values[props.name] === "on"} />
      {props.label}
    </label>
  );
}

/**
 * A secret's field: always empty (a stored secret is never sent to the browser). On edit it says how
 * the secret is stored, that leaving it empty keeps it, and offers to clear it. The DKIM key is a
 * textarea, since a PEM key has line breaks that a one-line input would drop.
 */
function SecretField(props: { name: Secret; account: Account | undefined }) {
  const { name, account } = props;
  return (
    <div class="secret">
      {name === "dkim_private_key" ? (
        <label>
          {secretLabels[name]}
          <textarea name={name} rows={3} autocomplete="off" spellcheck={false}></textarea>
        </label>
      ) : (
        <label>
          {secretLabels[name]}
          <input type="password" name={name} autocomplete="new-password" />
        </label>
      )}
      {account && (
        <>
          <span class="hint">stored: {account[sourceOf(name)]}; leave empty to keep it</span>
          <label class="check">
            <input type="checkbox" name={`clear_${name}`} />
            clear
          </label>
        </>
      )}
    </div>
  );
}

/** The add (no account) or edit form of an account: every parameter of sysmail_add/update_account_sp. */
export function AccountForm(props: { csrf: string; values: FormValues; account?: Account | undefined }) {
  const { values, account } = props;
  const add = account === undefined;
  return (
    <form method="post" action={add ? "/accounts/new" : `/accounts/${account.account_id}`} class="admin">
      <input type="hidden" name={csrfField} value={props.csrf} />
      <fieldset>
        <legend>Account</legend>
        <Text name="account_name" label="Name" values={values} required />
        <Text name="description" label="Description" values={values} />
        <Text name="email_address" label="Email address" values={values} required />
        <Text name="display_name" label="Display name" values={values} />
        <Text name="replyto_address" label="Reply-to address" values={values} />
      </fieldset>
      <fieldset>
        <legend>Server</legend>
        <Text name="mailserver_name" label="Server" values={values} required />
        <Text name="mailserver_type" label="Server type" values={values} />
        <Text name="port" label="Port" values={values} />
        <Choice
          name="security"
          label="Security"
          values={values}
          options={["none", "starttls", "tls"]}
          add={add}
        />
        <Check name="enable_ssl" label="enable_ssl (STARTTLS, when no security is chosen)" values={values} />
        <Check
          name="tls_reject_unauthorized"
          label="Refuse certificates that do not verify"
          values={values}
        />
        <Text name="timeout" label="Timeout (seconds)" values={values} />
        <Text
          name="max_messages_per_minute"
          label="Max messages per minute (empty: no limit)"
          values={values}
        />
      </fieldset>
      <fieldset>
        <legend>Sign-in</legend>
        <Choice
          name="auth_method"
          label="Auth method"
          values={values}
          options={["none", "password", "oauth2"]}
          add={add}
        />
        <Text name="username" label="Username" values={values} />
        <Check name="use_default_credentials" label="Use the sender's own credentials" values={values} />
        <SecretField name="password" account={account} />
        <Text name="oauth2_token_url" label="OAuth2 token URL" values={values} />
        <Text name="oauth2_client_id" label="OAuth2 client id" values={values} />
        <Text name="oauth2_scope" label="OAuth2 scope" values={values} />
        <SecretField name="oauth2_client_secret" account={account} />
        <SecretField name="oauth2_refresh_token" account={account} />
      </fieldset>
      <fieldset>
        <legend>DKIM</legend>
        <Text name="dkim_domain" label="Domain" values={values} />
        <Text name="dkim_selector" label="Selector" values={values} />
        <SecretField name="dkim_private_key" account={account} />
      </fieldset>
      <p class="hint">
        Secrets may be given as env:NAME or file:/path, which only the sender resolves. The console never
        shows a stored secret.
      </p>
      <button type="submit">{add ? "Add account" : "Save"}</button>
    </form>
  );
}

/** How each secret of an account is stored (none, literal, env or file). */
export function secretSources(account: Account): string {
  return secretFields.map((s) => `${s}: ${account[sourceOf(s)]}`).join(", ");
}
