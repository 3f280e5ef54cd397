-- pg-dbmail 000008: operators and SQL Server Agent-style notifications. An operator is a person or a
-- team mailbox to notify (SQL Server Agent's sp_add_operator and friends, for admins); sp_notify_operator
-- mails one as the caller; notify_job_failures (Beyond) mails one about failed pg_cron job runs.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(8, 'operators', 'content');

-- Names are unique ignoring case, as profiles and accounts are. Times are SQL Server's HHMMSS integers
-- on a 24-hour clock (090000 = 9:00). pager_days is a bitmask: 1 Sunday, 2 Monday, 4 Tuesday,
-- 8 Wednesday, 16 Thursday, 32 Friday, 64 Saturday. Nothing pages or sends net send messages here: the
-- pager and net send columns are kept for scripts written for SQL Server, and for a future pager.
CREATE TABLE dbmail.operators (
  operator_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  -- A ';' list, like sp_send_dbmail's recipients.
  email_address text,
  pager_address text,
  weekday_pager_start_time integer NOT NULL DEFAULT 90000,
  weekday_pager_end_time integer NOT NULL DEFAULT 180000,
  saturday_pager_start_time integer NOT NULL DEFAULT 90000,
  saturday_pager_end_time integer NOT NULL DEFAULT 180000,
  sunday_pager_start_time integer NOT NULL DEFAULT 90000,
  sunday_pager_end_time integer NOT NULL DEFAULT 180000,
  pager_days smallint NOT NULL DEFAULT 0 CHECK (pager_days BETWEEN 0 AND 127),
  netsend_address text,
  category_name text,
  last_mod_date timestamptz NOT NULL DEFAULT now(),
  last_mod_user name NOT NULL DEFAULT current_user,
  CHECK (weekday_pager_start_time BETWEEN 0 AND 235959 AND weekday_pager_start_time % 10000 < 6000
         AND weekday_pager_start_time % 100 < 60),
  CHECK (weekday_pager_end_time BETWEEN 0 AND 235959 AND weekday_pager_end_time % 10000 < 6000
         AND weekday_pager_end_time % 100 < 60),
  CHECK (saturday_pager_start_time BETWEEN 0 AND 235959 AND saturday_pager_start_time % 10000 < 6000
         AND saturday_pager_start_time % 100 < 60),
  CHECK (saturday_pager_end_time BETWEEN 0 AND 235959 AND saturday_pager_end_time % 10000 < 6000
         AND saturday_pager_end_time % 100 < 60),
  CHECK (sunday_pager_start_time BETWEEN 0 AND 235959 AND sunday_pager_start_time % 10000 < 6000
         AND sunday_pager_start_time % 100 < 60),
  CHECK (sunday_pager_end_time BETWEEN 0 AND 235959 AND sunday_pager_end_time % 10000 < 6000
         AND sunday_pager_end_time % 100 < 60)
);
CREATE UNIQUE INDEX operators_name_key ON dbmail.operators (lower(name));

-- The pg_cron job runs each operator was mailed about by notify_job_failures, so none is mailed twice.
-- Rows older than notify_job_failures' longest look-back (30 days) are deleted as it runs.
CREATE TABLE dbmail.notified_job_runs (
  operator_id integer NOT NULL REFERENCES dbmail.operators ON DELETE CASCADE,
  runid bigint NOT NULL,
  jobid bigint,
  run_ended_at timestamptz NOT NULL,
  notified_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (operator_id, runid)
);
CREATE INDEX notified_job_runs_ended_idx ON dbmail.notified_job_runs (run_ended_at);

-- Finds an operator by id or name (names ignore case and surrounding spaces; both given: they must
-- agree). The parameter names are those of the calling procedure, for its messages; id_parameter NULL
-- means the procedure has only a name parameter.
CREATE FUNCTION dbmail.find_operator(
  operator_id integer, operator_name text, id_parameter text, name_parameter text, required boolean DEFAULT true
) RETURNS integer
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  by_name integer;
BEGIN
  IF operator_id IS NULL AND operator_name IS NULL THEN
    IF required THEN
      IF id_parameter IS NULL THEN
        PERFORM dbmail.raise_error('22004', name_parameter, NULL, 'give the operator''s name');
      END IF;
      PERFORM dbmail.raise_error('22004', format('%s, %s', id_parameter, name_parameter), NULL,
        'give the operator''s id or name');
    END IF;
    RETURN NULL;
  END IF;
  IF btrim(operator_name) = '' THEN
    PERFORM dbmail.raise_error('22004', name_parameter, operator_name, 'a blank name names no operator');
  END IF;
  IF operator_name IS NOT NULL THEN
    SELECT o.operator_id INTO by_name FROM dbmail.operators o WHERE lower(o.name) = lower(btrim(operator_name));
    IF by_name IS NULL THEN
      PERFORM dbmail.raise_error('42704', name_parameter, operator_name, 'no such operator');
    END IF;
    IF operator_id IS NOT NULL AND operator_id <> by_name THEN
      PERFORM dbmail.raise_error('22023', name_parameter, operator_name,
        format('is operator %s, not %s %s', by_name, id_parameter, operator_id));
    END IF;
    RETURN by_name;
  END IF;
  IF NOT EXISTS (SELECT FROM dbmail.operators o WHERE o.operator_id = find_operator.operator_id) THEN
    PERFORM dbmail.raise_error('42704', id_parameter, operator_id::text, 'no such operator');
  END IF;
  RETURN operator_id;
END;
$$;

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

-- A time of day as SQL Server Agent writes it: HHMMSS on a 24-hour clock, 0 to 235959.
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
  target integer := dbmail.find_operator(NULL, sp_update_operator.name, NULL, 'name');
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
  target integer := dbmail.find_operator(NULL, sp_delete_operator.name, NULL, 'name');
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
  -- An unknown operator is an error, not an empty list.
  SELECT dbmail.find_operator($2, $1, 'operator_id', 'operator_name', false);
  SELECT o.operator_id, o.name, o.enabled, o.email_address, o.pager_address, o.weekday_pager_start_time,
         o.weekday_pager_end_time, o.saturday_pager_start_time, o.saturday_pager_end_time,
         o.sunday_pager_start_time, o.sunday_pager_end_time, o.pager_days, o.netsend_address, o.category_name
  FROM dbmail.operators o
  WHERE ($1 IS NULL AND $2 IS NULL) OR o.operator_id = dbmail.find_operator($2, $1, 'operator_id', 'operator_name', false)
  ORDER BY lower(o.name), o.operator_id;
$$;

-- The e-mail address list of an operator that can be notified, for sp_notify_operator (which runs as the
-- caller and cannot read dbmail.operators). Raises SQL Server's 14601 and 14602 as 55000.
CREATE FUNCTION dbmail.operator_address(id integer, name text) RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  target integer := dbmail.find_operator(operator_address.id, operator_address.name, 'id', 'name');
  parameter text := CASE WHEN operator_address.name IS NOT NULL THEN 'name' ELSE 'id' END;
  shown text := COALESCE(operator_address.name, operator_address.id::text);
  op dbmail.operators;
BEGIN
  SELECT * INTO op FROM dbmail.operators o WHERE o.operator_id = target;
  IF NOT op.enabled THEN
    PERFORM dbmail.raise_error('55000', parameter, shown,
      'operator is not enabled and therefore cannot receive notifications');
  END IF;
  IF op.email_address IS NULL THEN
    PERFORM dbmail.raise_error('55000', parameter, shown,
      'operator has no e-mail address (an admin can set one with sp_update_operator)');
  END IF;
  RETURN op.email_address;
END;
$$;

-- SQL Server's sp_notify_operator without @mail_database (there is one mail schema per database): mails
-- the operator's e-mail address through sp_send_dbmail. It runs as the caller (SECURITY INVOKER), so the
-- item is recorded as sent by the caller and the caller's profile rights and default apply. The
-- search_path is pinned because nothing here runs the caller's SQL.
CREATE FUNCTION dbmail.sp_notify_operator(
  profile_name text DEFAULT NULL,
  id integer DEFAULT NULL,
  name text DEFAULT NULL,
  subject text DEFAULT NULL,
  body text DEFAULT NULL,
  file_attachments text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- As in SQL Server: names and paths are trimmed, and '' means NULL.
  RETURN dbmail.sp_send_dbmail(
    profile_name => NULLIF(btrim(sp_notify_operator.profile_name), ''),
    recipients => dbmail.operator_address(sp_notify_operator.id, NULLIF(btrim(sp_notify_operator.name), '')),
    subject => sp_notify_operator.subject,
    body => sp_notify_operator.body,
    file_attachments => NULLIF(btrim(sp_notify_operator.file_attachments), ''));
END;
$$;

-- For notify_job_failures, which runs as the caller: the operator, by name. Also forgets notified runs
-- that ended more than 30 days ago (notify_job_failures never looks further back).
CREATE FUNCTION dbmail.job_failure_operator(operator_name text)
RETURNS TABLE (operator_id integer, enabled boolean, email_address text)
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  DELETE FROM dbmail.notified_job_runs n WHERE n.run_ended_at < now() - interval '30 days';
  SELECT o.operator_id, o.enabled, o.email_address FROM dbmail.operators o
  WHERE o.operator_id = dbmail.find_operator(NULL, $1, NULL, 'operator_name');
$$;

-- Records that the operator is being mailed about a pg_cron job run. True if it was not yet: the caller
-- then sends the mail, in the same transaction. A concurrent call for the same run waits here and gets
-- false once the first commits.
CREATE FUNCTION dbmail.claim_job_failure(operator_id integer, runid bigint, jobid bigint, run_ended_at timestamptz)
RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  WITH claimed AS (
    INSERT INTO dbmail.notified_job_runs (operator_id, runid, jobid, run_ended_at)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT ON CONSTRAINT notified_job_runs_pkey DO NOTHING
    RETURNING 1
  )
  SELECT EXISTS (SELECT FROM claimed);
$$;

-- Beyond SQL Server (whose Agent mails an operator when a job fails): mails the operator once for each
-- pg_cron job run that failed and ended within `since`, and returns how many mails it queued. Schedule it
-- with pg_cron itself:
--   SELECT cron.schedule('dbmail-job-failures', '*/5 * * * *', $$SELECT dbmail.notify_job_failures('dba')$$);
-- It runs as the caller (SECURITY INVOKER): the mail is sent by the caller, with its profiles, and it
-- reads only the job runs pg_cron shows the caller (all of them to a superuser, else the caller's own).
CREATE FUNCTION dbmail.notify_job_failures(
  operator_name text DEFAULT NULL,
  profile_name text DEFAULT NULL,
  since interval DEFAULT interval '1 hour'
) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  op record;
  run record;
  job_label text;
  queued integer := 0;
BEGIN
  IF since IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'since', NULL, 'give how far back to look, e.g. interval ''1 hour''');
  ELSIF since <= interval '0' OR since > interval '30 days' THEN
    PERFORM dbmail.raise_error('22023', 'since', since::text, 'must be more than 0 and at most 30 days');
  END IF;
  -- Looked up in the catalog: to_regclass would raise on a schema cron the caller may not use.
  IF NOT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'cron' AND c.relname = 'job_run_details')
     OR NOT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = 'cron' AND c.relname = 'job') THEN
    PERFORM dbmail.raise_error('55000', 'operator_name', operator_name,
      'pg_cron is not installed in this database (CREATE EXTENSION pg_cron, in the database named by cron.database_name)');
  END IF;
  IF NOT has_schema_privilege('cron', 'USAGE') THEN
    PERFORM dbmail.raise_error('42501', 'caller', current_user::text,
      'may not use schema cron, so cannot read pg_cron''s job runs (GRANT USAGE ON SCHEMA cron, or run this as a superuser)');
  END IF;
  IF NOT has_table_privilege('cron.job_run_details', 'SELECT') OR NOT has_table_privilege('cron.job', 'SELECT') THEN
    PERFORM dbmail.raise_error('42501', 'caller', current_user::text,
      'may not read cron.job_run_details and cron.job (GRANT SELECT on them, or run this as a superuser)');
  END IF;

  SELECT * INTO op FROM dbmail.job_failure_operator(operator_name);
  IF NOT op.enabled THEN
    -- A disabled operator is not notified, as in SQL Server Agent; this is not an error, so a scheduled
    -- call does not fail (and become a failed job run itself) while the operator is away.
    RAISE NOTICE '%', format('operator_name: %s: operator is not enabled; no job failures were mailed',
      dbmail.show_value(operator_name));
    RETURN 0;
  END IF;
  IF op.email_address IS NULL THEN
    PERFORM dbmail.raise_error('55000', 'operator_name', operator_name,
      'operator has no e-mail address (an admin can set one with sp_update_operator)');
  END IF;

  FOR run IN
    SELECT d.runid, d.jobid, j.jobname, d.database, d.username, d.command, d.return_message, d.start_time,
           COALESCE(d.end_time, d.start_time) AS ended
    FROM cron.job_run_details d
    LEFT JOIN cron.job j ON j.jobid = d.jobid
    WHERE d.status = 'failed' AND COALESCE(d.end_time, d.start_time) >= now() - since
    ORDER BY COALESCE(d.end_time, d.start_time), d.runid
  LOOP
    CONTINUE WHEN NOT dbmail.claim_job_failure(op.operator_id, run.runid, run.jobid, run.ended);
    -- The job's name on one line (it goes into the subject), else its id.
    job_label := left(regexp_replace(COALESCE(NULLIF(btrim(run.jobname), ''), run.jobid::text),
                                     '[\x01-\x1f\x7f]+', ' ', 'g'), 200);
    PERFORM dbmail.sp_send_dbmail(
      profile_name => profile_name,
      recipients => op.email_address,
      subject => format('pg_cron job %s failed', job_label),
      body => format(E'pg_cron job %s failed.\n\n'
                     'Job id:   %s\nRun id:   %s\nDatabase: %s\nUser:     %s\nStarted:  %s\nEnded:    %s\n\n'
                     'Command:\n%s\n\nMessage:\n%s\n\n'
                     '(Sent by dbmail.notify_job_failures in database %s.)\n',
                     job_label, run.jobid, run.runid, run.database, run.username, run.start_time, run.ended,
                     run.command, COALESCE(run.return_message, '(none)'), current_database()));
    queued := queued + 1;
  END LOOP;
  RETURN queued;
END;
$$;

-- Privileges of what this file added (000006 has the rest). Tables stay private.
REVOKE ALL ON ALL TABLES IN SCHEMA dbmail FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA dbmail FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA dbmail FROM PUBLIC;

-- dbmail_user: notify an operator (SQL Server grants sp_notify_operator to the SQLAgent*Role roles).
-- operator_address is its SECURITY DEFINER half: it returns only the address of an operator that can be
-- notified, which the caller would see in its own mail item anyway.
GRANT EXECUTE ON FUNCTION
  dbmail.sp_notify_operator(text, integer, text, text, text, text),
  dbmail.operator_address(integer, text)
TO dbmail_user;

-- dbmail_admin: manage operators (sysadmin in SQL Server), and mail them pg_cron failures.
GRANT EXECUTE ON FUNCTION
  dbmail.sp_add_operator(text, boolean, text, text, integer, integer, integer, integer, integer, integer, integer,
    text, text),
  dbmail.sp_update_operator(text, text, boolean, text, text, integer, integer, integer, integer, integer, integer,
    integer, text, text),
  dbmail.sp_delete_operator(text),
  dbmail.sp_help_operator(text, integer),
  dbmail.notify_job_failures(text, text, interval),
  dbmail.job_failure_operator(text),
  dbmail.claim_job_failure(integer, bigint, bigint, timestamptz)
TO dbmail_admin;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(8, 'operators', '480482a7463b014f62028a143089633ce686c8e68c47500b478dff5a811649ce');
