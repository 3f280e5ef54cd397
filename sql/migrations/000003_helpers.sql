-- pg-dbmail 000003: shared helpers: how a value is shown and an error raised, header text checked, a
-- setting read, running senders told of a change, a profile, account, operator or principal found by id
-- or name, a restored row put over a default one, and the WAL timeline noted. Owner-only but for the few
-- that the entry points and views call in the caller's own context (000021_privileges grants them).

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(3, 'helpers', 'tables');

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

-- Which of a pair of parameters (thing_id, thing_name) the caller gave, for naming it in an error.
CREATE FUNCTION dbmail.given_name(thing text, name text) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
  SELECT thing || CASE WHEN name IS NOT NULL THEN '_name' ELSE '_id' END;
$$;

CREATE FUNCTION dbmail.principal_name(principal_id oid) RETURNS text
LANGUAGE sql STABLE
AS $$
  SELECT CASE WHEN principal_id = 0 THEN 'public'
    ELSE (SELECT r.rolname::text FROM pg_catalog.pg_roles r WHERE r.oid = principal_id) END;
$$;

-- Finds a profile, an account, an operator or a principal by id or name (`kind` says which; both given:
-- they must agree) and returns its id. Raises when it does not exist, and when neither is given and
-- one is required (else returns NULL). Names ignore case, as their unique indexes do, and an operator's
-- surrounding spaces too; a principal is a role, by OID or by its name as PostgreSQL spells it, or
-- public (0, or 'public' in any case). Messages name the parameters as the calling procedure does:
-- <kind>_id and <kind>_name unless it says otherwise (name_parameter alone: it has only a name).
CREATE FUNCTION dbmail.find_by_id_or_name(
  kind text, id bigint, name text, required boolean DEFAULT true,
  id_parameter text DEFAULT NULL, name_parameter text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  id_param text := COALESCE(id_parameter, CASE WHEN name_parameter IS NULL THEN kind || '_id' END);
  name_param text := COALESCE(name_parameter, kind || '_name');
  -- What 'no such ...' calls it.
  thing text := CASE WHEN kind = 'principal' THEN 'role' ELSE kind END;
  by_name bigint;
  found_id boolean;
BEGIN
  IF id IS NULL AND name IS NULL THEN
    IF required THEN
      PERFORM dbmail.raise_error('22004', concat_ws(', ', id_param, name_param), NULL,
        CASE WHEN kind = 'principal' THEN 'give a role''s name or OID, or ''public'''
             WHEN id_param IS NULL THEN format('give the %s''s name', kind)
             ELSE format('give the %s''s id or name', kind) END);
    END IF;
    RETURN NULL;
  END IF;
  IF btrim(name) = '' AND kind <> 'principal' THEN
    PERFORM dbmail.raise_error('22004', name_param, name, format('a blank name names no %s', kind));
  END IF;
  IF name IS NOT NULL THEN
    CASE kind
      WHEN 'profile' THEN
        SELECT p.profile_id INTO by_name FROM dbmail.profiles p WHERE lower(p.name) = lower(find_by_id_or_name.name);
      WHEN 'account' THEN
        SELECT a.account_id INTO by_name FROM dbmail.accounts a WHERE lower(a.name) = lower(find_by_id_or_name.name);
      WHEN 'operator' THEN
        SELECT o.operator_id INTO by_name FROM dbmail.operators o
        WHERE lower(o.name) = lower(btrim(find_by_id_or_name.name));
      WHEN 'principal' THEN
        IF lower(name) = 'public' THEN
          by_name := 0;
        ELSE
          SELECT r.oid INTO by_name FROM pg_roles r WHERE r.rolname = find_by_id_or_name.name;
        END IF;
    END CASE;
    IF by_name IS NULL THEN
      PERFORM dbmail.raise_error('42704', name_param, name, format('no such %s', thing));
    END IF;
    IF id IS NOT NULL AND id <> by_name THEN
      PERFORM dbmail.raise_error('22023', name_param, name, format('is %s %s, not %s %s', kind, by_name, id_param, id));
    END IF;
    RETURN by_name;
  END IF;
  CASE kind
    WHEN 'profile' THEN
      found_id := EXISTS (SELECT FROM dbmail.profiles p WHERE p.profile_id = find_by_id_or_name.id);
    WHEN 'account' THEN
      found_id := EXISTS (SELECT FROM dbmail.accounts a WHERE a.account_id = find_by_id_or_name.id);
    WHEN 'operator' THEN
      found_id := EXISTS (SELECT FROM dbmail.operators o WHERE o.operator_id = find_by_id_or_name.id);
    WHEN 'principal' THEN
      found_id := id = 0 OR EXISTS (SELECT FROM pg_roles r WHERE r.oid = find_by_id_or_name.id);
  END CASE;
  IF NOT found_id THEN
    PERFORM dbmail.raise_error('42704', id_param, id::text, format('no such %s', thing));
  END IF;
  RETURN id;
END;
$$;

-- Restoring a pg_dump of a CREATE EXTENSION install: CREATE EXTENSION inserts the default rows of
-- dbmail.settings and dbmail.system_state (000002), then pg_restore copies the dumped rows in (they are
-- extension configuration, see docs/operations.md). A copied row replaces the default of the same key
-- instead of failing on it. Nothing else inserts into these tables (the procedures update them); a dump
-- of a migrations install creates its triggers after its data, so there this never runs.
CREATE FUNCTION dbmail.replace_default_row() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_TABLE_NAME = 'settings' THEN
    DELETE FROM dbmail.settings s WHERE s.paramname = NEW.paramname;
  ELSE
    DELETE FROM dbmail.system_state;
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER replace_default_row BEFORE INSERT ON dbmail.settings
  FOR EACH ROW EXECUTE FUNCTION dbmail.replace_default_row();
CREATE TRIGGER replace_default_row BEFORE INSERT ON dbmail.system_state
  FOR EACH ROW EXECUTE FUNCTION dbmail.replace_default_row();

-- A promoted standby (PostgreSQL failover) was started long before it became the primary, so
-- pg_postmaster_start_time() does not say since when senders can reach it; its WAL timeline is new.
-- Notes the timeline in system_state (writing only when it changed; the first note, at install or
-- after a restore, counts as long ago) and returns since when the server writes on it, so that a claim
-- gives senders the same 30 seconds to come back as after a restart (sender_heartbeat notes it too).
CREATE FUNCTION dbmail.note_timeline() RETURNS timestamptz
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  current_timeline text := substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8);
  since timestamptz;
BEGIN
  UPDATE dbmail.system_state s
  SET timeline = current_timeline,
      timeline_since = CASE WHEN s.timeline IS NULL THEN '-infinity'::timestamptz ELSE now() END
  WHERE s.timeline IS DISTINCT FROM current_timeline;
  SELECT s.timeline_since INTO since FROM dbmail.system_state s;
  RETURN since;
END;
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(3, 'helpers', '623c6c3ea063906b2a00e128c0d3f1cb2239a322d45067d1ae9edc9729c10bc9');
