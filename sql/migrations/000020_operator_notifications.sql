-- pg-dbmail 000020: notifying operators. sp_notify_operator mails one as the caller (SQL Server Agent's);
-- notify_job_failures (Beyond) mails one about failed pg_cron job runs, each run once.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(20, 'operator_notifications', 'operators');

-- The e-mail address list of an operator that can be notified, for sp_notify_operator (which runs as the
-- caller and cannot read dbmail.operators). Raises SQL Server's 14601 and 14602 as 55000.
CREATE FUNCTION dbmail.operator_address(id integer, name text) RETURNS text
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  target integer := dbmail.find_by_id_or_name('operator', operator_address.id, operator_address.name, true, 'id', 'name');
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
  SELECT dbmail.require_admin();
  DELETE FROM dbmail.notified_job_runs n WHERE n.run_ended_at < now() - interval '30 days';
  SELECT o.operator_id, o.enabled, o.email_address FROM dbmail.operators o
  WHERE o.operator_id = dbmail.find_by_id_or_name('operator', NULL, $1, true, NULL, 'operator_name');
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
  SELECT dbmail.require_admin();
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

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(20, 'operator_notifications', 'b4dfba8dee459083805bec7872530c599028382d2ae0d4f40764821e46a3328c');
