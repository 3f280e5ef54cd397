-- pg-dbmail 000012: the checks of a message, and the steps of queue_mail (000013) that check rather than
-- build: its arguments and extra headers, the sending role and who calls, where a query result came from, the size of
-- what was given (MaxMailSize), the profile it may use, MaxMailsPerUserPerDay and its ledger, and whether
-- to wake the senders.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(12, 'send_checks', 'query_results');

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
  -- Only with headers (the usual call has none): a PERFORM costs as much as a dozen of the checks here.
  IF headers IS NOT NULL THEN
    PERFORM dbmail.check_headers(headers);
  END IF;
  IF idempotency_key IS NOT NULL AND (btrim(idempotency_key) = '' OR length(idempotency_key) > 255) THEN
    PERFORM dbmail.raise_error('22023', 'idempotency_key', idempotency_key,
      'must be 1 to 255 characters, not blank');
  END IF;
END;
$$;

-- queue_mail's first step: the role the mail is sent as, by OID (the item belongs to the role, not to
-- its name). Mail cannot be sent as a dbmail group role (dbmail_user, dbmail_admin, dbmail_sender, after
-- SET ROLE): it would be anonymous, as every member of the role may SET ROLE to it and read it.
CREATE FUNCTION dbmail.sending_role(sender name) RETURNS oid
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  sender_oid oid;
BEGIN
  IF sender IN ('dbmail_user', 'dbmail_admin', 'dbmail_sender') THEN
    PERFORM dbmail.raise_error('42501', 'caller', sender::text,
      'mail cannot be sent as a dbmail group role: it would be anonymous (every member of the role may SET ROLE '
      'to it and read it); RESET ROLE, or SET ROLE to a role of your own, first');
  END IF;
  sender_oid := to_regrole(quote_ident(sender));
  IF sender_oid IS NULL THEN
    PERFORM dbmail.raise_error('42704', 'caller', sender::text, 'no such role (it was dropped meanwhile)');
  END IF;
  RETURN sender_oid;
END;
$$;

-- A query and its result reach queue_mail only from dbmail.send_with_query, which ran the query (a
-- direct call could otherwise record a result the query never gave). call_stack is queue_mail's
-- PG_CONTEXT: its first line is queue_mail's frame, the second its caller's, each '<language''s
-- words>dbmail.<name>(<argument types>)...' (whatever lc_messages says): only objects of schema dbmail
-- are named so, and only its owner creates them.
CREATE FUNCTION dbmail.check_query_source(call_stack text, query text) RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  own_frame text := split_part(call_stack, E'\n', 1);
BEGIN
  IF strpos(own_frame, 'dbmail.queue_mail(') = 0
     OR NOT starts_with(split_part(call_stack, E'\n', 2),
                        left(own_frame, strpos(own_frame, 'dbmail.queue_mail(') - 1) || 'dbmail.send_with_query(') THEN
    PERFORM dbmail.raise_error('42501', 'query', query,
      'a query is run, and its result recorded, only through dbmail.sp_send_dbmail (queue_mail does not take one)');
  END IF;
END;
$$;

-- Who calls queue_mail (or send_usual_mail), by name: `caller`, the current_user that an entry point
-- (dbmail.send_as_caller, send_usual_as_caller, send_with_query) passes, or the sender send_usual_mail
-- passes on, when one of them is the frame above the callee's own in call_stack (its PG_CONTEXT, read as
-- check_query_source reads it: all of them are pinned to a search_path without dbmail, so their frames
-- name them schema-qualified, and no function of the caller's is named so). Otherwise the callee was
-- called directly: the caller's stamp says who (take_caller_stamp), which costs two statements that the
-- entry points spare. own_name is the callee's ('dbmail.queue_mail('); the frame above must start with
-- the words of the callee's own (the server's, in its language, e.g. "PL/pgSQL function ") and
-- `dbmail.send_`: the schema's functions so named are those four. LANGUAGE sql, one expression: inlined
-- into the callee's. split_part finds lines by bytes; strpos, left and substr count characters from the
-- start of the text (in UTF-8, a call each), which in a call stack of a thousand characters cost a tenth
-- of a call.
CREATE FUNCTION dbmail.sending_caller(call_stack text, caller name, own_name text) RETURNS name
LANGUAGE sql VOLATILE
AS $$
  SELECT CASE
    WHEN caller IS NOT NULL
         AND starts_with(split_part(call_stack, E'\n', 2), split_part(call_stack, own_name, 1) || 'dbmail.send_')
      THEN caller
    ELSE dbmail.take_caller_stamp('sp_send_dbmail') END;
$$;

-- MaxMailSize of what a message is given, before anything is parsed: the subject, the address lists as
-- given (with their display names), the headers (names and values) and the body. Over max_size (0 =
-- unlimited) it names what pushed it over, in this order. Returns the size of all but the body: the
-- part that later steps (attachments, a query result) add to.
CREATE FUNCTION dbmail.check_given_size(
  subject text, recipients text, copy_recipients text, blind_copy_recipients text, from_address text,
  reply_to text, headers jsonb, body text, max_size bigint
) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
  header_size bigint := 0;
  fixed_size bigint;
  mail_size bigint;
BEGIN
  IF headers IS NOT NULL THEN
    SELECT COALESCE(sum(octet_length(h.key) + octet_length(h.value)), 0) INTO header_size
    FROM jsonb_each_text(headers) h;
  END IF;
  fixed_size := COALESCE(octet_length(subject), 0) + COALESCE(octet_length(recipients), 0)
    + COALESCE(octet_length(copy_recipients), 0) + COALESCE(octet_length(blind_copy_recipients), 0)
    + COALESCE(octet_length(from_address), 0) + COALESCE(octet_length(reply_to), 0) + header_size;
  IF max_size > 0 AND fixed_size + COALESCE(octet_length(body), 0) > max_size THEN
    mail_size := COALESCE(octet_length(subject), 0);
    PERFORM dbmail.check_mail_size('subject', subject, mail_size, max_size);
    mail_size := mail_size + COALESCE(octet_length(recipients), 0);
    PERFORM dbmail.check_mail_size('recipients', recipients, mail_size, max_size);
    mail_size := mail_size + COALESCE(octet_length(copy_recipients), 0);
    PERFORM dbmail.check_mail_size('copy_recipients', copy_recipients, mail_size, max_size);
    mail_size := mail_size + COALESCE(octet_length(blind_copy_recipients), 0);
    PERFORM dbmail.check_mail_size('blind_copy_recipients', blind_copy_recipients, mail_size, max_size);
    mail_size := mail_size + COALESCE(octet_length(from_address), 0);
    PERFORM dbmail.check_mail_size('from_address', from_address, mail_size, max_size);
    mail_size := mail_size + COALESCE(octet_length(reply_to), 0);
    PERFORM dbmail.check_mail_size('reply_to', reply_to, mail_size, max_size);
    mail_size := mail_size + header_size;
    PERFORM dbmail.check_mail_size('headers', headers::text, mail_size, max_size);
    mail_size := mail_size + COALESCE(octet_length(body), 0);
    PERFORM dbmail.check_mail_size('body', body, mail_size, max_size);
  END IF;
  RETURN fixed_size;
END;
$$;

-- Whether role `member` is a member of role `role`, directly or through other roles, walking
-- pg_auth_members rather than asking pg_has_role, which counts a superuser as a member of every role (a
-- superuser is not a member of every role's default profile).
CREATE FUNCTION dbmail.is_member_of(member oid, role oid) RETURNS boolean
LANGUAGE sql STABLE
AS $$
  WITH RECURSIVE belongs(roleid) AS (
    SELECT m.roleid FROM pg_catalog.pg_auth_members m WHERE m.member = is_member_of.member
    UNION
    SELECT m.roleid FROM pg_catalog.pg_auth_members m JOIN belongs b ON m.member = b.roleid)
  SELECT EXISTS (SELECT FROM belongs b WHERE b.roleid = is_member_of.role);
$$;

-- The profile a message is sent with. Named: it must exist and the role must be allowed to use it (an
-- admin, or a grant to public, to the role, or to a role it is a member of). Not named: the role's own
-- default, else a default granted to one of its roles, else the public default; queue_mail looks that up
-- in the statement that reads the limits (one statement fewer: each costs as much as the rest of this
-- function) and passes it as usual_default, the same query as below without a name.
CREATE FUNCTION dbmail.resolve_profile(sender name, sender_oid oid, profile_name text, usual_default integer)
RETURNS integer
LANGUAGE plpgsql STABLE
AS $$
DECLARE
  named integer;
  chosen integer;
BEGIN
  IF profile_name IS NULL THEN
    IF usual_default IS NULL THEN
      PERFORM dbmail.raise_error('55000', 'profile_name', NULL,
        format('no default profile is configured for role %s; name a profile, or have an admin set a default '
               '(sysmail_add_principalprofile_sp with is_default => true)', sender));
    END IF;
    RETURN usual_default;
  END IF;
  SELECT p.profile_id INTO named FROM dbmail.profiles p WHERE lower(p.name) = lower(btrim(profile_name));
  IF named IS NULL THEN
    PERFORM dbmail.raise_error('42704', 'profile_name', profile_name, 'no such profile');
  END IF;
  IF dbmail.is_admin(sender) THEN
    RETURN named;
  END IF;
  -- Whether one of the role's grants covers it: public, the role's own, or one of its roles' (walked
  -- only for the grants that are neither).
  SELECT pp.profile_id INTO chosen
  FROM dbmail.principal_profiles pp
  WHERE pp.profile_id = named
    AND (pp.principal_id IN (0, sender_oid) OR dbmail.is_member_of(sender_oid, pp.principal_id))
  LIMIT 1;
  IF chosen IS NULL THEN
    PERFORM dbmail.raise_error('42501', 'profile_name', profile_name,
      format('role %s may not use this profile (an admin can grant it with sysmail_add_principalprofile_sp)',
             sender));
  END IF;
  RETURN chosen;
END;
$$;

-- MaxMailsPerUserPerDay (SQL Server's planned error 14657): the mails the role queued in this hour (UTC)
-- and the 24 before it, from the ledger (so never fewer than in the last 24 hours). The per-role lock
-- makes concurrent sends count each other; queue_mail counts the mail (count_daily_mail) once it is
-- queued.
CREATE FUNCTION dbmail.check_daily_limit(sender name, sender_oid oid, max_per_day bigint) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  recent bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('dbmail.MaxMailsPerUserPerDay'), hashtext(sender_oid::text));
  SELECT COALESCE(sum(c.mails), 0) INTO recent FROM dbmail.daily_mail_counts c
  WHERE c.role_id = sender_oid AND c.hour_start >= date_trunc('hour', now(), 'UTC') - interval '24 hours';
  IF recent >= max_per_day THEN
    PERFORM dbmail.raise_error('54000', 'send_request_user', sender, format(
      'has queued %s mails in the last 24 hours, the MaxMailsPerUserPerDay limit (%s); try again later or ask an admin to raise it',
      recent, max_per_day));
  END IF;
END;
$$;

-- One more mail of the role in MaxMailsPerUserPerDay's ledger, in this hour's count.
CREATE FUNCTION dbmail.count_daily_mail(sender_oid oid) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  bucket_mails integer;
BEGIN
  INSERT INTO dbmail.daily_mail_counts AS c (role_id, hour_start, mails)
  VALUES (sender_oid, date_trunc('hour', now(), 'UTC'), 1)
  ON CONFLICT ON CONSTRAINT daily_mail_counts_pkey DO UPDATE SET mails = c.mails + 1
  RETURNING c.mails INTO bucket_mails;
  IF bucket_mails = 1 THEN
    -- A new hour for this role: forget what no count looks at any more.
    DELETE FROM dbmail.daily_mail_counts c WHERE c.hour_start < date_trunc('hour', now(), 'UTC') - interval '24 hours';
  END IF;
END;
$$;

-- Whether a call that queued a due item must NOTIFY dbmail_queue. A NOTIFY serialises the commits of
-- every transaction that sent one (PostgreSQL holds a cluster-wide lock from the notifying commit's
-- queue write through its WAL flush), so it is sent only when it is needed: when a sender listens and
-- none is awake. The state is three advisory locks of this database (read as of now, whatever the
-- caller's isolation level), held by the senders (000017, "the wake-up protocol"):
--   (1684172140, 1) shared by every sender's LISTEN connection: someone listens;
--   (1684172140, 2) exclusive by at most one awake sender, the watcher: it will look again;
--   (1684172140, 3) shared by this transaction until it ends, taken first: a sender going idle takes it
--     exclusively, so it waits for every call that counted on it, then looks once more.
-- Nobody listens: no NOTIFY (a sender claims when it starts listening, after waiting on the third lock).
-- A sender is going idle (the third lock is taken or wanted): NOTIFY. A watcher: no NOTIFY. The probes of
-- the first two are taken and given back at once, so callers never wait for each other or a sender.
-- LANGUAGE sql, one expression: inlined into queue_mail's plan (evaluated left to right, stopping early).
CREATE FUNCTION dbmail.must_wake_senders() RETURNS boolean
LANGUAGE sql VOLATILE
AS $$
  SELECT NOT pg_catalog.pg_try_advisory_xact_lock_shared(1684172140, 3)
      OR (NOT (pg_catalog.pg_try_advisory_lock(1684172140, 1) AND pg_catalog.pg_advisory_unlock(1684172140, 1))
          AND pg_catalog.pg_try_advisory_lock_shared(1684172140, 2)
          AND pg_catalog.pg_advisory_unlock_shared(1684172140, 2));
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(12, 'send_checks', 'a7078afc3c5a1f84202c2e98e01a1d1c2f1d08c93d6a10238e45ea00c097c264');
