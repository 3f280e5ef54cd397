-- pg-dbmail 000008: the configuration procedures for profiles (dbmail_admin): profiles, the accounts of
-- a profile in failover order, and who may use a profile (principals: roles, or public), with their
-- defaults. As for accounts, each is SECURITY DEFINER with a pinned search_path and asks
-- dbmail.require_admin first.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(8, 'profiles', 'accounts');

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
  admin_checked boolean := dbmail.require_admin();
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
  admin_checked boolean := dbmail.require_admin();
  target integer;
  new_name text;
BEGIN
  IF sysmail_update_profile_sp.profile_id IS NOT NULL THEN
    target := dbmail.find_by_id_or_name('profile', sysmail_update_profile_sp.profile_id, NULL);
    new_name := profile_name;
  ELSE
    target := dbmail.find_by_id_or_name('profile', NULL, profile_name);
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
  admin_checked boolean := dbmail.require_admin();
  target integer := dbmail.find_by_id_or_name('profile', profile_id, profile_name);
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
  SELECT dbmail.require_admin();
  SELECT dbmail.find_by_id_or_name('profile', $1, $2, false);  -- an unknown profile is an error, not an empty list
  SELECT p.profile_id, p.name, p.description FROM dbmail.profiles p
  WHERE ($1 IS NULL AND $2 IS NULL) OR p.profile_id = dbmail.find_by_id_or_name('profile', $1, $2, false)
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
  admin_checked boolean := dbmail.require_admin();
  the_profile integer := dbmail.find_by_id_or_name('profile', profile_id, profile_name);
  the_account integer := dbmail.find_by_id_or_name('account', account_id, account_name);
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
  admin_checked boolean := dbmail.require_admin();
  the_profile integer := dbmail.find_by_id_or_name('profile', profile_id, profile_name);
  the_account integer := dbmail.find_by_id_or_name('account', account_id, account_name);
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
  admin_checked boolean := dbmail.require_admin();
  the_profile integer := dbmail.find_by_id_or_name('profile', profile_id, profile_name, false);
  the_account integer := dbmail.find_by_id_or_name('account', account_id, account_name, false);
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
  SELECT dbmail.require_admin();
  SELECT dbmail.find_by_id_or_name('profile', $1, $2, false), dbmail.find_by_id_or_name('account', $3, $4, false);
  SELECT p.profile_id, p.name, a.account_id, a.name, pa.sequence_number
  FROM dbmail.profile_accounts pa
  JOIN dbmail.profiles p ON p.profile_id = pa.profile_id
  JOIN dbmail.accounts a ON a.account_id = pa.account_id
  WHERE (($1 IS NULL AND $2 IS NULL) OR pa.profile_id = dbmail.find_by_id_or_name('profile', $1, $2, false))
    AND (($3 IS NULL AND $4 IS NULL) OR pa.account_id = dbmail.find_by_id_or_name('account', $3, $4, false))
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
  admin_checked boolean := dbmail.require_admin();
  the_principal oid := dbmail.find_by_id_or_name('principal', principal_id::bigint, principal_name);
  the_profile integer := dbmail.find_by_id_or_name('profile', profile_id, profile_name);
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
  admin_checked boolean := dbmail.require_admin();
  the_principal oid := dbmail.find_by_id_or_name('principal', principal_id::bigint, principal_name);
  the_profile integer := dbmail.find_by_id_or_name('profile', profile_id, profile_name);
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
  admin_checked boolean := dbmail.require_admin();
  -- A dropped role's grant can still be removed by its OID, so the OID is not checked against pg_roles.
  the_principal oid := CASE WHEN principal_name IS NULL THEN principal_id
                            ELSE dbmail.find_by_id_or_name('principal', principal_id::bigint, principal_name, false) END;
  the_profile integer := dbmail.find_by_id_or_name('profile', profile_id, profile_name, false);
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
  SELECT dbmail.require_admin();
  SELECT dbmail.find_by_id_or_name('principal', $1::bigint, $2, false), dbmail.find_by_id_or_name('profile', $3, $4, false);
  SELECT pp.principal_id, dbmail.principal_name(pp.principal_id), p.profile_id, p.name, pp.is_default
  FROM dbmail.principal_profiles pp
  JOIN dbmail.profiles p ON p.profile_id = pp.profile_id
  WHERE (($1 IS NULL AND $2 IS NULL) OR pp.principal_id = dbmail.find_by_id_or_name('principal', $1::bigint, $2, false))
    AND (($3 IS NULL AND $4 IS NULL) OR pp.profile_id = dbmail.find_by_id_or_name('profile', $3, $4, false))
  ORDER BY p.profile_id, pp.principal_id;
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(8, 'profiles', 'bec1c12771b1b97eb1070972c05ae4bba50b6b59108767a3ad2e26d1ebe72d65');
