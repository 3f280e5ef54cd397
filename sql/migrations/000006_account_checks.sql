-- pg-dbmail 000006: the rules an account must satisfy (shared by sysmail_add_account_sp and
-- sysmail_update_account_sp, which check the row as it will be stored): addresses, server, credentials,
-- OAuth2, DKIM and the rate limit. Owner-only helpers: they run inside the definer procedures.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(6, 'account_checks', 'addresses');

-- A secret as given: a literal, env:NAME (a variable of the sender's) or file:/path (a file the sender
-- reads). A reference is shown in errors; a literal never is.
CREATE FUNCTION dbmail.check_secret(parameter text, secret text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF secret ~ '^env:' AND secret !~ '^env:[A-Za-z_][A-Za-z0-9_]*$' THEN
    PERFORM dbmail.raise_error('22023', parameter, secret, 'env: must be followed by an environment variable name');
  END IF;
  IF secret ~ '^file:' AND secret !~ '^file:/' THEN
    PERFORM dbmail.raise_error('22023', parameter, secret, 'file: must be followed by an absolute path');
  END IF;
END;
$$;

-- Validates an account as it will be stored (after an update's merge), so add and update share one set
-- of rules.
CREATE FUNCTION dbmail.check_account(a dbmail.accounts, s dbmail.account_secrets) RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  IF a.name IS NULL OR btrim(a.name) = '' THEN
    PERFORM dbmail.raise_error('22004', 'account_name', a.name, 'an account needs a name');
  END IF;
  PERFORM dbmail.check_header_text('account_name', a.name);
  IF length(a.name) > 128 THEN
    PERFORM dbmail.raise_error('22023', 'account_name', a.name, 'is longer than 128 characters');
  END IF;
  IF a.email_address IS NULL OR btrim(a.email_address) = '' THEN
    PERFORM dbmail.raise_error('22004', 'email_address', a.email_address, 'an account needs an e-mail address');
  END IF;
  PERFORM dbmail.parse_bare_address('email_address', a.email_address);
  PERFORM dbmail.check_header_text('display_name', a.display_name);
  PERFORM dbmail.parse_bare_address('replyto_address', a.replyto_address);
  IF a.mailserver_name IS NULL OR btrim(a.mailserver_name) = '' THEN
    PERFORM dbmail.raise_error('22004', 'mailserver_name', a.mailserver_name,
      'name the SMTP server (host name or IP address)');
  END IF;
  IF a.mailserver_name !~ '^[A-Za-z0-9._:\[\]-]+$' THEN
    PERFORM dbmail.raise_error('22023', 'mailserver_name', a.mailserver_name,
      'not a host name or IP address');
  END IF;
  IF a.port IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'port', NULL, 'must be from 1 to 65535');
  ELSIF a.port NOT BETWEEN 1 AND 65535 THEN
    PERFORM dbmail.raise_error('22023', 'port', a.port::text, 'must be from 1 to 65535');
  END IF;
  IF a.use_default_credentials IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'use_default_credentials', NULL, 'must be true or false');
  END IF;
  IF a.use_default_credentials AND a.username IS NOT NULL THEN
    PERFORM dbmail.raise_error('22023', 'username', a.username,
      'cannot be given when use_default_credentials is true');
  END IF;
  PERFORM dbmail.check_header_text('username', a.username);
  IF s.password IS NOT NULL AND a.username IS NULL THEN
    PERFORM dbmail.raise_error('22023', 'password', '********', 'a password needs a username');
  END IF;
  PERFORM dbmail.check_secret('password', s.password);
  IF a.security IS NULL OR a.security NOT IN ('none', 'starttls', 'tls') THEN
    PERFORM dbmail.raise_error('22023', 'security', a.security, 'must be none, starttls or tls');
  END IF;
  IF a.timeout IS NOT NULL AND a.timeout NOT BETWEEN 1 AND 3600 THEN
    PERFORM dbmail.raise_error('22023', 'timeout', a.timeout::text, 'must be from 1 to 3600 seconds');
  END IF;
  IF a.tls_reject_unauthorized IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'tls_reject_unauthorized', NULL, 'must be true or false');
  END IF;
  PERFORM dbmail.check_auth(a, s);
  PERFORM dbmail.check_dkim(a, s);
  IF a.max_messages_per_minute NOT BETWEEN 1 AND 100000 THEN
    PERFORM dbmail.raise_error('22023', 'max_messages_per_minute', a.max_messages_per_minute::text,
      'must be from 1 to 100000 (0 on update: no limit)');
  END IF;
END;
$$;

-- How the account logs in. password: a username (or the sender's default credentials); oauth2: XOAUTH2
-- as username, with a token the sender fetches from oauth2_token_url (client credentials, or the
-- refresh-token grant when a refresh token is given); none: no login.
CREATE FUNCTION dbmail.check_auth(a dbmail.accounts, s dbmail.account_secrets) RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  IF a.auth_method IS NULL OR a.auth_method NOT IN ('none', 'password', 'oauth2') THEN
    PERFORM dbmail.raise_error('22023', 'auth_method', a.auth_method, 'must be none, password or oauth2');
  END IF;
  IF a.auth_method = 'none' AND (a.username IS NOT NULL OR a.use_default_credentials) THEN
    PERFORM dbmail.raise_error('22023', 'auth_method', a.auth_method,
      'conflicts with a username or use_default_credentials => true (they log in with a password)');
  END IF;
  IF a.auth_method = 'password' AND a.username IS NULL AND NOT a.use_default_credentials THEN
    PERFORM dbmail.raise_error('22004', 'username', NULL,
      'auth_method password needs a username (or use_default_credentials => true)');
  END IF;
  IF a.auth_method <> 'oauth2' THEN
    IF a.oauth2_token_url IS NOT NULL OR a.oauth2_client_id IS NOT NULL OR a.oauth2_scope IS NOT NULL
       OR s.oauth2_client_secret IS NOT NULL OR s.oauth2_refresh_token IS NOT NULL THEN
      PERFORM dbmail.raise_error('22023', 'auth_method', a.auth_method,
        'the oauth2_ settings are only for auth_method oauth2');
    END IF;
    RETURN;
  END IF;
  IF a.use_default_credentials THEN
    PERFORM dbmail.raise_error('22023', 'use_default_credentials', 'true', 'cannot be used with auth_method oauth2');
  END IF;
  IF a.username IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'username', NULL,
      'auth_method oauth2 needs the mailbox to log in as (XOAUTH2 user)');
  END IF;
  IF s.password IS NOT NULL THEN
    PERFORM dbmail.raise_error('22023', 'password', '********',
      'an oauth2 account logs in with a token, not a password');
  END IF;
  IF a.oauth2_token_url IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'oauth2_token_url', NULL, 'auth_method oauth2 needs the token endpoint');
  ELSIF a.oauth2_token_url !~ '^https?://[^\s/?#]+[^\s]*$' THEN
    PERFORM dbmail.raise_error('22023', 'oauth2_token_url', a.oauth2_token_url, 'must be an http:// or https:// URL');
  END IF;
  IF a.oauth2_client_id IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'oauth2_client_id', NULL, 'auth_method oauth2 needs the client id');
  END IF;
  PERFORM dbmail.check_header_text('oauth2_client_id', a.oauth2_client_id);
  PERFORM dbmail.check_header_text('oauth2_scope', a.oauth2_scope);
  IF s.oauth2_client_secret IS NULL AND s.oauth2_refresh_token IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'oauth2_client_secret', NULL,
      'the client-credentials grant needs a client secret (or give oauth2_refresh_token)');
  END IF;
  PERFORM dbmail.check_secret('oauth2_client_secret', s.oauth2_client_secret);
  PERFORM dbmail.check_secret('oauth2_refresh_token', s.oauth2_refresh_token);
END;
$$;

-- DKIM: a domain, a selector and an RSA private key in PEM, all three or none.
CREATE FUNCTION dbmail.check_dkim(a dbmail.accounts, s dbmail.account_secrets) RETURNS void
LANGUAGE plpgsql STABLE
AS $$
BEGIN
  IF a.dkim_domain IS NULL AND a.dkim_selector IS NULL AND s.dkim_private_key IS NULL THEN
    RETURN;
  END IF;
  IF a.dkim_domain IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'dkim_domain', NULL, 'DKIM needs dkim_domain, dkim_selector and dkim_private_key');
  ELSIF a.dkim_domain !~* '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$' THEN
    PERFORM dbmail.raise_error('22023', 'dkim_domain', a.dkim_domain, 'not a domain name');
  END IF;
  IF a.dkim_selector IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'dkim_selector', NULL, 'DKIM needs dkim_domain, dkim_selector and dkim_private_key');
  ELSIF a.dkim_selector !~* '^[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*$' THEN
    PERFORM dbmail.raise_error('22023', 'dkim_selector', a.dkim_selector, 'not a DKIM selector');
  END IF;
  IF s.dkim_private_key IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'dkim_private_key', NULL,
      'DKIM needs dkim_domain, dkim_selector and dkim_private_key');
  END IF;
  PERFORM dbmail.check_secret('dkim_private_key', s.dkim_private_key);
  IF s.dkim_private_key !~ '^(env|file):' AND s.dkim_private_key !~ '-----BEGIN (RSA )?PRIVATE KEY-----' THEN
    PERFORM dbmail.raise_error('22023', 'dkim_private_key', '********',
      'must be an RSA private key in PEM (-----BEGIN PRIVATE KEY-----), env:NAME or file:/path');
  END IF;
END;
$$;

-- Microsoft 365 switches Basic SMTP AUTH off: a password account pointing at it gets a warning, in the
-- event log and to the caller, naming the way out.
CREATE FUNCTION dbmail.warn_basic_auth(a dbmail.accounts) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  warning text;
BEGIN
  IF a.auth_method = 'password'
     AND lower(a.mailserver_name) IN ('smtp.office365.com', 'smtp-mail.outlook.com', 'smtp.office365.us') THEN
    warning := format('account %s (%s) logs in to %s with a password: Microsoft 365 is switching Basic SMTP AUTH '
      'off; use auth_method => ''oauth2'' (see docs/sender.md)', a.account_id, a.name, a.mailserver_name);
    PERFORM dbmail.log_event('warning', warning, NULL, a.account_id);
    RAISE WARNING '%', warning;
  END IF;
END;
$$;


-- How a secret is given, for the help procedure: none, literal, env or file (never the secret).
CREATE FUNCTION dbmail.secret_source(secret text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
  SELECT CASE WHEN secret IS NULL THEN 'none'
              WHEN secret LIKE 'env:%' THEN 'env'
              WHEN secret LIKE 'file:%' THEN 'file'
              ELSE 'literal' END;
$$;

-- Stores an account's secrets: its row in account_secrets, or none when it has no secret at all.
CREATE FUNCTION dbmail.store_secrets(s dbmail.account_secrets) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  IF s.password IS NULL AND s.oauth2_client_secret IS NULL AND s.oauth2_refresh_token IS NULL
     AND s.dkim_private_key IS NULL THEN
    DELETE FROM dbmail.account_secrets t WHERE t.account_id = s.account_id;
  ELSE
    INSERT INTO dbmail.account_secrets AS t VALUES (s.*)
    ON CONFLICT ON CONSTRAINT account_secrets_pkey DO UPDATE SET password = excluded.password,
      oauth2_client_secret = excluded.oauth2_client_secret, oauth2_refresh_token = excluded.oauth2_refresh_token,
      dkim_private_key = excluded.dkim_private_key;
  END IF;
END;
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(6, 'account_checks', '6ae496a155b9654985fda5543592dd0192d8590d21bd70cf0579a109fe9242a4');
