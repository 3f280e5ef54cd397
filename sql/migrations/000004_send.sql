-- pg-dbmail 000004: sending. dbmail.sp_send_dbmail validates a message, resolves the profile, and queues
-- it in the caller's transaction with a NOTIFY on dbmail_queue. Also the queue controls (start, stop,
-- status, queue) and the clean-up procedures.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(4, 'send', 'configuration');

-- An in-memory attachment: SELECT dbmail.sp_send_dbmail(..., attachments => ARRAY[
--   dbmail.attachment('report.csv', convert_to(csv, 'UTF8'), 'text/csv')])
CREATE TYPE dbmail.attachment AS (filename text, content bytea, content_type text);

CREATE FUNCTION dbmail.attachment(filename text, content bytea, content_type text DEFAULT NULL)
RETURNS dbmail.attachment
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT ROW(filename, content, content_type)::dbmail.attachment;
$$;

-- The profile a message is sent with. Named: it must exist and the role must be allowed to use it (an
-- admin, or a grant to public, to the role, or to a role it is a member of). Not named: the role's own
-- default, else a default granted to one of its roles, else the public default. The role's memberships
-- are walked in pg_auth_members rather than with pg_has_role, which counts a superuser as a member of
-- every role (a superuser is not a member of every role's default profile).
CREATE FUNCTION dbmail.resolve_profile(sender name, profile_name text) RETURNS integer
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  named integer;
  chosen integer;
  sender_oid oid := to_regrole(quote_ident(sender));
BEGIN
  IF profile_name IS NOT NULL THEN
    SELECT p.profile_id INTO named FROM dbmail.profiles p WHERE lower(p.name) = lower(btrim(profile_name));
    IF named IS NULL THEN
      PERFORM dbmail.raise_error('42704', 'profile_name', profile_name, 'no such profile');
    END IF;
    IF dbmail.is_admin(sender) THEN
      RETURN named;
    END IF;
  END IF;
  -- One statement (each costs as much as the rest of the function): the named profile if one of the
  -- role's grants covers it, else the best of its defaults.
  WITH RECURSIVE belongs(roleid) AS (
    SELECT m.roleid FROM pg_auth_members m WHERE m.member = sender_oid
    UNION
    SELECT m.roleid FROM pg_auth_members m JOIN belongs b ON m.member = b.roleid)
  SELECT pp.profile_id INTO chosen
  FROM dbmail.principal_profiles pp
  WHERE (pp.profile_id = named OR (named IS NULL AND pp.is_default))
    AND (pp.principal_id IN (0, sender_oid) OR pp.principal_id IN (SELECT b.roleid FROM belongs b))
  ORDER BY pp.principal_id = sender_oid DESC, pp.principal_id = 0, pp.profile_id
  LIMIT 1;
  IF chosen IS NULL AND named IS NOT NULL THEN
    PERFORM dbmail.raise_error('42501', 'profile_name', profile_name,
      format('role %s may not use this profile (an admin can grant it with sysmail_add_principalprofile_sp)',
             sender));
  ELSIF chosen IS NULL THEN
    PERFORM dbmail.raise_error('55000', 'profile_name', NULL,
      format('no default profile is configured for role %s; name a profile, or have an admin set a default '
             '(sysmail_add_principalprofile_sp with is_default => true)', sender));
  END IF;
  RETURN chosen;
END;
$$;

-- Extra headers: a JSON object of string values. Names are RFC 5322 field names; values have no line
-- breaks; the headers the message is built from (addresses, subject, date, ids, MIME, priority) cannot be
-- overridden.
CREATE FUNCTION dbmail.check_headers(headers jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  field record;
BEGIN
  IF headers IS NULL THEN
    RETURN;
  END IF;
  IF jsonb_typeof(headers) <> 'object' THEN
    PERFORM dbmail.raise_error('22023', 'headers', headers::text, 'must be a JSON object {"X-Name": "value"}');
  END IF;
  FOR field IN SELECT * FROM jsonb_each(headers) LOOP
    IF field.key !~ '^[\x21-\x39\x3b-\x7e]{1,76}$' THEN
      PERFORM dbmail.raise_error('22023', 'headers', field.key,
        'not a valid header name (printable ASCII without spaces or colons, at most 76 characters)');
    END IF;
    IF lower(field.key) IN ('from', 'to', 'cc', 'bcc', 'subject', 'date', 'message-id', 'reply-to', 'sender',
                            'return-path', 'mime-version', 'importance', 'priority', 'x-priority',
                            'x-msmail-priority', 'sensitivity')
       OR lower(field.key) LIKE 'content-%' OR lower(field.key) LIKE 'x-dbmail-%' THEN
      PERFORM dbmail.raise_error('22023', 'headers', field.key,
        'this header is set by Database Mail and cannot be overridden');
    END IF;
    IF jsonb_typeof(field.value) <> 'string' THEN
      PERFORM dbmail.raise_error('22023', 'headers', field.key || ': ' || field.value::text,
        'header values must be JSON strings');
    END IF;
    PERFORM dbmail.check_header_text('headers', field.key || ': ' || (field.value #>> '{}'));
    IF length(field.value #>> '{}') > 998 THEN
      PERFORM dbmail.raise_error('22023', 'headers', field.key, 'the value is longer than 998 characters');
    END IF;
  END LOOP;
END;
$$;

-- Checks every argument that does not need the database; raises on the first bad one. Granted to
-- dbmail_user: sp_send_dbmail checks the arguments before it runs a query.
CREATE FUNCTION dbmail.check_send_arguments(
  subject text, body text, body_format text, importance text, sensitivity text, query text,
  execute_query_database text, attach_query_result_as_file boolean, query_result_header boolean,
  query_result_width integer, query_result_separator text, exclude_query_output boolean,
  append_query_error boolean, query_no_truncate boolean, query_result_no_padding boolean,
  file_attachments text, attachments dbmail.attachment[], headers jsonb, idempotency_key text,
  query_result_format text
) RETURNS void
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF importance IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'importance', NULL, 'must be LOW, NORMAL or HIGH');
  ELSIF sensitivity IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'sensitivity', NULL, 'must be NORMAL, PERSONAL, PRIVATE or CONFIDENTIAL');
  ELSIF query_result_format IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'query_result_format', NULL, 'must be TEXT, CSV, HTML or JSON');
  ELSIF query_result_width IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'query_result_width', NULL, 'must be from 10 to 32767');
  ELSIF query_result_separator IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'query_result_separator', NULL, 'must be exactly one character');
  END IF;
  IF upper(btrim(body_format)) NOT IN ('TEXT', 'HTML') THEN
    PERFORM dbmail.raise_error('22023', 'body_format', body_format, 'must be TEXT or HTML');
  END IF;
  IF upper(btrim(importance)) NOT IN ('LOW', 'NORMAL', 'HIGH') THEN
    PERFORM dbmail.raise_error('22023', 'importance', importance, 'must be LOW, NORMAL or HIGH');
  END IF;
  IF upper(btrim(sensitivity)) NOT IN ('NORMAL', 'PERSONAL', 'PRIVATE', 'CONFIDENTIAL') THEN
    PERFORM dbmail.raise_error('22023', 'sensitivity', sensitivity,
      'must be NORMAL, PERSONAL, PRIVATE or CONFIDENTIAL');
  END IF;
  IF attach_query_result_as_file IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'attach_query_result_as_file', NULL, 'must be true or false');
  ELSIF query_result_header IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'query_result_header', NULL, 'must be true or false');
  ELSIF exclude_query_output IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'exclude_query_output', NULL, 'must be true or false');
  ELSIF append_query_error IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'append_query_error', NULL, 'must be true or false');
  ELSIF query_no_truncate IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'query_no_truncate', NULL, 'must be true or false');
  ELSIF query_result_no_padding IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'query_result_no_padding', NULL, 'must be true or false');
  END IF;
  IF query_result_width NOT BETWEEN 10 AND 32767 THEN
    PERFORM dbmail.raise_error('22023', 'query_result_width', query_result_width::text,
      'must be from 10 to 32767');
  END IF;
  IF length(query_result_separator) <> 1 THEN
    PERFORM dbmail.raise_error('22023', 'query_result_separator', query_result_separator,
      'must be exactly one character');
  END IF;
  IF query_result_no_padding AND query_no_truncate THEN
    PERFORM dbmail.raise_error('22023', 'query_result_no_padding', 'true',
      'query_result_no_padding and query_no_truncate cannot both be true');
  END IF;
  IF upper(btrim(query_result_format)) NOT IN ('TEXT', 'CSV', 'HTML', 'JSON') THEN
    PERFORM dbmail.raise_error('22023', 'query_result_format', query_result_format,
      'must be TEXT, CSV, HTML or JSON');
  END IF;
  IF attach_query_result_as_file AND query IS NULL THEN
    PERFORM dbmail.raise_error('22023', 'attach_query_result_as_file', 'true', 'needs a query');
  END IF;
  IF execute_query_database IS NOT NULL AND execute_query_database <> current_database() THEN
    PERFORM dbmail.raise_error('22023', 'execute_query_database', execute_query_database,
      format('queries run in the current database (%s); connect to the other database to query it',
             current_database()));
  END IF;
  PERFORM dbmail.check_header_text('subject', subject);
  IF length(subject) > 998 THEN
    PERFORM dbmail.raise_error('22023', 'subject', subject, 'is longer than 998 characters');
  END IF;
  IF NULLIF(body, '') IS NULL AND NULLIF(query, '') IS NULL AND NULLIF(file_attachments, '') IS NULL
     AND COALESCE(cardinality(attachments), 0) = 0 AND NULLIF(subject, '') IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'body, query, file_attachments, attachments, subject', NULL,
      'a message needs at least one of these');
  END IF;
  PERFORM dbmail.check_headers(headers);
  IF idempotency_key IS NOT NULL AND (btrim(idempotency_key) = '' OR length(idempotency_key) > 255) THEN
    PERFORM dbmail.raise_error('22023', 'idempotency_key', idempotency_key,
      'must be 1 to 255 characters, not blank');
  END IF;
END;
$$;

-- The Message-ID every attempt carries: unique per item and installation, with the sending domain (of
-- from_address, else of the profile's first account).
CREATE FUNCTION dbmail.message_id_for(mailitem_id bigint, profile_id integer, from_address jsonb) RETURNS text
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  domain text := dbmail.address_domain(from_address ->> 'address');
  installation text;
BEGIN
  IF domain IS NULL THEN
    SELECT dbmail.address_domain(a.email_address) INTO domain
    FROM dbmail.profile_accounts pa JOIN dbmail.accounts a ON a.account_id = pa.account_id
    WHERE pa.profile_id = message_id_for.profile_id
    ORDER BY pa.sequence_number, pa.account_id
    LIMIT 1;
  END IF;
  SELECT replace(s.installation_id::text, '-', '') INTO installation FROM dbmail.system_state s;
  RETURN '<dbmail.' || mailitem_id || '.' || installation || '@' || COALESCE(domain, 'localhost') || '>';
END;
$$;

-- Validates and queues one message, with its attachments and its query result (formatted by
-- sp_send_dbmail in the caller's session), on behalf of the role that called sp_send_dbmail (its stamp).
-- SECURITY DEFINER because the tables are private; sp_send_dbmail, which runs as the caller, is the
-- public entry point.
CREATE FUNCTION dbmail.queue_mail(
  profile_name text, recipients text, copy_recipients text, blind_copy_recipients text, subject text,
  body text, body_format text, importance text, sensitivity text, file_attachments text, query text,
  execute_query_database text, attach_query_result_as_file boolean, query_attachment_filename text,
  query_result_header boolean, query_result_width integer, query_result_separator text,
  exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean,
  query_result_no_padding boolean, from_address text, reply_to text, attachments dbmail.attachment[],
  headers jsonb, send_at timestamptz, idempotency_key text, query_result_format text, query_result text
) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- Every statement here (and in the helpers it calls) looks rows up by key, so a generic plan is as good
-- as a custom one; without this PostgreSQL re-plans several of them on every call (a quarter of the cost).
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
  sender name := dbmail.take_caller_stamp('sp_send_dbmail');
  envelope jsonb;
  parsed_from jsonb;
  the_profile integer;
  new_id bigint;
  next_id bigint;
  files dbmail.attachment[] := '{}';
  result_bytes bytea;
  attached dbmail.attachment;
  format_name text := upper(btrim(query_result_format));
  -- The denial-of-service limits (0 = unlimited). A replay of an idempotency_key queues nothing, so it
  -- is not limited: it returns the item already queued.
  replay boolean;
  max_recipients bigint;
  max_size bigint;
  max_per_day bigint;
  recipient_count bigint := 0;
  mail_size bigint := 0;
  recent bigint;
BEGIN
  -- Every lookup below is a statement of its own, and each costs as much as the checks around it: they
  -- are as few as the work allows (the three limits in one statement, the replay probe only with a key).
  replay := false;
  IF idempotency_key IS NOT NULL THEN
    replay := EXISTS (SELECT FROM dbmail.mailitems m
                      WHERE m.send_request_user = sender AND m.idempotency_key = queue_mail.idempotency_key);
  END IF;
  SELECT max(s.paramvalue) FILTER (WHERE s.paramname = 'MaxRecipientsPerMail')::bigint,
         max(s.paramvalue) FILTER (WHERE s.paramname = 'MaxMailSize')::bigint,
         max(s.paramvalue) FILTER (WHERE s.paramname = 'MaxMailsPerUserPerDay')::bigint
  INTO max_recipients, max_size, max_per_day
  FROM dbmail.settings s
  WHERE s.paramname IN ('MaxRecipientsPerMail', 'MaxMailSize', 'MaxMailsPerUserPerDay');
  IF replay THEN
    max_recipients := 0;
    max_size := 0;
  END IF;
  IF replay OR dbmail.is_admin(sender) THEN
    max_per_day := 0;
  END IF;
  PERFORM dbmail.check_send_arguments(subject, body, COALESCE(body_format, 'TEXT'), importance, sensitivity,
    query, execute_query_database, attach_query_result_as_file, query_result_header, query_result_width,
    query_result_separator, exclude_query_output, append_query_error, query_no_truncate,
    query_result_no_padding, file_attachments, attachments, headers, idempotency_key, query_result_format);
  envelope := jsonb_build_object(
    'to', dbmail.parse_address_list('recipients', recipients),
    'cc', dbmail.parse_address_list('copy_recipients', copy_recipients),
    'bcc', dbmail.parse_address_list('blind_copy_recipients', blind_copy_recipients));
  IF envelope -> 'to' = '[]' AND envelope -> 'cc' = '[]' AND envelope -> 'bcc' = '[]' THEN
    PERFORM dbmail.raise_error('22004', 'recipients, copy_recipients, blind_copy_recipients', NULL,
      'a message needs at least one recipient');
  END IF;
  -- MaxRecipientsPerMail: every parsed address of the three lists counts; the list that goes over is named.
  IF max_recipients > 0 THEN
    recipient_count := jsonb_array_length(envelope -> 'to');
    IF recipient_count > max_recipients THEN
      PERFORM dbmail.raise_error('54000', 'recipients', recipients, format(
        '%s recipients (to, cc and bcc together) is more than MaxRecipientsPerMail (%s)', recipient_count, max_recipients));
    END IF;
    recipient_count := recipient_count + jsonb_array_length(envelope -> 'cc');
    IF recipient_count > max_recipients THEN
      PERFORM dbmail.raise_error('54000', 'copy_recipients', copy_recipients, format(
        '%s recipients (to, cc and bcc together) is more than MaxRecipientsPerMail (%s)', recipient_count, max_recipients));
    END IF;
    recipient_count := recipient_count + jsonb_array_length(envelope -> 'bcc');
    IF recipient_count > max_recipients THEN
      PERFORM dbmail.raise_error('54000', 'blind_copy_recipients', blind_copy_recipients, format(
        '%s recipients (to, cc and bcc together) is more than MaxRecipientsPerMail (%s)', recipient_count, max_recipients));
    END IF;
  END IF;
  parsed_from := dbmail.parse_single_address('from_address', from_address);
  PERFORM dbmail.parse_single_address('reply_to', reply_to);
  the_profile := dbmail.resolve_profile(sender, profile_name);

  -- MaxMailsPerUserPerDay (SQL Server's planned error 14657): items this role queued in the last 24
  -- hours, counted on mailitems_user_date_idx. The per-role lock makes concurrent sends count each other.
  IF max_per_day > 0 THEN
    PERFORM pg_advisory_xact_lock(hashtext('dbmail.MaxMailsPerUserPerDay'), hashtext(sender));
    SELECT count(*) INTO recent FROM dbmail.mailitems m
    WHERE m.send_request_user = sender AND m.send_request_date > now() - interval '1 day';
    IF recent >= max_per_day THEN
      PERFORM dbmail.raise_error('54000', 'send_request_user', sender, format(
        'has queued %s mails in the last 24 hours, the MaxMailsPerUserPerDay limit (%s); try again later or ask an admin to raise it',
        recent, max_per_day));
    END IF;
  END IF;

  -- MaxMailSize, counted as the mail grows: subject, body, attachments, then the query result.
  mail_size := COALESCE(octet_length(subject), 0);
  PERFORM dbmail.check_mail_size('subject', subject, mail_size, max_size);
  mail_size := mail_size + COALESCE(octet_length(body), 0);
  PERFORM dbmail.check_mail_size('body', body, mail_size, max_size);

  FOREACH attached IN ARRAY COALESCE(attachments, '{}') LOOP
    IF attached IS NULL OR attached.content IS NULL THEN
      PERFORM dbmail.raise_error('22004', 'attachments', attached.filename, 'an attachment needs content (bytea)');
    END IF;
    PERFORM dbmail.check_attachment('attachments', attached.filename, octet_length(attached.content));
    attached.filename := btrim(attached.filename, E' \t');
    attached.content_type := NULLIF(btrim(attached.content_type), '');
    IF attached.content_type !~ '^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*( *;[^\r\n]*)?$'
       OR attached.content_type ~ '[\x01-\x1f\x7f]' THEN
      PERFORM dbmail.raise_error('22023', 'attachments', attached.content_type,
        format('not a MIME type (type/subtype) for %s', attached.filename));
    END IF;
    attached.content_type := COALESCE(attached.content_type, dbmail.content_type_for(attached.filename));
    mail_size := mail_size + octet_length(attached.content);
    PERFORM dbmail.check_mail_size('attachments', attached.filename, mail_size, max_size);
    files := files || attached;
  END LOOP;
  IF NULLIF(btrim(file_attachments), '') IS NOT NULL THEN
    files := files || dbmail.read_attachment_files(file_attachments);
    mail_size := COALESCE(octet_length(subject), 0) + COALESCE(octet_length(body), 0)
      + (SELECT COALESCE(sum(octet_length(f.content)), 0) FROM unnest(files) f);
    PERFORM dbmail.check_mail_size('file_attachments', file_attachments, mail_size, max_size);
  END IF;
  IF query IS NOT NULL AND query_result IS NOT NULL THEN
    result_bytes := convert_to(query_result, 'UTF8');
    IF octet_length(result_bytes) > dbmail.setting('MaxFileSize')::bigint THEN
      PERFORM dbmail.raise_error('54000', 'query', query, format('the result (%s bytes) is more than MaxFileSize (%s bytes)',
        octet_length(result_bytes), dbmail.setting('MaxFileSize')));
    END IF;
    IF attach_query_result_as_file THEN
      attached := ROW(COALESCE(NULLIF(btrim(query_attachment_filename), ''),
                               'QueryResults.' || CASE format_name WHEN 'CSV' THEN 'csv' WHEN 'HTML' THEN 'html'
                                                                   WHEN 'JSON' THEN 'json' ELSE 'txt' END),
                      result_bytes, NULL)::dbmail.attachment;
      PERFORM dbmail.check_attachment('query_attachment_filename', attached.filename, octet_length(result_bytes));
      attached.content_type := CASE format_name WHEN 'CSV' THEN 'text/csv; charset=utf-8'
        WHEN 'HTML' THEN 'text/html; charset=utf-8' WHEN 'JSON' THEN 'application/json'
        ELSE 'text/plain; charset=utf-8' END;
      files := files || attached;
    ELSIF format_name = 'HTML' THEN
      -- An HTML table inline makes the whole body HTML.
      body := CASE WHEN upper(btrim(COALESCE(body_format, 'TEXT'))) = 'HTML' THEN COALESCE(body, '')
                   ELSE replace(dbmail.html_escape(COALESCE(body, '')), E'\n', '<br>') END
              || CASE WHEN COALESCE(body, '') = '' THEN '' ELSE '<br>' END || query_result;
      body_format := 'HTML';
    ELSE
      body := CASE WHEN COALESCE(body, '') = '' THEN '' ELSE body || E'\n' END || query_result;
    END IF;
    -- The whole mail again: an inline result grows the body (HTML escaping can grow it further).
    mail_size := COALESCE(octet_length(subject), 0) + COALESCE(octet_length(body), 0)
      + (SELECT COALESCE(sum(octet_length(f.content)), 0) FROM unnest(files) f);
    PERFORM dbmail.check_mail_size('query', query, mail_size, max_size);
  END IF;

  next_id := nextval('dbmail.mailitems_mailitem_id_seq');
  INSERT INTO dbmail.mailitems AS m (
    mailitem_id, profile_id, recipients, copy_recipients, blind_copy_recipients, envelope, subject, body,
    body_format, importance, sensitivity, file_attachments, query, execute_query_database,
    attach_query_result_as_file, query_result_header, query_result_width, query_result_separator,
    exclude_query_output, append_query_error, query_no_truncate, query_result_no_padding,
    query_attachment_filename, query_result_format, from_address, reply_to, headers, send_at,
    idempotency_key, message_id, next_attempt_at, send_request_user, last_mod_user)
  OVERRIDING SYSTEM VALUE
  VALUES (
    next_id, the_profile, NULLIF(btrim(recipients), ''), NULLIF(btrim(copy_recipients), ''),
    NULLIF(btrim(blind_copy_recipients), ''), envelope,
    COALESCE(NULLIF(subject, ''), 'PostgreSQL Message'), body,
    upper(btrim(COALESCE(body_format, 'TEXT'))), upper(btrim(importance)), upper(btrim(sensitivity)),
    file_attachments, query, execute_query_database, attach_query_result_as_file, query_result_header,
    query_result_width, query_result_separator, exclude_query_output, append_query_error,
    query_no_truncate, query_result_no_padding, query_attachment_filename,
    upper(btrim(query_result_format)), NULLIF(btrim(from_address), ''), NULLIF(btrim(reply_to), ''),
    headers, send_at, idempotency_key, dbmail.message_id_for(next_id, the_profile, parsed_from),
    GREATEST(COALESCE(send_at, now()), now()), sender, sender)
  ON CONFLICT (send_request_user, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING m.mailitem_id INTO new_id;

  IF new_id IS NULL THEN
    -- The same key from the same role: the message is already queued (or sent); nothing new is queued.
    SELECT m.mailitem_id INTO new_id FROM dbmail.mailitems m
    WHERE m.send_request_user = sender AND m.idempotency_key = queue_mail.idempotency_key;
    RETURN new_id;
  END IF;
  IF cardinality(files) > 0 THEN
    INSERT INTO dbmail.attachments (mailitem_id, filename, content_type, filesize, attachment, last_mod_user)
    SELECT new_id, f.filename, f.content_type, octet_length(f.content), f.content, sender
    FROM unnest(files) WITH ORDINALITY AS f(filename, content, content_type, n)
    ORDER BY f.n;
  END IF;
  IF send_at IS NULL OR send_at <= now() THEN
    PERFORM pg_notify('dbmail_queue', '');
  END IF;
  RETURN new_id;
END;
$$;

-- The public entry point. It runs with the caller's rights (SECURITY INVOKER):
-- the query reads only what the caller may, in the caller's session (temporary tables are visible);
-- then it stamps the caller's current_user for queue_mail, which does the rest. No search_path is
-- pinned, so a query sees the caller's; every name below is qualified.
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
DECLARE
  query_result text;
  failure text;
  failure_state text;
  new_id bigint;
BEGIN
  IF query IS NOT NULL THEN
    -- Refuse bad arguments before running anything.
    PERFORM dbmail.check_send_arguments(subject, body, COALESCE(body_format, 'TEXT'), importance,
      sensitivity, query, execute_query_database, attach_query_result_as_file, query_result_header,
      query_result_width, query_result_separator, exclude_query_output, append_query_error, query_no_truncate,
      query_result_no_padding, file_attachments, attachments, headers, idempotency_key, query_result_format);
    BEGIN
      query_result := dbmail.run_query(query, query_result_format, query_result_header, query_result_width,
        query_result_separator, query_result_no_padding, query_no_truncate);
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS failure = MESSAGE_TEXT, failure_state = RETURNED_SQLSTATE;
      IF NOT append_query_error THEN
        PERFORM dbmail.raise_error(failure_state, 'query', query, failure);
      END IF;
      -- append_query_error: send anyway, with the error in the body where an inline result would be.
      failure := 'Query failed: ' || failure;
      IF NOT attach_query_result_as_file THEN
        query_result := CASE WHEN pg_catalog.upper(query_result_format) = 'HTML' THEN dbmail.html_escape(failure)
                             ELSE failure END;
      ELSE
        body := CASE WHEN COALESCE(body, '') = '' THEN '' ELSE body || E'\n' END
                || CASE WHEN pg_catalog.upper(COALESCE(body_format, 'TEXT')) = 'HTML'
                        THEN dbmail.html_escape(failure) ELSE failure END;
      END IF;
    END;
  END IF;
  -- The stamp that tells queue_mail who is calling (see dbmail.caller_stamps).
  INSERT INTO dbmail.caller_stamps DEFAULT VALUES;
  new_id := dbmail.queue_mail(profile_name, recipients, copy_recipients, blind_copy_recipients, subject, body,
    body_format, importance, sensitivity, file_attachments, query, execute_query_database,
    attach_query_result_as_file, query_attachment_filename, query_result_header, query_result_width,
    query_result_separator, exclude_query_output, append_query_error, query_no_truncate,
    query_result_no_padding, from_address, reply_to, attachments, headers, send_at, idempotency_key,
    query_result_format, query_result);
  -- What SQL Server prints; exclude_query_output silences it.
  IF NOT COALESCE(exclude_query_output, false) THEN
    RAISE NOTICE 'Mail (Id: %) queued.', new_id;
  END IF;
  RETURN new_id;
END;
$$;

CREATE FUNCTION dbmail.set_started(started boolean) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  UPDATE dbmail.system_state s SET started = set_started.started, last_mod_date = now(),
    last_mod_user = dbmail.caller_role();
  PERFORM dbmail.log_event('information', format('The mail queue was %s by %s',
    CASE WHEN started THEN 'started' ELSE 'stopped' END, dbmail.caller_role()));
  -- Senders pause or resume at once on this; the claim function also refuses while stopped.
  PERFORM pg_notify('dbmail_control', CASE WHEN started THEN 'started' ELSE 'stopped' END);
END;
$$;

-- Mail is still accepted while stopped; it waits in the queue until sysmail_start_sp.
CREATE FUNCTION dbmail.sysmail_start_sp() RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT dbmail.set_started(true);
$$;

CREATE FUNCTION dbmail.sysmail_stop_sp() RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT dbmail.set_started(false);
$$;

CREATE FUNCTION dbmail.sysmail_help_status_sp() RETURNS text
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN s.started THEN 'STARTED' ELSE 'STOPPED' END FROM dbmail.system_state s;
$$;

-- A sender is live while its heartbeat is under 30 seconds old (senders beat every few seconds).
CREATE FUNCTION dbmail.live_senders() RETURNS SETOF dbmail.senders
LANGUAGE sql STABLE
AS $$
  SELECT * FROM dbmail.senders s
  WHERE s.stopped_at IS NULL AND s.last_heartbeat > pg_catalog.now() - interval '30 seconds'
  ORDER BY s.started_at;
$$;

-- SQL Server's columns (queue_type, length, state, last_empty_rowset_time, last_activated_time) and,
-- beyond them, the live senders, the oldest waiting item, and `stalled`: mail is due but no sender is
-- alive to send it (the one flag to alert on).
CREATE FUNCTION dbmail.sysmail_help_queue_sp(queue_type text DEFAULT NULL)
RETURNS TABLE (
  queue_type text, length bigint, state text, last_empty_rowset_time timestamptz,
  last_activated_time timestamptz, live_senders integer, senders jsonb, oldest_unsent_date timestamptz,
  stalled boolean
)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT dbmail.raise_error('22023', 'queue_type', $1, 'must be mail (pg-dbmail has no separate status queue)')
  WHERE $1 IS NOT NULL AND lower($1) <> 'mail';
  WITH queue AS (
    SELECT count(*) AS waiting,
           -- Due: waiting items whose time has come, and items whose sender died holding them.
           count(*) FILTER (WHERE (m.sent_status <> 'sending' AND m.next_attempt_at <= now())
                               OR (m.sent_status = 'sending' AND m.lease_expires_at < now())) AS due,
           min(m.send_request_date) AS oldest
    FROM dbmail.mailitems m WHERE m.sent_status IN ('unsent', 'sending', 'retrying')
  ), live AS (
    SELECT count(*)::integer AS live_count,
           COALESCE(jsonb_agg(jsonb_build_object(
             'sender_id', l.sender_id, 'hostname', l.hostname, 'process_id', l.process_id,
             'version', l.version, 'started_at', l.started_at, 'last_heartbeat', l.last_heartbeat)), '[]') AS list,
           max(l.last_empty_claim_at) AS last_empty,
           max(l.started_at) AS last_started
    FROM dbmail.live_senders() l
  )
  SELECT 'mail'::text, queue.waiting,
         CASE WHEN NOT s.started THEN 'STOPPED' WHEN live.live_count = 0 THEN 'INACTIVE'
              ELSE 'RECEIVES_OCCURRING' END,
         live.last_empty, live.last_started, live.live_count, live.list, queue.oldest,
         s.started AND queue.due > 0 AND live.live_count = 0
  FROM queue, live, dbmail.system_state s;
$$;

-- Deletes mail items (with their attachments) requested before sent_before and/or in sent_status.
-- dbmail_user members delete only their own items; admins any. Returns the number deleted. Runs as the
-- caller to stamp who is deleting; delete_mailitems does the work.
CREATE FUNCTION dbmail.sysmail_delete_mailitems_sp(sent_before timestamptz DEFAULT NULL, sent_status text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  INSERT INTO dbmail.caller_stamps DEFAULT VALUES;
  RETURN dbmail.delete_mailitems(sent_before, sent_status);
END;
$$;

CREATE FUNCTION dbmail.delete_mailitems(sent_before timestamptz, sent_status text)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  deleter name := dbmail.take_caller_stamp('sysmail_delete_mailitems_sp');
  status text := lower(btrim(sent_status));
  deleted bigint;
BEGIN
  IF sent_before IS NULL AND sent_status IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'sent_before, sent_status', NULL,
      'give at least one (a call without both would delete every item)');
  END IF;
  IF status NOT IN ('unsent', 'sending', 'retrying', 'sent', 'failed') THEN
    PERFORM dbmail.raise_error('22023', 'sent_status', sent_status,
      'must be unsent, sending, retrying, sent or failed');
  END IF;
  DELETE FROM dbmail.mailitems m
  WHERE (sent_before IS NULL OR m.send_request_date < sent_before)
    AND (status IS NULL OR m.sent_status = status)
    AND (m.send_request_user = deleter OR dbmail.is_admin(deleter));
  GET DIAGNOSTICS deleted = ROW_COUNT;
  PERFORM dbmail.log_event('information',
    format('Mail items deletion was initiated by %s; %s items deleted', deleter, deleted));
  RETURN deleted;
END;
$$;

-- Deletes events logged before logged_before and/or of event_type. A call with neither is refused
-- (SQL Server would silently empty the whole log). Returns the number deleted.
CREATE FUNCTION dbmail.sysmail_delete_log_sp(logged_before timestamptz DEFAULT NULL, event_type text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  kind text := lower(btrim(event_type));
  deleted bigint;
BEGIN
  IF logged_before IS NULL AND event_type IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'logged_before, event_type', NULL,
      'give at least one (a call without both would delete the whole log)');
  END IF;
  IF kind NOT IN ('success', 'information', 'warning', 'error') THEN
    PERFORM dbmail.raise_error('22023', 'event_type', event_type,
      'must be success, information, warning or error');
  END IF;
  DELETE FROM dbmail.event_log e
  WHERE (logged_before IS NULL OR e.log_date < logged_before) AND (kind IS NULL OR e.event_type = kind);
  GET DIAGNOSTICS deleted = ROW_COUNT;
  RETURN deleted;
END;
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(4, 'send', 'ab9691dc73dae31c67ef9e0cafc44a2751bff630908881a47eb900fca67231ec');
