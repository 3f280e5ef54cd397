-- pg-dbmail 000009: the settings procedures (dbmail_admin): sysmail_configure_sp and
-- sysmail_help_configure_sp, with the checks of every setting's value.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(9, 'settings', 'profiles');

-- Checks and normalises one setting's value; raises naming the parameter when it is out of range.
-- STABLE: AdminRoles and SenderRoles name roles that must exist.
CREATE FUNCTION dbmail.normalise_setting(parameter_name text, parameter_value text) RETURNS text
LANGUAGE plpgsql STABLE
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
    WHEN 'AdminRoles', 'SenderRoles' THEN
      -- Role names as PostgreSQL spells them (case matters), each once.
      FOREACH item IN ARRAY string_to_array(trimmed, ';') LOOP
        item := btrim(item);
        CONTINUE WHEN item = '';
        IF NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = item) THEN
          PERFORM dbmail.raise_error('42704', 'parameter_value', parameter_value,
            format('%s: no role is named %s (role names are case-sensitive)', parameter_name,
                   dbmail.show_value(item)));
        END IF;
        IF item <> ALL (items) THEN
          items := items || item;
        END IF;
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

-- Sets one setting. AdminRoles may not take the calling admin's own rights away (nobody locks a database by accident);
-- turning MaxMailsPerUserPerDay on fills its ledger from the mail still queued or kept.
CREATE FUNCTION dbmail.sysmail_configure_sp(
  parameter_name text DEFAULT NULL, parameter_value text DEFAULT NULL, description text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  setting_name text := dbmail.find_setting(parameter_name);
  setting_value text := dbmail.normalise_setting(setting_name, parameter_value);
  caller name := dbmail.caller_role();
BEGIN
  IF setting_name = 'AdminRoles' AND setting_value <> '' AND NOT dbmail.unconfined(caller)
     AND NOT (pg_has_role(caller, 'dbmail_admin', 'USAGE') AND dbmail.role_listed(caller, setting_value)) THEN
    PERFORM dbmail.raise_error('22023', 'parameter_value', parameter_value,
      format('AdminRoles would take your own admin rights in this database away (role %s is a member of none '
             'of these roles); list a role of yours too', caller));
  END IF;
  UPDATE dbmail.settings s SET
    paramvalue = setting_value,
    description = COALESCE(sysmail_configure_sp.description, s.description),
    last_mod_date = now(), last_mod_user = caller
  WHERE s.paramname = setting_name;
  IF setting_name = 'MaxMailsPerUserPerDay' AND setting_value <> '0' THEN
    -- What the ledger did not see while the limit was off: the mail items of the last 25 hours. Where it
    -- has a count already (the limit was on; items may have been deleted since), the larger one stays.
    INSERT INTO dbmail.daily_mail_counts AS c (role_id, hour_start, mails)
    SELECT m.send_request_role, date_trunc('hour', m.send_request_date, 'UTC'), count(*)
    FROM dbmail.mailitems m
    WHERE m.send_request_date >= date_trunc('hour', now(), 'UTC') - interval '24 hours'
      AND m.send_request_role IS NOT NULL
    GROUP BY 1, 2
    ON CONFLICT ON CONSTRAINT daily_mail_counts_pkey DO UPDATE SET mails = GREATEST(c.mails, excluded.mails);
  END IF;
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_help_configure_sp(parameter_name text DEFAULT NULL)
RETURNS TABLE (paramname text, paramvalue text, description text)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT dbmail.require_admin();
  SELECT CASE WHEN $1 IS NOT NULL THEN dbmail.find_setting($1) END;  -- an unknown name is an error
  SELECT s.paramname, s.paramvalue, s.description FROM dbmail.settings s
  WHERE $1 IS NULL OR s.paramname = dbmail.find_setting($1)
  ORDER BY s.paramname;
$$;

-- Keeps on system_state what every sp_send_dbmail call reads (the three limits, the public default
-- profile, whether any role has a default of its own), so that a call reads one row instead of the
-- settings and the grants (that statement was an eighth of a call's cost). Run after every statement that
-- changes settings or principal_profiles (a profile's deletion cascades to its grants), and so after a
-- restore's COPY of either. SECURITY DEFINER: an admin changing a setting may not write system_state.
CREATE FUNCTION dbmail.refresh_send_defaults() RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  UPDATE dbmail.system_state st SET
    max_recipients_per_mail = (SELECT s.paramvalue::bigint FROM dbmail.settings s
                               WHERE s.paramname = 'MaxRecipientsPerMail'),
    max_mail_size = (SELECT s.paramvalue::bigint FROM dbmail.settings s WHERE s.paramname = 'MaxMailSize'),
    max_mails_per_user_per_day = (SELECT s.paramvalue::bigint FROM dbmail.settings s
                                  WHERE s.paramname = 'MaxMailsPerUserPerDay'),
    public_default_profile = (SELECT pp.profile_id FROM dbmail.principal_profiles pp
                              WHERE pp.is_default AND pp.principal_id = 0),
    role_defaults = EXISTS (SELECT FROM dbmail.principal_profiles pp WHERE pp.is_default AND pp.principal_id <> 0);
  RETURN NULL;
END;
$$;
CREATE TRIGGER refresh_send_defaults AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON dbmail.settings
FOR EACH STATEMENT EXECUTE FUNCTION dbmail.refresh_send_defaults();
CREATE TRIGGER refresh_send_defaults AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON dbmail.principal_profiles
FOR EACH STATEMENT EXECUTE FUNCTION dbmail.refresh_send_defaults();
-- Filled once now, from the settings' defaults (000002): a statement that changes no row fires it.
UPDATE dbmail.settings SET paramname = paramname WHERE false;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(9, 'settings', '16005621acabc77ab1c75936a637c4e269385beefb9b83dc561d0ba0eaa4d73c');
