-- pg-dbmail 000013: sending. dbmail.sp_send_dbmail, the public entry point, runs as the caller; with a
-- query it hands over to send_with_query, which runs the query in the caller's session; either way
-- queue_mail, as the owner, checks the message and queues it in the caller's transaction, with a NOTIFY
-- on dbmail_queue when no sender is awake to find it (must_wake_senders).

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(13, 'send', 'send_checks');

-- Validates and queues one message, with its attachments and its query result, on behalf of the role
-- that called sp_send_dbmail (named by the entry point, see sending_caller), in the steps named below.
-- SECURITY DEFINER: the tables are private. Each expression and statement costs a call even when it
-- finds nothing to do (its functions are looked up and their privileges checked in every transaction),
-- so the usual call is recognised in one expression and skips the rest (bench/README.md, issue 17).
CREATE FUNCTION dbmail.queue_mail(
  profile_name text, recipients text, copy_recipients text, blind_copy_recipients text, subject text,
  body text, body_format text, importance text, sensitivity text, file_attachments text, query text,
  execute_query_database text, attach_query_result_as_file boolean, query_attachment_filename text,
  query_result_header boolean, query_result_width integer, query_result_separator text,
  exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean,
  query_result_no_padding boolean, from_address text, reply_to text, attachments dbmail.attachment[],
  headers jsonb, send_at timestamptz, idempotency_key text, query_result_format text, query_result text,
  caller name DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  sender name;
  sender_oid oid;
  call_stack text;
  usual_arguments boolean;
  usual boolean;
  -- The denial-of-service limits (0 = unlimited).
  replay boolean;
  max_recipients bigint;
  max_size bigint;
  max_per_day bigint;
  fixed_size bigint;
  envelope jsonb;
  the_profile integer;
  usual_default integer;
  role_defaults boolean;
  files dbmail.attachment[];
  new_id bigint;
BEGIN
  -- The sender: who called the entry point (send_as_caller or send_with_query, else a stamp), a role of
  -- its own, by OID (sending_role says what is wrong when it is not); a query and its result only from
  -- send_with_query.
  GET DIAGNOSTICS call_stack = PG_CONTEXT;
  sender := dbmail.sending_caller(call_stack, caller);
  sender_oid := CASE WHEN sender NOT IN ('dbmail_user', 'dbmail_admin', 'dbmail_sender')
                     THEN to_regrole(quote_ident(sender)) END;

  -- The limits and the public default profile, in one row (refresh_send_defaults keeps them); that profile
  -- is also the one the usual call below is sent with (the full path chooses its own).
  SELECT st.max_recipients_per_mail, st.max_mail_size, st.max_mails_per_user_per_day, st.public_default_profile,
         st.public_default_profile, st.role_defaults
  INTO max_recipients, max_size, max_per_day, usual_default, the_profile, role_defaults
  FROM dbmail.system_state st;
  -- The usual arguments: nothing check_send_arguments could refuse, and every value as it is stored.
  usual_arguments := COALESCE(query IS NULL AND execute_query_database IS NULL AND headers IS NULL
    AND idempotency_key IS NULL AND file_attachments IS NULL AND attachments IS NULL
    AND body_format IN ('TEXT', 'HTML') AND importance IN ('LOW', 'NORMAL', 'HIGH')
    AND sensitivity IN ('NORMAL', 'PERSONAL', 'PRIVATE', 'CONFIDENTIAL')
    AND query_result_format IN ('TEXT', 'CSV', 'HTML', 'JSON')
    AND query_result_width BETWEEN 10 AND 32767 AND length(query_result_separator) = 1
    AND NOT attach_query_result_as_file AND query_result_header IS NOT NULL
    AND exclude_query_output IS NOT NULL AND append_query_error IS NOT NULL
    AND query_no_truncate IS NOT NULL AND query_result_no_padding IS NOT NULL
    AND NOT (query_result_no_padding AND query_no_truncate)
    AND (subject IS NULL OR (subject !~ '[\x01-\x08\x0a-\x1f\x7f]' AND length(subject) <= 998))
    AND (NULLIF(body, '') IS NOT NULL OR NULLIF(subject, '') IS NOT NULL), false);
  -- The usual call: those, a role of its own, the public default profile, no daily limit, one plain
  -- address in recipients and nothing else, within MaxMailSize. It needs none of the steps under the next
  -- IF; anything else, or a NULL on the way, takes them.
  usual := usual_arguments AND COALESCE(sender_oid IS NOT NULL AND profile_name IS NULL
    AND usual_default IS NOT NULL AND NOT role_defaults AND NOT max_per_day > 0
    AND copy_recipients IS NULL AND blind_copy_recipients IS NULL AND from_address IS NULL AND reply_to IS NULL
    AND NOT (max_size > 0 AND octet_length(concat(subject, recipients)) + COALESCE(octet_length(body), 0) > max_size)
    AND dbmail.is_plain_address(recipients), false);
  IF NOT usual THEN
    replay := false;
    files := '{}';
    IF sender_oid IS NULL THEN
      sender_oid := dbmail.sending_role(sender);
    END IF;

    -- A query, an idempotency key, a role with a default of its own: what the usual call has none of.
    IF query IS NOT NULL OR idempotency_key IS NOT NULL OR (profile_name IS NULL AND role_defaults) THEN
      IF query IS NOT NULL THEN
        PERFORM dbmail.check_query_source(call_stack, query);
      END IF;
      -- A replay of an idempotency_key queues nothing (it returns the item queued before), so it is not
      -- limited. The replayed item is locked until this transaction ends: a concurrent delete of it waits
      -- (or, if it committed first, the item is not found and this is a new mail, checked as one).
      IF idempotency_key IS NOT NULL THEN
        PERFORM FROM dbmail.mailitems m
        WHERE m.send_request_role = sender_oid AND m.idempotency_key = queue_mail.idempotency_key
        FOR KEY SHARE;
        IF FOUND THEN
          replay := true; max_recipients := 0; max_size := 0; max_per_day := 0;
        END IF;
      END IF;
      -- When no profile is named and a role has a default of its own, the profile the mail would be sent
      -- with (resolve_profile decides later, in its turn): the role's own default, else one granted to one
      -- of its roles (their memberships walked only for such grants), else the public one.
      IF profile_name IS NULL AND role_defaults THEN
        SELECT pp.profile_id INTO usual_default FROM dbmail.principal_profiles pp
        WHERE pp.is_default
          AND (pp.principal_id IN (0, sender_oid) OR dbmail.is_member_of(sender_oid, pp.principal_id))
        ORDER BY pp.principal_id = sender_oid DESC, pp.principal_id = 0, pp.profile_id
        LIMIT 1;
      END IF;
    END IF;

    -- Arguments that are not the usual ones go through check_send_arguments, which names the first bad
    -- one, and have their values put as they are stored (upper case, trimmed).
    IF NOT usual_arguments THEN
      PERFORM dbmail.check_send_arguments(subject, body, COALESCE(body_format, 'TEXT'), importance, sensitivity,
        query, execute_query_database, attach_query_result_as_file, query_result_header, query_result_width,
        query_result_separator, exclude_query_output, append_query_error, query_no_truncate,
        query_result_no_padding, file_attachments, attachments, headers, idempotency_key, query_result_format);
      body_format := upper(btrim(COALESCE(body_format, 'TEXT')));
      importance := upper(btrim(importance));
      sensitivity := upper(btrim(sensitivity));
      query_result_format := upper(btrim(query_result_format));
    END IF;

    -- MaxMailSize of what was given, before anything is parsed: the sizes added up here (headers aside);
    -- check_given_size, called only with headers or over the limit, names what pushed it over.
    fixed_size := octet_length(concat(subject, recipients, copy_recipients, blind_copy_recipients, from_address,
      reply_to));
    IF headers IS NOT NULL OR (max_size > 0 AND fixed_size + COALESCE(octet_length(body), 0) > max_size) THEN
      fixed_size := dbmail.check_given_size(subject, recipients, copy_recipients, blind_copy_recipients,
        from_address, reply_to, headers, body, max_size);
    END IF;

    -- The addresses, MaxRecipientsPerMail counted as they are parsed, the lists stored trimmed ('' as
    -- NULL). One plain address in recipients and nothing else has the envelope parse_envelope would give
    -- it, which the INSERT below builds at a fraction of the cost (a plain address needs no JSON escaping).
    IF NOT COALESCE(copy_recipients IS NULL AND blind_copy_recipients IS NULL AND dbmail.is_plain_address(recipients),
                    false) THEN
      envelope := dbmail.parse_envelope(recipients, copy_recipients, blind_copy_recipients, max_recipients);
      recipients := NULLIF(btrim(recipients), '');
      copy_recipients := NULLIF(btrim(copy_recipients), '');
      blind_copy_recipients := NULLIF(btrim(blind_copy_recipients), '');
    END IF;
    IF from_address IS NOT NULL OR reply_to IS NOT NULL THEN
      IF from_address IS NOT NULL THEN
        PERFORM dbmail.parse_single_address('from_address', from_address);
        from_address := NULLIF(btrim(from_address), '');
      END IF;
      IF reply_to IS NOT NULL THEN
        PERFORM dbmail.parse_single_address('reply_to', reply_to);
        reply_to := NULLIF(btrim(reply_to), '');
      END IF;
    END IF;

    -- The profile: the default found above when none is named (resolve_profile says when there is none).
    IF profile_name IS NULL AND usual_default IS NOT NULL THEN
      the_profile := usual_default;
    ELSE
      the_profile := dbmail.resolve_profile(sender, sender_oid, profile_name, usual_default);
    END IF;

    -- MaxMailsPerUserPerDay (admins are exempt); the attachments, then the query result, MaxMailSize
    -- counted as the mail grows.
    IF max_per_day > 0 OR attachments IS NOT NULL OR file_attachments IS NOT NULL OR query IS NOT NULL THEN
      IF max_per_day > 0 AND NOT dbmail.is_admin(sender) THEN
        PERFORM dbmail.check_daily_limit(sender, sender_oid, max_per_day);
      END IF;
      IF cardinality(attachments) > 0 OR NULLIF(btrim(file_attachments), '') IS NOT NULL THEN
        files := dbmail.collect_attachments(attachments, file_attachments,
          fixed_size + COALESCE(octet_length(body), 0), max_size);
      END IF;
      IF query IS NOT NULL AND query_result IS NOT NULL THEN
        SELECT r.body, r.body_format, r.files INTO body, body_format, files
        FROM dbmail.add_query_result(queue_mail.query, queue_mail.query_result,
          queue_mail.attach_query_result_as_file, queue_mail.query_attachment_filename,
          queue_mail.query_result_format, fixed_size, max_size, queue_mail.body, queue_mail.body_format, files) r;
      END IF;
    END IF;
  END IF;

  -- Stored: the item, counted in MaxMailsPerUserPerDay's ledger while that is on, and its attachments;
  -- senders are woken unless it waits for send_at. Its Message-ID is fixed by its first claim.
  INSERT INTO dbmail.mailitems AS m (
    profile_id, recipients, copy_recipients, blind_copy_recipients, envelope, subject, body,
    body_format, importance, sensitivity, file_attachments, query, execute_query_database,
    attach_query_result_as_file, query_result_header, query_result_width, query_result_separator,
    exclude_query_output, append_query_error, query_no_truncate, query_result_no_padding,
    query_attachment_filename, query_result_format, from_address, reply_to, headers, send_at,
    idempotency_key, next_attempt_at, send_request_user, send_request_role, last_mod_user)
  VALUES (
    the_profile, recipients, copy_recipients, blind_copy_recipients,
    COALESCE(envelope, ('{"to": [{"name": null, "address": "' || recipients || '"}], "cc": [], "bcc": []}')::jsonb),
    COALESCE(NULLIF(subject, ''), 'PostgreSQL Message'), body, body_format, importance, sensitivity,
    file_attachments, query, execute_query_database, attach_query_result_as_file, query_result_header,
    query_result_width, query_result_separator, exclude_query_output, append_query_error,
    query_no_truncate, query_result_no_padding, query_attachment_filename, query_result_format, from_address,
    reply_to, headers, send_at, idempotency_key, GREATEST(send_at, now()), sender, sender_oid, sender)
  ON CONFLICT (send_request_role, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING m.mailitem_id INTO new_id;
  IF NOT usual AND (new_id IS NULL OR replay OR max_per_day > 0 OR cardinality(files) > 0) THEN
    IF new_id IS NULL THEN
      -- The same key from the same role: the message is already queued (or sent); nothing new is queued.
      SELECT m.mailitem_id INTO new_id FROM dbmail.mailitems m
      WHERE m.send_request_role = sender_oid AND m.idempotency_key = queue_mail.idempotency_key;
      RETURN new_id;
    END IF;
    IF replay THEN
      -- Cannot happen (the replayed item is locked): never queue a mail that skipped the limits.
      PERFORM dbmail.raise_error('40001', 'idempotency_key', idempotency_key,
        'the item this key replays disappeared during the call; try again');
    END IF;
    IF max_per_day > 0 THEN
      PERFORM dbmail.count_daily_mail(sender_oid);
    END IF;
    IF cardinality(files) > 0 THEN
      INSERT INTO dbmail.attachments (mailitem_id, filename, content_type, filesize, attachment, last_mod_user)
      SELECT new_id, f.filename, f.content_type, octet_length(f.content), f.content, sender
      FROM unnest(files) WITH ORDINALITY AS f(filename, content, content_type, n)
      ORDER BY f.n;
    END IF;
  END IF;
  IF (send_at IS NULL OR send_at <= now()) AND dbmail.must_wake_senders() THEN
    PERFORM pg_notify('dbmail_queue', '');
  END IF;
  -- No "Mail (Id: N) queued." notice, as SQL Server prints: the id is the result, and a notice is a
  -- message the server sends and the client reads on its own, a fifth of the throughput of an
  -- application sending mail from 8 connections (bench/README.md, issue 17).
  RETURN new_id;
END;
$$;

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

-- The public entry point. It runs with the caller's rights (SECURITY INVOKER). Without a query it hands
-- over to send_as_caller, which tells queue_mail who is calling; with one it hands over to
-- send_with_query, passing the caller's search_path for the query (no search_path is pinned here, so
-- current_setting reads the caller's; every name below is qualified). Not LANGUAGE sql: PostgreSQL
-- would inline it, and parse its text again to plan each unprepared call.
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
SELECT dbmail.record_migration(13, 'send', '23f769dc15e2edaaef1a7166a400f4fdaa66f84ca62416aaf0caf1ead8124b70');
