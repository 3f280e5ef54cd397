-- pg-dbmail 000007: the configuration procedures for accounts (dbmail_admin): the SMTP servers mail is
-- sent through, and their credentials. Names and parameters follow SQL Server's msdb procedures without
-- the @; each is SECURITY DEFINER with a pinned search_path, because admins have no rights on the tables
-- themselves, and asks dbmail.require_admin first.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(7, 'accounts', 'account_checks');

-- security wins; enable_ssl (SQL Server's STARTTLS switch) is its older spelling.
CREATE FUNCTION dbmail.resolve_security(enable_ssl boolean, security text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  resolved text := lower(btrim(security));
BEGIN
  IF resolved IS NULL THEN
    RETURN CASE WHEN enable_ssl THEN 'starttls' ELSE 'none' END;
  END IF;
  IF resolved NOT IN ('none', 'starttls', 'tls') THEN
    PERFORM dbmail.raise_error('22023', 'security', security, 'must be none, starttls or tls');
  END IF;
  IF enable_ssl AND resolved = 'none' THEN
    PERFORM dbmail.raise_error('22023', 'security', security, 'conflicts with enable_ssl => true');
  END IF;
  RETURN resolved;
END;
$$;

CREATE FUNCTION dbmail.sysmail_add_account_sp(
  account_name text DEFAULT NULL,
  email_address text DEFAULT NULL,
  display_name text DEFAULT NULL,
  replyto_address text DEFAULT NULL,
  description text DEFAULT NULL,
  mailserver_name text DEFAULT NULL,
  mailserver_type text DEFAULT 'SMTP',
  port integer DEFAULT 25,
  username text DEFAULT NULL,
  password text DEFAULT NULL,
  use_default_credentials boolean DEFAULT false,
  enable_ssl boolean DEFAULT false,
  security text DEFAULT NULL,
  timeout integer DEFAULT NULL,
  tls_reject_unauthorized boolean DEFAULT true,
  auth_method text DEFAULT NULL,
  oauth2_token_url text DEFAULT NULL,
  oauth2_client_id text DEFAULT NULL,
  oauth2_client_secret text DEFAULT NULL,
  oauth2_scope text DEFAULT NULL,
  oauth2_refresh_token text DEFAULT NULL,
  dkim_domain text DEFAULT NULL,
  dkim_selector text DEFAULT NULL,
  dkim_private_key text DEFAULT NULL,
  max_messages_per_minute integer DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  a dbmail.accounts;
  s dbmail.account_secrets;
BEGIN
  IF mailserver_type IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'mailserver_type', NULL, 'only SMTP is supported');
  ELSIF upper(btrim(mailserver_type)) <> 'SMTP' THEN
    PERFORM dbmail.raise_error('22023', 'mailserver_type', mailserver_type, 'only SMTP is supported');
  END IF;
  a.name := account_name;
  a.description := NULLIF(description, '');
  a.email_address := btrim(email_address);
  a.display_name := NULLIF(display_name, '');
  a.replyto_address := NULLIF(btrim(replyto_address), '');
  a.mailserver_type := 'SMTP';
  a.mailserver_name := btrim(mailserver_name);
  a.port := port;
  a.username := NULLIF(btrim(username), '');
  a.use_default_credentials := use_default_credentials;
  a.security := dbmail.resolve_security(enable_ssl, security);
  a.timeout := timeout;
  a.tls_reject_unauthorized := tls_reject_unauthorized;
  -- Without auth_method: a password login when there is a username (SQL Server's only kind), else none.
  a.auth_method := COALESCE(lower(btrim(auth_method)),
    CASE WHEN a.username IS NOT NULL OR use_default_credentials THEN 'password' ELSE 'none' END);
  a.oauth2_token_url := NULLIF(btrim(oauth2_token_url), '');
  a.oauth2_client_id := NULLIF(btrim(oauth2_client_id), '');
  a.oauth2_scope := NULLIF(btrim(oauth2_scope), '');
  a.dkim_domain := NULLIF(lower(btrim(dkim_domain)), '');
  a.dkim_selector := NULLIF(btrim(dkim_selector), '');
  a.max_messages_per_minute := NULLIF(max_messages_per_minute, 0);
  s.password := NULLIF(password, '');
  s.oauth2_client_secret := NULLIF(oauth2_client_secret, '');
  s.oauth2_refresh_token := NULLIF(oauth2_refresh_token, '');
  s.dkim_private_key := NULLIF(dkim_private_key, '');
  PERFORM dbmail.check_account(a, s);
  IF EXISTS (SELECT FROM dbmail.accounts t WHERE lower(t.name) = lower(a.name)) THEN
    PERFORM dbmail.raise_error('42710', 'account_name', a.name, 'an account with this name exists');
  END IF;
  INSERT INTO dbmail.accounts AS t (name, description, email_address, display_name, replyto_address,
    mailserver_name, port, username, use_default_credentials, security, timeout, tls_reject_unauthorized,
    auth_method, oauth2_token_url, oauth2_client_id, oauth2_scope, dkim_domain, dkim_selector,
    max_messages_per_minute, last_mod_user)
  VALUES (a.name, a.description, a.email_address, a.display_name, a.replyto_address, a.mailserver_name,
    a.port, a.username, a.use_default_credentials, a.security, a.timeout, a.tls_reject_unauthorized,
    a.auth_method, a.oauth2_token_url, a.oauth2_client_id, a.oauth2_scope, a.dkim_domain, a.dkim_selector,
    a.max_messages_per_minute, dbmail.caller_role())
  RETURNING t.account_id INTO a.account_id;
  s.account_id := a.account_id;
  PERFORM dbmail.store_secrets(s);
  PERFORM dbmail.warn_basic_auth(a);
  PERFORM dbmail.config_changed();
  RETURN a.account_id;
END;
$$;

-- A NULL argument keeps the stored value; '' clears display_name, replyto_address, description,
-- username (clearing the username drops the password too), oauth2_scope and oauth2_refresh_token;
-- dkim_domain => '' turns DKIM off, max_messages_per_minute => 0 the limit. Unlike SQL Server, leaving
-- username NULL keeps the credentials. A new auth_method drops the stored credentials of the old one
-- that the call does not give again. Giving both account_id and account_name renames the account.
CREATE FUNCTION dbmail.sysmail_update_account_sp(
  account_id integer DEFAULT NULL,
  account_name text DEFAULT NULL,
  email_address text DEFAULT NULL,
  display_name text DEFAULT NULL,
  replyto_address text DEFAULT NULL,
  description text DEFAULT NULL,
  mailserver_name text DEFAULT NULL,
  mailserver_type text DEFAULT NULL,
  port integer DEFAULT NULL,
  username text DEFAULT NULL,
  password text DEFAULT NULL,
  use_default_credentials boolean DEFAULT NULL,
  enable_ssl boolean DEFAULT NULL,
  timeout integer DEFAULT NULL,
  security text DEFAULT NULL,
  tls_reject_unauthorized boolean DEFAULT NULL,
  auth_method text DEFAULT NULL,
  oauth2_token_url text DEFAULT NULL,
  oauth2_client_id text DEFAULT NULL,
  oauth2_client_secret text DEFAULT NULL,
  oauth2_scope text DEFAULT NULL,
  oauth2_refresh_token text DEFAULT NULL,
  dkim_domain text DEFAULT NULL,
  dkim_selector text DEFAULT NULL,
  dkim_private_key text DEFAULT NULL,
  max_messages_per_minute integer DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  target integer;
  stored dbmail.accounts;
  merged dbmail.accounts;
  secrets dbmail.account_secrets;
BEGIN
  IF sysmail_update_account_sp.account_id IS NOT NULL THEN
    target := dbmail.find_by_id_or_name('account', sysmail_update_account_sp.account_id, NULL);
  ELSE
    target := dbmail.find_by_id_or_name('account', NULL, account_name);
  END IF;
  SELECT * INTO stored FROM dbmail.accounts a WHERE a.account_id = target FOR UPDATE;
  SELECT * INTO secrets FROM dbmail.account_secrets s WHERE s.account_id = target;
  secrets.account_id := target;
  IF mailserver_type IS NOT NULL AND upper(btrim(mailserver_type)) <> 'SMTP' THEN
    PERFORM dbmail.raise_error('22023', 'mailserver_type', mailserver_type, 'only SMTP is supported');
  END IF;
  merged := stored;
  IF sysmail_update_account_sp.account_id IS NOT NULL AND account_name IS NOT NULL THEN
    merged.name := account_name;
  END IF;
  merged.email_address := COALESCE(btrim(email_address), stored.email_address);
  merged.display_name := CASE WHEN display_name IS NULL THEN stored.display_name ELSE NULLIF(display_name, '') END;
  merged.replyto_address := CASE WHEN replyto_address IS NULL THEN stored.replyto_address
                              ELSE NULLIF(btrim(replyto_address), '') END;
  merged.description := CASE WHEN description IS NULL THEN stored.description ELSE NULLIF(description, '') END;
  merged.mailserver_name := COALESCE(btrim(mailserver_name), stored.mailserver_name);
  merged.port := COALESCE(port, stored.port);
  merged.use_default_credentials := COALESCE(use_default_credentials, stored.use_default_credentials);
  merged.timeout := COALESCE(timeout, stored.timeout);
  merged.tls_reject_unauthorized := COALESCE(tls_reject_unauthorized, stored.tls_reject_unauthorized);
  -- enable_ssl => true on an account that already encrypts (tls or starttls) keeps what it has.
  IF security IS NOT NULL OR (enable_ssl IS NOT NULL AND enable_ssl <> (stored.security <> 'none')) THEN
    merged.security := dbmail.resolve_security(COALESCE(enable_ssl, false),
      COALESCE(security, CASE WHEN enable_ssl THEN NULL ELSE 'none' END));
  END IF;
  IF username IS NOT NULL THEN
    merged.username := NULLIF(btrim(username), '');
    IF merged.username IS NULL THEN
      secrets.password := NULL;
    END IF;
  END IF;
  IF password IS NOT NULL THEN
    secrets.password := NULLIF(password, '');
  END IF;
  -- Switching to the sender's own credentials drops the stored ones.
  IF use_default_credentials AND username IS NULL THEN
    merged.username := NULL;
    secrets.password := NULL;
  END IF;
  -- The login. A new auth_method drops what the old one stored and this call does not give again;
  -- without one, a password or oauth2 account keeps its method, others follow their username.
  IF auth_method IS NOT NULL THEN
    merged.auth_method := lower(btrim(auth_method));
    IF merged.auth_method <> 'password' THEN
      secrets.password := CASE WHEN password IS NULL THEN NULL ELSE secrets.password END;
      merged.use_default_credentials := COALESCE(use_default_credentials, false);
    END IF;
    IF merged.auth_method = 'none' AND username IS NULL THEN
      merged.username := NULL;
    END IF;
    IF merged.auth_method <> 'oauth2' THEN
      merged.oauth2_token_url := NULL;
      merged.oauth2_client_id := NULL;
      merged.oauth2_scope := NULL;
      secrets.oauth2_client_secret := NULL;
      secrets.oauth2_refresh_token := NULL;
    END IF;
  ELSIF merged.auth_method <> 'oauth2' THEN
    merged.auth_method := CASE WHEN merged.username IS NOT NULL OR merged.use_default_credentials
                               THEN 'password' ELSE 'none' END;
  END IF;
  merged.oauth2_token_url := CASE WHEN oauth2_token_url IS NULL THEN merged.oauth2_token_url
                                  ELSE NULLIF(btrim(oauth2_token_url), '') END;
  merged.oauth2_client_id := CASE WHEN oauth2_client_id IS NULL THEN merged.oauth2_client_id
                                  ELSE NULLIF(btrim(oauth2_client_id), '') END;
  merged.oauth2_scope := CASE WHEN oauth2_scope IS NULL THEN merged.oauth2_scope ELSE NULLIF(btrim(oauth2_scope), '') END;
  secrets.oauth2_client_secret := CASE WHEN oauth2_client_secret IS NULL THEN secrets.oauth2_client_secret
                                       ELSE NULLIF(oauth2_client_secret, '') END;
  secrets.oauth2_refresh_token := CASE WHEN oauth2_refresh_token IS NULL THEN secrets.oauth2_refresh_token
                                       ELSE NULLIF(oauth2_refresh_token, '') END;
  IF dkim_domain = '' THEN
    merged.dkim_domain := NULL;
    merged.dkim_selector := NULLIF(btrim(dkim_selector), '');
    secrets.dkim_private_key := NULLIF(dkim_private_key, '');
  ELSE
    merged.dkim_domain := COALESCE(lower(btrim(dkim_domain)), stored.dkim_domain);
    merged.dkim_selector := COALESCE(btrim(dkim_selector), stored.dkim_selector);
    secrets.dkim_private_key := COALESCE(dkim_private_key, secrets.dkim_private_key);
  END IF;
  merged.max_messages_per_minute := CASE WHEN max_messages_per_minute IS NULL THEN stored.max_messages_per_minute
                                         ELSE NULLIF(max_messages_per_minute, 0) END;
  PERFORM dbmail.check_account(merged, secrets);
  IF EXISTS (SELECT FROM dbmail.accounts a WHERE lower(a.name) = lower(merged.name) AND a.account_id <> target) THEN
    PERFORM dbmail.raise_error('42710', 'account_name', merged.name, 'an account with this name exists');
  END IF;
  UPDATE dbmail.accounts a SET
    name = merged.name, email_address = merged.email_address, display_name = merged.display_name,
    replyto_address = merged.replyto_address, description = merged.description,
    mailserver_name = merged.mailserver_name, port = merged.port, username = merged.username,
    use_default_credentials = merged.use_default_credentials, security = merged.security, timeout = merged.timeout,
    tls_reject_unauthorized = merged.tls_reject_unauthorized, auth_method = merged.auth_method,
    oauth2_token_url = merged.oauth2_token_url, oauth2_client_id = merged.oauth2_client_id,
    oauth2_scope = merged.oauth2_scope, dkim_domain = merged.dkim_domain, dkim_selector = merged.dkim_selector,
    max_messages_per_minute = merged.max_messages_per_minute, last_mod_datetime = now(),
    last_mod_user = dbmail.caller_role()
  WHERE a.account_id = target;
  PERFORM dbmail.store_secrets(secrets);
  IF merged.auth_method IS DISTINCT FROM stored.auth_method
     OR merged.mailserver_name IS DISTINCT FROM stored.mailserver_name THEN
    PERFORM dbmail.warn_basic_auth(merged);
  END IF;
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_delete_account_sp(account_id integer DEFAULT NULL, account_name text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  target integer := dbmail.find_by_id_or_name('account', account_id, account_name);
BEGIN
  DELETE FROM dbmail.accounts a WHERE a.account_id = target;
  PERFORM dbmail.config_changed();
END;
$$;

-- The *_source columns say how each secret is given (none, literal, env, file), never the secret.
-- (SQL functions: PL/pgSQL cannot have a parameter and a result column of the same name.)
CREATE FUNCTION dbmail.sysmail_help_account_sp(account_id integer DEFAULT NULL, account_name text DEFAULT NULL)
RETURNS TABLE (
  account_id integer, name text, description text, email_address text, display_name text,
  replyto_address text, servertype text, servername text, port integer, username text,
  use_default_credentials boolean, enable_ssl boolean, security text, timeout integer,
  tls_reject_unauthorized boolean, password_source text, auth_method text, oauth2_token_url text,
  oauth2_client_id text, oauth2_scope text, oauth2_client_secret_source text,
  oauth2_refresh_token_source text, dkim_domain text, dkim_selector text, dkim_private_key_source text,
  max_messages_per_minute integer
)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT dbmail.require_admin();
  SELECT dbmail.find_by_id_or_name('account', $1, $2, false);  -- an unknown account is an error, not an empty list
  SELECT a.account_id, a.name, a.description, a.email_address, a.display_name, a.replyto_address,
         a.mailserver_type, a.mailserver_name, a.port, a.username, a.use_default_credentials,
         a.security <> 'none', a.security, a.timeout, a.tls_reject_unauthorized,
         dbmail.secret_source(s.password), a.auth_method, a.oauth2_token_url, a.oauth2_client_id,
         a.oauth2_scope, dbmail.secret_source(s.oauth2_client_secret),
         dbmail.secret_source(s.oauth2_refresh_token), a.dkim_domain, a.dkim_selector,
         dbmail.secret_source(s.dkim_private_key), a.max_messages_per_minute
  FROM dbmail.accounts a
  LEFT JOIN dbmail.account_secrets s ON s.account_id = a.account_id
  WHERE ($1 IS NULL AND $2 IS NULL) OR a.account_id = dbmail.find_by_id_or_name('account', $1, $2, false)
  ORDER BY a.account_id;
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(7, 'accounts', '05f1ab9c699b5ae2a857c0346acd56d205a2955465461c2e6b8a7645683cbb8c');
