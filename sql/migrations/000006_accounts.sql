-- pg-dbmail 000006: the configuration procedures for accounts (dbmail_admin): the SMTP servers mail is
-- sent through, and their credentials. Names and parameters follow SQL Server's msdb procedures without
-- the @; each is SECURITY DEFINER with a pinned search_path, because admins have no rights on the tables
-- themselves, and asks dbmail.require_admin first.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(6, 'accounts', 'addresses');

-- Validates an account as it will be stored (after an update's merge), so add and update share one set
-- of rules.
CREATE FUNCTION dbmail.check_account(
  account_name text, email_address text, display_name text, replyto_address text,
  mailserver_name text, port integer, username text, password text,
  use_default_credentials boolean, security text, timeout integer, tls_reject_unauthorized boolean
) RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  IF account_name IS NULL OR btrim(account_name) = '' THEN
    PERFORM dbmail.raise_error('22004', 'account_name', account_name, 'an account needs a name');
  END IF;
  PERFORM dbmail.check_header_text('account_name', account_name);
  IF length(account_name) > 128 THEN
    PERFORM dbmail.raise_error('22023', 'account_name', account_name, 'is longer than 128 characters');
  END IF;
  IF email_address IS NULL OR btrim(email_address) = '' THEN
    PERFORM dbmail.raise_error('22004', 'email_address', email_address, 'an account needs an e-mail address');
  END IF;
  PERFORM dbmail.parse_bare_address('email_address', email_address);
  PERFORM dbmail.check_header_text('display_name', display_name);
  PERFORM dbmail.parse_bare_address('replyto_address', replyto_address);
  IF mailserver_name IS NULL OR btrim(mailserver_name) = '' THEN
    PERFORM dbmail.raise_error('22004', 'mailserver_name', mailserver_name,
      'name the SMTP server (host name or IP address)');
  END IF;
  IF mailserver_name !~ '^[A-Za-z0-9._:\[\]-]+$' THEN
    PERFORM dbmail.raise_error('22023', 'mailserver_name', mailserver_name,
      'not a host name or IP address');
  END IF;
  IF port IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'port', NULL, 'must be from 1 to 65535');
  ELSIF port NOT BETWEEN 1 AND 65535 THEN
    PERFORM dbmail.raise_error('22023', 'port', port::text, 'must be from 1 to 65535');
  END IF;
  IF use_default_credentials IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'use_default_credentials', NULL, 'must be true or false');
  END IF;
  IF use_default_credentials AND username IS NOT NULL THEN
    PERFORM dbmail.raise_error('22023', 'username', username,
      'cannot be given when use_default_credentials is true');
  END IF;
  PERFORM dbmail.check_header_text('username', username);
  IF password IS NOT NULL AND username IS NULL THEN
    PERFORM dbmail.raise_error('22023', 'password', '********', 'a password needs a username');
  END IF;
  IF password ~ '^env:' AND password !~ '^env:[A-Za-z_][A-Za-z0-9_]*$' THEN
    PERFORM dbmail.raise_error('22023', 'password', password, 'env: must be followed by an environment variable name');
  END IF;
  IF password ~ '^file:' AND password !~ '^file:/' THEN
    PERFORM dbmail.raise_error('22023', 'password', password, 'file: must be followed by an absolute path');
  END IF;
  IF security IS NULL OR security NOT IN ('none', 'starttls', 'tls') THEN
    PERFORM dbmail.raise_error('22023', 'security', security, 'must be none, starttls or tls');
  END IF;
  IF timeout IS NOT NULL AND timeout NOT BETWEEN 1 AND 3600 THEN
    PERFORM dbmail.raise_error('22023', 'timeout', timeout::text, 'must be from 1 to 3600 seconds');
  END IF;
  IF tls_reject_unauthorized IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'tls_reject_unauthorized', NULL, 'must be true or false');
  END IF;
END;
$$;

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
  tls_reject_unauthorized boolean DEFAULT true
) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  new_id integer;
  resolved_security text := dbmail.resolve_security(enable_ssl, security);
  clean_username text := NULLIF(btrim(username), '');
  clean_password text := NULLIF(password, '');
BEGIN
  IF mailserver_type IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'mailserver_type', NULL, 'only SMTP is supported');
  ELSIF upper(btrim(mailserver_type)) <> 'SMTP' THEN
    PERFORM dbmail.raise_error('22023', 'mailserver_type', mailserver_type, 'only SMTP is supported');
  END IF;
  PERFORM dbmail.check_account(account_name, email_address, display_name, replyto_address, mailserver_name,
    port, clean_username, clean_password, use_default_credentials, resolved_security, timeout,
    tls_reject_unauthorized);
  IF EXISTS (SELECT FROM dbmail.accounts a WHERE lower(a.name) = lower(account_name)) THEN
    PERFORM dbmail.raise_error('42710', 'account_name', account_name, 'an account with this name exists');
  END IF;
  INSERT INTO dbmail.accounts AS a (name, description, email_address, display_name, replyto_address,
    mailserver_name, port, username, use_default_credentials, security, timeout, tls_reject_unauthorized,
    last_mod_user)
  VALUES (account_name, NULLIF(description, ''), btrim(email_address), NULLIF(display_name, ''),
    NULLIF(btrim(replyto_address), ''),
    btrim(mailserver_name), port, clean_username, use_default_credentials, resolved_security, timeout,
    tls_reject_unauthorized, dbmail.caller_role())
  RETURNING a.account_id INTO new_id;
  IF clean_password IS NOT NULL THEN
    INSERT INTO dbmail.account_secrets (account_id, password) VALUES (new_id, clean_password);
  END IF;
  PERFORM dbmail.config_changed();
  RETURN new_id;
END;
$$;

-- A NULL argument keeps the stored value; '' clears display_name, replyto_address, description and
-- username (clearing the username drops the password too). Unlike SQL Server, leaving username NULL
-- keeps the credentials. Giving both account_id and account_name renames the account.
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
  tls_reject_unauthorized boolean DEFAULT NULL
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
  old_password text;
  new_password text;
BEGIN
  IF sysmail_update_account_sp.account_id IS NOT NULL THEN
    target := dbmail.find_by_id_or_name('account', sysmail_update_account_sp.account_id, NULL);
  ELSE
    target := dbmail.find_by_id_or_name('account', NULL, account_name);
  END IF;
  SELECT * INTO stored FROM dbmail.accounts a WHERE a.account_id = target FOR UPDATE;
  SELECT s.password INTO old_password FROM dbmail.account_secrets s WHERE s.account_id = target;
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
  new_password := old_password;
  IF username IS NOT NULL THEN
    merged.username := NULLIF(btrim(username), '');
    IF merged.username IS NULL THEN
      new_password := NULL;
    END IF;
  END IF;
  IF password IS NOT NULL THEN
    new_password := NULLIF(password, '');
  END IF;
  -- Switching to the sender's own credentials drops the stored ones.
  IF use_default_credentials AND username IS NULL THEN
    merged.username := NULL;
    new_password := NULL;
  END IF;
  PERFORM dbmail.check_account(merged.name, merged.email_address, merged.display_name, merged.replyto_address,
    merged.mailserver_name, merged.port, merged.username, new_password, merged.use_default_credentials, merged.security,
    merged.timeout, merged.tls_reject_unauthorized);
  IF EXISTS (SELECT FROM dbmail.accounts a WHERE lower(a.name) = lower(merged.name) AND a.account_id <> target) THEN
    PERFORM dbmail.raise_error('42710', 'account_name', merged.name, 'an account with this name exists');
  END IF;
  UPDATE dbmail.accounts a SET
    name = merged.name, email_address = merged.email_address, display_name = merged.display_name,
    replyto_address = merged.replyto_address, description = merged.description,
    mailserver_name = merged.mailserver_name, port = merged.port, username = merged.username,
    use_default_credentials = merged.use_default_credentials, security = merged.security, timeout = merged.timeout,
    tls_reject_unauthorized = merged.tls_reject_unauthorized, last_mod_datetime = now(),
    last_mod_user = dbmail.caller_role()
  WHERE a.account_id = target;
  IF new_password IS NULL THEN
    DELETE FROM dbmail.account_secrets s WHERE s.account_id = target;
  ELSE
    INSERT INTO dbmail.account_secrets AS s (account_id, password) VALUES (target, new_password)
    ON CONFLICT ON CONSTRAINT account_secrets_pkey DO UPDATE SET password = excluded.password;
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

-- password_source says how the password is given (none, literal, env, file), never the password.
-- (SQL functions: PL/pgSQL cannot have a parameter and a result column of the same name.)
CREATE FUNCTION dbmail.sysmail_help_account_sp(account_id integer DEFAULT NULL, account_name text DEFAULT NULL)
RETURNS TABLE (
  account_id integer, name text, description text, email_address text, display_name text,
  replyto_address text, servertype text, servername text, port integer, username text,
  use_default_credentials boolean, enable_ssl boolean, security text, timeout integer,
  tls_reject_unauthorized boolean, password_source text
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
         CASE WHEN s.password IS NULL THEN 'none'
              WHEN s.password LIKE 'env:%' THEN 'env'
              WHEN s.password LIKE 'file:%' THEN 'file'
              ELSE 'literal' END
  FROM dbmail.accounts a
  LEFT JOIN dbmail.account_secrets s ON s.account_id = a.account_id
  WHERE ($1 IS NULL AND $2 IS NULL) OR a.account_id = dbmail.find_by_id_or_name('account', $1, $2, false)
  ORDER BY a.account_id;
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(6, 'accounts', '906c095cc0b7ee5a54d0fa917430c55c335cd5242243d84d622519ae157d28c5');
