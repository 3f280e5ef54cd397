-- pg-dbmail 000014: sending, the caller's side. dbmail.sp_send_dbmail, the public entry point, and the
-- functions it hands over to, which run as the caller and name it to the owner's side (000013): the usual
-- call to send_usual_mail (send_usual_as_caller), a call with a query to queue_mail after running the
-- query in the caller's session (send_with_query), any other call to queue_mail (send_as_caller).

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(14, 'entry_points', 'send');

-- sp_send_dbmail with a query: runs it (run_query), formats its result (format_query_result), and queues
-- the mail through queue_mail, which accepts a query and its result from this function only (it checks
-- its caller in the call stack). Runs as the caller, with search_path pinned for its own code; the query
-- gets caller_search_path, the caller's, which sp_send_dbmail passes.
CREATE FUNCTION dbmail.send_with_query(
  profile_name text, recipients text, copy_recipients text, blind_copy_recipients text, subject text,
  body text, body_format text, importance text, sensitivity text, file_attachments text, query text,
  execute_query_database text, attach_query_result_as_file boolean, query_attachment_filename text,
  query_result_header boolean, query_result_width integer, query_result_separator text,
  exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean,
  query_result_no_padding boolean, from_address text, reply_to text, attachments dbmail.attachment[],
  headers jsonb, send_at timestamptz, idempotency_key text, query_result_format text, caller_search_path text
) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  query_result text;
  failure text;
  failure_state text;
  result_table regclass;
  json_rows boolean;
  result_limit bigint;
BEGIN
  -- Refuse bad arguments before running anything.
  PERFORM dbmail.check_send_arguments(subject, body, COALESCE(body_format, 'TEXT'), importance,
    sensitivity, query, execute_query_database, attach_query_result_as_file, query_result_header,
    query_result_width, query_result_separator, exclude_query_output, append_query_error, query_no_truncate,
    query_result_no_padding, file_attachments, attachments, headers, idempotency_key, query_result_format);
  BEGIN
    SELECT q.relation, q.json_rows INTO result_table, json_rows FROM dbmail.run_query(query, caller_search_path) q;
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS failure = MESSAGE_TEXT, failure_state = RETURNED_SQLSTATE;
    IF NOT append_query_error THEN
      PERFORM dbmail.raise_error(failure_state, 'query', query, failure);
    END IF;
    -- append_query_error: send anyway, with the error in the body where an inline result would be.
    failure := 'Query failed: ' || failure;
    IF NOT attach_query_result_as_file THEN
      query_result := CASE WHEN upper(query_result_format) = 'HTML' THEN dbmail.html_escape(failure) ELSE failure END;
    ELSE
      body := CASE WHEN COALESCE(body, '') = '' THEN '' ELSE body || E'\n' END
              || CASE WHEN upper(COALESCE(body_format, 'TEXT')) = 'HTML' THEN dbmail.html_escape(failure) ELSE failure END;
    END IF;
  END;
  IF result_table IS NOT NULL THEN
    result_limit := dbmail.query_result_limit();
    query_result := dbmail.format_query_result(result_table, json_rows, query_result_format, query_result_header,
      query_result_width, query_result_separator, query_result_no_padding, query_no_truncate, result_limit);
    EXECUTE format('DROP TABLE %s', result_table);
    IF query_result IS NULL THEN
      PERFORM dbmail.raise_error('54000', 'query', query,
        format('the result is more than MaxFileSize (%s bytes)', result_limit));
    END IF;
  END IF;
  -- Who is calling: this function runs as the caller, and queue_mail sees in its call stack that it is
  -- the caller.
  RETURN dbmail.queue_mail(profile_name, recipients, copy_recipients, blind_copy_recipients, subject, body,
    body_format, importance, sensitivity, file_attachments, query, execute_query_database,
    attach_query_result_as_file, query_attachment_filename, query_result_header, query_result_width,
    query_result_separator, exclude_query_output, append_query_error, query_no_truncate,
    query_result_no_padding, from_address, reply_to, attachments, headers, send_at, idempotency_key,
    query_result_format, query_result, current_user);
END;
$$;

-- sp_send_dbmail without a query: queue_mail with the caller's current_user. It runs as the caller, pinned
-- to a search_path without dbmail, so its frame in queue_mail's call stack names it schema-qualified and
-- queue_mail can trust the name it passes (see sending_caller): a caller stamp would cost two statements.
-- (sp_send_dbmail itself cannot be that frame: it keeps the caller's search_path, under which its frame
-- may name it unqualified.)
CREATE FUNCTION dbmail.send_as_caller(
  profile_name text, recipients text, copy_recipients text, blind_copy_recipients text, subject text,
  body text, body_format text, importance text, sensitivity text, file_attachments text, query text,
  execute_query_database text, attach_query_result_as_file boolean, query_attachment_filename text,
  query_result_header boolean, query_result_width integer, query_result_separator text,
  exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean,
  query_result_no_padding boolean, from_address text, reply_to text, attachments dbmail.attachment[],
  headers jsonb, send_at timestamptz, idempotency_key text, query_result_format text
) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN dbmail.queue_mail(profile_name, recipients, copy_recipients, blind_copy_recipients, subject, body,
    body_format, importance, sensitivity, file_attachments, query, execute_query_database,
    attach_query_result_as_file, query_attachment_filename, query_result_header, query_result_width,
    query_result_separator, exclude_query_output, append_query_error, query_no_truncate,
    query_result_no_padding, from_address, reply_to, attachments, headers, send_at, idempotency_key,
    query_result_format, NULL, current_user);
END;
$$;

-- send_as_caller for the usual call (see sp_send_dbmail and send_usual_mail): the seven arguments that
-- can differ in it, and the caller's current_user, passed to send_usual_mail.
CREATE FUNCTION dbmail.send_usual_as_caller(
  recipients text, subject text, body text, body_format text, importance text, exclude_query_output boolean,
  append_query_error boolean
) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN dbmail.send_usual_mail(recipients, subject, body, body_format, importance, exclude_query_output,
    append_query_error, current_user);
END;
$$;

-- The public entry point. It runs with the caller's rights (SECURITY INVOKER). The usual call goes to
-- send_usual_as_caller with the arguments that can differ in it: no profile named, recipients alone, no
-- query, attachment, header, send_at or key, TEXT or HTML, any importance, and the query options as
-- their defaults (exclude_query_output and append_query_error either way: SQL Server scripts often set
-- them). The five values concatenated equal one of the strings listed only when each is the one listed:
-- a value with a '|' in it would add a field. Other calls without a query go to send_as_caller, which
-- tells queue_mail who is calling; with a query, to send_with_query, passing the caller's search_path for
-- the query (no search_path is pinned here, so current_setting reads the caller's; every name below is
-- qualified). Not LANGUAGE sql: PostgreSQL would inline it, and parse its text again to plan each
-- unprepared call.
CREATE FUNCTION dbmail.sp_send_dbmail(
  profile_name text DEFAULT NULL,
  recipients text DEFAULT NULL,
  copy_recipients text DEFAULT NULL,
  blind_copy_recipients text DEFAULT NULL,
  subject text DEFAULT NULL,
  body text DEFAULT NULL,
  body_format text DEFAULT 'TEXT',
  importance text DEFAULT 'NORMAL',
  sensitivity text DEFAULT 'NORMAL',
  file_attachments text DEFAULT NULL,
  query text DEFAULT NULL,
  execute_query_database text DEFAULT NULL,
  attach_query_result_as_file boolean DEFAULT false,
  query_attachment_filename text DEFAULT NULL,
  query_result_header boolean DEFAULT true,
  query_result_width integer DEFAULT 256,
  query_result_separator text DEFAULT ' ',
  exclude_query_output boolean DEFAULT false,
  append_query_error boolean DEFAULT false,
  query_no_truncate boolean DEFAULT false,
  query_result_no_padding boolean DEFAULT false,
  from_address text DEFAULT NULL,
  reply_to text DEFAULT NULL,
  attachments dbmail.attachment[] DEFAULT NULL,
  headers jsonb DEFAULT NULL,
  send_at timestamptz DEFAULT NULL,
  idempotency_key text DEFAULT NULL,
  query_result_format text DEFAULT 'TEXT'
) RETURNS bigint
LANGUAGE plpgsql
AS $$
BEGIN
  IF COALESCE(pg_catalog.num_nonnulls(profile_name, copy_recipients, blind_copy_recipients, file_attachments, query,
      execute_query_database, from_address, reply_to, attachments, headers, send_at, idempotency_key)
      OPERATOR(pg_catalog.=) 0
    AND pg_catalog.concat(body_format, '|', importance, '|', sensitivity, '|', query_result_format, '|',
      query_result_separator) OPERATOR(pg_catalog.=) ANY (ARRAY['TEXT|NORMAL|NORMAL|TEXT| ',
      'TEXT|LOW|NORMAL|TEXT| ', 'TEXT|HIGH|NORMAL|TEXT| ', 'HTML|NORMAL|NORMAL|TEXT| ', 'HTML|LOW|NORMAL|TEXT| ',
      'HTML|HIGH|NORMAL|TEXT| '])
    AND query_result_width OPERATOR(pg_catalog.=) 256 AND NOT attach_query_result_as_file AND query_result_header
    AND NOT query_no_truncate AND NOT query_result_no_padding AND exclude_query_output IS NOT NULL
    AND append_query_error IS NOT NULL, false) THEN
    RETURN dbmail.send_usual_as_caller(recipients, subject, body, body_format, importance, exclude_query_output,
      append_query_error);
  END IF;
  IF query IS NULL THEN
    RETURN dbmail.send_as_caller(profile_name, recipients, copy_recipients, blind_copy_recipients, subject, body,
      body_format, importance, sensitivity, file_attachments, query, execute_query_database,
      attach_query_result_as_file, query_attachment_filename, query_result_header, query_result_width,
      query_result_separator, exclude_query_output, append_query_error, query_no_truncate,
      query_result_no_padding, from_address, reply_to, attachments, headers, send_at, idempotency_key,
      query_result_format);
  END IF;
  RETURN dbmail.send_with_query(profile_name, recipients, copy_recipients, blind_copy_recipients, subject, body,
    body_format, importance, sensitivity, file_attachments, query, execute_query_database,
    attach_query_result_as_file, query_attachment_filename, query_result_header, query_result_width,
    query_result_separator, exclude_query_output, append_query_error, query_no_truncate,
    query_result_no_padding, from_address, reply_to, attachments, headers, send_at, idempotency_key,
    query_result_format, pg_catalog.current_setting('search_path'));
END;
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(14, 'entry_points', '853a362e4c615b93eea833e89d331118cba8e4ac292fe09a07ee4ce9a2c27778');
