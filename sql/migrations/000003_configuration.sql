-- pg-dbmail 000003: the configuration procedures (dbmail_admin): accounts, profiles, the accounts of a
-- profile, who may use a profile, and settings. Names and parameters follow SQL Server's msdb procedures
-- without the @; every function is SECURITY DEFINER with a pinned search_path because admins have no
-- rights on the tables themselves.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(3, 'configuration', 'helpers');

-- Which of a pair of parameters (thing_id, thing_name) the caller gave, for naming it in an error.
CREATE FUNCTION dbmail.given_name(thing text, name text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
  SELECT thing || CASE WHEN name IS NOT NULL THEN '_name' ELSE '_id' END;
$$;

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
  target integer;
  stored dbmail.accounts;
  merged dbmail.accounts;
  old_password text;
  new_password text;
BEGIN
  IF sysmail_update_account_sp.account_id IS NOT NULL THEN
    target := dbmail.find_account(sysmail_update_account_sp.account_id, NULL);
  ELSE
    target := dbmail.find_account(NULL, account_name);
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
  target integer := dbmail.find_account(account_id, account_name);
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
  SELECT dbmail.find_account($1, $2, false);  -- an unknown account is an error, not an empty list
  SELECT a.account_id, a.name, a.description, a.email_address, a.display_name, a.replyto_address,
         a.mailserver_type, a.mailserver_name, a.port, a.username, a.use_default_credentials,
         a.security <> 'none', a.security, a.timeout, a.tls_reject_unauthorized,
         CASE WHEN s.password IS NULL THEN 'none'
              WHEN s.password LIKE 'env:%' THEN 'env'
              WHEN s.password LIKE 'file:%' THEN 'file'
              ELSE 'literal' END
  FROM dbmail.accounts a
  LEFT JOIN dbmail.account_secrets s ON s.account_id = a.account_id
  WHERE ($1 IS NULL AND $2 IS NULL) OR a.account_id = dbmail.find_account($1, $2, false)
  ORDER BY a.account_id;
$$;

CREATE FUNCTION dbmail.check_profile_name(profile_name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF profile_name IS NULL OR btrim(profile_name) = '' THEN
    PERFORM dbmail.raise_error('22004', 'profile_name', profile_name, 'a profile needs a name');
  END IF;
  PERFORM dbmail.check_header_text('profile_name', profile_name);
  IF length(profile_name) > 128 THEN
    PERFORM dbmail.raise_error('22023', 'profile_name', profile_name, 'is longer than 128 characters');
  END IF;
END;
$$;

CREATE FUNCTION dbmail.sysmail_add_profile_sp(profile_name text DEFAULT NULL, description text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  new_id integer;
BEGIN
  PERFORM dbmail.check_profile_name(profile_name);
  IF EXISTS (SELECT FROM dbmail.profiles p WHERE lower(p.name) = lower(profile_name)) THEN
    PERFORM dbmail.raise_error('42710', 'profile_name', profile_name, 'a profile with this name exists');
  END IF;
  INSERT INTO dbmail.profiles AS p (name, description, last_mod_user)
  VALUES (profile_name, NULLIF(description, ''), dbmail.caller_role())
  RETURNING p.profile_id INTO new_id;
  PERFORM dbmail.config_changed();
  RETURN new_id;
END;
$$;

-- Giving both profile_id and profile_name renames the profile.
CREATE FUNCTION dbmail.sysmail_update_profile_sp(
  profile_id integer DEFAULT NULL, profile_name text DEFAULT NULL, description text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  target integer;
  new_name text;
BEGIN
  IF sysmail_update_profile_sp.profile_id IS NOT NULL THEN
    target := dbmail.find_profile(sysmail_update_profile_sp.profile_id, NULL);
    new_name := profile_name;
  ELSE
    target := dbmail.find_profile(NULL, profile_name);
  END IF;
  IF new_name IS NULL AND description IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'profile_name, description', NULL,
      'give a new name (with profile_id) or a description');
  END IF;
  IF new_name IS NOT NULL THEN
    PERFORM dbmail.check_profile_name(new_name);
    IF EXISTS (SELECT FROM dbmail.profiles p WHERE lower(p.name) = lower(new_name) AND p.profile_id <> target) THEN
      PERFORM dbmail.raise_error('42710', 'profile_name', new_name, 'a profile with this name exists');
    END IF;
  END IF;
  UPDATE dbmail.profiles p SET
    name = COALESCE(new_name, p.name),
    description = CASE WHEN sysmail_update_profile_sp.description IS NULL THEN p.description
                       ELSE NULLIF(sysmail_update_profile_sp.description, '') END,
    last_mod_datetime = now(),
    last_mod_user = dbmail.caller_role()
  WHERE p.profile_id = target;
  PERFORM dbmail.config_changed();
END;
$$;

-- force_delete (default true, as in SQL Server) fails the profile's waiting mail; false refuses while
-- any is waiting. Mail already being sent finishes.
CREATE FUNCTION dbmail.sysmail_delete_profile_sp(
  profile_id integer DEFAULT NULL, profile_name text DEFAULT NULL, force_delete boolean DEFAULT true
) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  target integer := dbmail.find_profile(profile_id, profile_name);
  target_name text;
  waiting integer;
BEGIN
  IF force_delete IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'force_delete', NULL, 'must be true or false');
  END IF;
  SELECT p.name INTO target_name FROM dbmail.profiles p WHERE p.profile_id = target FOR UPDATE;
  SELECT count(*) INTO waiting FROM dbmail.mailitems m
  WHERE m.profile_id = target AND m.sent_status IN ('unsent', 'retrying');
  IF waiting > 0 AND NOT force_delete THEN
    PERFORM dbmail.raise_error('55000', 'profile_name', target_name,
      format('%s mail items of this profile are waiting to be sent; use force_delete => true to fail them',
             waiting));
  END IF;
  UPDATE dbmail.mailitems m SET
    sent_status = 'failed', sent_date = now(), last_error = format('profile %s was deleted', target_name),
    last_mod_date = now(), last_mod_user = dbmail.caller_role()
  WHERE m.profile_id = target AND m.sent_status IN ('unsent', 'retrying');
  DELETE FROM dbmail.profiles p WHERE p.profile_id = target;
  IF waiting > 0 THEN
    PERFORM dbmail.log_event('warning',
      format('Profile %s was deleted by %s; its %s waiting mail items were marked failed',
             target_name, dbmail.caller_role(), waiting));
  END IF;
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_help_profile_sp(profile_id integer DEFAULT NULL, profile_name text DEFAULT NULL)
RETURNS TABLE (profile_id integer, name text, description text)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT dbmail.find_profile($1, $2, false);  -- an unknown profile is an error, not an empty list
  SELECT p.profile_id, p.name, p.description FROM dbmail.profiles p
  WHERE ($1 IS NULL AND $2 IS NULL) OR p.profile_id = dbmail.find_profile($1, $2, false)
  ORDER BY p.profile_id;
$$;

CREATE FUNCTION dbmail.sysmail_add_profileaccount_sp(
  profile_id integer DEFAULT NULL, profile_name text DEFAULT NULL,
  account_id integer DEFAULT NULL, account_name text DEFAULT NULL,
  sequence_number integer DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  the_profile integer := dbmail.find_profile(profile_id, profile_name);
  the_account integer := dbmail.find_account(account_id, account_name);
BEGIN
  IF sequence_number IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'sequence_number', NULL,
      'give the account''s place in the profile (lowest is tried first)');
  END IF;
  IF EXISTS (SELECT FROM dbmail.profile_accounts pa
             WHERE pa.profile_id = the_profile AND pa.account_id = the_account) THEN
    PERFORM dbmail.raise_error('42710', dbmail.given_name('account', account_name),
      COALESCE(account_name, account_id::text), format('the account is already in profile %s', the_profile));
  END IF;
  INSERT INTO dbmail.profile_accounts (profile_id, account_id, sequence_number, last_mod_user)
  VALUES (the_profile, the_account, sequence_number, dbmail.caller_role());
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_update_profileaccount_sp(
  profile_id integer DEFAULT NULL, profile_name text DEFAULT NULL,
  account_id integer DEFAULT NULL, account_name text DEFAULT NULL,
  sequence_number integer DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  the_profile integer := dbmail.find_profile(profile_id, profile_name);
  the_account integer := dbmail.find_account(account_id, account_name);
BEGIN
  IF sequence_number IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'sequence_number', NULL, 'account sequence number must be supplied for update');
  END IF;
  UPDATE dbmail.profile_accounts pa SET
    sequence_number = sysmail_update_profileaccount_sp.sequence_number,
    last_mod_datetime = now(), last_mod_user = dbmail.caller_role()
  WHERE pa.profile_id = the_profile AND pa.account_id = the_account;
  IF NOT FOUND THEN
    PERFORM dbmail.raise_error('42704', dbmail.given_name('account', account_name),
      COALESCE(account_name, account_id::text), format('the account is not in profile %s', the_profile));
  END IF;
  PERFORM dbmail.config_changed();
END;
$$;

-- Profile and account: that link; profile only: all its accounts; account only: all its profiles.
CREATE FUNCTION dbmail.sysmail_delete_profileaccount_sp(
  profile_id integer DEFAULT NULL, profile_name text DEFAULT NULL,
  account_id integer DEFAULT NULL, account_name text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  the_profile integer := dbmail.find_profile(profile_id, profile_name, false);
  the_account integer := dbmail.find_account(account_id, account_name, false);
BEGIN
  IF the_profile IS NULL AND the_account IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'profile_id, profile_name, account_id, account_name', NULL,
      'give a profile, an account, or both');
  END IF;
  DELETE FROM dbmail.profile_accounts pa
  WHERE (the_profile IS NULL OR pa.profile_id = the_profile)
    AND (the_account IS NULL OR pa.account_id = the_account);
  IF NOT FOUND AND the_profile IS NOT NULL AND the_account IS NOT NULL THEN
    PERFORM dbmail.raise_error('42704', dbmail.given_name('account', account_name),
      COALESCE(account_name, account_id::text), format('the account is not in profile %s', the_profile));
  END IF;
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_help_profileaccount_sp(
  profile_id integer DEFAULT NULL, profile_name text DEFAULT NULL,
  account_id integer DEFAULT NULL, account_name text DEFAULT NULL
) RETURNS TABLE (profile_id integer, profile_name text, account_id integer, account_name text,
                 sequence_number integer)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT dbmail.find_profile($1, $2, false), dbmail.find_account($3, $4, false);
  SELECT p.profile_id, p.name, a.account_id, a.name, pa.sequence_number
  FROM dbmail.profile_accounts pa
  JOIN dbmail.profiles p ON p.profile_id = pa.profile_id
  JOIN dbmail.accounts a ON a.account_id = pa.account_id
  WHERE (($1 IS NULL AND $2 IS NULL) OR pa.profile_id = dbmail.find_profile($1, $2, false))
    AND (($3 IS NULL AND $4 IS NULL) OR pa.account_id = dbmail.find_account($3, $4, false))
  ORDER BY p.profile_id, pa.sequence_number, a.account_id;
$$;

-- Grants a role (membership counts) or public the use of a profile. is_default makes it the profile
-- used when that principal sends without profile_name; a principal has at most one default.
CREATE FUNCTION dbmail.sysmail_add_principalprofile_sp(
  principal_id oid DEFAULT NULL, principal_name text DEFAULT NULL,
  profile_id integer DEFAULT NULL, profile_name text DEFAULT NULL,
  is_default boolean DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  the_principal oid := dbmail.find_principal(principal_id, principal_name);
  the_profile integer := dbmail.find_profile(profile_id, profile_name);
BEGIN
  IF is_default IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'is_default', NULL, 'must be true or false');
  END IF;
  IF EXISTS (SELECT FROM dbmail.principal_profiles pp
             WHERE pp.profile_id = the_profile AND pp.principal_id = the_principal) THEN
    PERFORM dbmail.raise_error('42710', 'principal_name', dbmail.principal_name(the_principal),
      format('already has profile %s; use sysmail_update_principalprofile_sp', the_profile));
  END IF;
  IF is_default THEN
    UPDATE dbmail.principal_profiles pp SET is_default = false
    WHERE pp.principal_id = the_principal AND pp.is_default;
  END IF;
  INSERT INTO dbmail.principal_profiles (profile_id, principal_id, is_default, last_mod_user)
  VALUES (the_profile, the_principal, is_default, dbmail.caller_role());
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_update_principalprofile_sp(
  principal_id oid DEFAULT NULL, principal_name text DEFAULT NULL,
  profile_id integer DEFAULT NULL, profile_name text DEFAULT NULL,
  is_default boolean DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  the_principal oid := dbmail.find_principal(principal_id, principal_name);
  the_profile integer := dbmail.find_profile(profile_id, profile_name);
BEGIN
  IF is_default IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'is_default', NULL, 'must be true or false');
  END IF;
  IF NOT EXISTS (SELECT FROM dbmail.principal_profiles pp
                 WHERE pp.profile_id = the_profile AND pp.principal_id = the_principal) THEN
    PERFORM dbmail.raise_error('42704', 'principal_name', dbmail.principal_name(the_principal),
      format('has no grant of profile %s; use sysmail_add_principalprofile_sp', the_profile));
  END IF;
  IF is_default THEN
    UPDATE dbmail.principal_profiles pp SET is_default = false
    WHERE pp.principal_id = the_principal AND pp.is_default AND pp.profile_id <> the_profile;
  END IF;
  UPDATE dbmail.principal_profiles pp SET
    is_default = sysmail_update_principalprofile_sp.is_default,
    last_mod_datetime = now(), last_mod_user = dbmail.caller_role()
  WHERE pp.profile_id = the_profile AND pp.principal_id = the_principal;
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_delete_principalprofile_sp(
  principal_id oid DEFAULT NULL, principal_name text DEFAULT NULL,
  profile_id integer DEFAULT NULL, profile_name text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  -- A dropped role's grant can still be removed by its OID, so the OID is not checked against pg_roles.
  the_principal oid := CASE WHEN principal_name IS NULL THEN principal_id
                            ELSE dbmail.find_principal(principal_id, principal_name, false) END;
  the_profile integer := dbmail.find_profile(profile_id, profile_name, false);
BEGIN
  IF the_principal IS NULL AND the_profile IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'principal_id, principal_name, profile_id, profile_name', NULL,
      'give a principal, a profile, or both');
  END IF;
  DELETE FROM dbmail.principal_profiles pp
  WHERE (the_principal IS NULL OR pp.principal_id = the_principal)
    AND (the_profile IS NULL OR pp.profile_id = the_profile);
  IF NOT FOUND AND the_principal IS NOT NULL AND the_profile IS NOT NULL THEN
    PERFORM dbmail.raise_error('42704', dbmail.given_name('principal', principal_name),
      COALESCE(principal_name, principal_id::text), format('has no grant of profile %s', the_profile));
  END IF;
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_help_principalprofile_sp(
  principal_id oid DEFAULT NULL, principal_name text DEFAULT NULL,
  profile_id integer DEFAULT NULL, profile_name text DEFAULT NULL
) RETURNS TABLE (principal_id oid, principal_name text, profile_id integer, profile_name text,
                 is_default boolean)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT dbmail.find_principal($1, $2, false), dbmail.find_profile($3, $4, false);
  SELECT pp.principal_id, dbmail.principal_name(pp.principal_id), p.profile_id, p.name, pp.is_default
  FROM dbmail.principal_profiles pp
  JOIN dbmail.profiles p ON p.profile_id = pp.profile_id
  WHERE (($1 IS NULL AND $2 IS NULL) OR pp.principal_id = dbmail.find_principal($1, $2, false))
    AND (($3 IS NULL AND $4 IS NULL) OR pp.profile_id = dbmail.find_profile($3, $4, false))
  ORDER BY p.profile_id, pp.principal_id;
$$;

-- Checks and normalises one setting's value; raises naming the parameter when it is out of range.
CREATE FUNCTION dbmail.normalise_setting(parameter_name text, parameter_value text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  trimmed text := btrim(parameter_value);
  low bigint;
  high bigint;
  item text;
  items text[] := '{}';
BEGIN
  IF parameter_value IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'parameter_value', NULL, format('%s needs a value', parameter_name));
  END IF;
  CASE parameter_name
    WHEN 'AccountRetryAttempts' THEN low := 0; high := 100;
    WHEN 'AccountRetryDelay' THEN low := 0; high := 604800;
    WHEN 'DatabaseMailExeMinimumLifeTime' THEN low := 1; high := 604800;
    WHEN 'MaxFileSize' THEN low := 1; high := 1073741823;
    WHEN 'LoggingLevel' THEN low := 1; high := 3;
    WHEN 'MaxMailsPerUserPerDay' THEN low := 0; high := 100000000;
    WHEN 'MaxRecipientsPerMail' THEN low := 0; high := 1000000;
    WHEN 'MaxMailSize' THEN low := 0; high := 1073741823;
    WHEN 'UnknownOutcomePolicy' THEN
      IF lower(trimmed) NOT IN ('retry', 'fail') THEN
        PERFORM dbmail.raise_error('22023', 'parameter_value', parameter_value, 'UnknownOutcomePolicy must be retry or fail');
      END IF;
      RETURN lower(trimmed);
    WHEN 'DefaultAttachmentEncoding' THEN
      IF upper(trimmed) <> 'MIME' THEN
        PERFORM dbmail.raise_error('22023', 'parameter_value', parameter_value,
          'DefaultAttachmentEncoding supports only MIME');
      END IF;
      RETURN 'MIME';
    WHEN 'ProhibitedExtensions' THEN
      FOREACH item IN ARRAY string_to_array(trimmed, ',') LOOP
        item := lower(ltrim(btrim(item), '.'));
        CONTINUE WHEN item = '';
        IF item !~ '^[a-z0-9_~$#@!+-]+$' THEN
          PERFORM dbmail.raise_error('22023', 'parameter_value', parameter_value,
            format('ProhibitedExtensions: %s is not a file extension', dbmail.show_value(item)));
        END IF;
        items := items || item;
      END LOOP;
      RETURN array_to_string(items, ',');
    WHEN 'AttachmentDirectories' THEN
      FOREACH item IN ARRAY string_to_array(trimmed, ';') LOOP
        item := btrim(item);
        CONTINUE WHEN item = '';
        IF item !~ '^/' OR item ~ '(^|/)\.\.?(/|$)' OR item ~ '[\x01-\x1f]' THEN
          PERFORM dbmail.raise_error('22023', 'parameter_value', parameter_value,
            format('AttachmentDirectories: %s is not an absolute directory path without . or ..',
                   dbmail.show_value(item)));
        END IF;
        items := items || COALESCE(NULLIF(rtrim(item, '/'), ''), '/');
      END LOOP;
      RETURN array_to_string(items, ';');
    ELSE
      PERFORM dbmail.raise_error('42704', 'parameter_name', parameter_name, 'no such setting');
  END CASE;
  IF trimmed !~ '^[0-9]{1,12}$' OR trimmed::bigint NOT BETWEEN low AND high THEN
    PERFORM dbmail.raise_error('22023', 'parameter_value', parameter_value,
      format('%s must be a whole number from %s to %s', parameter_name, low, high));
  END IF;
  RETURN trimmed::bigint::text;
END;
$$;

-- The stored spelling of a setting's name (names are matched case-insensitively).
CREATE FUNCTION dbmail.find_setting(parameter_name text) RETURNS text
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  stored_name text;
BEGIN
  IF parameter_name IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'parameter_name', NULL, 'name a setting (see sysmail_help_configure_sp)');
  END IF;
  SELECT s.paramname INTO stored_name FROM dbmail.settings s WHERE lower(s.paramname) = lower(btrim(parameter_name));
  IF stored_name IS NULL THEN
    PERFORM dbmail.raise_error('42704', 'parameter_name', parameter_name,
      'no such setting (see sysmail_help_configure_sp)');
  END IF;
  RETURN stored_name;
END;
$$;

CREATE FUNCTION dbmail.sysmail_configure_sp(
  parameter_name text DEFAULT NULL, parameter_value text DEFAULT NULL, description text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  setting_name text := dbmail.find_setting(parameter_name);
  setting_value text := dbmail.normalise_setting(setting_name, parameter_value);
BEGIN
  UPDATE dbmail.settings s SET
    paramvalue = setting_value,
    description = COALESCE(sysmail_configure_sp.description, s.description),
    last_mod_date = now(), last_mod_user = dbmail.caller_role()
  WHERE s.paramname = setting_name;
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_help_configure_sp(parameter_name text DEFAULT NULL)
RETURNS TABLE (paramname text, paramvalue text, description text)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN $1 IS NOT NULL THEN dbmail.find_setting($1) END;  -- an unknown name is an error
  SELECT s.paramname, s.paramvalue, s.description FROM dbmail.settings s
  WHERE $1 IS NULL OR s.paramname = dbmail.find_setting($1)
  ORDER BY s.paramname;
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(3, 'configuration', '95518be6078f0ad1644aa8a9b5dd6a589fff771e47ece0d86c3b513a29fcc553');
