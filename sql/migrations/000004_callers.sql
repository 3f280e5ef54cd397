-- pg-dbmail 000004: who is calling. The caller's role and the stamps through which a SECURITY DEFINER
-- function learns it; who is an admin and who a sender in this database (AdminRoles and SenderRoles
-- confine the cluster-wide dbmail_admin and dbmail_sender roles); and the event log writer, which
-- SenderRoles confines too.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(4, 'callers', 'helpers');

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

-- Whether role_name is a member (directly or through other roles) of a role of a `;` list. A listed name
-- that no longer names a role matches nobody.
CREATE FUNCTION dbmail.role_listed(role_name name, roles text) RETURNS boolean
LANGUAGE sql STABLE
AS $$
  SELECT EXISTS (
    SELECT FROM pg_catalog.unnest(pg_catalog.string_to_array(roles, ';')) AS l(listed)
    JOIN pg_catalog.pg_roles r ON r.rolname = l.listed
    WHERE pg_catalog.pg_has_role(role_name, r.oid, 'MEMBER'));
$$;

-- Superusers, and members of the role that owns schema dbmail (its tables are theirs anyway): AdminRoles
-- and SenderRoles never confine them. (pg_has_role is true for superusers.)
CREATE FUNCTION dbmail.unconfined(role_name name) RETURNS boolean
LANGUAGE sql STABLE
AS $$
  SELECT pg_catalog.pg_has_role(role_name,
    (SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = 'dbmail'), 'USAGE');
$$;

-- The one place that decides who is an admin: the views' row filters, the profile check and the
-- exemption from MaxMailsPerUserPerDay (through is_admin), and every admin procedure (through
-- require_admin). A member of dbmail_admin, and, when AdminRoles lists roles, of one of them too.
-- SECURITY DEFINER: it reads AdminRoles, and the views call it with the caller's rights.
CREATE FUNCTION dbmail.is_admin(role_name name) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  roles text;
BEGIN
  IF NOT pg_has_role(role_name, 'dbmail_admin', 'USAGE') THEN
    RETURN false;  -- the usual case, without reading a setting
  END IF;
  SELECT s.paramvalue INTO roles FROM dbmail.settings s WHERE s.paramname = 'AdminRoles';
  RETURN COALESCE(roles, '') = '' OR dbmail.unconfined(role_name) OR dbmail.role_listed(role_name, roles);
END;
$$;

-- The first thing every admin procedure does, before any lookup of its own (so a refused caller learns
-- nothing of this database's configuration). With AdminRoles empty it lets through whoever may execute
-- the procedure; otherwise only the callers is_admin accepts, and superusers and the schema owner. The
-- caller is the session's role (caller_role): inside a SECURITY DEFINER procedure current_user is its
-- owner. It returns true so that a procedure can call it first thing, in its DECLARE section.
CREATE FUNCTION dbmail.require_admin() RETURNS boolean
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  roles text := dbmail.setting('AdminRoles');
  caller name;
BEGIN
  IF COALESCE(roles, '') = '' THEN
    RETURN true;
  END IF;
  caller := dbmail.caller_role();
  IF dbmail.unconfined(caller)
     OR (pg_has_role(caller, 'dbmail_admin', 'USAGE') AND dbmail.role_listed(caller, roles)) THEN
    RETURN true;
  END IF;
  PERFORM dbmail.raise_error('42501', 'caller', caller::text,
    format('may not use the dbmail_admin procedures in database %s: AdminRoles allows them only to members '
           'of the roles it lists', current_database()));
  RETURN false;
END;
$$;

-- The same for the sender protocol: the sender functions call it first. With SenderRoles empty it lets
-- through whoever may execute them (dbmail_sender members); otherwise only members of a
-- listed role, superusers and the schema owner. Granted to dbmail_sender too, so a sender can ask at
-- start whether it may serve this database.
CREATE FUNCTION dbmail.require_sender() RETURNS void
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  roles text := dbmail.setting('SenderRoles');
  caller name;
BEGIN
  IF COALESCE(roles, '') = '' THEN
    RETURN;
  END IF;
  caller := dbmail.caller_role();
  IF dbmail.unconfined(caller) OR dbmail.role_listed(caller, roles) THEN
    RETURN;
  END IF;
  PERFORM dbmail.raise_error('42501', 'caller', caller::text,
    format('may not act as a sender in database %s: SenderRoles allows the sender functions only to members '
           'of the roles it lists', current_database()));
END;
$$;

-- Writes one event if LoggingLevel asks for its type: 1 errors; 2 + warnings and information;
-- 3 + success. Returns the log_id, or NULL when the level filtered it out. Granted to dbmail_sender: a
-- sender that SenderRoles leaves out may not write events either. (Events the other procedures log for
-- users and admins are not affected.)
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
  level integer;
  sender_roles text;
  new_id bigint;
BEGIN
  SELECT COALESCE(max(s.paramvalue) FILTER (WHERE s.paramname = 'LoggingLevel')::integer, 2),
         max(s.paramvalue) FILTER (WHERE s.paramname = 'SenderRoles')
    INTO level, sender_roles
  FROM dbmail.settings s WHERE s.paramname IN ('LoggingLevel', 'SenderRoles');
  IF sender_roles <> '' AND pg_has_role(dbmail.caller_role(), 'dbmail_sender', 'USAGE') THEN
    PERFORM dbmail.require_sender();
  END IF;
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
SELECT dbmail.record_migration(4, 'callers', '38787b6819f5103a891335cbb5c939c4b7b17cb8be5e73ce47501f7e8f91ebdd');
