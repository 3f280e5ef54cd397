-- pg-dbmail 000013: sending, the owner's side. queue_mail checks a message and queues it; send_usual_mail
-- queues the usual call in a few steps (and hands any other to queue_mail). Both run as the owner, on
-- behalf of the caller an entry point (000014) names, and queue the mail in the caller's transaction,
-- with a NOTIFY on dbmail_queue when no sender is awake to find it (must_wake_senders).

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(13, 'send', 'send_checks');

-- Validates and queues one message, with its attachments and its query result, on behalf of the role
-- that called sp_send_dbmail (named by the entry point, see sending_caller), in the steps named below.
-- SECURITY DEFINER: the tables are private. Each expression and statement costs a call even when it
-- finds nothing to do (its functions are looked up and their privileges checked in every transaction),
-- so steps that most calls do not need are behind a test that says so (bench/README.md, issue 17).
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
  -- The denial-of-service limits (0 = unlimited).
  replay boolean := false;
  max_recipients bigint;
  max_size bigint;
  max_per_day bigint;
  fixed_size bigint;
  envelope jsonb;
  the_profile integer;
  usual_default integer;
  role_defaults boolean;
  files dbmail.attachment[] := '{}';
  new_id bigint;
BEGIN
  -- The sender: who called the entry point (send_as_caller, send_with_query or send_usual_mail, else a
  -- stamp), a role of its own, by OID (sending_role says what is wrong when it is not); a query and its
  -- result only from send_with_query.
  GET DIAGNOSTICS call_stack = PG_CONTEXT;
  sender := dbmail.sending_caller(call_stack, caller, 'dbmail.queue_mail(');
  sender_oid := dbmail.sending_role(sender);

  -- The limits and the public default profile, in one row (refresh_send_defaults keeps them).
  SELECT st.max_recipients_per_mail, st.max_mail_size, st.max_mails_per_user_per_day, st.public_default_profile,
         st.role_defaults
  INTO max_recipients, max_size, max_per_day, usual_default, role_defaults
  FROM dbmail.system_state st;

  -- A query, an idempotency key, a role with a default of its own: what most calls have none of.
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

  -- The arguments. The usual ones, with nothing check_send_arguments could refuse and every value as it
  -- is stored, are recognised in one expression; anything else, or a NULL on the way, goes through it,
  -- which names the first bad argument, and has its values put as they are stored (upper case, trimmed).
  IF NOT COALESCE(query IS NULL AND execute_query_database IS NULL AND headers IS NULL
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
      AND (NULLIF(body, '') IS NOT NULL OR NULLIF(subject, '') IS NOT NULL), false) THEN
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
  -- it, which the INSERT below builds (plain_envelope).
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
    COALESCE(envelope, dbmail.plain_envelope(recipients)),
    COALESCE(NULLIF(subject, ''), 'PostgreSQL Message'), body, body_format, importance, sensitivity,
    file_attachments, query, execute_query_database, attach_query_result_as_file, query_result_header,
    query_result_width, query_result_separator, exclude_query_output, append_query_error,
    query_no_truncate, query_result_no_padding, query_attachment_filename, query_result_format, from_address,
    reply_to, headers, send_at, idempotency_key, GREATEST(send_at, now()), sender, sender_oid, sender)
  ON CONFLICT (send_request_role, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING m.mailitem_id INTO new_id;
  IF new_id IS NULL OR replay OR max_per_day > 0 OR cardinality(files) > 0 THEN
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

-- The usual call, queued in a few steps instead of queue_mail's dozen (each costs a call even when it
-- finds nothing to do; bench/README.md, issue 17): usual arguments (sp_send_dbmail sends only those
-- here, but anyone may call send_usual_as_caller, so they are checked again), from a role of its own,
-- with the public default profile (no role has one of its own), no MaxMailsPerUserPerDay, a subject
-- without control characters of at most 998 bytes, one plain address of at most 63 bytes in recipients,
-- within MaxMailSize. It stores the item queue_mail would store (send/fast-paths.test.ts compares them);
-- anything else, or a NULL on the way, goes to queue_mail, which checks it all and says what is wrong.
-- SECURITY DEFINER, and told the caller as queue_mail is (sending_caller).
CREATE FUNCTION dbmail.send_usual_mail(
  recipients text, subject text, body text, body_format text, importance text, exclude_query_output boolean,
  append_query_error boolean, caller name DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  call_stack text;
  sender name;
  sender_oid oid;
  max_size bigint;
  max_per_day bigint;
  the_profile integer;
  role_defaults boolean;
  new_id bigint;
BEGIN
  GET DIAGNOSTICS call_stack = PG_CONTEXT;
  sender := dbmail.sending_caller(call_stack, caller, 'dbmail.send_usual_mail(');
  -- sending_role's rule without its call (a group role or a role dropped meanwhile: NULL, and queue_mail
  -- says which).
  sender_oid := CASE WHEN sender NOT IN ('dbmail_user', 'dbmail_admin', 'dbmail_sender')
                     THEN to_regrole(quote_ident(sender)) END;
  SELECT st.max_mail_size, st.max_mails_per_user_per_day, st.public_default_profile, st.role_defaults
  INTO max_size, max_per_day, the_profile, role_defaults
  FROM dbmail.system_state st;
  IF NOT COALESCE(sender_oid IS NOT NULL AND the_profile IS NOT NULL AND NOT role_defaults AND NOT max_per_day > 0
      AND concat(body_format, '|', importance) IN ('TEXT|NORMAL', 'TEXT|LOW', 'TEXT|HIGH', 'HTML|NORMAL',
                                                   'HTML|LOW', 'HTML|HIGH')
      AND exclude_query_output IS NOT NULL AND append_query_error IS NOT NULL
      AND subject ~ '^[^\x01-\x08\x0a-\x1f\x7f]+$' AND octet_length(subject) <= 998
      AND recipients ~ dbmail.plain_address_pattern() AND octet_length(recipients) <= 63
      AND NOT (max_size > 0 AND octet_length(concat(subject, recipients, body)) > max_size), false) THEN
    RETURN dbmail.queue_mail(NULL, recipients, NULL, NULL, subject, body, body_format, importance, 'NORMAL', NULL,
      NULL, NULL, false, NULL, true, 256, ' ', exclude_query_output, append_query_error, false, false, NULL, NULL,
      NULL, NULL, NULL, NULL, 'TEXT', NULL, sender);
  END IF;
  -- The other columns as their defaults, which are sp_send_dbmail's.
  INSERT INTO dbmail.mailitems AS m (profile_id, recipients, envelope, subject, body, body_format, importance,
    exclude_query_output, append_query_error, send_request_user, send_request_role, last_mod_user)
  VALUES (the_profile, recipients, dbmail.plain_envelope(recipients), subject, body, body_format, importance,
    exclude_query_output, append_query_error, sender, sender_oid, sender)
  RETURNING m.mailitem_id INTO new_id;
  IF dbmail.must_wake_senders() THEN
    PERFORM pg_notify('dbmail_queue', '');
  END IF;
  RETURN new_id;
END;
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(13, 'send', '52a146b92214279ded71b1c12d4de813befbe70b14930e74c370ce0dc0505cfb');
