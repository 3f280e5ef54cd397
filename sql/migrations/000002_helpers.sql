-- pg-dbmail 000002: shared helpers: who is calling, how errors are raised, address parsing, lookups of
-- profiles/accounts/settings, and the event-log writer. Only the few the public entry points and views
-- call in the caller's own context are granted to users (000006 lists every grant).

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(2, 'helpers', 'schema');

-- The session's current role (SET ROLE), else the session user: who is at the keyboard, recorded as
-- last_mod_user by the configuration procedures. Inside a SECURITY DEFINER function current_user is
-- the function's owner; the 'role' setting cannot be set to a role the session may not become.
CREATE FUNCTION dbmail.caller_role() RETURNS name
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
  RETURN COALESCE(NULLIF(current_setting('role'), 'none'), session_user)::name;
END;
$$;

-- Superusers and members of dbmail_admin see everything and may use every profile (pg_has_role is true
-- for superusers).
CREATE FUNCTION dbmail.is_admin(role_name name) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN pg_has_role(role_name, 'dbmail_admin', 'USAGE');
END;
$$;

-- Inside a SECURITY DEFINER function: the current_user of the entry point that called it, which ran
-- `INSERT INTO dbmail.caller_stamps DEFAULT VALUES` as the caller just before (the newest stamp of this
-- backend and transaction, consumed). Raises when there is none: the function was called
-- directly instead of through its entry point.
CREATE FUNCTION dbmail.take_caller_stamp(entry_point text) RETURNS name
LANGUAGE plpgsql
AS $$
DECLARE
  stamped name;
BEGIN
  DELETE FROM dbmail.caller_stamps c
  WHERE c.stamp_id = (SELECT max(x.stamp_id) FROM dbmail.caller_stamps x
                      WHERE x.backend_pid = pg_backend_pid() AND x.transaction_id = pg_current_xact_id())
  RETURNING c.role_name INTO stamped;
  IF stamped IS NULL THEN
    PERFORM dbmail.raise_error('42501', 'caller', current_user::text,
      format('call dbmail.%s, not this internal function', entry_point));
  END IF;
  RETURN stamped;
END;
$$;

-- How a value is shown in an error message: quoted, line breaks made visible, long values shortened.
CREATE FUNCTION dbmail.show_value(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE
    WHEN value IS NULL THEN 'NULL'
    ELSE '"' || pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
           CASE WHEN pg_catalog.length(value) > 200 THEN pg_catalog.left(value, 200) || '…' ELSE value END,
           E'\r', '\r'), E'\n', '\n'), E'\t', '\t') || '"'
  END;
$$;

-- Every error raised by a dbmail function goes through here, so every message reads
-- `<parameter>: <value>: <problem>` and carries a documented SQLSTATE (docs/errors.md).
CREATE FUNCTION dbmail.raise_error(sqlstate text, parameter text, value text, problem text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RAISE EXCEPTION USING
    ERRCODE = sqlstate,
    MESSAGE = format('%s: %s: %s', parameter, dbmail.show_value(value), problem);
END;
$$;

-- Refuses CR, LF and other control characters (except tab) in a value that ends up in a header line.
CREATE FUNCTION dbmail.check_header_text(parameter text, value text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF value ~ '[\x01-\x08\x0a-\x1f\x7f]' THEN
    PERFORM dbmail.raise_error('22023', parameter, value,
      'line breaks and control characters are not allowed here');
  END IF;
END;
$$;

-- RFC 5322 addr-spec: a dot-atom or quoted-string local part, a dot-atom or [literal] domain. Non-ASCII
-- letters are allowed (RFC 6531). Returns the problem, or NULL when the address is valid.
CREATE FUNCTION dbmail.address_problem(address text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
DECLARE
  at_pos integer;
  local_part text;
  domain_part text;
BEGIN
  IF address IS NULL OR address = '' THEN
    RETURN 'an address is missing';
  END IF;
  -- Invisible characters (C1 controls, soft hyphen, zero-width and direction marks, BOM) make
  -- addresses that look like others.
  IF address ~ '[\u0080-\u009f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]' THEN
    RETURN 'contains invisible or control characters';
  END IF;
  -- The last @ separates local part and domain (a quoted local part may contain @).
  at_pos := length(address) - strpos(reverse(address), '@') + 1;
  IF strpos(address, '@') = 0 THEN
    RETURN 'not an e-mail address (no @)';
  END IF;
  local_part := left(address, at_pos - 1);
  domain_part := substr(address, at_pos + 1);
  IF local_part = '' THEN
    RETURN 'not an e-mail address (nothing before the @)';
  ELSIF domain_part = '' THEN
    RETURN 'not an e-mail address (nothing after the @)';
  ELSIF length(local_part) > 64 THEN
    RETURN 'the part before the @ is longer than 64 characters';
  ELSIF length(address) > 254 THEN
    RETURN 'the address is longer than 254 characters';
  ELSIF NOT (local_part ~ '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~\u0080-\U0010FFFF-]+(\.[A-Za-z0-9!#$%&''*+/=?^_`{|}~\u0080-\U0010FFFF-]+)*$'
             OR local_part ~ '^"([\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010FFFF]|\\[\x20-\x7e])*"$') THEN
    RETURN 'not a valid e-mail address (the part before the @)';
  ELSIF NOT (domain_part ~ '^[A-Za-z0-9\u0080-\U0010FFFF]([A-Za-z0-9\u0080-\U0010FFFF-]*[A-Za-z0-9\u0080-\U0010FFFF])?(\.[A-Za-z0-9\u0080-\U0010FFFF]([A-Za-z0-9\u0080-\U0010FFFF-]*[A-Za-z0-9\u0080-\U0010FFFF])?)*$'
             OR domain_part ~ '^\[[\x21-\x5a\x5e-\x7e]*\]$') THEN
    RETURN 'not a valid e-mail address (the domain)';
  ELSIF domain_part ~ '(^|\.)[^.\[]{64,}(\.|$)' THEN
    RETURN 'a part of the domain is longer than 63 characters';
  END IF;
  RETURN NULL;
END;
$$;

-- Parses one `;`-separated list (`a@x.org; "Doe, Jane" <jane@x.org>`) into
-- [{"name": ..., "address": ...}], raising an error that names the parameter and the offending entry.
-- A comma outside double quotes is refused, as in SQL Server. Empty entries (`a@x.org;`) are skipped.
CREATE FUNCTION dbmail.parse_address_list(parameter text, list text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  entries text[];
  entry text;
  ch text;
  current_entry text := '';
  in_quotes boolean := false;
  escaped boolean := false;
  result jsonb := '[]';
  display_name text;
  address text;
  problem text;
BEGIN
  IF list IS NULL OR btrim(list) = '' THEN
    RETURN result;
  END IF;
  PERFORM dbmail.check_header_text(parameter, list);
  IF strpos(list, '"') = 0 THEN
    -- The common case, without quoted display names: no character loop needed.
    IF strpos(list, ',') > 0 THEN
      PERFORM dbmail.raise_error('22023', parameter, list, 'use '';'' to separate addresses');
    END IF;
    entries := string_to_array(list, ';');
  ELSE
    entries := '{}';
    FOREACH ch IN ARRAY regexp_split_to_array(list, '') LOOP
      IF escaped THEN
        escaped := false;
      ELSIF in_quotes AND ch = '\' THEN
        escaped := true;
      ELSIF ch = '"' THEN
        in_quotes := NOT in_quotes;
      ELSIF NOT in_quotes AND ch = ',' THEN
        PERFORM dbmail.raise_error('22023', parameter, list, 'use '';'' to separate addresses');
      ELSIF NOT in_quotes AND ch = ';' THEN
        entries := entries || current_entry;
        current_entry := '';
        CONTINUE;
      END IF;
      current_entry := current_entry || ch;
    END LOOP;
    IF in_quotes THEN
      PERFORM dbmail.raise_error('22023', parameter, list, 'a double quote is not closed');
    END IF;
    entries := entries || current_entry;
  END IF;

  FOREACH entry IN ARRAY entries LOOP
    entry := btrim(entry, E' \t');
    CONTINUE WHEN entry = '';
    display_name := NULL;
    address := entry;
    IF right(entry, 1) = '>' THEN
      IF strpos(entry, '<') = 0 THEN
        PERFORM dbmail.raise_error('22023', parameter, entry, 'not a valid e-mail address (a > without <)');
      END IF;
      -- `Name <address>`: the address is inside the last pair of angle brackets.
      address := btrim(substring(entry FROM '<([^<>]*)>$'));
      display_name := btrim(substring(entry FROM '^(.*)<[^<>]*>$'));
      IF address IS NULL THEN
        PERFORM dbmail.raise_error('22023', parameter, entry, 'not a valid e-mail address');
      END IF;
      IF display_name ~ '^".*"$' THEN
        display_name := regexp_replace(substr(display_name, 2, length(display_name) - 2), '\\(.)', '\1', 'g');
      ELSIF display_name ~ '[<>"]' THEN
        PERFORM dbmail.raise_error('22023', parameter, entry,
          'a display name with special characters must be in double quotes');
      END IF;
      display_name := NULLIF(display_name, '');
    END IF;
    problem := dbmail.address_problem(address);
    IF problem IS NOT NULL THEN
      PERFORM dbmail.raise_error('22023', parameter, entry, problem);
    END IF;
    result := result || jsonb_build_array(jsonb_build_object('name', display_name, 'address', address));
  END LOOP;
  RETURN result;
END;
$$;

-- Exactly one address (from_address, reply_to, an account's e-mail and reply-to addresses).
CREATE FUNCTION dbmail.parse_single_address(parameter text, value text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  parsed jsonb := dbmail.parse_address_list(parameter, value);
BEGIN
  IF jsonb_array_length(parsed) > 1 THEN
    PERFORM dbmail.raise_error('22023', parameter, value, 'only one address is allowed here');
  END IF;
  IF jsonb_array_length(parsed) = 0 AND btrim(value, E' \t') <> '' THEN
    PERFORM dbmail.raise_error('22023', parameter, value, 'no e-mail address given');
  END IF;
  RETURN parsed -> 0;
END;
$$;

-- One address without a display name (an account's own addresses: its display name is separate).
CREATE FUNCTION dbmail.parse_bare_address(parameter text, value text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  parsed jsonb := dbmail.parse_single_address(parameter, value);
BEGIN
  IF parsed ->> 'name' IS NOT NULL OR btrim(value) ~ '>$' THEN
    PERFORM dbmail.raise_error('22023', parameter, value,
      'give the address alone (the display name is a parameter of its own)');
  END IF;
  RETURN parsed ->> 'address';
END;
$$;

-- The domain of an address: what follows the last @ (a quoted local part may itself contain @).
CREATE FUNCTION dbmail.address_domain(address text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
  RETURN substring(address, '@([^@]*)$');
END;
$$;

-- Finds a profile by id or name (both given: they must agree). Raises when neither is given and one is
-- required, or when it does not exist.
CREATE FUNCTION dbmail.find_profile(profile_id integer, profile_name text, required boolean DEFAULT true)
RETURNS integer
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  by_name integer;
BEGIN
  IF profile_id IS NULL AND profile_name IS NULL THEN
    IF required THEN
      PERFORM dbmail.raise_error('22004', 'profile_id, profile_name', NULL, 'give the profile''s id or name');
    END IF;
    RETURN NULL;
  END IF;
  IF btrim(profile_name) = '' THEN
    PERFORM dbmail.raise_error('22004', 'profile_name', profile_name, 'a blank name names no profile');
  END IF;
  IF profile_name IS NOT NULL THEN
    SELECT p.profile_id INTO by_name FROM dbmail.profiles p WHERE lower(p.name) = lower(profile_name);
    IF by_name IS NULL THEN
      PERFORM dbmail.raise_error('42704', 'profile_name', profile_name, 'no such profile');
    END IF;
    IF profile_id IS NOT NULL AND profile_id <> by_name THEN
      PERFORM dbmail.raise_error('22023', 'profile_name', profile_name,
        format('is profile %s, not profile_id %s', by_name, profile_id));
    END IF;
    RETURN by_name;
  END IF;
  IF NOT EXISTS (SELECT FROM dbmail.profiles p WHERE p.profile_id = find_profile.profile_id) THEN
    PERFORM dbmail.raise_error('42704', 'profile_id', profile_id::text, 'no such profile');
  END IF;
  RETURN profile_id;
END;
$$;

CREATE FUNCTION dbmail.find_account(account_id integer, account_name text, required boolean DEFAULT true)
RETURNS integer
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  by_name integer;
BEGIN
  IF account_id IS NULL AND account_name IS NULL THEN
    IF required THEN
      PERFORM dbmail.raise_error('22004', 'account_id, account_name', NULL, 'give the account''s id or name');
    END IF;
    RETURN NULL;
  END IF;
  IF btrim(account_name) = '' THEN
    PERFORM dbmail.raise_error('22004', 'account_name', account_name, 'a blank name names no account');
  END IF;
  IF account_name IS NOT NULL THEN
    SELECT a.account_id INTO by_name FROM dbmail.accounts a WHERE lower(a.name) = lower(account_name);
    IF by_name IS NULL THEN
      PERFORM dbmail.raise_error('42704', 'account_name', account_name, 'no such account');
    END IF;
    IF account_id IS NOT NULL AND account_id <> by_name THEN
      PERFORM dbmail.raise_error('22023', 'account_name', account_name,
        format('is account %s, not account_id %s', by_name, account_id));
    END IF;
    RETURN by_name;
  END IF;
  IF NOT EXISTS (SELECT FROM dbmail.accounts a WHERE a.account_id = find_account.account_id) THEN
    PERFORM dbmail.raise_error('42704', 'account_id', account_id::text, 'no such account');
  END IF;
  RETURN account_id;
END;
$$;

-- A role by OID or name, or public (0 / 'public'). Returns the OID, 0 for public.
CREATE FUNCTION dbmail.find_principal(principal_id oid, principal_name text, required boolean DEFAULT true)
RETURNS oid
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  by_name oid;
BEGIN
  IF principal_id IS NULL AND principal_name IS NULL THEN
    IF required THEN
      PERFORM dbmail.raise_error('22004', 'principal_id, principal_name', NULL,
        'give a role''s name or OID, or ''public''');
    END IF;
    RETURN NULL;
  END IF;
  IF principal_name IS NOT NULL THEN
    IF lower(principal_name) = 'public' THEN
      by_name := 0;
    ELSE
      SELECT r.oid INTO by_name FROM pg_roles r WHERE r.rolname = principal_name;
      IF by_name IS NULL THEN
        PERFORM dbmail.raise_error('42704', 'principal_name', principal_name, 'no such role');
      END IF;
    END IF;
    IF principal_id IS NOT NULL AND principal_id <> by_name THEN
      PERFORM dbmail.raise_error('22023', 'principal_name', principal_name,
        format('is principal %s, not principal_id %s', by_name, principal_id));
    END IF;
    RETURN by_name;
  END IF;
  IF principal_id <> 0 AND NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid = principal_id) THEN
    PERFORM dbmail.raise_error('42704', 'principal_id', principal_id::text, 'no such role');
  END IF;
  RETURN principal_id;
END;
$$;

CREATE FUNCTION dbmail.principal_name(principal_id oid) RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT CASE WHEN principal_id = 0 THEN 'public'
    ELSE (SELECT r.rolname::text FROM pg_catalog.pg_roles r WHERE r.oid = principal_id) END;
$$;

CREATE FUNCTION dbmail.setting(parameter_name text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
BEGIN
  RETURN (SELECT s.paramvalue FROM dbmail.settings s WHERE s.paramname = parameter_name);
END;
$$;

-- Tells running senders to reload accounts, profiles and settings (they also reload periodically).
CREATE FUNCTION dbmail.config_changed() RETURNS void
LANGUAGE sql
AS $$
  SELECT pg_catalog.pg_notify('dbmail_config', '');
$$;

-- Writes one event if LoggingLevel asks for its type: 1 errors; 2 + warnings and information;
-- 3 + success. Returns the log_id, or NULL when the level filtered it out.
CREATE FUNCTION dbmail.log_event(
  event_type text,
  description text,
  mailitem_id bigint DEFAULT NULL,
  account_id integer DEFAULT NULL,
  process_id integer DEFAULT NULL,
  sender_id text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  level integer := COALESCE(dbmail.setting('LoggingLevel')::integer, 2);
  new_id bigint;
BEGIN
  IF event_type IS NULL OR event_type NOT IN ('success', 'information', 'warning', 'error') THEN
    PERFORM dbmail.raise_error('22023', 'event_type', event_type,
      'must be one of success, information, warning, error');
  END IF;
  IF description IS NULL OR description = '' THEN
    PERFORM dbmail.raise_error('22004', 'description', description, 'an event needs a description');
  END IF;
  IF (event_type = 'success' AND level < 3) OR (event_type IN ('information', 'warning') AND level < 2) THEN
    RETURN NULL;
  END IF;
  INSERT INTO dbmail.event_log (event_type, description, mailitem_id, account_id, process_id, sender_id,
                                last_mod_user)
  VALUES (log_event.event_type, log_event.description, log_event.mailitem_id, log_event.account_id,
          log_event.process_id, log_event.sender_id, dbmail.caller_role())
  RETURNING log_id INTO new_id;
  RETURN new_id;
END;
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(2, 'helpers', 'a34f5b0aa05357b599dfa17df8481666cea8a59ea9f87258b01efe1a25fb146b');
