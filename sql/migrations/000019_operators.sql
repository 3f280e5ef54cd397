-- pg-dbmail 000019: operators (SQL Server Agent's sp_add_operator and friends, for admins): a person or a
-- team mailbox to notify. Each procedure is SECURITY DEFINER with a pinned search_path and asks
-- dbmail.require_admin first. Times are SQL Server's HHMMSS integers (dbmail.pager_time).

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(19, 'operators', 'views');

-- An operator's name: not blank, on one line, at most 128 characters (trimmed).
CREATE FUNCTION dbmail.check_operator_name(parameter text, operator_name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF operator_name IS NULL OR btrim(operator_name) = '' THEN
    PERFORM dbmail.raise_error('22004', parameter, operator_name, 'an operator needs a name');
  END IF;
  PERFORM dbmail.check_header_text(parameter, operator_name);
  IF length(btrim(operator_name)) > 128 THEN
    PERFORM dbmail.raise_error('22023', parameter, operator_name, 'is longer than 128 characters');
  END IF;
END;
$$;

-- A time of day as SQL Server Agent writes it: HHMMSS on a 24-hour clock, 0 to 235959 (the rule of the
-- domain dbmail.pager_time, checked here first for a message naming the parameter).
CREATE FUNCTION dbmail.check_pager_time(parameter text, value integer) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF value IS NULL THEN
    PERFORM dbmail.raise_error('22004', parameter, NULL, 'must be a time of day HHMMSS, from 000000 to 235959');
  ELSIF value NOT BETWEEN 0 AND 235959 THEN
    PERFORM dbmail.raise_error('22023', parameter, value::text,
      'must be a time of day HHMMSS, from 000000 to 235959');
  ELSIF value % 10000 >= 6000 THEN
    PERFORM dbmail.raise_error('22023', parameter, value::text, 'the minutes (MM of HHMMSS) must be from 00 to 59');
  ELSIF value % 100 >= 60 THEN
    PERFORM dbmail.raise_error('22023', parameter, value::text, 'the seconds (SS of HHMMSS) must be from 00 to 59');
  END IF;
END;
$$;

-- An operator's address list: NULL when empty; else every entry must be a valid address.
CREATE FUNCTION dbmail.check_operator_addresses(parameter text, value text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF value IS NOT NULL AND jsonb_array_length(dbmail.parse_address_list(parameter, value)) = 0 THEN
    PERFORM dbmail.raise_error('22023', parameter, value, 'no e-mail address given');
  END IF;
END;
$$;

-- Validates an operator as it will be stored (after an update's merge; the name is checked apart), so
-- add and update share one set of rules. Empty values have already become NULL.
CREATE FUNCTION dbmail.check_operator(
  enabled boolean, email_address text, pager_address text,
  weekday_pager_start_time integer, weekday_pager_end_time integer,
  saturday_pager_start_time integer, saturday_pager_end_time integer,
  sunday_pager_start_time integer, sunday_pager_end_time integer,
  pager_days integer, netsend_address text, category_name text
) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
  IF enabled IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'enabled', NULL, 'must be true or false');
  END IF;
  PERFORM dbmail.check_operator_addresses('email_address', email_address);
  PERFORM dbmail.check_operator_addresses('pager_address', pager_address);
  PERFORM dbmail.check_pager_time('weekday_pager_start_time', weekday_pager_start_time);
  PERFORM dbmail.check_pager_time('weekday_pager_end_time', weekday_pager_end_time);
  PERFORM dbmail.check_pager_time('saturday_pager_start_time', saturday_pager_start_time);
  PERFORM dbmail.check_pager_time('saturday_pager_end_time', saturday_pager_end_time);
  PERFORM dbmail.check_pager_time('sunday_pager_start_time', sunday_pager_start_time);
  PERFORM dbmail.check_pager_time('sunday_pager_end_time', sunday_pager_end_time);
  IF pager_days IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'pager_days', NULL,
      'must be from 0 to 127: add up 1 Sunday, 2 Monday, 4 Tuesday, 8 Wednesday, 16 Thursday, 32 Friday, 64 Saturday');
  ELSIF pager_days NOT BETWEEN 0 AND 127 THEN
    PERFORM dbmail.raise_error('22023', 'pager_days', pager_days::text,
      'must be from 0 to 127: add up 1 Sunday, 2 Monday, 4 Tuesday, 8 Wednesday, 16 Thursday, 32 Friday, 64 Saturday');
  END IF;
  PERFORM dbmail.check_header_text('netsend_address', netsend_address);
  IF length(netsend_address) > 100 THEN
    PERFORM dbmail.raise_error('22023', 'netsend_address', netsend_address, 'is longer than 100 characters');
  END IF;
  PERFORM dbmail.check_header_text('category_name', category_name);
  IF length(category_name) > 128 THEN
    PERFORM dbmail.raise_error('22023', 'category_name', category_name, 'is longer than 128 characters');
  END IF;
END;
$$;

-- Surrounding spaces are trimmed from names and addresses, and '' means NULL, as in SQL Server.
CREATE FUNCTION dbmail.sp_add_operator(
  name text DEFAULT NULL,
  enabled boolean DEFAULT true,
  email_address text DEFAULT NULL,
  pager_address text DEFAULT NULL,
  weekday_pager_start_time integer DEFAULT 90000,
  weekday_pager_end_time integer DEFAULT 180000,
  saturday_pager_start_time integer DEFAULT 90000,
  saturday_pager_end_time integer DEFAULT 180000,
  sunday_pager_start_time integer DEFAULT 90000,
  sunday_pager_end_time integer DEFAULT 180000,
  pager_days integer DEFAULT 0,
  netsend_address text DEFAULT NULL,
  category_name text DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  new_name text := btrim(sp_add_operator.name);
  new_email text := NULLIF(btrim(sp_add_operator.email_address), '');
  new_pager text := NULLIF(btrim(sp_add_operator.pager_address), '');
  new_netsend text := NULLIF(btrim(sp_add_operator.netsend_address), '');
  new_category text := NULLIF(btrim(sp_add_operator.category_name), '');
  new_id integer;
BEGIN
  PERFORM dbmail.check_operator_name('name', sp_add_operator.name);
  PERFORM dbmail.check_operator(sp_add_operator.enabled, new_email, new_pager,
    sp_add_operator.weekday_pager_start_time, sp_add_operator.weekday_pager_end_time,
    sp_add_operator.saturday_pager_start_time, sp_add_operator.saturday_pager_end_time,
    sp_add_operator.sunday_pager_start_time, sp_add_operator.sunday_pager_end_time,
    sp_add_operator.pager_days, new_netsend, new_category);
  IF EXISTS (SELECT FROM dbmail.operators o WHERE lower(o.name) = lower(new_name)) THEN
    PERFORM dbmail.raise_error('42710', 'name', sp_add_operator.name, 'an operator with this name exists');
  END IF;
  INSERT INTO dbmail.operators AS o (name, enabled, email_address, pager_address, weekday_pager_start_time,
    weekday_pager_end_time, saturday_pager_start_time, saturday_pager_end_time, sunday_pager_start_time,
    sunday_pager_end_time, pager_days, netsend_address, category_name, last_mod_user)
  VALUES (new_name, sp_add_operator.enabled, new_email, new_pager, sp_add_operator.weekday_pager_start_time,
    sp_add_operator.weekday_pager_end_time, sp_add_operator.saturday_pager_start_time,
    sp_add_operator.saturday_pager_end_time, sp_add_operator.sunday_pager_start_time,
    sp_add_operator.sunday_pager_end_time, sp_add_operator.pager_days, new_netsend, new_category,
    dbmail.caller_role())
  RETURNING o.operator_id INTO new_id;
  RETURN new_id;
END;
$$;

-- A NULL argument keeps the stored value; '' clears email_address, pager_address, netsend_address and
-- category_name. new_name renames.
CREATE FUNCTION dbmail.sp_update_operator(
  name text DEFAULT NULL,
  new_name text DEFAULT NULL,
  enabled boolean DEFAULT NULL,
  email_address text DEFAULT NULL,
  pager_address text DEFAULT NULL,
  weekday_pager_start_time integer DEFAULT NULL,
  weekday_pager_end_time integer DEFAULT NULL,
  saturday_pager_start_time integer DEFAULT NULL,
  saturday_pager_end_time integer DEFAULT NULL,
  sunday_pager_start_time integer DEFAULT NULL,
  sunday_pager_end_time integer DEFAULT NULL,
  pager_days integer DEFAULT NULL,
  netsend_address text DEFAULT NULL,
  category_name text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  target integer := dbmail.find_by_id_or_name('operator', NULL, sp_update_operator.name, true, NULL, 'name');
  stored dbmail.operators;
  merged_name text;
  merged_email text;
  merged_pager text;
  merged_netsend text;
  merged_category text;
  merged_pager_days integer;
BEGIN
  SELECT * INTO stored FROM dbmail.operators o WHERE o.operator_id = target FOR UPDATE;
  merged_name := stored.name;
  IF sp_update_operator.new_name IS NOT NULL THEN
    PERFORM dbmail.check_operator_name('new_name', sp_update_operator.new_name);
    merged_name := btrim(sp_update_operator.new_name);
    IF EXISTS (SELECT FROM dbmail.operators o WHERE lower(o.name) = lower(merged_name) AND o.operator_id <> target) THEN
      PERFORM dbmail.raise_error('42710', 'new_name', sp_update_operator.new_name, 'an operator with this name exists');
    END IF;
  END IF;
  merged_email := CASE WHEN sp_update_operator.email_address IS NULL THEN stored.email_address
                       ELSE NULLIF(btrim(sp_update_operator.email_address), '') END;
  merged_pager := CASE WHEN sp_update_operator.pager_address IS NULL THEN stored.pager_address
                       ELSE NULLIF(btrim(sp_update_operator.pager_address), '') END;
  merged_netsend := CASE WHEN sp_update_operator.netsend_address IS NULL THEN stored.netsend_address
                         ELSE NULLIF(btrim(sp_update_operator.netsend_address), '') END;
  merged_category := CASE WHEN sp_update_operator.category_name IS NULL THEN stored.category_name
                          ELSE NULLIF(btrim(sp_update_operator.category_name), '') END;
  merged_pager_days := COALESCE(sp_update_operator.pager_days, stored.pager_days);
  PERFORM dbmail.check_operator(COALESCE(sp_update_operator.enabled, stored.enabled), merged_email, merged_pager,
    COALESCE(sp_update_operator.weekday_pager_start_time, stored.weekday_pager_start_time),
    COALESCE(sp_update_operator.weekday_pager_end_time, stored.weekday_pager_end_time),
    COALESCE(sp_update_operator.saturday_pager_start_time, stored.saturday_pager_start_time),
    COALESCE(sp_update_operator.saturday_pager_end_time, stored.saturday_pager_end_time),
    COALESCE(sp_update_operator.sunday_pager_start_time, stored.sunday_pager_start_time),
    COALESCE(sp_update_operator.sunday_pager_end_time, stored.sunday_pager_end_time),
    merged_pager_days, merged_netsend, merged_category);
  UPDATE dbmail.operators o SET
    name = merged_name,
    enabled = COALESCE(sp_update_operator.enabled, o.enabled),
    email_address = merged_email,
    pager_address = merged_pager,
    weekday_pager_start_time = COALESCE(sp_update_operator.weekday_pager_start_time, o.weekday_pager_start_time),
    weekday_pager_end_time = COALESCE(sp_update_operator.weekday_pager_end_time, o.weekday_pager_end_time),
    saturday_pager_start_time = COALESCE(sp_update_operator.saturday_pager_start_time, o.saturday_pager_start_time),
    saturday_pager_end_time = COALESCE(sp_update_operator.saturday_pager_end_time, o.saturday_pager_end_time),
    sunday_pager_start_time = COALESCE(sp_update_operator.sunday_pager_start_time, o.sunday_pager_start_time),
    sunday_pager_end_time = COALESCE(sp_update_operator.sunday_pager_end_time, o.sunday_pager_end_time),
    pager_days = merged_pager_days,
    netsend_address = merged_netsend,
    category_name = merged_category,
    last_mod_date = now(),
    last_mod_user = dbmail.caller_role()
  WHERE o.operator_id = target;
END;
$$;

-- Deletes the operator, and the record of which pg_cron failures it was mailed about.
CREATE FUNCTION dbmail.sp_delete_operator(name text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  target integer := dbmail.find_by_id_or_name('operator', NULL, sp_delete_operator.name, true, NULL, 'name');
BEGIN
  DELETE FROM dbmail.operators o WHERE o.operator_id = target;
END;
$$;

-- Every operator (by name), or the one named. (SQL: PL/pgSQL cannot have a parameter and a result
-- column of the same name.)
CREATE FUNCTION dbmail.sp_help_operator(operator_name text DEFAULT NULL, operator_id integer DEFAULT NULL)
RETURNS TABLE (
  id integer, name text, enabled boolean, email_address text, pager_address text,
  weekday_pager_start_time integer, weekday_pager_end_time integer,
  saturday_pager_start_time integer, saturday_pager_end_time integer,
  sunday_pager_start_time integer, sunday_pager_end_time integer,
  pager_days smallint, netsend_address text, category_name text
)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT dbmail.require_admin();
  -- An unknown operator is an error, not an empty list.
  SELECT dbmail.find_by_id_or_name('operator', $2, $1, false, 'operator_id', 'operator_name');
  SELECT o.operator_id, o.name, o.enabled, o.email_address, o.pager_address, o.weekday_pager_start_time,
         o.weekday_pager_end_time, o.saturday_pager_start_time, o.saturday_pager_end_time,
         o.sunday_pager_start_time, o.sunday_pager_end_time, o.pager_days, o.netsend_address, o.category_name
  FROM dbmail.operators o
  WHERE ($1 IS NULL AND $2 IS NULL) OR o.operator_id = dbmail.find_by_id_or_name('operator', $2, $1, false, 'operator_id', 'operator_name')
  ORDER BY lower(o.name), o.operator_id;
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(19, 'operators', '369cb598ea1e876bb56073ac2520084c4333bcfa68ce208746b0ae1739388409');
