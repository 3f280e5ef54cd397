CREATE SCHEMA dbmail;

COMMENT ON SCHEMA dbmail IS 'pg-dbmail: Database Mail for PostgreSQL';

CREATE TYPE dbmail.attachment AS (
	filename text,
	content bytea,
	content_type text
);

CREATE DOMAIN dbmail.attempt_outcome AS text
	CONSTRAINT attempt_outcome_check CHECK ((VALUE = ANY (ARRAY['sent'::text, 'refused'::text, 'failed'::text])));

CREATE DOMAIN dbmail.pager_time AS integer
	CONSTRAINT pager_time_check CHECK ((((VALUE >= 0) AND (VALUE <= 235959)) AND ((VALUE % 10000) < 6000) AND ((VALUE % 100) < 60)));

CREATE DOMAIN dbmail.sent_status AS text
	CONSTRAINT sent_status_check CHECK ((VALUE = ANY (ARRAY['unsent'::text, 'sending'::text, 'retrying'::text, 'sent'::text, 'failed'::text])));

CREATE FUNCTION dbmail.add_query_result(query text, query_result text, attach_query_result_as_file boolean, query_attachment_filename text, query_result_format text, fixed_size bigint, max_size bigint, INOUT body text, INOUT body_format text, INOUT files dbmail.attachment[]) RETURNS record
    LANGUAGE plpgsql
    AS $$
DECLARE
  format_name text := upper(btrim(query_result_format));
  result_bytes bytea := convert_to(query_result, 'UTF8');
  attached dbmail.attachment;
  mail_size bigint;
BEGIN
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
    body := CASE WHEN upper(btrim(COALESCE(body_format, 'TEXT'))) = 'HTML' THEN COALESCE(body, '')
                 ELSE replace(dbmail.html_escape(COALESCE(body, '')), E'\n', '<br>') END
            || CASE WHEN COALESCE(body, '') = '' THEN '' ELSE '<br>' END || query_result;
    body_format := 'HTML';
  ELSE
    body := CASE WHEN COALESCE(body, '') = '' THEN '' ELSE body || E'\n' END || query_result;
  END IF;
  -- The whole mail again: an inline result grows the body (HTML escaping can grow it further).
  mail_size := fixed_size + COALESCE(octet_length(body), 0)
    + (SELECT COALESCE(sum(octet_length(f.filename) + octet_length(f.content_type) + octet_length(f.content)), 0)
       FROM unnest(files) f);
  PERFORM dbmail.check_mail_size('query', query, mail_size, max_size);
END;
$$;

CREATE FUNCTION dbmail.address_domain(address text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $_$
BEGIN
  RETURN substring(address, '@([^@]*)$');
END;
$_$;

CREATE FUNCTION dbmail.address_problem(address text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $_$
DECLARE
  at_pos integer;
  local_part text;
  domain_part text;
BEGIN
  IF address IS NULL OR address = '' THEN
    RETURN 'an address is missing';
  END IF;
  -- Invisible characters (C1 controls, soft hyphen, zero-width and direction marks, BOM) make
  -- addresses that look like others.
  IF address ~ '[\u0080-\u009f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]' THEN
    RETURN 'contains invisible or control characters';
  END IF;
  -- The last @ separates local part and domain (a quoted local part may contain @).
  at_pos := length(address) - strpos(reverse(address), '@') + 1;
  IF strpos(address, '@') = 0 THEN
    RETURN 'not an e-mail address (no @)';
  END IF;
  local_part := left(address, at_pos - 1);
  domain_part := substr(address, at_pos + 1);
  IF local_part = '' THEN
    RETURN 'not an e-mail address (nothing before the @)';
  ELSIF domain_part = '' THEN
    RETURN 'not an e-mail address (nothing after the @)';
  ELSIF length(local_part) > 64 THEN
    RETURN 'the part before the @ is longer than 64 characters';
  ELSIF length(address) > 254 THEN
    RETURN 'the address is longer than 254 characters';
  ELSIF NOT (local_part ~ '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~\u0080-\U0010FFFF-]+(\.[A-Za-z0-9!#$%&''*+/=?^_`{|}~\u0080-\U0010FFFF-]+)*$'
             OR local_part ~ '^"([\x20\x21\x23-\x5b\x5d-\x7e\u0080-\U0010FFFF]|\\[\x20-\x7e])*"$') THEN
    RETURN 'not a valid e-mail address (the part before the @)';
  ELSIF NOT (domain_part ~ '^[A-Za-z0-9\u0080-\U0010FFFF]([A-Za-z0-9\u0080-\U0010FFFF-]*[A-Za-z0-9\u0080-\U0010FFFF])?(\.[A-Za-z0-9\u0080-\U0010FFFF]([A-Za-z0-9\u0080-\U0010FFFF-]*[A-Za-z0-9\u0080-\U0010FFFF])?)*$'
             OR domain_part ~ '^\[[\x21-\x5a\x5e-\x7e]*\]$') THEN
    RETURN 'not a valid e-mail address (the domain)';
  ELSIF domain_part ~ '(^|\.)[^.\[]{64,}(\.|$)' THEN
    RETURN 'a part of the domain is longer than 63 characters';
  ELSIF address ~ '[<>]' THEN
    -- Valid in a quoted local part or a domain literal, but rewritten by mail programs.
    RETURN 'contains < or >, which mail programs rewrite (the mail would go to another address)';
  END IF;
  RETURN NULL;
END;
$_$;

CREATE FUNCTION dbmail.apply_outcome(mailitem_id bigint, sender_id text, lease_token uuid, outcome text, account_id integer, smtp_response text, error text, account_errors jsonb, process_id integer, retry_rounds integer, retry_delay integer, smtp_attempts jsonb) RETURNS text
    LANGUAGE plpgsql
    AS $$
DECLARE
  current_status text;
  item_profile integer;
  attempts integer;
  failure record;
  summary text;
  new_status text;
BEGIN
  IF outcome IS NULL OR outcome NOT IN ('sent', 'retrying', 'failed') THEN
    PERFORM dbmail.raise_error('22023', 'outcome', outcome, 'must be sent, retrying or failed');
  END IF;
  IF outcome = 'sent' AND account_id IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'account_id', NULL, 'a sent outcome names the account that sent it');
  END IF;
  IF account_errors IS NOT NULL AND jsonb_typeof(account_errors) <> 'array' THEN
    PERFORM dbmail.raise_error('22023', 'account_errors', account_errors::text, 'must be a JSON array');
  END IF;
  IF smtp_attempts IS NOT NULL AND jsonb_typeof(smtp_attempts) <> 'array' THEN
    PERFORM dbmail.raise_error('22023', 'attempts', smtp_attempts::text, 'must be a JSON array');
  END IF;
  -- The item by its key, owner and token, locked, and only then its status. With sent_status = 'sending'
  -- in the WHERE, the planner may read the item through a partial index whose predicate that implies
  -- (mailitems_profile_pending_idx, mailitems_leased_idx) with no index condition, visiting every
  -- pending item to find one: it does whenever those indexes were empty at the table's last VACUUM or
  -- ANALYZE, as an idle queue's are, and a drain then costs the backlog's size per outcome. The
  -- lease_owner and lease_token conditions imply no index predicate, so only the primary key serves.
  SELECT m.sent_status, m.profile_id, m.send_attempts + 1 INTO current_status, item_profile, attempts
  FROM dbmail.mailitems m
  WHERE m.mailitem_id = apply_outcome.mailitem_id AND m.lease_owner = apply_outcome.sender_id
    AND m.lease_token = apply_outcome.lease_token
  FOR UPDATE;
  IF NOT FOUND OR current_status <> 'sending' THEN
    RETURN 'lease_lost';
  END IF;
  -- The message's rate-limit slot (if its account has a limit) ends now, after the server's reply.
  UPDATE dbmail.send_slots t SET finished_at = now()
  WHERE t.mailitem_id = apply_outcome.mailitem_id AND t.finished_at IS NULL AND NOT t.waiting;
  SELECT string_agg(format('account %s: %s', f.value ->> 'account_id', f.value ->> 'error'), '; ')
    INTO summary FROM jsonb_array_elements(COALESCE(account_errors, '[]')) f;
  IF jsonb_array_length(COALESCE(smtp_attempts, '[]')) > 0 THEN
    -- Checked first (CASE: in this order) so that a bad entry gets a message naming it, not a cast error.
    PERFORM dbmail.raise_error('22023', 'attempts', a.value::text, 'each attempt is an object with started_at, '
        'a duration_ms of 0 or more and an outcome of sent, refused or failed')
    FROM jsonb_array_elements(smtp_attempts) a
    WHERE CASE WHEN jsonb_typeof(a.value) IS DISTINCT FROM 'object'
                 OR jsonb_typeof(a.value -> 'started_at') IS DISTINCT FROM 'string'
                 OR jsonb_typeof(a.value -> 'duration_ms') IS DISTINCT FROM 'number' THEN true
               ELSE (a.value ->> 'duration_ms')::numeric < 0
                 OR NOT COALESCE(a.value ->> 'outcome' IN ('sent', 'refused', 'failed'), false) END;
    INSERT INTO dbmail.attempts (mailitem_id, attempt, account_id, started_at, duration_ms, outcome, smtp_code,
                                 smtp_response, sent_by)
    SELECT apply_outcome.mailitem_id, attempts, a.account_id, a.started_at, a.duration_ms, a.outcome, a.smtp_code,
           a.smtp_response, apply_outcome.sender_id
    FROM jsonb_to_recordset(smtp_attempts) AS a(account_id integer, started_at timestamptz, duration_ms integer,
      outcome text, smtp_code integer, smtp_response text);
  END IF;

  IF outcome = 'sent' THEN
    new_status := 'sent';
    UPDATE dbmail.mailitems m SET sent_status = 'sent', sent_date = now(), sent_account_id = apply_outcome.account_id,
      smtp_response = apply_outcome.smtp_response, sent_by = apply_outcome.sender_id, send_attempts = attempts,
      lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, last_mod_date = now(),
      last_mod_user = dbmail.caller_role()
    WHERE m.mailitem_id = apply_outcome.mailitem_id;
    UPDATE dbmail.profiles p SET last_success_account_id = apply_outcome.account_id
    WHERE p.profile_id = item_profile AND p.last_success_account_id IS DISTINCT FROM apply_outcome.account_id
      AND EXISTS (SELECT FROM dbmail.accounts a WHERE a.account_id = apply_outcome.account_id);
    IF FOUND THEN
      -- The profile's first choice changed: let the other senders know (rare: only on failover).
      PERFORM dbmail.config_changed();
    END IF;
    FOR failure IN SELECT f.value FROM jsonb_array_elements(COALESCE(account_errors, '[]')) f LOOP
      PERFORM dbmail.log_event('warning', format('Mail Id %s: account %s failed: %s', apply_outcome.mailitem_id,
          failure.value ->> 'account_id', failure.value ->> 'error'),
        apply_outcome.mailitem_id, (failure.value ->> 'account_id')::integer, process_id, apply_outcome.sender_id);
    END LOOP;
    PERFORM dbmail.log_event('success', format('Mail Id %s sent through account %s: %s', apply_outcome.mailitem_id,
        apply_outcome.account_id, COALESCE(apply_outcome.smtp_response, 'accepted')),
      apply_outcome.mailitem_id, apply_outcome.account_id, process_id, apply_outcome.sender_id);
    RETURN new_status;
  END IF;

  new_status := CASE WHEN outcome = 'retrying' AND attempts <= retry_rounds THEN 'retrying' ELSE 'failed' END;
  summary := COALESCE(apply_outcome.error, summary, 'no reason given');
  UPDATE dbmail.mailitems m SET
    sent_status = new_status, send_attempts = attempts, last_error = summary,
    next_attempt_at = CASE WHEN new_status = 'retrying' THEN now() + make_interval(secs => retry_delay)
                           ELSE m.next_attempt_at END,
    sent_date = CASE WHEN new_status = 'failed' THEN now() END,
    lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, last_mod_date = now(),
    last_mod_user = dbmail.caller_role()
  WHERE m.mailitem_id = apply_outcome.mailitem_id;
  IF new_status = 'retrying' THEN
    PERFORM dbmail.log_event('warning', format('Mail Id %s could not be sent (round %s of %s), retrying in %s s: %s',
        apply_outcome.mailitem_id, attempts, retry_rounds + 1, retry_delay, summary),
      apply_outcome.mailitem_id, NULL, process_id, apply_outcome.sender_id);
  ELSE
    PERFORM dbmail.log_event('error', format('Mail Id %s failed%s: %s', apply_outcome.mailitem_id,
        CASE WHEN outcome = 'retrying' THEN format(' after %s rounds over its accounts', attempts) ELSE '' END,
        summary),
      apply_outcome.mailitem_id, NULL, process_id, apply_outcome.sender_id);
  END IF;
  RETURN new_status;
END;
$$;

CREATE FUNCTION dbmail.attachment(filename text, content bytea, content_type text DEFAULT NULL::text) RETURNS dbmail.attachment
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
  SELECT ROW(filename, content, content_type)::dbmail.attachment;
$$;

CREATE FUNCTION dbmail.begin_migration(version integer, name text, previous_name text) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  file text := pg_catalog.lpad(begin_migration.version::text, 6, '0') || '_' || begin_migration.name;
  previous_file text := pg_catalog.lpad((begin_migration.version - 1)::text, 6, '0') || '_' || previous_name;
  current_version integer;
  recorded_previous text;
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('pg-dbmail migrations', 0));
  IF EXISTS (SELECT FROM dbmail.migrations m WHERE m.version = begin_migration.version) THEN
    RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = file || ' is already applied to this database';
  END IF;
  SELECT COALESCE(max(m.version), 0) INTO current_version FROM dbmail.migrations m;
  IF current_version <> begin_migration.version - 1 THEN
    RAISE EXCEPTION USING ERRCODE = '55000',
      MESSAGE = format('%s needs %s first; this database is at version %s',
                       file, previous_file, current_version);
  END IF;
  SELECT pg_catalog.lpad(m.version::text, 6, '0') || '_' || m.name INTO recorded_previous
  FROM dbmail.migrations m WHERE m.version = begin_migration.version - 1;
  IF recorded_previous IS DISTINCT FROM previous_file THEN
    RAISE EXCEPTION USING ERRCODE = '55000',
      MESSAGE = format('%s follows %s, but this database''s version %s is %s', file, previous_file,
                       current_version, recorded_previous);
  END IF;
END;
$$;

CREATE FUNCTION dbmail.caller_role() RETURNS name
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    AS $$
BEGIN
  RETURN COALESCE(NULLIF(current_setting('role'), 'none'), session_user)::name;
END;
$$;

CREATE FUNCTION dbmail.cancel_mailitems(mailitem_ids bigint[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  caller name := dbmail.take_caller_stamp('sysmail_cancel_mailitems_sp');
  caller_oid oid := to_regrole(quote_ident(caller));
  caller_is_admin boolean := dbmail.is_admin(caller);
  cancelled bigint[];
  busy integer;
BEGIN
  PERFORM dbmail.check_mailitem_ids(mailitem_ids, false);
  -- A claim locks what it takes: an item claimed meanwhile is 'sending' when this UPDATE sees it again.
  WITH c AS (
    UPDATE dbmail.mailitems m SET sent_status = 'failed', sent_date = now(), last_error = 'cancelled',
      last_mod_date = now(), last_mod_user = caller
    WHERE m.mailitem_id = ANY (mailitem_ids) AND m.sent_status IN ('unsent', 'retrying')
      AND (caller_is_admin OR (m.send_request_user = caller AND m.send_request_role = caller_oid))
    RETURNING m.mailitem_id
  )
  SELECT COALESCE(array_agg(c.mailitem_id ORDER BY c.mailitem_id), '{}') INTO cancelled FROM c;
  -- Their turns at a rate-limited account are not needed any more.
  DELETE FROM dbmail.send_slots t WHERE t.mailitem_id = ANY (cancelled) AND t.waiting;
  PERFORM dbmail.log_event('information', format('Mail Id %s was cancelled by %s', i, caller), i)
  FROM unnest(cancelled) i;
  SELECT count(*) INTO busy FROM dbmail.mailitems m
  WHERE m.mailitem_id = ANY (mailitem_ids) AND m.sent_status = 'sending'
    AND (caller_is_admin OR (m.send_request_user = caller AND m.send_request_role = caller_oid));
  IF busy > 0 THEN
    RAISE NOTICE '% of these mail items are being sent right now and were not cancelled', busy;
  END IF;
  RETURN cardinality(cancelled);
END;
$$;

CREATE TABLE dbmail.account_secrets (
    account_id integer NOT NULL,
    password text,
    oauth2_client_secret text,
    oauth2_refresh_token text,
    dkim_private_key text
);

CREATE TABLE dbmail.accounts (
    account_id integer NOT NULL,
    name text NOT NULL,
    description text,
    email_address text NOT NULL,
    display_name text,
    replyto_address text,
    mailserver_type text DEFAULT 'SMTP'::text NOT NULL,
    mailserver_name text NOT NULL,
    port integer DEFAULT 25 NOT NULL,
    username text,
    use_default_credentials boolean DEFAULT false NOT NULL,
    security text DEFAULT 'none'::text NOT NULL,
    timeout integer,
    tls_reject_unauthorized boolean DEFAULT true NOT NULL,
    auth_method text DEFAULT 'none'::text NOT NULL,
    oauth2_token_url text,
    oauth2_client_id text,
    oauth2_scope text,
    dkim_domain text,
    dkim_selector text,
    max_messages_per_minute integer,
    last_mod_datetime timestamp with time zone DEFAULT now() NOT NULL,
    last_mod_user name DEFAULT CURRENT_USER NOT NULL,
    CONSTRAINT accounts_auth_method_check CHECK ((auth_method = ANY (ARRAY['none'::text, 'password'::text, 'oauth2'::text]))),
    CONSTRAINT accounts_mailserver_type_check CHECK ((mailserver_type = 'SMTP'::text)),
    CONSTRAINT accounts_max_messages_per_minute_check CHECK (((max_messages_per_minute >= 1) AND (max_messages_per_minute <= 100000))),
    CONSTRAINT accounts_port_check CHECK (((port >= 1) AND (port <= 65535))),
    CONSTRAINT accounts_security_check CHECK ((security = ANY (ARRAY['none'::text, 'starttls'::text, 'tls'::text]))),
    CONSTRAINT accounts_timeout_check CHECK ((timeout > 0))
);

CREATE FUNCTION dbmail.check_account(a dbmail.accounts, s dbmail.account_secrets) RETURNS void
    LANGUAGE plpgsql STABLE
    AS $_$
BEGIN
  IF a.name IS NULL OR btrim(a.name) = '' THEN
    PERFORM dbmail.raise_error('22004', 'account_name', a.name, 'an account needs a name');
  END IF;
  PERFORM dbmail.check_header_text('account_name', a.name);
  IF length(a.name) > 128 THEN
    PERFORM dbmail.raise_error('22023', 'account_name', a.name, 'is longer than 128 characters');
  END IF;
  IF a.email_address IS NULL OR btrim(a.email_address) = '' THEN
    PERFORM dbmail.raise_error('22004', 'email_address', a.email_address, 'an account needs an e-mail address');
  END IF;
  PERFORM dbmail.parse_bare_address('email_address', a.email_address);
  PERFORM dbmail.check_header_text('display_name', a.display_name);
  PERFORM dbmail.parse_bare_address('replyto_address', a.replyto_address);
  IF a.mailserver_name IS NULL OR btrim(a.mailserver_name) = '' THEN
    PERFORM dbmail.raise_error('22004', 'mailserver_name', a.mailserver_name,
      'name the SMTP server (host name or IP address)');
  END IF;
  IF a.mailserver_name !~ '^[A-Za-z0-9._:\[\]-]+$' THEN
    PERFORM dbmail.raise_error('22023', 'mailserver_name', a.mailserver_name,
      'not a host name or IP address');
  END IF;
  IF a.port IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'port', NULL, 'must be from 1 to 65535');
  ELSIF a.port NOT BETWEEN 1 AND 65535 THEN
    PERFORM dbmail.raise_error('22023', 'port', a.port::text, 'must be from 1 to 65535');
  END IF;
  IF a.use_default_credentials IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'use_default_credentials', NULL, 'must be true or false');
  END IF;
  IF a.use_default_credentials AND a.username IS NOT NULL THEN
    PERFORM dbmail.raise_error('22023', 'username', a.username,
      'cannot be given when use_default_credentials is true');
  END IF;
  PERFORM dbmail.check_header_text('username', a.username);
  IF s.password IS NOT NULL AND a.username IS NULL THEN
    PERFORM dbmail.raise_error('22023', 'password', '********', 'a password needs a username');
  END IF;
  PERFORM dbmail.check_secret('password', s.password);
  IF a.security IS NULL OR a.security NOT IN ('none', 'starttls', 'tls') THEN
    PERFORM dbmail.raise_error('22023', 'security', a.security, 'must be none, starttls or tls');
  END IF;
  IF a.timeout IS NOT NULL AND a.timeout NOT BETWEEN 1 AND 3600 THEN
    PERFORM dbmail.raise_error('22023', 'timeout', a.timeout::text, 'must be from 1 to 3600 seconds');
  END IF;
  IF a.tls_reject_unauthorized IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'tls_reject_unauthorized', NULL, 'must be true or false');
  END IF;
  PERFORM dbmail.check_auth(a, s);
  PERFORM dbmail.check_dkim(a, s);
  IF a.max_messages_per_minute NOT BETWEEN 1 AND 100000 THEN
    PERFORM dbmail.raise_error('22023', 'max_messages_per_minute', a.max_messages_per_minute::text,
      'must be from 1 to 100000 (0 on update: no limit)');
  END IF;
END;
$_$;

CREATE FUNCTION dbmail.check_attachment(parameter text, filename text, size bigint) RETURNS void
    LANGUAGE plpgsql STABLE
    AS $_$
DECLARE
  -- Judged as it will be stored (trimmed): a trailing space must not hide a prohibited extension.
  trimmed text := btrim(filename, E' \t');
  extension text := lower(substring(trimmed FROM '\.([^.]*)$'));
  max_size bigint := dbmail.setting('MaxFileSize')::bigint;
BEGIN
  IF filename IS NULL OR btrim(filename) = '' THEN
    PERFORM dbmail.raise_error('22004', parameter, filename, 'an attachment needs a file name');
  END IF;
  PERFORM dbmail.check_header_text(parameter, filename);
  IF filename ~ '[/\\]' OR length(filename) > 255 THEN
    PERFORM dbmail.raise_error('22023', parameter, filename, 'must be a file name of at most 255 characters, not a path');
  END IF;
  -- Tab, C1 controls (NEL among them), Unicode spaces other than the plain space, and the format and
  -- other default-ignorable characters (soft hyphen, zero-width and direction marks, joiners,
  -- variation selectors, fillers, BOM, tags).
  IF trimmed ~ '[\t\u0080-\u00a0\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u1680\u17b4\u17b5\u180b-\u180f\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]' THEN
    PERFORM dbmail.raise_error('22023', parameter, filename,
      'a file name may not contain invisible, space-like or control characters other than a plain space '
      '(a receiver drops or changes them, and with them what the extension looks like)');
  END IF;
  IF strpos(trimmed, ':') > 0 THEN
    PERFORM dbmail.raise_error('22023', parameter, filename,
      'a file name may not contain a colon (Windows reads what follows it as an alternate data stream: x.exe::$DATA is x.exe)');
  END IF;
  IF right(trimmed, 1) = '.' THEN
    PERFORM dbmail.raise_error('22023', parameter, filename,
      'a file name may not end with a dot (Windows drops trailing dots and spaces, and the extension before them counts)');
  END IF;
  IF extension = ANY (string_to_array(dbmail.setting('ProhibitedExtensions'), ',')) THEN
    PERFORM dbmail.raise_error('22023', parameter, filename,
      format('Database Mail is not permitted to send files with the extension %s (ProhibitedExtensions)', extension));
  END IF;
  IF size > max_size THEN
    PERFORM dbmail.raise_error('54000', parameter, filename,
      format('%s bytes is more than MaxFileSize (%s bytes)', size, max_size));
  END IF;
END;
$_$;

CREATE FUNCTION dbmail.check_auth(a dbmail.accounts, s dbmail.account_secrets) RETURNS void
    LANGUAGE plpgsql STABLE
    AS $_$
BEGIN
  IF a.auth_method IS NULL OR a.auth_method NOT IN ('none', 'password', 'oauth2') THEN
    PERFORM dbmail.raise_error('22023', 'auth_method', a.auth_method, 'must be none, password or oauth2');
  END IF;
  IF a.auth_method = 'none' AND (a.username IS NOT NULL OR a.use_default_credentials) THEN
    PERFORM dbmail.raise_error('22023', 'auth_method', a.auth_method,
      'conflicts with a username or use_default_credentials => true (they log in with a password)');
  END IF;
  IF a.auth_method = 'password' AND a.username IS NULL AND NOT a.use_default_credentials THEN
    PERFORM dbmail.raise_error('22004', 'username', NULL,
      'auth_method password needs a username (or use_default_credentials => true)');
  END IF;
  IF a.auth_method <> 'oauth2' THEN
    IF a.oauth2_token_url IS NOT NULL OR a.oauth2_client_id IS NOT NULL OR a.oauth2_scope IS NOT NULL
       OR s.oauth2_client_secret IS NOT NULL OR s.oauth2_refresh_token IS NOT NULL THEN
      PERFORM dbmail.raise_error('22023', 'auth_method', a.auth_method,
        'the oauth2_ settings are only for auth_method oauth2');
    END IF;
    RETURN;
  END IF;
  IF a.use_default_credentials THEN
    PERFORM dbmail.raise_error('22023', 'use_default_credentials', 'true', 'cannot be used with auth_method oauth2');
  END IF;
  IF a.username IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'username', NULL,
      'auth_method oauth2 needs the mailbox to log in as (XOAUTH2 user)');
  END IF;
  IF s.password IS NOT NULL THEN
    PERFORM dbmail.raise_error('22023', 'password', '********',
      'an oauth2 account logs in with a token, not a password');
  END IF;
  IF a.oauth2_token_url IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'oauth2_token_url', NULL, 'auth_method oauth2 needs the token endpoint');
  ELSIF a.oauth2_token_url !~ '^https?://[^\s/?#]+[^\s]*$' THEN
    PERFORM dbmail.raise_error('22023', 'oauth2_token_url', a.oauth2_token_url, 'must be an http:// or https:// URL');
  END IF;
  IF a.oauth2_client_id IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'oauth2_client_id', NULL, 'auth_method oauth2 needs the client id');
  END IF;
  PERFORM dbmail.check_header_text('oauth2_client_id', a.oauth2_client_id);
  PERFORM dbmail.check_header_text('oauth2_scope', a.oauth2_scope);
  IF s.oauth2_client_secret IS NULL AND s.oauth2_refresh_token IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'oauth2_client_secret', NULL,
      'the client-credentials grant needs a client secret (or give oauth2_refresh_token)');
  END IF;
  PERFORM dbmail.check_secret('oauth2_client_secret', s.oauth2_client_secret);
  PERFORM dbmail.check_secret('oauth2_refresh_token', s.oauth2_refresh_token);
END;
$_$;

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

CREATE FUNCTION dbmail.check_dkim(a dbmail.accounts, s dbmail.account_secrets) RETURNS void
    LANGUAGE plpgsql STABLE
    AS $_$
BEGIN
  IF a.dkim_domain IS NULL AND a.dkim_selector IS NULL AND s.dkim_private_key IS NULL THEN
    RETURN;
  END IF;
  IF a.dkim_domain IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'dkim_domain', NULL, 'DKIM needs dkim_domain, dkim_selector and dkim_private_key');
  ELSIF a.dkim_domain !~* '^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$' THEN
    PERFORM dbmail.raise_error('22023', 'dkim_domain', a.dkim_domain, 'not a domain name');
  END IF;
  IF a.dkim_selector IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'dkim_selector', NULL, 'DKIM needs dkim_domain, dkim_selector and dkim_private_key');
  ELSIF a.dkim_selector !~* '^[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*$' THEN
    PERFORM dbmail.raise_error('22023', 'dkim_selector', a.dkim_selector, 'not a DKIM selector');
  END IF;
  IF s.dkim_private_key IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'dkim_private_key', NULL,
      'DKIM needs dkim_domain, dkim_selector and dkim_private_key');
  END IF;
  PERFORM dbmail.check_secret('dkim_private_key', s.dkim_private_key);
  IF s.dkim_private_key !~ '^(env|file):' AND s.dkim_private_key !~ '-----BEGIN (RSA )?PRIVATE KEY-----' THEN
    PERFORM dbmail.raise_error('22023', 'dkim_private_key', '********',
      'must be an RSA private key in PEM (-----BEGIN PRIVATE KEY-----), env:NAME or file:/path');
  END IF;
END;
$_$;

CREATE FUNCTION dbmail.check_given_size(subject text, recipients text, copy_recipients text, blind_copy_recipients text, from_address text, reply_to text, headers jsonb, body text, max_size bigint) RETURNS bigint
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

CREATE FUNCTION dbmail.check_headers(headers jsonb) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    AS $_$
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
$_$;

CREATE FUNCTION dbmail.check_mail_size(parameter text, value text, size bigint, max_size bigint) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    AS $$
BEGIN
  IF max_size > 0 AND size > max_size THEN
    PERFORM dbmail.raise_error('54000', parameter, value,
      format('the mail would be %s bytes (subject, addresses, headers, body and attachments), more than MaxMailSize (%s bytes)',
             size, max_size));
  END IF;
END;
$$;

CREATE FUNCTION dbmail.check_mailitem_ids(mailitem_ids bigint[], null_allowed boolean) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF mailitem_ids IS NULL THEN
    IF NOT null_allowed THEN
      PERFORM dbmail.raise_error('22004', 'mailitem_ids', NULL, 'name the mail items');
    END IF;
  ELSIF cardinality(mailitem_ids) = 0 THEN
    PERFORM dbmail.raise_error('22023', 'mailitem_ids', '{}', 'is empty: name at least one mail item');
  ELSIF array_position(mailitem_ids, NULL) IS NOT NULL THEN
    PERFORM dbmail.raise_error('22004', 'mailitem_ids', mailitem_ids::text, 'holds NULL');
  END IF;
END;
$$;

CREATE FUNCTION dbmail.check_operator(enabled boolean, email_address text, pager_address text, weekday_pager_start_time integer, weekday_pager_end_time integer, saturday_pager_start_time integer, saturday_pager_end_time integer, sunday_pager_start_time integer, sunday_pager_end_time integer, pager_days integer, netsend_address text, category_name text) RETURNS void
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

CREATE FUNCTION dbmail.check_operator_addresses(parameter text, value text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    AS $$
BEGIN
  IF value IS NOT NULL AND jsonb_array_length(dbmail.parse_address_list(parameter, value)) = 0 THEN
    PERFORM dbmail.raise_error('22023', parameter, value, 'no e-mail address given');
  END IF;
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

CREATE FUNCTION dbmail.check_profile_name(profile_name text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    AS $$
BEGIN
  IF profile_name IS NULL OR btrim(profile_name) = '' THEN
    PERFORM dbmail.raise_error('22004', 'profile_name', profile_name, 'a profile needs a name');
  END IF;
  PERFORM dbmail.check_header_text('profile_name', profile_name);
  IF length(profile_name) > 128 THEN
    PERFORM dbmail.raise_error('22023', 'profile_name', profile_name, 'is longer than 128 characters');
  END IF;
END;
$$;

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

CREATE FUNCTION dbmail.check_secret(parameter text, secret text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    AS $_$
BEGIN
  IF secret ~ '^env:' AND secret !~ '^env:[A-Za-z_][A-Za-z0-9_]*$' THEN
    PERFORM dbmail.raise_error('22023', parameter, secret, 'env: must be followed by an environment variable name');
  END IF;
  IF secret ~ '^file:' AND secret !~ '^file:/' THEN
    PERFORM dbmail.raise_error('22023', parameter, secret, 'file: must be followed by an absolute path');
  END IF;
END;
$_$;

CREATE FUNCTION dbmail.check_send_arguments(subject text, body text, body_format text, importance text, sensitivity text, query text, execute_query_database text, attach_query_result_as_file boolean, query_result_header boolean, query_result_width integer, query_result_separator text, exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean, query_result_no_padding boolean, file_attachments text, attachments dbmail.attachment[], headers jsonb, idempotency_key text, query_result_format text) RETURNS void
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION dbmail.claim_job_failure(operator_id integer, runid bigint, jobid bigint, run_ended_at timestamp with time zone) RETURNS boolean
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
  SELECT dbmail.require_admin();
  WITH claimed AS (
    INSERT INTO dbmail.notified_job_runs (operator_id, runid, jobid, run_ended_at)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT ON CONSTRAINT notified_job_runs_pkey DO NOTHING
    RETURNING 1
  )
  SELECT EXISTS (SELECT FROM claimed);
$_$;

CREATE FUNCTION dbmail.claim_mailitems(sender_id text, batch_size integer DEFAULT 20, lease_seconds integer DEFAULT 300) RETURNS TABLE(mailitem_id bigint, profile_id integer, envelope jsonb, subject text, body text, body_format text, importance text, sensitivity text, from_address text, reply_to text, headers jsonb, message_id text, send_attempts integer, attachment_count integer, lease_expires_at timestamp with time zone, lease_token uuid)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_sort TO 'off'
    SET jit TO 'off'
    AS $_$
DECLARE
  claimer text := claim_mailitems.sender_id;
  lease_end timestamptz := now() + make_interval(secs => lease_seconds);
  -- The proof of this claim: only the claimer learns it, and every later call about these items wants it.
  token uuid := gen_random_uuid();
  delivering boolean;
  registered_by oid;
  expired record;
  -- Exactly the items this call claimed: now() is fixed for a transaction, so lease_end cannot tell two
  -- claims of one transaction apart.
  claimed bigint[] := '{}';
  -- last_mod_user of the claimed items, once rather than per row.
  modifier name;
  -- This database's installation id, in the Message-IDs fixed here.
  installation text;
BEGIN
  -- Confined to the roles SenderRoles lists, where it lists any.
  PERFORM dbmail.require_sender();
  IF claimer IS NULL OR btrim(claimer) = '' THEN
    PERFORM dbmail.raise_error('22004', 'sender_id', claimer, 'a sender needs an id');
  END IF;
  IF batch_size IS NULL OR batch_size NOT BETWEEN 1 AND 10000 THEN
    PERFORM dbmail.raise_error('22023', 'batch_size', batch_size::text, 'must be from 1 to 10000');
  END IF;
  IF lease_seconds IS NULL OR lease_seconds NOT BETWEEN 1 AND 86400 THEN
    PERFORM dbmail.raise_error('22023', 'lease_seconds', lease_seconds::text, 'must be from 1 to 86400');
  END IF;
  -- Whether delivery is started, and who registered the claimer's id, in one statement. An id nobody
  -- registered may claim (its first heartbeat may not have got through yet).
  SELECT st.started, (SELECT s.login FROM dbmail.senders s WHERE s.sender_id = claimer),
         replace(st.installation_id::text, '-', '')
    INTO delivering, registered_by, installation
  FROM dbmail.system_state st;
  IF NOT dbmail.may_use_sender_id(registered_by) THEN
    PERFORM dbmail.raise_error('42501', 'sender_id', claimer, 'registered by another login');
  END IF;
  IF NOT delivering THEN
    RETURN;
  END IF;
  modifier := dbmail.caller_role();

  -- A sender that stopped heartbeating (killed, its host lost) is known dead 30 seconds after its last
  -- heartbeat: its leases are cut at that moment, so the takeover below claims its items now instead of
  -- when their leases would have run out (300 s by default). A sender that is alive but stuck keeps
  -- heartbeating, and its lease stays the bound. Never the claimer itself: it is claiming, so alive (its
  -- heartbeat may be old after an outage, and its own items in flight must not come back to it). Not in
  -- the first 30 seconds after the server started, nor after a standby was promoted (a new timeline,
  -- note_timeline): nobody could heartbeat while it was down, and one sender's first claim may come
  -- before another's first heartbeat. Usually no sender has died: one probe of senders_live_idx says
  -- so. Dead senders are taken one claimer at a time (SKIP LOCKED).
  IF EXISTS (SELECT FROM dbmail.senders s
             WHERE s.stopped_at IS NULL AND s.last_heartbeat < now() - interval '30 seconds'
               AND s.sender_id <> claimer)
     AND pg_postmaster_start_time() < now() - interval '30 seconds'
     AND dbmail.note_timeline() < now() - interval '30 seconds' THEN
    WITH dead AS (
      UPDATE dbmail.senders s SET stopped_at = s.last_heartbeat + interval '30 seconds'
      WHERE s.sender_id IN (
        SELECT x.sender_id FROM dbmail.senders x
        WHERE x.stopped_at IS NULL AND x.last_heartbeat < now() - interval '30 seconds'
          AND x.sender_id <> claimer
        ORDER BY x.sender_id FOR UPDATE SKIP LOCKED)
      RETURNING s.sender_id, s.stopped_at)
    UPDATE dbmail.mailitems m SET lease_expires_at = d.stopped_at
    FROM dead d
    WHERE m.sent_status = 'sending' AND m.lease_expires_at > d.stopped_at AND m.lease_owner = d.sender_id;
  END IF;

  -- Items whose sender stopped reporting (it died after claiming, its lease expired or was cut above):
  -- whether the SMTP server accepted them is unknown. UnknownOutcomePolicy retry sends them again (same
  -- Message-ID, so a duplicate can be recognised); fail gives up on them, for mail where a duplicate is
  -- worse than none.
  -- There usually are none: one probe of mailitems_leased_idx says so, and the claim is then 3 statements.
  IF EXISTS (SELECT FROM dbmail.mailitems x WHERE x.sent_status = 'sending' AND x.lease_expires_at < now()) THEN
    IF dbmail.setting('UnknownOutcomePolicy') = 'fail' THEN
      FOR expired IN
        UPDATE dbmail.mailitems m SET sent_status = 'failed', sent_date = now(), lease_owner = NULL,
          lease_token = NULL, lease_expires_at = NULL, send_attempts = m.send_attempts + 1,
          last_error = 'outcome unknown: the sender sending it stopped reporting (UnknownOutcomePolicy fail)',
          last_mod_date = now(), last_mod_user = modifier
        WHERE m.mailitem_id IN (
          SELECT x.mailitem_id FROM dbmail.mailitems x
          WHERE x.sent_status = 'sending' AND x.lease_expires_at < now()
          ORDER BY x.lease_expires_at LIMIT batch_size FOR UPDATE SKIP LOCKED)
        RETURNING m.mailitem_id
      LOOP
        PERFORM dbmail.log_event('error',
          format('Mail Id %s: the sender sending it stopped reporting before an outcome was recorded; whether '
                 'it was delivered is unknown, and UnknownOutcomePolicy is fail, so it is not sent again',
                 expired.mailitem_id),
          expired.mailitem_id, NULL, NULL, claimer);
      END LOOP;
    ELSE
      FOR expired IN
        UPDATE dbmail.mailitems m SET lease_owner = claimer, lease_token = token, lease_expires_at = lease_end,
          last_mod_date = now(), last_mod_user = modifier
        WHERE m.mailitem_id IN (
          SELECT x.mailitem_id FROM dbmail.mailitems x
          WHERE x.sent_status = 'sending' AND x.lease_expires_at < now()
          ORDER BY x.lease_expires_at LIMIT batch_size FOR UPDATE SKIP LOCKED)
        RETURNING m.mailitem_id
      LOOP
        claimed := claimed || expired.mailitem_id;
        PERFORM dbmail.log_event('warning',
          format('Mail Id %s: the sender sending it stopped reporting before an outcome was recorded; whether '
                 'it was delivered is unknown (outcome unknown), so it is sent again with the same Message-ID',
                 expired.mailitem_id),
          expired.mailitem_id, NULL, NULL, claimer);
      END LOOP;
    END IF;
  END IF;

  -- Due items, as many as the batch has room for, claimed and returned in one statement with the items
  -- whose leases were taken over above. An item's first claim fixes its Message-ID (docs/sql-reference.md
  -- 2.8; here rather than in each sp_send_dbmail call, which would pay a statement's worth of lookups):
  -- the sending domain is what follows the last @ of from_address, else of the profile's first account.
  RETURN QUERY
  WITH taken AS (
    UPDATE dbmail.mailitems m SET sent_status = 'sending', lease_owner = claimer, lease_token = token,
      lease_expires_at = lease_end, last_mod_date = now(), last_mod_user = modifier,
      message_id = COALESCE(m.message_id, '<dbmail.' || m.mailitem_id || '.'
        || to_hex((date_part('epoch', m.send_request_date) * 1000000)::bigint) || '.' || installation || '@'
        || COALESCE(substring(CASE WHEN m.from_address IS NOT NULL THEN
                                dbmail.parse_single_address('from_address', m.from_address) ->> 'address' END, '@([^@]*)$'),
                    (SELECT substring(a.email_address, '@([^@]*)$') FROM dbmail.profile_accounts pa
                     JOIN dbmail.accounts a ON a.account_id = pa.account_id WHERE pa.profile_id = m.profile_id
                     ORDER BY pa.sequence_number, pa.account_id LIMIT 1), 'localhost') || '>')
    WHERE m.mailitem_id IN (
      SELECT x.mailitem_id FROM dbmail.mailitems x
      WHERE x.sent_status IN ('unsent', 'retrying') AND x.next_attempt_at <= now()
      ORDER BY x.next_attempt_at, x.mailitem_id
      LIMIT batch_size - cardinality(claimed) FOR UPDATE SKIP LOCKED)
    RETURNING m.*)
  SELECT t.mailitem_id, t.profile_id, t.envelope, t.subject, t.body, t.body_format, t.importance,
         t.sensitivity, t.from_address, t.reply_to, t.headers, t.message_id, t.send_attempts,
         (SELECT count(*)::integer FROM dbmail.attachments a WHERE a.mailitem_id = t.mailitem_id),
         t.lease_expires_at, t.lease_token
  FROM (SELECT * FROM taken
        UNION ALL
        SELECT m.* FROM dbmail.mailitems m WHERE m.mailitem_id = ANY (claimed)) t
  ORDER BY t.mailitem_id;
  IF NOT FOUND THEN
    UPDATE dbmail.senders s SET last_empty_claim_at = now() WHERE s.sender_id = claimer;
  END IF;
END;
$_$;

CREATE FUNCTION dbmail.collect_attachments(attachments dbmail.attachment[], file_attachments text, mail_size bigint, max_size bigint) RETURNS dbmail.attachment[]
    LANGUAGE plpgsql
    AS $_$
DECLARE
  files dbmail.attachment[] := '{}';
  attached dbmail.attachment;
  size bigint := mail_size;
BEGIN
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
    size := size + octet_length(attached.filename) + octet_length(attached.content_type)
      + octet_length(attached.content);
    PERFORM dbmail.check_mail_size('attachments', attached.filename, size, max_size);
    files := files || attached;
  END LOOP;
  IF NULLIF(btrim(file_attachments), '') IS NOT NULL THEN
    files := files || dbmail.read_attachment_files(file_attachments);
    size := mail_size
      + (SELECT COALESCE(sum(octet_length(f.filename) + octet_length(f.content_type) + octet_length(f.content)), 0)
         FROM unnest(files) f);
    PERFORM dbmail.check_mail_size('file_attachments', file_attachments, size, max_size);
  END IF;
  RETURN files;
END;
$_$;

CREATE FUNCTION dbmail.config_changed() RETURNS void
    LANGUAGE sql
    AS $$
  SELECT pg_catalog.pg_notify('dbmail_config', '');
$$;

CREATE FUNCTION dbmail.content_type_for(filename text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $_$
BEGIN
  RETURN CASE lower(substring(filename FROM '\.([^.]+)$'))
    WHEN 'txt' THEN 'text/plain' WHEN 'log' THEN 'text/plain' WHEN 'csv' THEN 'text/csv'
    WHEN 'tsv' THEN 'text/tab-separated-values' WHEN 'htm' THEN 'text/html' WHEN 'html' THEN 'text/html'
    WHEN 'json' THEN 'application/json' WHEN 'xml' THEN 'application/xml' WHEN 'pdf' THEN 'application/pdf'
    WHEN 'zip' THEN 'application/zip' WHEN 'gz' THEN 'application/gzip' WHEN 'sql' THEN 'application/sql'
    WHEN 'png' THEN 'image/png' WHEN 'jpg' THEN 'image/jpeg' WHEN 'jpeg' THEN 'image/jpeg'
    WHEN 'gif' THEN 'image/gif' WHEN 'svg' THEN 'image/svg+xml' WHEN 'ics' THEN 'text/calendar'
    WHEN 'xlsx' THEN 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'
    WHEN 'docx' THEN 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'
    WHEN 'xls' THEN 'application/vnd.ms-excel'
    ELSE 'application/octet-stream'
  END;
END;
$_$;

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

CREATE FUNCTION dbmail.csv_line(fields text[]) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
  RETURN array_to_string(ARRAY(
    SELECT CASE WHEN f IS NULL THEN ''
                WHEN f ~ '[",\r\n]' THEN '"' || replace(f, '"', '""') || '"'
                ELSE f END
    FROM unnest(fields) f), ',');
END;
$$;

CREATE FUNCTION dbmail.delete_mailitems(sent_before timestamp with time zone, sent_status text) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  deleter name := dbmail.take_caller_stamp('sysmail_delete_mailitems_sp');
  deleter_oid oid := to_regrole(quote_ident(deleter));
  deleter_is_admin boolean := dbmail.is_admin(deleter);
  status text := lower(btrim(sent_status));
  gone_ids bigint[];
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
  WITH gone AS (
    DELETE FROM dbmail.mailitems m
    WHERE (sent_before IS NULL OR m.send_request_date < sent_before)
      AND (status IS NULL OR m.sent_status = status)
      AND (deleter_is_admin OR (m.send_request_user = deleter AND m.send_request_role = deleter_oid))
    RETURNING m.mailitem_id)
  SELECT array_agg(gone.mailitem_id) INTO gone_ids FROM gone;
  deleted := COALESCE(cardinality(gone_ids), 0);
  -- Their attempts (dbmail.attempts has no foreign key, see its table). A statement of its own, so that
  -- it sees the attempts a sender committed while the DELETE above waited for the item's lock.
  DELETE FROM dbmail.attempts t WHERE t.mailitem_id = ANY (gone_ids);
  PERFORM dbmail.log_event('information',
    format('Mail items deletion was initiated by %s; %s items deleted', deleter, deleted));
  RETURN deleted;
END;
$$;

CREATE FUNCTION dbmail.extend_leases(sender_id text, mailitem_ids bigint[], lease_tokens uuid[], lease_seconds integer DEFAULT 300) RETURNS bigint[]
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  held bigint[];
BEGIN
  -- Confined to the roles SenderRoles lists, where it lists any.
  PERFORM dbmail.require_sender();
  IF lease_seconds IS NULL OR lease_seconds NOT BETWEEN 1 AND 86400 THEN
    PERFORM dbmail.raise_error('22023', 'lease_seconds', lease_seconds::text, 'must be from 1 to 86400');
  END IF;
  UPDATE dbmail.senders s SET last_heartbeat = now()
  WHERE s.sender_id = extend_leases.sender_id AND s.stopped_at IS NULL AND dbmail.may_use_sender_id(s.login);
  -- Locked by key, owner and token, then checked: sent_status in the WHERE could make the planner walk a
  -- partial index (see apply_outcome).
  SELECT COALESCE(array_agg(h.mailitem_id ORDER BY h.mailitem_id) FILTER (WHERE h.sent_status = 'sending'), '{}')
    INTO held
  FROM (SELECT m.mailitem_id, m.sent_status FROM dbmail.mailitems m
        WHERE m.mailitem_id = ANY (mailitem_ids) AND m.lease_owner = extend_leases.sender_id
          AND m.lease_token = ANY (lease_tokens)
        ORDER BY m.mailitem_id FOR UPDATE) h;
  UPDATE dbmail.mailitems m SET lease_expires_at = now() + make_interval(secs => lease_seconds)
  WHERE m.mailitem_id = ANY (held);
  RETURN held;
END;
$$;

CREATE FUNCTION dbmail.find_by_id_or_name(kind text, id bigint, name text, required boolean DEFAULT true, id_parameter text DEFAULT NULL::text, name_parameter text DEFAULT NULL::text) RETURNS bigint
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

CREATE FUNCTION dbmail.find_setting(parameter_name text) RETURNS text
    LANGUAGE plpgsql STABLE
    AS $$
DECLARE
  stored_name text;
BEGIN
  IF parameter_name IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'parameter_name', NULL, 'name a setting (see sysmail_help_configure_sp)');
  END IF;
  SELECT s.paramname INTO stored_name FROM dbmail.settings s WHERE lower(s.paramname) = lower(btrim(parameter_name));
  IF stored_name IS NULL THEN
    PERFORM dbmail.raise_error('42704', 'parameter_name', parameter_name,
      'no such setting (see sysmail_help_configure_sp)');
  END IF;
  RETURN stored_name;
END;
$$;

CREATE FUNCTION dbmail.format_query_result(relation regclass, json_rows boolean, result_format text, header boolean, width integer, separator text, no_padding boolean, no_truncate boolean, max_bytes bigint) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
  format_name text := upper(result_format);
  first_row json;
  names text[];
  numeric_columns boolean[];
  columns integer;
  cut bigint := max_bytes + 1;
  shown text;        -- SQL: the row's values as TEXT shows them (text[], no NULLs), over alias t
  values_ text;      -- SQL: the row's values cut to `cut` characters (text[], NULL for NULL), over alias t
  measure text;
  over boolean;
  maxes integer[];
  widths integer[];
  line_sql text;
  r record;
  piece text;
  lines text[] := '{}';
  total bigint := 0;
  row_count bigint := 0;
  trailer text;
  prefix text;
  formatted text;
BEGIN
  IF json_rows THEN
    EXECUTE format('SELECT t.j FROM %s t LIMIT 1', relation) INTO first_row;
    names := ARRAY(SELECT e.key FROM json_each(first_row) e);
    numeric_columns := ARRAY(SELECT json_typeof(e.value) = 'number' FROM json_each(first_row) e);
    shown := format('ARRAY(SELECT COALESCE(pg_catalog.substr(e.value, 1, %s), ''NULL'') FROM '
                    'pg_catalog.json_each_text(t.j) WITH ORDINALITY AS e(key, value, k) ORDER BY e.k)',
                    CASE WHEN no_truncate THEN cut ELSE 256 END);
    values_ := format('ARRAY(SELECT pg_catalog.substr(e.value, 1, %s) FROM '
                      'pg_catalog.json_each_text(t.j) WITH ORDINALITY AS e(key, value, k) ORDER BY e.k)', cut);
  ELSE
    SELECT array_agg(a.attname::text ORDER BY a.attnum),
           array_agg(a.atttypid IN (20, 21, 23, 26, 700, 701, 790, 1700) ORDER BY a.attnum),
           'ARRAY[' || string_agg(format('COALESCE(pg_catalog.substr(t.%I::text, 1, %s), ''NULL'')', a.attname,
                                         CASE WHEN no_truncate THEN cut ELSE 256 END), ', ' ORDER BY a.attnum) || ']',
           'ARRAY[' || string_agg(format('pg_catalog.substr(t.%I::text, 1, %s)', a.attname, cut), ', '
                                  ORDER BY a.attnum) || ']::text[]'
      INTO names, numeric_columns, shown, values_
    FROM pg_attribute a WHERE a.attrelid = relation AND a.attnum > 0 AND NOT a.attisdropped;
  END IF;
  columns := cardinality(names);

  IF format_name = 'JSON' THEN
    -- json_agg puts ", " between rows (and a line break before each composite row but the first): at
    -- least 2 bytes each, and 2 for the brackets.
    EXECUTE format('SELECT EXISTS (SELECT FROM (SELECT sum(octet_length(%s) + 2) OVER (ROWS BETWEEN UNBOUNDED '
                   'PRECEDING AND CURRENT ROW) AS run FROM %s t) w WHERE w.run > $1)',
                   CASE WHEN json_rows THEN 't.j::text' ELSE 'pg_catalog.row_to_json(t)::text' END, relation)
      INTO over USING max_bytes;
    IF over THEN
      RETURN NULL;
    END IF;
    EXECUTE format('SELECT COALESCE(pg_catalog.json_agg(%s), ''[]''::pg_catalog.json)::text FROM %s t',
                   CASE WHEN json_rows THEN 't.j' ELSE 't' END, relation)
      INTO formatted;
    RETURN CASE WHEN octet_length(formatted) > max_bytes THEN NULL ELSE formatted END;
  END IF;

  IF format_name = 'CSV' THEN
    IF header THEN
      lines := lines || dbmail.csv_line(names);
      total := octet_length(lines[1]) + 2;
    END IF;
    FOR r IN EXECUTE format('SELECT dbmail.csv_line(%s) AS line FROM %s t', values_, relation) LOOP
      total := total + octet_length(r.line) + 2;
      IF total > max_bytes THEN
        RETURN NULL;
      END IF;
      lines := lines || r.line;
    END LOOP;
    IF total > max_bytes THEN
      RETURN NULL;
    END IF;
    RETURN CASE WHEN cardinality(lines) = 0 THEN '' ELSE array_to_string(lines, E'\r\n') || E'\r\n' END;
  END IF;

  IF format_name = 'HTML' THEN
    prefix := '<table style="border-collapse:collapse;font-family:Arial,Helvetica,sans-serif;font-size:13px">';
    IF header THEN
      prefix := prefix || '<thead><tr>' || array_to_string(ARRAY(
        SELECT format('<th style="%s;background:#f6f8fa;text-align:%s">%s</th>', 'border:1px solid #d0d7de;padding:4px 8px',
                      CASE WHEN numeric_columns[k] THEN 'right' ELSE 'left' END, dbmail.html_escape(names[k]))
        FROM generate_series(1, columns) k), '') || '</tr></thead>';
    END IF;
    prefix := prefix || '<tbody>';
    total := octet_length(prefix) + octet_length('</tbody></table>');
    IF total > max_bytes THEN
      RETURN NULL;
    END IF;
    FOR r IN EXECUTE format('SELECT dbmail.html_row(%s, $1) AS line FROM %s t', values_, relation)
      USING numeric_columns LOOP
      total := total + octet_length(r.line);
      IF total > max_bytes THEN
        RETURN NULL;
      END IF;
      lines := lines || r.line;
    END LOOP;
    RETURN prefix || array_to_string(lines, '') || '</tbody></table>';
  END IF;

  -- TEXT. A row is shown at least as long as its values and separators without padding (padding only
  -- adds spaces, and the line is trimmed of trailing spaces either way).
  measure := CASE WHEN no_padding THEN format('array_to_string(%s, %L)', shown, separator)
                  ELSE format('rtrim(array_to_string(%s, %L), '' '')', shown, separator) END;
  EXECUTE format('SELECT EXISTS (SELECT FROM (SELECT sum(octet_length(%s) + 1) OVER (ROWS BETWEEN UNBOUNDED '
                 'PRECEDING AND CURRENT ROW) AS run FROM %s t) w WHERE w.run > $1)', measure, relation)
    INTO over USING max_bytes;
  IF over THEN
    RETURN NULL;
  END IF;
  IF no_padding OR columns = 0 THEN
    -- (No columns: the JSON rows of a result without rows, whose names could not be learned.)
    line_sql := format('SELECT %s AS line FROM %s t', measure, relation);
  ELSE
    EXECUTE format('SELECT array_agg(w.width ORDER BY w.k) FROM (SELECT u.k, max(length(u.v)) AS width '
                   'FROM %s t, unnest(%s) WITH ORDINALITY AS u(v, k) GROUP BY u.k) w', relation, shown)
      INTO maxes;
    widths := ARRAY(SELECT GREATEST(CASE WHEN header THEN length(names[k]) ELSE 0 END, maxes[k], 1)
                    FROM generate_series(1, columns) k);
    -- The shown values once per row (OFFSET 0 keeps the planner from computing them once per column).
    line_sql := format('SELECT rtrim(array_to_string(ARRAY[%s], %L), '' '') AS line FROM (SELECT %s AS s FROM %s t OFFSET 0) q',
      (SELECT string_agg(format(CASE WHEN numeric_columns[k] THEN 'lpad(q.s[%s], %s)' ELSE 'rpad(q.s[%s], %s)' END,
                                k, widths[k]), ', ' ORDER BY k)
       FROM generate_series(1, columns) k),
      separator, shown, relation);
  END IF;
  IF header THEN
    lines := ARRAY[
      CASE WHEN no_padding THEN array_to_string(names, separator)
           ELSE rtrim(array_to_string(ARRAY(SELECT rpad(names[k], widths[k]) FROM generate_series(1, columns) k),
                                      separator), ' ') END,
      array_to_string(ARRAY(SELECT repeat('-', CASE WHEN no_padding THEN length(names[k]) ELSE widths[k] END)
                            FROM generate_series(1, columns) k), separator)];
    IF NOT no_padding THEN
      lines := ARRAY(SELECT p FROM unnest(lines) WITH ORDINALITY AS l(line, n),
                       unnest(CASE WHEN length(l.line) <= width THEN ARRAY[l.line] ELSE dbmail.wrap_line(l.line, width) END)
                       WITH ORDINALITY AS w(p, k)
                     ORDER BY l.n, w.k);
    END IF;
    total := (SELECT sum(octet_length(h) + 1) FROM unnest(lines) h);
  END IF;
  FOR r IN EXECUTE line_sql LOOP
    row_count := row_count + 1;
    IF no_padding OR length(r.line) <= width THEN
      total := total + octet_length(r.line) + 1;
      IF total > max_bytes THEN
        RETURN NULL;
      END IF;
      lines := lines || r.line;
    ELSE
      FOREACH piece IN ARRAY dbmail.wrap_line(r.line, width) LOOP
        total := total + octet_length(piece) + 1;
        lines := lines || piece;
      END LOOP;
      IF total > max_bytes THEN
        RETURN NULL;
      END IF;
    END IF;
  END LOOP;
  trailer := format('(%s %s affected)', row_count, CASE WHEN row_count = 1 THEN 'row' ELSE 'rows' END);
  IF total + 1 + octet_length(trailer) > max_bytes THEN
    RETURN NULL;
  END IF;
  RETURN array_to_string(lines || ''::text || trailer, E'\n');
END;
$_$;

CREATE FUNCTION dbmail.given_name(thing text, name text) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT thing || CASE WHEN name IS NOT NULL THEN '_name' ELSE '_id' END;
$$;

CREATE FUNCTION dbmail.html_escape(value text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
  RETURN replace(replace(replace(replace(replace(value, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'),
                 '''', '&#39;');
END;
$$;

CREATE FUNCTION dbmail.html_row(cells text[], numeric_columns boolean[]) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
  SELECT '<tr>' || array_to_string(ARRAY(
    SELECT format('<td style="%s%s">%s</td>', 'border:1px solid #d0d7de;padding:4px 8px',
                  CASE WHEN numeric_columns[k] THEN ';text-align:right' ELSE '' END,
                  COALESCE(dbmail.html_escape(cells[k]), '<span style="color:#8c959f">NULL</span>'))
    FROM generate_series(1, cardinality(cells)) k), '') || '</tr>';
$$;

CREATE FUNCTION dbmail.is_admin(role_name name) RETURNS boolean
    LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION dbmail.is_member_of(member oid, role oid) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
  WITH RECURSIVE belongs(roleid) AS (
    SELECT m.roleid FROM pg_catalog.pg_auth_members m WHERE m.member = is_member_of.member
    UNION
    SELECT m.roleid FROM pg_catalog.pg_auth_members m JOIN belongs b ON m.member = b.roleid)
  SELECT EXISTS (SELECT FROM belongs b WHERE b.roleid = is_member_of.role);
$$;

CREATE FUNCTION dbmail.is_plain_address(address text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
  SELECT address ~ dbmail.plain_address_pattern()
     AND length(address) <= 254 AND strpos(address, '@') <= 65
     AND (length(address) - strpos(address, '@') <= 63 OR address !~ '[^.@]{64}');
$$;

CREATE FUNCTION dbmail.job_failure_operator(operator_name text) RETURNS TABLE(operator_id integer, enabled boolean, email_address text)
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
  SELECT dbmail.require_admin();
  DELETE FROM dbmail.notified_job_runs n WHERE n.run_ended_at < now() - interval '30 days';
  SELECT o.operator_id, o.enabled, o.email_address FROM dbmail.operators o
  WHERE o.operator_id = dbmail.find_by_id_or_name('operator', NULL, $1, true, NULL, 'operator_name');
$_$;

CREATE TABLE dbmail.senders (
    sender_id text NOT NULL,
    login oid,
    hostname text,
    process_id integer,
    version text,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    last_heartbeat timestamp with time zone DEFAULT now() NOT NULL,
    last_empty_claim_at timestamp with time zone,
    stopped_at timestamp with time zone
);

CREATE FUNCTION dbmail.live_senders() RETURNS SETOF dbmail.senders
    LANGUAGE sql STABLE
    AS $$
  SELECT * FROM dbmail.senders s
  WHERE s.stopped_at IS NULL AND s.last_heartbeat > pg_catalog.now() - interval '30 seconds'
  ORDER BY s.started_at;
$$;

CREATE FUNCTION dbmail.log_event(event_type text, description text, mailitem_id bigint DEFAULT NULL::bigint, account_id integer DEFAULT NULL::integer, process_id integer DEFAULT NULL::integer, sender_id text DEFAULT NULL::text) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION dbmail.may_use_sender_id(login oid) RETURNS boolean
    LANGUAGE plpgsql STABLE
    AS $$
BEGIN
  IF login IS NULL OR pg_get_userbyid(login) = session_user THEN
    RETURN true;
  END IF;
  RETURN NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid = may_use_sender_id.login)
      OR EXISTS (SELECT FROM pg_roles r WHERE r.rolname = session_user AND r.rolsuper);
END;
$$;

CREATE FUNCTION dbmail.must_wake_senders() RETURNS boolean
    LANGUAGE sql
    AS $$
  SELECT NOT pg_catalog.pg_try_advisory_xact_lock_shared(1684172140, 3)
      OR (NOT (pg_catalog.pg_try_advisory_lock(1684172140, 1) AND pg_catalog.pg_advisory_unlock(1684172140, 1))
          AND pg_catalog.pg_try_advisory_lock_shared(1684172140, 2)
          AND pg_catalog.pg_advisory_unlock_shared(1684172140, 2));
$$;

CREATE FUNCTION dbmail.normalise_setting(parameter_name text, parameter_value text) RETURNS text
    LANGUAGE plpgsql STABLE
    AS $_$
DECLARE
  trimmed text := btrim(parameter_value);
  low bigint;
  high bigint;
  item text;
  items text[] := '{}';
BEGIN
  IF parameter_value IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'parameter_value', NULL, format('%s needs a value', parameter_name));
  END IF;
  CASE parameter_name
    WHEN 'AccountRetryAttempts' THEN low := 0; high := 100;
    WHEN 'AccountRetryDelay' THEN low := 0; high := 604800;
    WHEN 'DatabaseMailExeMinimumLifeTime' THEN low := 1; high := 604800;
    WHEN 'MaxFileSize' THEN low := 1; high := 1073741823;
    WHEN 'LoggingLevel' THEN low := 1; high := 3;
    WHEN 'MaxMailsPerUserPerDay' THEN low := 0; high := 100000000;
    WHEN 'MaxRecipientsPerMail' THEN low := 0; high := 1000000;
    WHEN 'MaxMailSize' THEN low := 0; high := 1073741823;
    WHEN 'UnknownOutcomePolicy' THEN
      IF lower(trimmed) NOT IN ('retry', 'fail') THEN
        PERFORM dbmail.raise_error('22023', 'parameter_value', parameter_value, 'UnknownOutcomePolicy must be retry or fail');
      END IF;
      RETURN lower(trimmed);
    WHEN 'DefaultAttachmentEncoding' THEN
      IF upper(trimmed) <> 'MIME' THEN
        PERFORM dbmail.raise_error('22023', 'parameter_value', parameter_value,
          'DefaultAttachmentEncoding supports only MIME');
      END IF;
      RETURN 'MIME';
    WHEN 'ProhibitedExtensions' THEN
      FOREACH item IN ARRAY string_to_array(trimmed, ',') LOOP
        item := lower(ltrim(btrim(item), '.'));
        CONTINUE WHEN item = '';
        IF item !~ '^[a-z0-9_~$#@!+-]+$' THEN
          PERFORM dbmail.raise_error('22023', 'parameter_value', parameter_value,
            format('ProhibitedExtensions: %s is not a file extension', dbmail.show_value(item)));
        END IF;
        items := items || item;
      END LOOP;
      RETURN array_to_string(items, ',');
    WHEN 'AttachmentDirectories' THEN
      FOREACH item IN ARRAY string_to_array(trimmed, ';') LOOP
        item := btrim(item);
        CONTINUE WHEN item = '';
        IF item !~ '^/' OR item ~ '(^|/)\.\.?(/|$)' OR item ~ '[\x01-\x1f]' THEN
          PERFORM dbmail.raise_error('22023', 'parameter_value', parameter_value,
            format('AttachmentDirectories: %s is not an absolute directory path without . or ..',
                   dbmail.show_value(item)));
        END IF;
        items := items || COALESCE(NULLIF(rtrim(item, '/'), ''), '/');
      END LOOP;
      RETURN array_to_string(items, ';');
    WHEN 'AdminRoles', 'SenderRoles' THEN
      -- Role names as PostgreSQL spells them (case matters), each once.
      FOREACH item IN ARRAY string_to_array(trimmed, ';') LOOP
        item := btrim(item);
        CONTINUE WHEN item = '';
        IF NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = item) THEN
          PERFORM dbmail.raise_error('42704', 'parameter_value', parameter_value,
            format('%s: no role is named %s (role names are case-sensitive)', parameter_name,
                   dbmail.show_value(item)));
        END IF;
        IF item <> ALL (items) THEN
          items := items || item;
        END IF;
      END LOOP;
      RETURN array_to_string(items, ';');
    ELSE
      PERFORM dbmail.raise_error('42704', 'parameter_name', parameter_name, 'no such setting');
  END CASE;
  IF trimmed !~ '^[0-9]{1,12}$' OR trimmed::bigint NOT BETWEEN low AND high THEN
    PERFORM dbmail.raise_error('22023', 'parameter_value', parameter_value,
      format('%s must be a whole number from %s to %s', parameter_name, low, high));
  END IF;
  RETURN trimmed::bigint::text;
END;
$_$;

CREATE FUNCTION dbmail.note_timeline() RETURNS timestamp with time zone
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION dbmail.notify_job_failures(operator_name text DEFAULT NULL::text, profile_name text DEFAULT NULL::text, since interval DEFAULT '01:00:00'::interval) RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION dbmail.operator_address(id integer, name text) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION dbmail.parse_address_list(parameter text, list text) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT dbmail.parse_addresses(parameter, list, 0, 0, false);
$$;

CREATE FUNCTION dbmail.parse_addresses(parameter text, list text, counted bigint, max_count bigint, header_field boolean) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    AS $_$
DECLARE
  entries text[];
  entry text;
  parsed jsonb[] := '{}';
  n bigint := counted;
  lt integer;
  inner_part text;
  display_name text;
  address text;
  problem text;
BEGIN
  IF list IS NULL OR btrim(list) = '' THEN
    RETURN '[]';
  END IF;
  IF list ~ '[\x01-\x08\x0a-\x1f\x7f]' THEN
    PERFORM dbmail.raise_error('22023', parameter, list, 'line breaks and control characters are not allowed here');
  END IF;
  IF strpos(list, '"') = 0 THEN
    -- The common case, without quoted display names.
    IF strpos(list, ',') > 0 THEN
      PERFORM dbmail.raise_error('22023', parameter, list, 'use '';'' to separate addresses');
    END IF;
    entries := string_to_array(list, ';');
  ELSE
    entries := dbmail.split_quoted_list(parameter, list);
  END IF;

  FOREACH entry IN ARRAY entries LOOP
    entry := btrim(entry, E' \t');
    CONTINUE WHEN entry = '';
    n := n + 1;
    IF max_count > 0 AND n > max_count THEN
      PERFORM dbmail.raise_error('54000', parameter, list,
        format('more than MaxRecipientsPerMail (%s) recipients, to, cc and bcc together', max_count));
    END IF;
    display_name := NULL;
    address := entry;
    IF right(entry, 1) = '>' THEN
      IF strpos(entry, '<') = 0 THEN
        PERFORM dbmail.raise_error('22023', parameter, entry, 'not a valid e-mail address (a > without <)');
      END IF;
      -- `Name <address>`: the address is inside the last pair of angle brackets.
      lt := length(entry) - strpos(reverse(entry), '<') + 1;
      inner_part := substr(entry, lt + 1, length(entry) - lt - 1);
      IF strpos(inner_part, '>') > 0 THEN
        PERFORM dbmail.raise_error('22023', parameter, entry, 'not a valid e-mail address');
      END IF;
      address := btrim(inner_part);
      display_name := btrim(left(entry, lt - 1));
      -- Quoted, a name of 256 characters takes at most 514 (each one escaped, and the quotes).
      IF length(display_name) > 514 THEN
        PERFORM dbmail.raise_error('22023', parameter, entry, 'the display name is longer than 256 characters');
      END IF;
      IF display_name ~ '^".*"$' THEN
        display_name := regexp_replace(substr(display_name, 2, length(display_name) - 2), '\\(.)', '\1', 'g');
      ELSIF display_name ~ '[<>"]' THEN
        PERFORM dbmail.raise_error('22023', parameter, entry,
          'a display name with special characters must be in double quotes');
      ELSIF header_field AND strpos(display_name, ':') > 0 THEN
        PERFORM dbmail.raise_error('22023', parameter, entry,
          'a display name followed by a colon is group syntax, which is not allowed here (put a name with a colon in double quotes)');
      END IF;
      IF length(display_name) > 256 THEN
        PERFORM dbmail.raise_error('22023', parameter, entry, 'the display name is longer than 256 characters');
      END IF;
      display_name := NULLIF(display_name, '');
    END IF;
    problem := dbmail.address_problem(address);
    IF problem IS NOT NULL THEN
      PERFORM dbmail.raise_error('22023', parameter, entry, problem);
    END IF;
    parsed := parsed || jsonb_build_object('name', display_name, 'address', address);
  END LOOP;
  RETURN to_jsonb(parsed);
END;
$_$;

CREATE FUNCTION dbmail.parse_bare_address(parameter text, value text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    AS $_$
DECLARE
  parsed jsonb := dbmail.parse_single_address(parameter, value);
BEGIN
  IF parsed ->> 'name' IS NOT NULL OR btrim(value) ~ '>$' THEN
    PERFORM dbmail.raise_error('22023', parameter, value,
      'give the address alone (the display name is a parameter of its own)');
  END IF;
  RETURN parsed ->> 'address';
END;
$_$;

CREATE FUNCTION dbmail.parse_envelope(recipients text, copy_recipients text, blind_copy_recipients text, max_count bigint) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    AS $$
DECLARE
  to_list jsonb;
  cc_list jsonb := '[]';
  bcc_list jsonb := '[]';
BEGIN
  to_list := dbmail.parse_addresses('recipients', recipients, 0, max_count, false);
  -- Lists not given are empty, without a call.
  IF copy_recipients IS NOT NULL THEN
    cc_list := dbmail.parse_addresses('copy_recipients', copy_recipients, jsonb_array_length(to_list), max_count,
      false);
  END IF;
  IF blind_copy_recipients IS NOT NULL THEN
    bcc_list := dbmail.parse_addresses('blind_copy_recipients', blind_copy_recipients,
      jsonb_array_length(to_list) + jsonb_array_length(cc_list), max_count, false);
  END IF;
  IF to_list = '[]' AND cc_list = '[]' AND bcc_list = '[]' THEN
    PERFORM dbmail.raise_error('22004', 'recipients, copy_recipients, blind_copy_recipients', NULL,
      'a message needs at least one recipient');
  END IF;
  RETURN jsonb_build_object('to', to_list, 'cc', cc_list, 'bcc', bcc_list);
END;
$$;

CREATE FUNCTION dbmail.parse_single_address(parameter text, value text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    AS $$
DECLARE
  parsed jsonb := dbmail.parse_addresses(parameter, value, 0, 0, true);
BEGIN
  IF jsonb_array_length(parsed) > 1 THEN
    PERFORM dbmail.raise_error('22023', parameter, value, 'only one address is allowed here');
  END IF;
  IF jsonb_array_length(parsed) = 0 AND btrim(value, E' \t') <> '' THEN
    PERFORM dbmail.raise_error('22023', parameter, value, 'no e-mail address given');
  END IF;
  RETURN parsed -> 0;
END;
$$;

CREATE FUNCTION dbmail.plain_address_pattern() RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $_$
  SELECT '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+)*@[A-Za-z0-9]+(-+[A-Za-z0-9]+)*(\.[A-Za-z0-9]+(-+[A-Za-z0-9]+)*)*$';
$_$;

CREATE FUNCTION dbmail.plain_envelope(address text) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
  SELECT ('{"to": [{"name": null, "address": "' || address || '"}], "cc": [], "bcc": []}')::jsonb;
$$;

CREATE FUNCTION dbmail.principal_name(principal_id oid) RETURNS text
    LANGUAGE sql STABLE
    AS $$
  SELECT CASE WHEN principal_id = 0 THEN 'public'
    ELSE (SELECT r.rolname::text FROM pg_catalog.pg_roles r WHERE r.oid = principal_id) END;
$$;

CREATE FUNCTION dbmail.query_result_limit() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
  SELECT s.paramvalue::bigint FROM dbmail.settings s WHERE s.paramname = 'MaxFileSize';
$$;

CREATE FUNCTION dbmail.queue_mail(profile_name text, recipients text, copy_recipients text, blind_copy_recipients text, subject text, body text, body_format text, importance text, sensitivity text, file_attachments text, query text, execute_query_database text, attach_query_result_as_file boolean, query_attachment_filename text, query_result_header boolean, query_result_width integer, query_result_separator text, exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean, query_result_no_padding boolean, from_address text, reply_to text, attachments dbmail.attachment[], headers jsonb, send_at timestamp with time zone, idempotency_key text, query_result_format text, query_result text, caller name DEFAULT NULL::name) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION dbmail.raise_error(sqlstate text, parameter text, value text, problem text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
  RAISE EXCEPTION USING
    ERRCODE = sqlstate,
    MESSAGE = format('%s: %s: %s', parameter, dbmail.show_value(value), problem);
END;
$$;

CREATE FUNCTION dbmail.read_attachment_files(file_attachments text) RETURNS dbmail.attachment[]
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
  directories text[] := array_remove(string_to_array(dbmail.setting('AttachmentDirectories'), ';'), '');
  entry text;
  path text;
  name text;
  info record;
  content bytea;
  files dbmail.attachment[] := '{}';
BEGIN
  FOREACH entry IN ARRAY string_to_array(file_attachments, ';') LOOP
    path := btrim(entry, E' \t');
    CONTINUE WHEN path = '';
    PERFORM dbmail.check_header_text('file_attachments', path);
    IF path !~ '^/' THEN
      PERFORM dbmail.raise_error('22023', 'file_attachments', path, 'must be an absolute path on the database server');
    END IF;
    path := regexp_replace(path, '/+', '/', 'g');
    IF path ~ '(^|/)\.\.?(/|$)' THEN
      PERFORM dbmail.raise_error('22023', 'file_attachments', path, 'may not contain . or .. components');
    END IF;
    IF cardinality(directories) = 0 THEN
      PERFORM dbmail.raise_error('42501', 'file_attachments', path,
        'file attachments are disabled: an admin must name the directories they may come from '
        '(sysmail_configure_sp(''AttachmentDirectories'', ''/srv/reports''))');
    END IF;
    IF NOT EXISTS (SELECT FROM unnest(directories) d WHERE d = '/' OR starts_with(path, d || '/')) THEN
      PERFORM dbmail.raise_error('42501', 'file_attachments', path,
        format('is outside the directories attachments may come from (AttachmentDirectories: %s)',
               array_to_string(directories, ';')));
    END IF;
    IF NOT pg_has_role(current_user, 'pg_read_server_files', 'USAGE') THEN
      PERFORM dbmail.raise_error('42501', 'file_attachments', path,
        format('the database may not read files: GRANT pg_read_server_files TO %s (the owner of schema dbmail); '
               'in-memory attachments (attachments => ...) need no such right', current_user));
    END IF;
    SELECT * INTO info FROM pg_stat_file(path, true);
    IF info.size IS NULL THEN
      PERFORM dbmail.raise_error('58P01', 'file_attachments', path, 'no such file on the database server');
    ELSIF info.isdir THEN
      PERFORM dbmail.raise_error('22023', 'file_attachments', path, 'is a directory, not a file');
    ELSIF info.size = 0 THEN
      PERFORM dbmail.raise_error('22023', 'file_attachments', path,
        'is empty, or not a regular file (a FIFO, a device, a socket, or a file the kernel makes up, as in /proc, '
        'all show size 0): only regular files with content are attached');
    END IF;
    name := substring(path FROM '[^/]+$');
    PERFORM dbmail.check_attachment('file_attachments', name, info.size);
    BEGIN
      -- At most one byte more than the size checked (a bytea holds at most 1073741819 bytes read so).
      content := pg_read_binary_file(path, 0, LEAST(info.size + 1, 1073741819));
    EXCEPTION WHEN OTHERS THEN
      PERFORM dbmail.raise_error('58030', 'file_attachments', path,
        format('the database server cannot read it: %s', SQLERRM));
    END;
    IF octet_length(content) > info.size THEN
      PERFORM dbmail.raise_error('58030', 'file_attachments', path,
        format('grew while it was read (it had %s bytes when its size was checked); attach it when it is complete',
               info.size));
    END IF;
    files := files || ROW(name, content, dbmail.content_type_for(name))::dbmail.attachment;
  END LOOP;
  RETURN files;
END;
$_$;

CREATE FUNCTION dbmail.record_migration(version integer, name text, checksum text) RETURNS void
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
  INSERT INTO dbmail.migrations (version, name, checksum) VALUES ($1, $2, $3);
$_$;

CREATE FUNCTION dbmail.record_outcome(mailitem_id bigint, sender_id text, lease_token uuid, outcome text, account_id integer DEFAULT NULL::integer, smtp_response text DEFAULT NULL::text, error text DEFAULT NULL::text, account_errors jsonb DEFAULT NULL::jsonb, process_id integer DEFAULT NULL::integer, attempts jsonb DEFAULT NULL::jsonb) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
  -- Confined to the roles SenderRoles lists, where it lists any.
  PERFORM dbmail.require_sender();
  RETURN dbmail.apply_outcome(mailitem_id, sender_id, lease_token, outcome, account_id, smtp_response, error,
    account_errors, process_id, COALESCE(dbmail.setting('AccountRetryAttempts')::integer, 1),
    COALESCE(dbmail.setting('AccountRetryDelay')::integer, 60), attempts);
END;
$$;

CREATE FUNCTION dbmail.record_outcomes(sender_id text, outcomes jsonb, process_id integer DEFAULT NULL::integer) RETURNS TABLE(mailitem_id bigint, status text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  retry_rounds integer := COALESCE(dbmail.setting('AccountRetryAttempts')::integer, 1);
  retry_delay integer := COALESCE(dbmail.setting('AccountRetryDelay')::integer, 60);
  entry record;
BEGIN
  -- Confined to the roles SenderRoles lists, where it lists any.
  PERFORM dbmail.require_sender();
  IF outcomes IS NULL OR jsonb_typeof(outcomes) <> 'array' THEN
    PERFORM dbmail.raise_error('22023', 'outcomes', outcomes::text, 'must be a JSON array');
  END IF;
  FOR entry IN
    SELECT o.* FROM jsonb_to_recordset(outcomes) AS o(
      mailitem_id bigint, lease_token uuid, outcome text, account_id integer, smtp_response text, error text,
      account_errors jsonb, attempts jsonb)
    ORDER BY o.mailitem_id
  LOOP
    IF entry.mailitem_id IS NULL THEN
      PERFORM dbmail.raise_error('22004', 'mailitem_id', NULL, 'every outcome names its mail item');
    END IF;
    mailitem_id := entry.mailitem_id;
    status := dbmail.apply_outcome(entry.mailitem_id, record_outcomes.sender_id, entry.lease_token, entry.outcome,
      entry.account_id, entry.smtp_response, entry.error, entry.account_errors, record_outcomes.process_id,
      retry_rounds, retry_delay, entry.attempts);
    RETURN NEXT;
  END LOOP;
END;
$$;

CREATE FUNCTION dbmail.refresh_send_defaults() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
  UPDATE dbmail.system_state st SET
    max_recipients_per_mail = (SELECT s.paramvalue::bigint FROM dbmail.settings s
                               WHERE s.paramname = 'MaxRecipientsPerMail'),
    max_mail_size = (SELECT s.paramvalue::bigint FROM dbmail.settings s WHERE s.paramname = 'MaxMailSize'),
    max_mails_per_user_per_day = (SELECT s.paramvalue::bigint FROM dbmail.settings s
                                  WHERE s.paramname = 'MaxMailsPerUserPerDay'),
    public_default_profile = (SELECT pp.profile_id FROM dbmail.principal_profiles pp
                              WHERE pp.is_default AND pp.principal_id = 0),
    role_defaults = EXISTS (SELECT FROM dbmail.principal_profiles pp WHERE pp.is_default AND pp.principal_id <> 0);
  RETURN NULL;
END;
$$;

CREATE FUNCTION dbmail.release_mailitems(sender_id text, mailitem_ids bigint[], lease_tokens uuid[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  held bigint[];
  released integer;
BEGIN
  -- Confined to the roles SenderRoles lists, where it lists any.
  PERFORM dbmail.require_sender();
  -- Locked by key, owner and token, then checked: sent_status in the WHERE could make the planner walk a
  -- partial index (see apply_outcome).
  SELECT array_agg(h.mailitem_id) FILTER (WHERE h.sent_status = 'sending') INTO held
  FROM (SELECT m.mailitem_id, m.sent_status FROM dbmail.mailitems m
        WHERE m.mailitem_id = ANY (mailitem_ids) AND m.lease_owner = release_mailitems.sender_id
          AND m.lease_token = ANY (lease_tokens)
        ORDER BY m.mailitem_id FOR UPDATE) h;
  UPDATE dbmail.mailitems m SET
    sent_status = CASE WHEN m.send_attempts = 0 THEN 'unsent' ELSE 'retrying' END,
    next_attempt_at = now(), lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,
    last_mod_date = now(), last_mod_user = dbmail.caller_role()
  WHERE m.mailitem_id = ANY (held);
  GET DIAGNOSTICS released = ROW_COUNT;
  IF released > 0 THEN
    PERFORM pg_notify('dbmail_queue', '');
  END IF;
  RETURN released;
END;
$$;

CREATE FUNCTION dbmail.replace_default_row() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION dbmail.require_sender() RETURNS void
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION dbmail.resolve_profile(sender name, sender_oid oid, profile_name text, usual_default integer) RETURNS integer
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

CREATE FUNCTION dbmail.resolve_security(enable_ssl boolean, security text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    AS $$
DECLARE
  resolved text := lower(btrim(security));
BEGIN
  IF resolved IS NULL THEN
    RETURN CASE WHEN enable_ssl THEN 'starttls' ELSE 'none' END;
  END IF;
  IF resolved NOT IN ('none', 'starttls', 'tls') THEN
    PERFORM dbmail.raise_error('22023', 'security', security, 'must be none, starttls or tls');
  END IF;
  IF enable_ssl AND resolved = 'none' THEN
    PERFORM dbmail.raise_error('22023', 'security', security, 'conflicts with enable_ssl => true');
  END IF;
  RETURN resolved;
END;
$$;

CREATE FUNCTION dbmail.retry_mailitems(mailitem_ids bigint[], sent_status text, sent_before timestamp with time zone, profile_name text) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  caller name := dbmail.take_caller_stamp('sysmail_retry_mailitems_sp');
  caller_oid oid := to_regrole(quote_ident(caller));
  caller_is_admin boolean := dbmail.is_admin(caller);
  profile integer;
  retried bigint[];
BEGIN
  IF sent_status IS NULL OR lower(btrim(sent_status)) <> 'failed' THEN
    PERFORM dbmail.raise_error('22023', 'sent_status', sent_status, 'must be failed (only failed mail is retried)');
  END IF;
  PERFORM dbmail.check_mailitem_ids(mailitem_ids, true);
  profile := dbmail.find_by_id_or_name('profile', NULL, profile_name, false);
  -- Due now with all its rounds again; last_error keeps the failure's reason until a new one replaces it.
  WITH r AS (
    UPDATE dbmail.mailitems m SET sent_status = 'unsent', next_attempt_at = now(), send_attempts = 0,
      sent_date = NULL, last_mod_date = now(), last_mod_user = caller
    WHERE m.sent_status = 'failed'
      AND (mailitem_ids IS NULL OR m.mailitem_id = ANY (mailitem_ids))
      AND (sent_before IS NULL OR m.send_request_date < sent_before)
      AND (profile IS NULL OR m.profile_id = profile)
      AND (caller_is_admin OR (m.send_request_user = caller AND m.send_request_role = caller_oid))
    RETURNING m.mailitem_id
  )
  SELECT COALESCE(array_agg(r.mailitem_id ORDER BY r.mailitem_id), '{}') INTO retried FROM r;
  PERFORM dbmail.log_event('information', format('Mail Id %s was put back in the queue by %s', i, caller), i)
  FROM unnest(retried) i;
  IF cardinality(retried) > 0 THEN
    PERFORM pg_notify('dbmail_queue', '');
  END IF;
  RETURN cardinality(retried);
END;
$$;

CREATE FUNCTION dbmail.role_listed(role_name name, roles text) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
  SELECT EXISTS (
    SELECT FROM pg_catalog.unnest(pg_catalog.string_to_array(roles, ';')) AS l(listed)
    JOIN pg_catalog.pg_roles r ON r.rolname = l.listed
    WHERE pg_catalog.pg_has_role(role_name, r.oid, 'MEMBER'));
$$;

CREATE FUNCTION dbmail.run_query(query text, caller_search_path text, OUT relation regclass, OUT json_rows boolean) RETURNS record
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
  result_table text := 'dbmail_query_' || replace(gen_random_uuid()::text, '-', '');
  trimmed text := regexp_replace(query, '[;[:space:]]+$', '');
  -- The newline keeps a trailing -- comment from swallowing the closing parenthesis.
  subquery text := '(' || trimmed || E'\n) dbmail_query';
  probe_sql text := 'SELECT * FROM ' || subquery;
  table_sql text := format('CREATE TEMPORARY TABLE %I AS SELECT * FROM %s', result_table, subquery);
  json_sql text := format('CREATE TEMPORARY TABLE %I AS SELECT pg_catalog.row_to_json(dbmail_query) AS j FROM %s',
                          result_table, subquery);
  several boolean := strpos(trimmed, ';') > 0;
  probe refcursor;
  columns integer;
BEGIN
  json_rows := false;
  PERFORM pg_catalog.set_config('search_path', caller_search_path, true);
  BEGIN
    OPEN probe FOR EXECUTE probe_sql;
    CLOSE probe;
    EXECUTE table_sql;
  EXCEPTION
    WHEN duplicate_column THEN
      EXECUTE json_sql;
      json_rows := true;
    WHEN invalid_cursor_definition THEN
      PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
      RAISE EXCEPTION USING ERRCODE = '42601',
        MESSAGE = 'must be one statement that returns rows (this one closes the parenthesis sp_send_dbmail puts around it, and adds statements)';
    WHEN syntax_error THEN
      PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
      -- sp_send_dbmail prefixes the message with the query. A ; that broke the subquery: say why.
      IF several THEN
        RAISE EXCEPTION USING ERRCODE = '42601', MESSAGE = format('must be one statement that returns rows (%s)', SQLERRM);
      END IF;
      RAISE;
  END;
  PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
  relation := format('pg_temp.%I', result_table)::regclass;
  IF NOT json_rows THEN
    SELECT count(*) INTO columns FROM pg_attribute a WHERE a.attrelid = relation AND a.attnum > 0 AND NOT a.attisdropped;
    IF columns = 0 THEN
      RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'returns no columns';
    END IF;
  END IF;
END;
$_$;

CREATE FUNCTION dbmail.schema_version() RETURNS integer
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
  RETURN (SELECT max(m.version) FROM dbmail.migrations m);
END;
$$;

CREATE FUNCTION dbmail.secret_source(secret text) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT CASE WHEN secret IS NULL THEN 'none'
              WHEN secret LIKE 'env:%' THEN 'env'
              WHEN secret LIKE 'file:%' THEN 'file'
              ELSE 'literal' END;
$$;

CREATE FUNCTION dbmail.send_as_caller(profile_name text, recipients text, copy_recipients text, blind_copy_recipients text, subject text, body text, body_format text, importance text, sensitivity text, file_attachments text, query text, execute_query_database text, attach_query_result_as_file boolean, query_attachment_filename text, query_result_header boolean, query_result_width integer, query_result_separator text, exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean, query_result_no_padding boolean, from_address text, reply_to text, attachments dbmail.attachment[], headers jsonb, send_at timestamp with time zone, idempotency_key text, query_result_format text) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION dbmail.send_usual_as_caller(recipients text, subject text, body text, body_format text, importance text, exclude_query_output boolean, append_query_error boolean) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
  RETURN dbmail.send_usual_mail(recipients, subject, body, body_format, importance, exclude_query_output,
    append_query_error, current_user);
END;
$$;

CREATE FUNCTION dbmail.send_usual_mail(recipients text, subject text, body text, body_format text, importance text, exclude_query_output boolean, append_query_error boolean, caller name DEFAULT NULL::name) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;

CREATE FUNCTION dbmail.send_with_query(profile_name text, recipients text, copy_recipients text, blind_copy_recipients text, subject text, body text, body_format text, importance text, sensitivity text, file_attachments text, query text, execute_query_database text, attach_query_result_as_file boolean, query_attachment_filename text, query_result_header boolean, query_result_width integer, query_result_separator text, exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean, query_result_no_padding boolean, from_address text, reply_to text, attachments dbmail.attachment[], headers jsonb, send_at timestamp with time zone, idempotency_key text, query_result_format text, caller_search_path text) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION dbmail.sender_accounts() RETURNS TABLE(profile_id integer, profile_name text, account_id integer, sequence_number integer, is_last_success boolean, account_name text, email_address text, display_name text, replyto_address text, mailserver_name text, port integer, username text, password text, use_default_credentials boolean, security text, timeout integer, tls_reject_unauthorized boolean, auth_method text, oauth2_token_url text, oauth2_client_id text, oauth2_client_secret text, oauth2_scope text, oauth2_refresh_token text, dkim_domain text, dkim_selector text, dkim_private_key text, max_messages_per_minute integer)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
  SELECT dbmail.require_sender();
  SELECT p.profile_id, p.name, a.account_id, pa.sequence_number,
         p.last_success_account_id IS NOT DISTINCT FROM a.account_id, a.name, a.email_address,
         a.display_name, a.replyto_address, a.mailserver_name, a.port, a.username, s.password,
         a.use_default_credentials, a.security, a.timeout, a.tls_reject_unauthorized, a.auth_method,
         a.oauth2_token_url, a.oauth2_client_id, s.oauth2_client_secret, a.oauth2_scope, s.oauth2_refresh_token,
         a.dkim_domain, a.dkim_selector, s.dkim_private_key, a.max_messages_per_minute
  FROM dbmail.profiles p
  JOIN dbmail.profile_accounts pa ON pa.profile_id = p.profile_id
  JOIN dbmail.accounts a ON a.account_id = pa.account_id
  LEFT JOIN dbmail.account_secrets s ON s.account_id = a.account_id
  ORDER BY p.profile_id, pa.sequence_number, a.account_id;
$$;

CREATE FUNCTION dbmail.sender_attachment_chunk(sender_id text, attachment_id bigint, lease_token uuid, chunk_offset bigint, chunk_length integer) RETURNS bytea
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
  -- Confined to the roles SenderRoles lists, where it lists any.
  PERFORM dbmail.require_sender();
  -- A bytea holds at most 1 GB, so every valid offset fits substring()'s integer positions.
  IF chunk_offset IS NULL OR chunk_offset NOT BETWEEN 0 AND 1073741824 THEN
    PERFORM dbmail.raise_error('22023', 'chunk_offset', chunk_offset::text, 'must be from 0 to 1073741824');
  END IF;
  IF chunk_length IS NULL OR chunk_length NOT BETWEEN 1 AND 67108864 THEN
    PERFORM dbmail.raise_error('22023', 'chunk_length', chunk_length::text, 'must be from 1 to 67108864');
  END IF;
  RETURN (
    SELECT substring(a.attachment FROM (sender_attachment_chunk.chunk_offset + 1)::integer
                     FOR sender_attachment_chunk.chunk_length)
    FROM dbmail.attachments a
    JOIN dbmail.mailitems m ON m.mailitem_id = a.mailitem_id
    WHERE a.attachment_id = sender_attachment_chunk.attachment_id
      AND m.lease_owner = sender_attachment_chunk.sender_id
      AND m.lease_token = sender_attachment_chunk.lease_token);
END;
$$;

CREATE FUNCTION dbmail.sender_attachments(sender_id text, mailitem_id bigint, lease_token uuid) RETURNS TABLE(attachment_id bigint, filename text, content_type text, filesize bigint, attachment bytea)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
  SELECT dbmail.require_sender();
  SELECT a.attachment_id, a.filename, a.content_type, a.filesize, a.attachment
  FROM dbmail.attachments a
  JOIN dbmail.mailitems m ON m.mailitem_id = a.mailitem_id
  WHERE a.mailitem_id = $2 AND m.lease_owner = $1 AND m.lease_token = $3
  ORDER BY a.attachment_id;
$_$;

CREATE FUNCTION dbmail.sender_heartbeat(sender_id text, hostname text DEFAULT NULL::text, process_id integer DEFAULT NULL::integer, version text DEFAULT NULL::text) RETURNS TABLE(started boolean, settings jsonb)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
  -- Confined to the roles SenderRoles lists, where it lists any.
  PERFORM dbmail.require_sender();
  IF sender_id IS NULL OR btrim(sender_id) = '' THEN
    PERFORM dbmail.raise_error('22004', 'sender_id', sender_id, 'a sender needs an id');
  END IF;
  INSERT INTO dbmail.senders AS s (sender_id, hostname, process_id, version, login)
  VALUES (sender_heartbeat.sender_id, sender_heartbeat.hostname, sender_heartbeat.process_id,
          sender_heartbeat.version, (SELECT r.oid FROM pg_roles r WHERE r.rolname = session_user))
  ON CONFLICT ON CONSTRAINT senders_pkey DO UPDATE SET
    last_heartbeat = now(), stopped_at = NULL,
    -- An id reused after a clean stop is a new start.
    started_at = CASE WHEN s.stopped_at IS NULL THEN s.started_at ELSE now() END,
    hostname = excluded.hostname, process_id = excluded.process_id, version = excluded.version,
    login = CASE WHEN s.login IS NOT NULL AND EXISTS (SELECT FROM pg_roles r WHERE r.oid = s.login) THEN s.login
                 ELSE excluded.login END
  WHERE dbmail.may_use_sender_id(s.login);
  IF NOT FOUND THEN
    PERFORM dbmail.raise_error('42501', 'sender_id', sender_id, 'registered by another login');
  END IF;
  -- Stamps are consumed in the transaction that made them; any left over were made by hand and
  -- committed. Remove those of transactions that have ended.
  DELETE FROM dbmail.caller_stamps c WHERE c.transaction_id < pg_snapshot_xmin(pg_current_snapshot());
  PERFORM dbmail.note_timeline();
  RETURN QUERY
  SELECT st.started, (SELECT jsonb_object_agg(c.paramname, c.paramvalue) FROM dbmail.settings c)
  FROM dbmail.system_state st;
END;
$$;

CREATE FUNCTION dbmail.sender_listening() RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
  PERFORM dbmail.require_sender();
  PERFORM pg_advisory_lock_shared(1684172140, 1);
END;
$$;

CREATE FUNCTION dbmail.sender_queue_stats() RETURNS TABLE(unsent bigint, sending bigint, retrying bigint, sent bigint, failed bigint, oldest_unsent_age_seconds double precision)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
  SELECT dbmail.require_sender();
  SELECT c.unsent, c.sending, c.retrying, c.sent, c.failed,
         COALESCE(greatest(extract(epoch FROM now() - c.oldest_unsent_due), 0), 0)::double precision
  FROM dbmail.status_counts() c;
$$;

CREATE FUNCTION dbmail.sender_settle(timeout_ms integer) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
  PERFORM dbmail.require_sender();
  PERFORM set_config('lock_timeout', GREATEST(timeout_ms, 1)::text, true);
  PERFORM pg_advisory_xact_lock(1684172140, 3);
  RETURN true;
EXCEPTION WHEN lock_not_available THEN
  RETURN false;
END;
$$;

CREATE FUNCTION dbmail.sender_stopped(sender_id text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  registered_by oid;
BEGIN
  -- Confined to the roles SenderRoles lists, where it lists any.
  PERFORM dbmail.require_sender();
  UPDATE dbmail.senders s SET stopped_at = now() WHERE s.sender_id = sender_stopped.sender_id
  RETURNING s.login INTO registered_by;
  IF FOUND AND NOT dbmail.may_use_sender_id(registered_by) THEN
    PERFORM dbmail.raise_error('42501', 'sender_id', sender_id, 'registered by another login');
  END IF;
END;
$$;

CREATE FUNCTION dbmail.sender_unwatch() RETURNS boolean
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
  RETURN pg_advisory_unlock(1684172140, 2);
END;
$$;

CREATE FUNCTION dbmail.sender_watch() RETURNS boolean
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
  PERFORM dbmail.require_sender();
  RETURN pg_try_advisory_lock(1684172140, 2);
END;
$$;

CREATE FUNCTION dbmail.sending_caller(call_stack text, caller name, own_name text) RETURNS name
    LANGUAGE sql
    AS $$
  SELECT CASE
    WHEN caller IS NOT NULL
         AND starts_with(split_part(call_stack, E'\n', 2), split_part(call_stack, own_name, 1) || 'dbmail.send_')
      THEN caller
    ELSE dbmail.take_caller_stamp('sp_send_dbmail') END;
$$;

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

CREATE FUNCTION dbmail.setting(parameter_name text) RETURNS text
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    AS $$
BEGIN
  RETURN (SELECT s.paramvalue FROM dbmail.settings s WHERE s.paramname = parameter_name);
END;
$$;

CREATE FUNCTION dbmail.show_value(value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
  SELECT CASE
    WHEN value IS NULL THEN 'NULL'
    ELSE '"' || pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
           CASE WHEN pg_catalog.length(value) > 200 THEN pg_catalog.left(value, 200) || '…' ELSE value END,
           E'\r', '\r'), E'\n', '\n'), E'\t', '\t') || '"'
  END;
$$;

CREATE FUNCTION dbmail.sp_add_operator(name text DEFAULT NULL::text, enabled boolean DEFAULT true, email_address text DEFAULT NULL::text, pager_address text DEFAULT NULL::text, weekday_pager_start_time integer DEFAULT 90000, weekday_pager_end_time integer DEFAULT 180000, saturday_pager_start_time integer DEFAULT 90000, saturday_pager_end_time integer DEFAULT 180000, sunday_pager_start_time integer DEFAULT 90000, sunday_pager_end_time integer DEFAULT 180000, pager_days integer DEFAULT 0, netsend_address text DEFAULT NULL::text, category_name text DEFAULT NULL::text) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION dbmail.sp_delete_operator(name text DEFAULT NULL::text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  target integer := dbmail.find_by_id_or_name('operator', NULL, sp_delete_operator.name, true, NULL, 'name');
BEGIN
  DELETE FROM dbmail.operators o WHERE o.operator_id = target;
END;
$$;

CREATE FUNCTION dbmail.sp_help_operator(operator_name text DEFAULT NULL::text, operator_id integer DEFAULT NULL::integer) RETURNS TABLE(id integer, name text, enabled boolean, email_address text, pager_address text, weekday_pager_start_time integer, weekday_pager_end_time integer, saturday_pager_start_time integer, saturday_pager_end_time integer, sunday_pager_start_time integer, sunday_pager_end_time integer, pager_days smallint, netsend_address text, category_name text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
  SELECT dbmail.require_admin();
  -- An unknown operator is an error, not an empty list.
  SELECT dbmail.find_by_id_or_name('operator', $2, $1, false, 'operator_id', 'operator_name');
  SELECT o.operator_id, o.name, o.enabled, o.email_address, o.pager_address, o.weekday_pager_start_time,
         o.weekday_pager_end_time, o.saturday_pager_start_time, o.saturday_pager_end_time,
         o.sunday_pager_start_time, o.sunday_pager_end_time, o.pager_days, o.netsend_address, o.category_name
  FROM dbmail.operators o
  WHERE ($1 IS NULL AND $2 IS NULL) OR o.operator_id = dbmail.find_by_id_or_name('operator', $2, $1, false, 'operator_id', 'operator_name')
  ORDER BY lower(o.name), o.operator_id;
$_$;

CREATE FUNCTION dbmail.sp_notify_operator(profile_name text DEFAULT NULL::text, id integer DEFAULT NULL::integer, name text DEFAULT NULL::text, subject text DEFAULT NULL::text, body text DEFAULT NULL::text, file_attachments text DEFAULT NULL::text) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION dbmail.sp_send_dbmail(profile_name text DEFAULT NULL::text, recipients text DEFAULT NULL::text, copy_recipients text DEFAULT NULL::text, blind_copy_recipients text DEFAULT NULL::text, subject text DEFAULT NULL::text, body text DEFAULT NULL::text, body_format text DEFAULT 'TEXT'::text, importance text DEFAULT 'NORMAL'::text, sensitivity text DEFAULT 'NORMAL'::text, file_attachments text DEFAULT NULL::text, query text DEFAULT NULL::text, execute_query_database text DEFAULT NULL::text, attach_query_result_as_file boolean DEFAULT false, query_attachment_filename text DEFAULT NULL::text, query_result_header boolean DEFAULT true, query_result_width integer DEFAULT 256, query_result_separator text DEFAULT ' '::text, exclude_query_output boolean DEFAULT false, append_query_error boolean DEFAULT false, query_no_truncate boolean DEFAULT false, query_result_no_padding boolean DEFAULT false, from_address text DEFAULT NULL::text, reply_to text DEFAULT NULL::text, attachments dbmail.attachment[] DEFAULT NULL::dbmail.attachment[], headers jsonb DEFAULT NULL::jsonb, send_at timestamp with time zone DEFAULT NULL::timestamp with time zone, idempotency_key text DEFAULT NULL::text, query_result_format text DEFAULT 'TEXT'::text) RETURNS bigint
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

CREATE FUNCTION dbmail.sp_update_operator(name text DEFAULT NULL::text, new_name text DEFAULT NULL::text, enabled boolean DEFAULT NULL::boolean, email_address text DEFAULT NULL::text, pager_address text DEFAULT NULL::text, weekday_pager_start_time integer DEFAULT NULL::integer, weekday_pager_end_time integer DEFAULT NULL::integer, saturday_pager_start_time integer DEFAULT NULL::integer, saturday_pager_end_time integer DEFAULT NULL::integer, sunday_pager_start_time integer DEFAULT NULL::integer, sunday_pager_end_time integer DEFAULT NULL::integer, pager_days integer DEFAULT NULL::integer, netsend_address text DEFAULT NULL::text, category_name text DEFAULT NULL::text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION dbmail.split_quoted_list(parameter text, list text) RETURNS text[]
    LANGUAGE plpgsql IMMUTABLE
    AS $$
DECLARE
  outside text := regexp_replace(list, '"(?:[^"\\]|\\.)*"', '', 'g');
  joined text;
BEGIN
  -- Before the quote left open, if any: what follows it is inside quotes.
  IF strpos(split_part(outside, '"', 1), ',') > 0 THEN
    PERFORM dbmail.raise_error('22023', parameter, list, 'use '';'' to separate addresses');
  ELSIF strpos(outside, '"') > 0 THEN
    PERFORM dbmail.raise_error('22023', parameter, list, 'a double quote is not closed');
  END IF;
  -- Control characters are refused before this, so \x01 marks the separators.
  SELECT string_agg(CASE WHEN t.token[1] = ';' THEN E'\x01' ELSE t.token[1] END, '' ORDER BY t.n) INTO joined
  FROM regexp_matches(list, '"(?:[^"\\]|\\.)*"|[^";]+|;', 'g') WITH ORDINALITY AS t(token, n);
  RETURN string_to_array(joined, E'\x01');
END;
$$;

CREATE FUNCTION dbmail.status_counts(OUT unsent bigint, OUT sending bigint, OUT retrying bigint, OUT sent bigint, OUT failed bigint, OUT oldest_unsent_due timestamp with time zone) RETURNS record
    LANGUAGE sql STABLE
    AS $$
  WITH pending AS (
    SELECT count(*) FILTER (WHERE m.sent_status = 'unsent') AS unsent,
           count(*) FILTER (WHERE m.sent_status = 'sending') AS sending,
           count(*) FILTER (WHERE m.sent_status = 'retrying') AS retrying,
           min(greatest(m.send_request_date, m.send_at)) FILTER (WHERE m.sent_status = 'unsent') AS oldest
    FROM dbmail.mailitems m WHERE m.sent_status IN ('unsent', 'sending', 'retrying')
  ), failed AS (
    SELECT count(*) AS failed FROM dbmail.mailitems m WHERE m.sent_status = 'failed'
  ), total AS (
    SELECT count(*) AS total FROM dbmail.mailitems m
  )
  SELECT p.unsent, p.sending, p.retrying, t.total - p.unsent - p.sending - p.retrying - f.failed, f.failed,
         p.oldest
  FROM pending p, failed f, total t;
$$;

CREATE FUNCTION dbmail.store_secrets(s dbmail.account_secrets) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF s.password IS NULL AND s.oauth2_client_secret IS NULL AND s.oauth2_refresh_token IS NULL
     AND s.dkim_private_key IS NULL THEN
    DELETE FROM dbmail.account_secrets t WHERE t.account_id = s.account_id;
  ELSE
    INSERT INTO dbmail.account_secrets AS t VALUES (s.*)
    ON CONFLICT ON CONSTRAINT account_secrets_pkey DO UPDATE SET password = excluded.password,
      oauth2_client_secret = excluded.oauth2_client_secret, oauth2_refresh_token = excluded.oauth2_refresh_token,
      dkim_private_key = excluded.dkim_private_key;
  END IF;
END;
$$;

CREATE FUNCTION dbmail.sysmail_add_account_sp(account_name text DEFAULT NULL::text, email_address text DEFAULT NULL::text, display_name text DEFAULT NULL::text, replyto_address text DEFAULT NULL::text, description text DEFAULT NULL::text, mailserver_name text DEFAULT NULL::text, mailserver_type text DEFAULT 'SMTP'::text, port integer DEFAULT 25, username text DEFAULT NULL::text, password text DEFAULT NULL::text, use_default_credentials boolean DEFAULT false, enable_ssl boolean DEFAULT false, security text DEFAULT NULL::text, timeout integer DEFAULT NULL::integer, tls_reject_unauthorized boolean DEFAULT true, auth_method text DEFAULT NULL::text, oauth2_token_url text DEFAULT NULL::text, oauth2_client_id text DEFAULT NULL::text, oauth2_client_secret text DEFAULT NULL::text, oauth2_scope text DEFAULT NULL::text, oauth2_refresh_token text DEFAULT NULL::text, dkim_domain text DEFAULT NULL::text, dkim_selector text DEFAULT NULL::text, dkim_private_key text DEFAULT NULL::text, max_messages_per_minute integer DEFAULT NULL::integer) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  a dbmail.accounts;
  s dbmail.account_secrets;
BEGIN
  IF mailserver_type IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'mailserver_type', NULL, 'only SMTP is supported');
  ELSIF upper(btrim(mailserver_type)) <> 'SMTP' THEN
    PERFORM dbmail.raise_error('22023', 'mailserver_type', mailserver_type, 'only SMTP is supported');
  END IF;
  a.name := account_name;
  a.description := NULLIF(description, '');
  a.email_address := btrim(email_address);
  a.display_name := NULLIF(display_name, '');
  a.replyto_address := NULLIF(btrim(replyto_address), '');
  a.mailserver_type := 'SMTP';
  a.mailserver_name := btrim(mailserver_name);
  a.port := port;
  a.username := NULLIF(btrim(username), '');
  a.use_default_credentials := use_default_credentials;
  a.security := dbmail.resolve_security(enable_ssl, security);
  a.timeout := timeout;
  a.tls_reject_unauthorized := tls_reject_unauthorized;
  -- Without auth_method: a password login when there is a username (SQL Server's only kind), else none.
  a.auth_method := COALESCE(lower(btrim(auth_method)),
    CASE WHEN a.username IS NOT NULL OR use_default_credentials THEN 'password' ELSE 'none' END);
  a.oauth2_token_url := NULLIF(btrim(oauth2_token_url), '');
  a.oauth2_client_id := NULLIF(btrim(oauth2_client_id), '');
  a.oauth2_scope := NULLIF(btrim(oauth2_scope), '');
  a.dkim_domain := NULLIF(lower(btrim(dkim_domain)), '');
  a.dkim_selector := NULLIF(btrim(dkim_selector), '');
  a.max_messages_per_minute := NULLIF(max_messages_per_minute, 0);
  s.password := NULLIF(password, '');
  s.oauth2_client_secret := NULLIF(oauth2_client_secret, '');
  s.oauth2_refresh_token := NULLIF(oauth2_refresh_token, '');
  s.dkim_private_key := NULLIF(dkim_private_key, '');
  PERFORM dbmail.check_account(a, s);
  IF EXISTS (SELECT FROM dbmail.accounts t WHERE lower(t.name) = lower(a.name)) THEN
    PERFORM dbmail.raise_error('42710', 'account_name', a.name, 'an account with this name exists');
  END IF;
  INSERT INTO dbmail.accounts AS t (name, description, email_address, display_name, replyto_address,
    mailserver_name, port, username, use_default_credentials, security, timeout, tls_reject_unauthorized,
    auth_method, oauth2_token_url, oauth2_client_id, oauth2_scope, dkim_domain, dkim_selector,
    max_messages_per_minute, last_mod_user)
  VALUES (a.name, a.description, a.email_address, a.display_name, a.replyto_address, a.mailserver_name,
    a.port, a.username, a.use_default_credentials, a.security, a.timeout, a.tls_reject_unauthorized,
    a.auth_method, a.oauth2_token_url, a.oauth2_client_id, a.oauth2_scope, a.dkim_domain, a.dkim_selector,
    a.max_messages_per_minute, dbmail.caller_role())
  RETURNING t.account_id INTO a.account_id;
  s.account_id := a.account_id;
  PERFORM dbmail.store_secrets(s);
  PERFORM dbmail.warn_basic_auth(a);
  PERFORM dbmail.config_changed();
  RETURN a.account_id;
END;
$$;

CREATE FUNCTION dbmail.sysmail_add_principalprofile_sp(principal_id oid DEFAULT NULL::oid, principal_name text DEFAULT NULL::text, profile_id integer DEFAULT NULL::integer, profile_name text DEFAULT NULL::text, is_default boolean DEFAULT NULL::boolean) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  the_principal oid := dbmail.find_by_id_or_name('principal', principal_id::bigint, principal_name);
  the_profile integer := dbmail.find_by_id_or_name('profile', profile_id, profile_name);
BEGIN
  IF is_default IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'is_default', NULL, 'must be true or false');
  END IF;
  IF EXISTS (SELECT FROM dbmail.principal_profiles pp
             WHERE pp.profile_id = the_profile AND pp.principal_id = the_principal) THEN
    PERFORM dbmail.raise_error('42710', 'principal_name', dbmail.principal_name(the_principal),
      format('already has profile %s; use sysmail_update_principalprofile_sp', the_profile));
  END IF;
  IF is_default THEN
    UPDATE dbmail.principal_profiles pp SET is_default = false
    WHERE pp.principal_id = the_principal AND pp.is_default;
  END IF;
  INSERT INTO dbmail.principal_profiles (profile_id, principal_id, is_default, last_mod_user)
  VALUES (the_profile, the_principal, is_default, dbmail.caller_role());
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_add_profile_sp(profile_name text DEFAULT NULL::text, description text DEFAULT NULL::text) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  new_id integer;
BEGIN
  PERFORM dbmail.check_profile_name(profile_name);
  IF EXISTS (SELECT FROM dbmail.profiles p WHERE lower(p.name) = lower(profile_name)) THEN
    PERFORM dbmail.raise_error('42710', 'profile_name', profile_name, 'a profile with this name exists');
  END IF;
  INSERT INTO dbmail.profiles AS p (name, description, last_mod_user)
  VALUES (profile_name, NULLIF(description, ''), dbmail.caller_role())
  RETURNING p.profile_id INTO new_id;
  PERFORM dbmail.config_changed();
  RETURN new_id;
END;
$$;

CREATE FUNCTION dbmail.sysmail_add_profileaccount_sp(profile_id integer DEFAULT NULL::integer, profile_name text DEFAULT NULL::text, account_id integer DEFAULT NULL::integer, account_name text DEFAULT NULL::text, sequence_number integer DEFAULT NULL::integer) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  the_profile integer := dbmail.find_by_id_or_name('profile', profile_id, profile_name);
  the_account integer := dbmail.find_by_id_or_name('account', account_id, account_name);
BEGIN
  IF sequence_number IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'sequence_number', NULL,
      'give the account''s place in the profile (lowest is tried first)');
  END IF;
  IF EXISTS (SELECT FROM dbmail.profile_accounts pa
             WHERE pa.profile_id = the_profile AND pa.account_id = the_account) THEN
    PERFORM dbmail.raise_error('42710', dbmail.given_name('account', account_name),
      COALESCE(account_name, account_id::text), format('the account is already in profile %s', the_profile));
  END IF;
  INSERT INTO dbmail.profile_accounts (profile_id, account_id, sequence_number, last_mod_user)
  VALUES (the_profile, the_account, sequence_number, dbmail.caller_role());
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_cancel_mailitems_sp(mailitem_ids bigint[]) RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
  INSERT INTO dbmail.caller_stamps DEFAULT VALUES;
  RETURN dbmail.cancel_mailitems(mailitem_ids);
END;
$$;

CREATE FUNCTION dbmail.sysmail_configure_sp(parameter_name text DEFAULT NULL::text, parameter_value text DEFAULT NULL::text, description text DEFAULT NULL::text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  setting_name text := dbmail.find_setting(parameter_name);
  setting_value text := dbmail.normalise_setting(setting_name, parameter_value);
  caller name := dbmail.caller_role();
BEGIN
  IF setting_name = 'AdminRoles' AND setting_value <> '' AND NOT dbmail.unconfined(caller)
     AND NOT (pg_has_role(caller, 'dbmail_admin', 'USAGE') AND dbmail.role_listed(caller, setting_value)) THEN
    PERFORM dbmail.raise_error('22023', 'parameter_value', parameter_value,
      format('AdminRoles would take your own admin rights in this database away (role %s is a member of none '
             'of these roles); list a role of yours too', caller));
  END IF;
  UPDATE dbmail.settings s SET
    paramvalue = setting_value,
    description = COALESCE(sysmail_configure_sp.description, s.description),
    last_mod_date = now(), last_mod_user = caller
  WHERE s.paramname = setting_name;
  IF setting_name = 'MaxMailsPerUserPerDay' AND setting_value <> '0' THEN
    -- What the ledger did not see while the limit was off: the mail items of the last 25 hours. Where it
    -- has a count already (the limit was on; items may have been deleted since), the larger one stays.
    INSERT INTO dbmail.daily_mail_counts AS c (role_id, hour_start, mails)
    SELECT m.send_request_role, date_trunc('hour', m.send_request_date, 'UTC'), count(*)
    FROM dbmail.mailitems m
    WHERE m.send_request_date >= date_trunc('hour', now(), 'UTC') - interval '24 hours'
      AND m.send_request_role IS NOT NULL
    GROUP BY 1, 2
    ON CONFLICT ON CONSTRAINT daily_mail_counts_pkey DO UPDATE SET mails = GREATEST(c.mails, excluded.mails);
  END IF;
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_delete_account_sp(account_id integer DEFAULT NULL::integer, account_name text DEFAULT NULL::text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  target integer := dbmail.find_by_id_or_name('account', account_id, account_name);
BEGIN
  DELETE FROM dbmail.accounts a WHERE a.account_id = target;
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_delete_log_sp(logged_before timestamp with time zone DEFAULT NULL::timestamp with time zone, event_type text DEFAULT NULL::text) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
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

CREATE FUNCTION dbmail.sysmail_delete_mailitems_sp(sent_before timestamp with time zone DEFAULT NULL::timestamp with time zone, sent_status text DEFAULT NULL::text) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
  INSERT INTO dbmail.caller_stamps DEFAULT VALUES;
  RETURN dbmail.delete_mailitems(sent_before, sent_status);
END;
$$;

CREATE FUNCTION dbmail.sysmail_delete_principalprofile_sp(principal_id oid DEFAULT NULL::oid, principal_name text DEFAULT NULL::text, profile_id integer DEFAULT NULL::integer, profile_name text DEFAULT NULL::text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  -- A dropped role's grant can still be removed by its OID, so the OID is not checked against pg_roles.
  the_principal oid := CASE WHEN principal_name IS NULL THEN principal_id
                            ELSE dbmail.find_by_id_or_name('principal', principal_id::bigint, principal_name, false) END;
  the_profile integer := dbmail.find_by_id_or_name('profile', profile_id, profile_name, false);
BEGIN
  IF the_principal IS NULL AND the_profile IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'principal_id, principal_name, profile_id, profile_name', NULL,
      'give a principal, a profile, or both');
  END IF;
  DELETE FROM dbmail.principal_profiles pp
  WHERE (the_principal IS NULL OR pp.principal_id = the_principal)
    AND (the_profile IS NULL OR pp.profile_id = the_profile);
  IF NOT FOUND AND the_principal IS NOT NULL AND the_profile IS NOT NULL THEN
    PERFORM dbmail.raise_error('42704', dbmail.given_name('principal', principal_name),
      COALESCE(principal_name, principal_id::text), format('has no grant of profile %s', the_profile));
  END IF;
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_delete_profile_sp(profile_id integer DEFAULT NULL::integer, profile_name text DEFAULT NULL::text, force_delete boolean DEFAULT true) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  target integer := dbmail.find_by_id_or_name('profile', profile_id, profile_name);
  target_name text;
  waiting integer;
BEGIN
  IF force_delete IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'force_delete', NULL, 'must be true or false');
  END IF;
  SELECT p.name INTO target_name FROM dbmail.profiles p WHERE p.profile_id = target FOR UPDATE;
  SELECT count(*) INTO waiting FROM dbmail.mailitems m
  WHERE m.profile_id = target AND m.sent_status IN ('unsent', 'retrying');
  IF waiting > 0 AND NOT force_delete THEN
    PERFORM dbmail.raise_error('55000', 'profile_name', target_name,
      format('%s mail items of this profile are waiting to be sent; use force_delete => true to fail them',
             waiting));
  END IF;
  UPDATE dbmail.mailitems m SET
    sent_status = 'failed', sent_date = now(), last_error = format('profile %s was deleted', target_name),
    last_mod_date = now(), last_mod_user = dbmail.caller_role()
  WHERE m.profile_id = target AND m.sent_status IN ('unsent', 'retrying');
  DELETE FROM dbmail.profiles p WHERE p.profile_id = target;
  IF waiting > 0 THEN
    PERFORM dbmail.log_event('warning',
      format('Profile %s was deleted by %s; its %s waiting mail items were marked failed',
             target_name, dbmail.caller_role(), waiting));
  END IF;
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_delete_profileaccount_sp(profile_id integer DEFAULT NULL::integer, profile_name text DEFAULT NULL::text, account_id integer DEFAULT NULL::integer, account_name text DEFAULT NULL::text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  the_profile integer := dbmail.find_by_id_or_name('profile', profile_id, profile_name, false);
  the_account integer := dbmail.find_by_id_or_name('account', account_id, account_name, false);
BEGIN
  IF the_profile IS NULL AND the_account IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'profile_id, profile_name, account_id, account_name', NULL,
      'give a profile, an account, or both');
  END IF;
  DELETE FROM dbmail.profile_accounts pa
  WHERE (the_profile IS NULL OR pa.profile_id = the_profile)
    AND (the_account IS NULL OR pa.account_id = the_account);
  IF NOT FOUND AND the_profile IS NOT NULL AND the_account IS NOT NULL THEN
    PERFORM dbmail.raise_error('42704', dbmail.given_name('account', account_name),
      COALESCE(account_name, account_id::text), format('the account is not in profile %s', the_profile));
  END IF;
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_help_account_sp(account_id integer DEFAULT NULL::integer, account_name text DEFAULT NULL::text) RETURNS TABLE(account_id integer, name text, description text, email_address text, display_name text, replyto_address text, servertype text, servername text, port integer, username text, use_default_credentials boolean, enable_ssl boolean, security text, timeout integer, tls_reject_unauthorized boolean, password_source text, auth_method text, oauth2_token_url text, oauth2_client_id text, oauth2_scope text, oauth2_client_secret_source text, oauth2_refresh_token_source text, dkim_domain text, dkim_selector text, dkim_private_key_source text, max_messages_per_minute integer)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
  SELECT dbmail.require_admin();
  SELECT dbmail.find_by_id_or_name('account', $1, $2, false);  -- an unknown account is an error, not an empty list
  SELECT a.account_id, a.name, a.description, a.email_address, a.display_name, a.replyto_address,
         a.mailserver_type, a.mailserver_name, a.port, a.username, a.use_default_credentials,
         a.security <> 'none', a.security, a.timeout, a.tls_reject_unauthorized,
         dbmail.secret_source(s.password), a.auth_method, a.oauth2_token_url, a.oauth2_client_id,
         a.oauth2_scope, dbmail.secret_source(s.oauth2_client_secret),
         dbmail.secret_source(s.oauth2_refresh_token), a.dkim_domain, a.dkim_selector,
         dbmail.secret_source(s.dkim_private_key), a.max_messages_per_minute
  FROM dbmail.accounts a
  LEFT JOIN dbmail.account_secrets s ON s.account_id = a.account_id
  WHERE ($1 IS NULL AND $2 IS NULL) OR a.account_id = dbmail.find_by_id_or_name('account', $1, $2, false)
  ORDER BY a.account_id;
$_$;

CREATE FUNCTION dbmail.sysmail_help_configure_sp(parameter_name text DEFAULT NULL::text) RETURNS TABLE(paramname text, paramvalue text, description text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
  SELECT dbmail.require_admin();
  SELECT CASE WHEN $1 IS NOT NULL THEN dbmail.find_setting($1) END;  -- an unknown name is an error
  SELECT s.paramname, s.paramvalue, s.description FROM dbmail.settings s
  WHERE $1 IS NULL OR s.paramname = dbmail.find_setting($1)
  ORDER BY s.paramname;
$_$;

CREATE FUNCTION dbmail.sysmail_help_principalprofile_sp(principal_id oid DEFAULT NULL::oid, principal_name text DEFAULT NULL::text, profile_id integer DEFAULT NULL::integer, profile_name text DEFAULT NULL::text) RETURNS TABLE(principal_id oid, principal_name text, profile_id integer, profile_name text, is_default boolean)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
  SELECT dbmail.require_admin();
  SELECT dbmail.find_by_id_or_name('principal', $1::bigint, $2, false), dbmail.find_by_id_or_name('profile', $3, $4, false);
  SELECT pp.principal_id, dbmail.principal_name(pp.principal_id), p.profile_id, p.name, pp.is_default
  FROM dbmail.principal_profiles pp
  JOIN dbmail.profiles p ON p.profile_id = pp.profile_id
  WHERE (($1 IS NULL AND $2 IS NULL) OR pp.principal_id = dbmail.find_by_id_or_name('principal', $1::bigint, $2, false))
    AND (($3 IS NULL AND $4 IS NULL) OR pp.profile_id = dbmail.find_by_id_or_name('profile', $3, $4, false))
  ORDER BY p.profile_id, pp.principal_id;
$_$;

CREATE FUNCTION dbmail.sysmail_help_profile_sp(profile_id integer DEFAULT NULL::integer, profile_name text DEFAULT NULL::text) RETURNS TABLE(profile_id integer, name text, description text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
  SELECT dbmail.require_admin();
  SELECT dbmail.find_by_id_or_name('profile', $1, $2, false);  -- an unknown profile is an error, not an empty list
  SELECT p.profile_id, p.name, p.description FROM dbmail.profiles p
  WHERE ($1 IS NULL AND $2 IS NULL) OR p.profile_id = dbmail.find_by_id_or_name('profile', $1, $2, false)
  ORDER BY p.profile_id;
$_$;

CREATE FUNCTION dbmail.sysmail_help_profileaccount_sp(profile_id integer DEFAULT NULL::integer, profile_name text DEFAULT NULL::text, account_id integer DEFAULT NULL::integer, account_name text DEFAULT NULL::text) RETURNS TABLE(profile_id integer, profile_name text, account_id integer, account_name text, sequence_number integer)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
  SELECT dbmail.require_admin();
  SELECT dbmail.find_by_id_or_name('profile', $1, $2, false), dbmail.find_by_id_or_name('account', $3, $4, false);
  SELECT p.profile_id, p.name, a.account_id, a.name, pa.sequence_number
  FROM dbmail.profile_accounts pa
  JOIN dbmail.profiles p ON p.profile_id = pa.profile_id
  JOIN dbmail.accounts a ON a.account_id = pa.account_id
  WHERE (($1 IS NULL AND $2 IS NULL) OR pa.profile_id = dbmail.find_by_id_or_name('profile', $1, $2, false))
    AND (($3 IS NULL AND $4 IS NULL) OR pa.account_id = dbmail.find_by_id_or_name('account', $3, $4, false))
  ORDER BY p.profile_id, pa.sequence_number, a.account_id;
$_$;

CREATE FUNCTION dbmail.sysmail_help_queue_sp(queue_type text DEFAULT NULL::text) RETURNS TABLE(queue_type text, length bigint, state text, last_empty_rowset_time timestamp with time zone, last_activated_time timestamp with time zone, live_senders integer, senders jsonb, oldest_unsent_date timestamp with time zone, stalled boolean, unsent bigint, sending bigint, retrying bigint, sent bigint, failed bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
  SELECT dbmail.require_admin();
  SELECT dbmail.raise_error('22023', 'queue_type', $1, 'must be mail (pg-dbmail has no separate status queue)')
  WHERE $1 IS NOT NULL AND lower($1) <> 'mail';
  WITH queue AS (
    SELECT count(*) AS waiting,
           -- Due: waiting items whose time has come, and items whose sender died holding them (its
           -- lease expired, or it is no longer live: the next claim takes them over).
           count(*) FILTER (WHERE (m.sent_status <> 'sending' AND m.next_attempt_at <= now())
                               OR (m.sent_status = 'sending' AND (m.lease_expires_at < now()
                                   OR m.lease_owner NOT IN (SELECT l.sender_id FROM dbmail.live_senders() l)))) AS due,
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
         s.started AND queue.due > 0 AND live.live_count = 0,
         c.unsent, c.sending, c.retrying, c.sent, c.failed
  FROM queue, live, dbmail.system_state s, dbmail.status_counts() c;
$_$;

CREATE FUNCTION dbmail.sysmail_help_status_sp() RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
  SELECT CASE WHEN s.started THEN 'STARTED' ELSE 'STOPPED' END FROM dbmail.system_state s;
$$;

CREATE FUNCTION dbmail.sysmail_retry_mailitems_sp(mailitem_ids bigint[] DEFAULT NULL::bigint[], sent_status text DEFAULT 'failed'::text, sent_before timestamp with time zone DEFAULT NULL::timestamp with time zone, profile_name text DEFAULT NULL::text) RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
  INSERT INTO dbmail.caller_stamps DEFAULT VALUES;
  RETURN dbmail.retry_mailitems(mailitem_ids, sent_status, sent_before, profile_name);
END;
$$;

CREATE FUNCTION dbmail.sysmail_start_sp() RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
  SELECT dbmail.require_admin();
  SELECT dbmail.set_started(true);
$$;

CREATE FUNCTION dbmail.sysmail_stop_sp() RETURNS void
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
  SELECT dbmail.require_admin();
  SELECT dbmail.set_started(false);
$$;

CREATE FUNCTION dbmail.sysmail_update_account_sp(account_id integer DEFAULT NULL::integer, account_name text DEFAULT NULL::text, email_address text DEFAULT NULL::text, display_name text DEFAULT NULL::text, replyto_address text DEFAULT NULL::text, description text DEFAULT NULL::text, mailserver_name text DEFAULT NULL::text, mailserver_type text DEFAULT NULL::text, port integer DEFAULT NULL::integer, username text DEFAULT NULL::text, password text DEFAULT NULL::text, use_default_credentials boolean DEFAULT NULL::boolean, enable_ssl boolean DEFAULT NULL::boolean, timeout integer DEFAULT NULL::integer, security text DEFAULT NULL::text, tls_reject_unauthorized boolean DEFAULT NULL::boolean, auth_method text DEFAULT NULL::text, oauth2_token_url text DEFAULT NULL::text, oauth2_client_id text DEFAULT NULL::text, oauth2_client_secret text DEFAULT NULL::text, oauth2_scope text DEFAULT NULL::text, oauth2_refresh_token text DEFAULT NULL::text, dkim_domain text DEFAULT NULL::text, dkim_selector text DEFAULT NULL::text, dkim_private_key text DEFAULT NULL::text, max_messages_per_minute integer DEFAULT NULL::integer) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  target integer;
  stored dbmail.accounts;
  merged dbmail.accounts;
  secrets dbmail.account_secrets;
BEGIN
  IF sysmail_update_account_sp.account_id IS NOT NULL THEN
    target := dbmail.find_by_id_or_name('account', sysmail_update_account_sp.account_id, NULL);
  ELSE
    target := dbmail.find_by_id_or_name('account', NULL, account_name);
  END IF;
  SELECT * INTO stored FROM dbmail.accounts a WHERE a.account_id = target FOR UPDATE;
  SELECT * INTO secrets FROM dbmail.account_secrets s WHERE s.account_id = target;
  secrets.account_id := target;
  IF mailserver_type IS NOT NULL AND upper(btrim(mailserver_type)) <> 'SMTP' THEN
    PERFORM dbmail.raise_error('22023', 'mailserver_type', mailserver_type, 'only SMTP is supported');
  END IF;
  merged := stored;
  IF sysmail_update_account_sp.account_id IS NOT NULL AND account_name IS NOT NULL THEN
    merged.name := account_name;
  END IF;
  merged.email_address := COALESCE(btrim(email_address), stored.email_address);
  merged.display_name := CASE WHEN display_name IS NULL THEN stored.display_name ELSE NULLIF(display_name, '') END;
  merged.replyto_address := CASE WHEN replyto_address IS NULL THEN stored.replyto_address
                              ELSE NULLIF(btrim(replyto_address), '') END;
  merged.description := CASE WHEN description IS NULL THEN stored.description ELSE NULLIF(description, '') END;
  merged.mailserver_name := COALESCE(btrim(mailserver_name), stored.mailserver_name);
  merged.port := COALESCE(port, stored.port);
  merged.use_default_credentials := COALESCE(use_default_credentials, stored.use_default_credentials);
  merged.timeout := COALESCE(timeout, stored.timeout);
  merged.tls_reject_unauthorized := COALESCE(tls_reject_unauthorized, stored.tls_reject_unauthorized);
  -- enable_ssl => true on an account that already encrypts (tls or starttls) keeps what it has.
  IF security IS NOT NULL OR (enable_ssl IS NOT NULL AND enable_ssl <> (stored.security <> 'none')) THEN
    merged.security := dbmail.resolve_security(COALESCE(enable_ssl, false),
      COALESCE(security, CASE WHEN enable_ssl THEN NULL ELSE 'none' END));
  END IF;
  IF username IS NOT NULL THEN
    merged.username := NULLIF(btrim(username), '');
    IF merged.username IS NULL THEN
      secrets.password := NULL;
    END IF;
  END IF;
  IF password IS NOT NULL THEN
    secrets.password := NULLIF(password, '');
  END IF;
  -- Switching to the sender's own credentials drops the stored ones.
  IF use_default_credentials AND username IS NULL THEN
    merged.username := NULL;
    secrets.password := NULL;
  END IF;
  -- The login. A new auth_method drops what the old one stored and this call does not give again;
  -- without one, a password or oauth2 account keeps its method, others follow their username.
  IF auth_method IS NOT NULL THEN
    merged.auth_method := lower(btrim(auth_method));
    IF merged.auth_method <> 'password' THEN
      secrets.password := CASE WHEN password IS NULL THEN NULL ELSE secrets.password END;
      merged.use_default_credentials := COALESCE(use_default_credentials, false);
    END IF;
    IF merged.auth_method = 'none' AND username IS NULL THEN
      merged.username := NULL;
    END IF;
    IF merged.auth_method <> 'oauth2' THEN
      merged.oauth2_token_url := NULL;
      merged.oauth2_client_id := NULL;
      merged.oauth2_scope := NULL;
      secrets.oauth2_client_secret := NULL;
      secrets.oauth2_refresh_token := NULL;
    END IF;
  ELSIF merged.auth_method <> 'oauth2' THEN
    merged.auth_method := CASE WHEN merged.username IS NOT NULL OR merged.use_default_credentials
                               THEN 'password' ELSE 'none' END;
  END IF;
  merged.oauth2_token_url := CASE WHEN oauth2_token_url IS NULL THEN merged.oauth2_token_url
                                  ELSE NULLIF(btrim(oauth2_token_url), '') END;
  merged.oauth2_client_id := CASE WHEN oauth2_client_id IS NULL THEN merged.oauth2_client_id
                                  ELSE NULLIF(btrim(oauth2_client_id), '') END;
  merged.oauth2_scope := CASE WHEN oauth2_scope IS NULL THEN merged.oauth2_scope ELSE NULLIF(btrim(oauth2_scope), '') END;
  secrets.oauth2_client_secret := CASE WHEN oauth2_client_secret IS NULL THEN secrets.oauth2_client_secret
                                       ELSE NULLIF(oauth2_client_secret, '') END;
  secrets.oauth2_refresh_token := CASE WHEN oauth2_refresh_token IS NULL THEN secrets.oauth2_refresh_token
                                       ELSE NULLIF(oauth2_refresh_token, '') END;
  IF dkim_domain = '' THEN
    merged.dkim_domain := NULL;
    merged.dkim_selector := NULLIF(btrim(dkim_selector), '');
    secrets.dkim_private_key := NULLIF(dkim_private_key, '');
  ELSE
    merged.dkim_domain := COALESCE(lower(btrim(dkim_domain)), stored.dkim_domain);
    merged.dkim_selector := COALESCE(btrim(dkim_selector), stored.dkim_selector);
    secrets.dkim_private_key := COALESCE(dkim_private_key, secrets.dkim_private_key);
  END IF;
  merged.max_messages_per_minute := CASE WHEN max_messages_per_minute IS NULL THEN stored.max_messages_per_minute
                                         ELSE NULLIF(max_messages_per_minute, 0) END;
  PERFORM dbmail.check_account(merged, secrets);
  IF EXISTS (SELECT FROM dbmail.accounts a WHERE lower(a.name) = lower(merged.name) AND a.account_id <> target) THEN
    PERFORM dbmail.raise_error('42710', 'account_name', merged.name, 'an account with this name exists');
  END IF;
  UPDATE dbmail.accounts a SET
    name = merged.name, email_address = merged.email_address, display_name = merged.display_name,
    replyto_address = merged.replyto_address, description = merged.description,
    mailserver_name = merged.mailserver_name, port = merged.port, username = merged.username,
    use_default_credentials = merged.use_default_credentials, security = merged.security, timeout = merged.timeout,
    tls_reject_unauthorized = merged.tls_reject_unauthorized, auth_method = merged.auth_method,
    oauth2_token_url = merged.oauth2_token_url, oauth2_client_id = merged.oauth2_client_id,
    oauth2_scope = merged.oauth2_scope, dkim_domain = merged.dkim_domain, dkim_selector = merged.dkim_selector,
    max_messages_per_minute = merged.max_messages_per_minute, last_mod_datetime = now(),
    last_mod_user = dbmail.caller_role()
  WHERE a.account_id = target;
  PERFORM dbmail.store_secrets(secrets);
  IF merged.auth_method IS DISTINCT FROM stored.auth_method
     OR merged.mailserver_name IS DISTINCT FROM stored.mailserver_name THEN
    PERFORM dbmail.warn_basic_auth(merged);
  END IF;
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_update_principalprofile_sp(principal_id oid DEFAULT NULL::oid, principal_name text DEFAULT NULL::text, profile_id integer DEFAULT NULL::integer, profile_name text DEFAULT NULL::text, is_default boolean DEFAULT NULL::boolean) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  the_principal oid := dbmail.find_by_id_or_name('principal', principal_id::bigint, principal_name);
  the_profile integer := dbmail.find_by_id_or_name('profile', profile_id, profile_name);
BEGIN
  IF is_default IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'is_default', NULL, 'must be true or false');
  END IF;
  IF NOT EXISTS (SELECT FROM dbmail.principal_profiles pp
                 WHERE pp.profile_id = the_profile AND pp.principal_id = the_principal) THEN
    PERFORM dbmail.raise_error('42704', 'principal_name', dbmail.principal_name(the_principal),
      format('has no grant of profile %s; use sysmail_add_principalprofile_sp', the_profile));
  END IF;
  IF is_default THEN
    UPDATE dbmail.principal_profiles pp SET is_default = false
    WHERE pp.principal_id = the_principal AND pp.is_default AND pp.profile_id <> the_profile;
  END IF;
  UPDATE dbmail.principal_profiles pp SET
    is_default = sysmail_update_principalprofile_sp.is_default,
    last_mod_datetime = now(), last_mod_user = dbmail.caller_role()
  WHERE pp.profile_id = the_profile AND pp.principal_id = the_principal;
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_update_profile_sp(profile_id integer DEFAULT NULL::integer, profile_name text DEFAULT NULL::text, description text DEFAULT NULL::text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  target integer;
  new_name text;
BEGIN
  IF sysmail_update_profile_sp.profile_id IS NOT NULL THEN
    target := dbmail.find_by_id_or_name('profile', sysmail_update_profile_sp.profile_id, NULL);
    new_name := profile_name;
  ELSE
    target := dbmail.find_by_id_or_name('profile', NULL, profile_name);
  END IF;
  IF new_name IS NULL AND description IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'profile_name, description', NULL,
      'give a new name (with profile_id) or a description');
  END IF;
  IF new_name IS NOT NULL THEN
    PERFORM dbmail.check_profile_name(new_name);
    IF EXISTS (SELECT FROM dbmail.profiles p WHERE lower(p.name) = lower(new_name) AND p.profile_id <> target) THEN
      PERFORM dbmail.raise_error('42710', 'profile_name', new_name, 'a profile with this name exists');
    END IF;
  END IF;
  UPDATE dbmail.profiles p SET
    name = COALESCE(new_name, p.name),
    description = CASE WHEN sysmail_update_profile_sp.description IS NULL THEN p.description
                       ELSE NULLIF(sysmail_update_profile_sp.description, '') END,
    last_mod_datetime = now(),
    last_mod_user = dbmail.caller_role()
  WHERE p.profile_id = target;
  PERFORM dbmail.config_changed();
END;
$$;

CREATE FUNCTION dbmail.sysmail_update_profileaccount_sp(profile_id integer DEFAULT NULL::integer, profile_name text DEFAULT NULL::text, account_id integer DEFAULT NULL::integer, account_name text DEFAULT NULL::text, sequence_number integer DEFAULT NULL::integer) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  admin_checked boolean := dbmail.require_admin();
  the_profile integer := dbmail.find_by_id_or_name('profile', profile_id, profile_name);
  the_account integer := dbmail.find_by_id_or_name('account', account_id, account_name);
BEGIN
  IF sequence_number IS NULL THEN
    PERFORM dbmail.raise_error('22004', 'sequence_number', NULL, 'account sequence number must be supplied for update');
  END IF;
  UPDATE dbmail.profile_accounts pa SET
    sequence_number = sysmail_update_profileaccount_sp.sequence_number,
    last_mod_datetime = now(), last_mod_user = dbmail.caller_role()
  WHERE pa.profile_id = the_profile AND pa.account_id = the_account;
  IF NOT FOUND THEN
    PERFORM dbmail.raise_error('42704', dbmail.given_name('account', account_name),
      COALESCE(account_name, account_id::text), format('the account is not in profile %s', the_profile));
  END IF;
  PERFORM dbmail.config_changed();
END;
$$;

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

CREATE FUNCTION dbmail.take_send_slot(sender_id text, mailitem_id bigint, lease_token uuid, account_id integer) RETURNS TABLE(admitted boolean, due_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  lim integer;
  busy integer;
  due timestamptz;
BEGIN
  PERFORM dbmail.require_sender();
  PERFORM FROM dbmail.mailitems m
  WHERE m.mailitem_id = take_send_slot.mailitem_id AND m.lease_owner = take_send_slot.sender_id
    AND m.lease_token = take_send_slot.lease_token AND m.sent_status = 'sending';
  IF NOT FOUND THEN
    RETURN QUERY SELECT false, NULL::timestamptz;
    RETURN;
  END IF;
  SELECT a.max_messages_per_minute INTO lim FROM dbmail.accounts a WHERE a.account_id = take_send_slot.account_id;
  IF lim IS NULL THEN
    RETURN QUERY SELECT true, NULL::timestamptz;
    RETURN;
  END IF;
  INSERT INTO dbmail.send_rates AS r (account_id) VALUES (take_send_slot.account_id) ON CONFLICT DO NOTHING;
  PERFORM FROM dbmail.send_rates r WHERE r.account_id = take_send_slot.account_id FOR UPDATE;
  -- A slot whose item is no longer being sent (its sender died, or gave it back) may have gone out at
  -- any moment until now: it counts as finished now.
  UPDATE dbmail.send_slots t SET finished_at = now()
  WHERE t.account_id = take_send_slot.account_id AND t.finished_at IS NULL AND NOT t.waiting
    AND NOT EXISTS (SELECT FROM dbmail.mailitems m WHERE m.mailitem_id = t.mailitem_id AND m.sent_status = 'sending');
  -- Out of the window; this item's own turn or slot (it asks again); turns not taken within a minute.
  DELETE FROM dbmail.send_slots t
  WHERE t.account_id = take_send_slot.account_id
    AND (t.finished_at < now() - interval '60 seconds' OR (t.mailitem_id = take_send_slot.mailitem_id AND t.finished_at IS NULL)
         OR (t.waiting AND t.starts_at < now() - interval '60 seconds'));
  SELECT count(*) INTO busy FROM dbmail.send_slots t
  WHERE t.account_id = take_send_slot.account_id AND (NOT t.waiting OR t.starts_at <= now());
  IF busy < lim THEN
    INSERT INTO dbmail.send_slots (account_id, mailitem_id, starts_at)
    VALUES (take_send_slot.account_id, take_send_slot.mailitem_id, now());
    RETURN QUERY SELECT true, NULL::timestamptz;
    RETURN;
  END IF;
  -- Every slot and turn leaves the window 60 s after it ends (one on its way: at the earliest now); with
  -- n of them, this turn comes when n - limit + 1 have left.
  SELECT e.leaves INTO due
  FROM (SELECT CASE WHEN t.waiting THEN t.starts_at ELSE COALESCE(t.finished_at, now()) END
               + interval '60 seconds' AS leaves
        FROM dbmail.send_slots t WHERE t.account_id = take_send_slot.account_id) e
  ORDER BY e.leaves OFFSET (SELECT count(*) FROM dbmail.send_slots t WHERE t.account_id = take_send_slot.account_id) - lim
  LIMIT 1;
  INSERT INTO dbmail.send_slots (account_id, mailitem_id, starts_at, waiting)
  VALUES (take_send_slot.account_id, take_send_slot.mailitem_id, due, true);
  UPDATE dbmail.mailitems m SET
    sent_status = CASE WHEN m.send_attempts = 0 THEN 'unsent' ELSE 'retrying' END,
    next_attempt_at = due, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
  WHERE m.mailitem_id = take_send_slot.mailitem_id;
  RETURN QUERY SELECT false, due;
END;
$$;

CREATE FUNCTION dbmail.unconfined(role_name name) RETURNS boolean
    LANGUAGE sql STABLE
    AS $$
  SELECT pg_catalog.pg_has_role(role_name,
    (SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = 'dbmail'), 'USAGE');
$$;

CREATE FUNCTION dbmail.warn_basic_auth(a dbmail.accounts) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
  warning text;
BEGIN
  IF a.auth_method = 'password'
     AND lower(a.mailserver_name) IN ('smtp.office365.com', 'smtp-mail.outlook.com', 'smtp.office365.us') THEN
    warning := format('account %s (%s) logs in to %s with a password: Microsoft 365 is switching Basic SMTP AUTH '
      'off; use auth_method => ''oauth2'' (see docs/sender.md)', a.account_id, a.name, a.mailserver_name);
    PERFORM dbmail.log_event('warning', warning, NULL, a.account_id);
    RAISE WARNING '%', warning;
  END IF;
END;
$$;

CREATE FUNCTION dbmail.wrap_line(line text, width integer) RETURNS text[]
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
  bytes bytea;
  encoding name;
BEGIN
  IF octet_length(line) = length(line) THEN
    bytes := textsend(line);
    encoding := current_setting('server_encoding');
    RETURN ARRAY(SELECT convert_from(substring(bytes FROM (k - 1) * width + 1 FOR width), encoding)
                 FROM generate_series(1, (octet_length(bytes) + width - 1) / width) k);
  END IF;
  RETURN ARRAY(SELECT string_agg(u.c, '' ORDER BY u.i)
               FROM unnest(string_to_array(line, NULL)) WITH ORDINALITY AS u(c, i)
               GROUP BY (u.i - 1) / width ORDER BY (u.i - 1) / width);
END;
$$;

ALTER TABLE dbmail.accounts ALTER COLUMN account_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME dbmail.accounts_account_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE dbmail.attachments (
    attachment_id bigint NOT NULL,
    mailitem_id bigint NOT NULL,
    filename text NOT NULL,
    content_type text,
    filesize bigint NOT NULL,
    attachment bytea NOT NULL,
    last_mod_date timestamp with time zone DEFAULT now() NOT NULL,
    last_mod_user name NOT NULL
);
ALTER TABLE ONLY dbmail.attachments ALTER COLUMN attachment SET STORAGE EXTERNAL;

ALTER TABLE dbmail.attachments ALTER COLUMN attachment_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME dbmail.attachments_attachment_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE dbmail.attempts (
    attempt_id bigint NOT NULL,
    mailitem_id bigint NOT NULL,
    attempt integer NOT NULL,
    account_id integer,
    started_at timestamp with time zone NOT NULL,
    duration_ms integer NOT NULL,
    outcome dbmail.attempt_outcome NOT NULL,
    smtp_code integer,
    smtp_response text,
    sent_by text
);

ALTER TABLE dbmail.attempts ALTER COLUMN attempt_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME dbmail.attempts_attempt_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE dbmail.caller_stamps (
    stamp_id bigint NOT NULL,
    role_name name DEFAULT CURRENT_USER NOT NULL,
    backend_pid integer DEFAULT pg_backend_pid() NOT NULL,
    transaction_id xid8 DEFAULT pg_current_xact_id() NOT NULL,
    inserted boolean DEFAULT true
);

COMMENT ON COLUMN dbmail.caller_stamps.inserted IS 'Means nothing: users may insert into this column only, so that INSERT ... DEFAULT VALUES is allowed and every other column takes its default';

ALTER TABLE dbmail.caller_stamps ALTER COLUMN stamp_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME dbmail.caller_stamps_stamp_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE dbmail.daily_mail_counts (
    role_id oid NOT NULL,
    hour_start timestamp with time zone NOT NULL,
    mails integer NOT NULL
);

CREATE TABLE dbmail.event_log (
    log_id bigint NOT NULL,
    event_type text NOT NULL,
    log_date timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    description text NOT NULL,
    process_id integer,
    mailitem_id bigint,
    account_id integer,
    sender_id text,
    last_mod_date timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    last_mod_user name NOT NULL,
    CONSTRAINT event_log_event_type_check CHECK ((event_type = ANY (ARRAY['success'::text, 'information'::text, 'warning'::text, 'error'::text])))
);

ALTER TABLE dbmail.event_log ALTER COLUMN log_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME dbmail.event_log_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE dbmail.mailitems (
    mailitem_id bigint NOT NULL,
    profile_id integer NOT NULL,
    recipients text,
    copy_recipients text,
    blind_copy_recipients text,
    envelope jsonb NOT NULL,
    subject text NOT NULL,
    body text,
    body_format text DEFAULT 'TEXT'::text NOT NULL,
    importance text DEFAULT 'NORMAL'::text NOT NULL,
    sensitivity text DEFAULT 'NORMAL'::text NOT NULL,
    file_attachments text,
    attachment_encoding text DEFAULT 'MIME'::text NOT NULL,
    query text,
    execute_query_database text,
    attach_query_result_as_file boolean DEFAULT false NOT NULL,
    query_result_header boolean DEFAULT true NOT NULL,
    query_result_width integer DEFAULT 256 NOT NULL,
    query_result_separator text DEFAULT ' '::text NOT NULL,
    exclude_query_output boolean DEFAULT false NOT NULL,
    append_query_error boolean DEFAULT false NOT NULL,
    query_no_truncate boolean DEFAULT false NOT NULL,
    query_result_no_padding boolean DEFAULT false NOT NULL,
    query_attachment_filename text,
    query_result_format text DEFAULT 'TEXT'::text NOT NULL,
    from_address text,
    reply_to text,
    headers jsonb,
    send_at timestamp with time zone,
    idempotency_key text,
    message_id text,
    send_request_date timestamp with time zone DEFAULT now() NOT NULL,
    send_request_user name NOT NULL,
    send_request_role oid,
    sent_account_id integer,
    sent_status dbmail.sent_status DEFAULT 'unsent'::text NOT NULL,
    sent_date timestamp with time zone,
    send_attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    lease_owner text,
    lease_token uuid,
    lease_expires_at timestamp with time zone,
    last_error text,
    smtp_response text,
    sent_by text,
    last_mod_date timestamp with time zone DEFAULT now() NOT NULL,
    last_mod_user name NOT NULL
);
ALTER TABLE ONLY dbmail.mailitems ALTER COLUMN sent_status SET STATISTICS 0;

ALTER TABLE dbmail.mailitems ALTER COLUMN mailitem_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME dbmail.mailitems_mailitem_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE dbmail.migrations (
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL,
    applied_by name DEFAULT CURRENT_USER NOT NULL
);

CREATE TABLE dbmail.notified_job_runs (
    operator_id integer NOT NULL,
    runid bigint NOT NULL,
    jobid bigint,
    run_ended_at timestamp with time zone NOT NULL,
    notified_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE dbmail.operators (
    operator_id integer NOT NULL,
    name text NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    email_address text,
    pager_address text,
    weekday_pager_start_time dbmail.pager_time DEFAULT 90000 NOT NULL,
    weekday_pager_end_time dbmail.pager_time DEFAULT 180000 NOT NULL,
    saturday_pager_start_time dbmail.pager_time DEFAULT 90000 NOT NULL,
    saturday_pager_end_time dbmail.pager_time DEFAULT 180000 NOT NULL,
    sunday_pager_start_time dbmail.pager_time DEFAULT 90000 NOT NULL,
    sunday_pager_end_time dbmail.pager_time DEFAULT 180000 NOT NULL,
    pager_days smallint DEFAULT 0 NOT NULL,
    netsend_address text,
    category_name text,
    last_mod_date timestamp with time zone DEFAULT now() NOT NULL,
    last_mod_user name DEFAULT CURRENT_USER NOT NULL,
    CONSTRAINT operators_pager_days_check CHECK (((pager_days >= 0) AND (pager_days <= 127)))
);

ALTER TABLE dbmail.operators ALTER COLUMN operator_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME dbmail.operators_operator_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE dbmail.principal_profiles (
    profile_id integer NOT NULL,
    principal_id oid NOT NULL,
    is_default boolean DEFAULT false NOT NULL,
    last_mod_datetime timestamp with time zone DEFAULT now() NOT NULL,
    last_mod_user name DEFAULT CURRENT_USER NOT NULL
);

CREATE TABLE dbmail.profile_accounts (
    profile_id integer NOT NULL,
    account_id integer NOT NULL,
    sequence_number integer NOT NULL,
    last_mod_datetime timestamp with time zone DEFAULT now() NOT NULL,
    last_mod_user name DEFAULT CURRENT_USER NOT NULL
);

CREATE TABLE dbmail.profiles (
    profile_id integer NOT NULL,
    name text NOT NULL,
    description text,
    last_success_account_id integer,
    last_mod_datetime timestamp with time zone DEFAULT now() NOT NULL,
    last_mod_user name DEFAULT CURRENT_USER NOT NULL
);

ALTER TABLE dbmail.profiles ALTER COLUMN profile_id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME dbmail.profiles_profile_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE dbmail.send_rates (
    account_id integer NOT NULL
);

CREATE TABLE dbmail.send_slots (
    account_id integer NOT NULL,
    mailitem_id bigint NOT NULL,
    starts_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone,
    waiting boolean DEFAULT false NOT NULL
);

CREATE TABLE dbmail.settings (
    paramname text NOT NULL,
    paramvalue text NOT NULL,
    description text,
    last_mod_date timestamp with time zone DEFAULT now() NOT NULL,
    last_mod_user name DEFAULT CURRENT_USER NOT NULL
);

CREATE VIEW dbmail.sysmail_allitems WITH (security_barrier='true') AS
 SELECT m.mailitem_id,
    m.profile_id,
    m.recipients,
    m.copy_recipients,
    m.blind_copy_recipients,
    m.subject,
    m.body,
    m.body_format,
    m.importance,
    m.sensitivity,
    m.file_attachments,
    m.attachment_encoding,
    m.query,
    m.execute_query_database,
    m.attach_query_result_as_file,
    m.query_result_header,
    m.query_result_width,
    m.query_result_separator,
    m.exclude_query_output,
    m.append_query_error,
    m.send_request_date,
    m.send_request_user,
    m.sent_account_id,
    m.sent_status,
    m.sent_date,
    m.last_mod_date,
    m.last_mod_user,
    m.from_address,
    m.reply_to,
    m.headers,
    m.send_at,
    m.idempotency_key,
    m.query_result_format,
    m.message_id,
    m.send_attempts,
    m.last_error,
        CASE
            WHEN ((m.sent_status)::text = ANY (ARRAY['unsent'::text, 'retrying'::text])) THEN m.next_attempt_at
            ELSE NULL::timestamp with time zone
        END AS next_attempt_at,
    m.sent_by,
    m.smtp_response
   FROM dbmail.mailitems m
  WHERE ( SELECT dbmail.is_admin(CURRENT_USER) AS is_admin)
UNION ALL
 SELECT m.mailitem_id,
    m.profile_id,
    m.recipients,
    m.copy_recipients,
    m.blind_copy_recipients,
    m.subject,
    m.body,
    m.body_format,
    m.importance,
    m.sensitivity,
    m.file_attachments,
    m.attachment_encoding,
    m.query,
    m.execute_query_database,
    m.attach_query_result_as_file,
    m.query_result_header,
    m.query_result_width,
    m.query_result_separator,
    m.exclude_query_output,
    m.append_query_error,
    m.send_request_date,
    m.send_request_user,
    m.sent_account_id,
    m.sent_status,
    m.sent_date,
    m.last_mod_date,
    m.last_mod_user,
    m.from_address,
    m.reply_to,
    m.headers,
    m.send_at,
    m.idempotency_key,
    m.query_result_format,
    m.message_id,
    m.send_attempts,
    m.last_error,
        CASE
            WHEN ((m.sent_status)::text = ANY (ARRAY['unsent'::text, 'retrying'::text])) THEN m.next_attempt_at
            ELSE NULL::timestamp with time zone
        END AS next_attempt_at,
    m.sent_by,
    m.smtp_response
   FROM dbmail.mailitems m
  WHERE ((NOT ( SELECT dbmail.is_admin(CURRENT_USER) AS is_admin)) AND (m.send_request_user = CURRENT_USER) AND (m.send_request_role = ( SELECT (to_regrole(quote_ident((CURRENT_USER)::text)))::oid AS to_regrole)));

CREATE VIEW dbmail.sysmail_attempts WITH (security_barrier='true') AS
 SELECT t.mailitem_id,
    t.attempt,
    t.account_id,
    t.started_at,
    t.duration_ms,
    (t.outcome)::text AS outcome,
    t.smtp_code,
    t.smtp_response,
    t.sent_by
   FROM dbmail.attempts t
  WHERE (( SELECT dbmail.is_admin(CURRENT_USER) AS is_admin) OR (t.mailitem_id IN ( SELECT m.mailitem_id
           FROM dbmail.mailitems m
          WHERE ((m.send_request_user = CURRENT_USER) AND (m.send_request_role = ( SELECT (to_regrole(quote_ident((CURRENT_USER)::text)))::oid AS to_regrole))))));

CREATE VIEW dbmail.sysmail_event_log WITH (security_barrier='true') AS
 SELECT e.log_id,
    e.event_type,
    e.log_date,
    e.description,
    e.process_id,
    e.mailitem_id,
    e.account_id,
    e.last_mod_date,
    e.last_mod_user,
    e.sender_id
   FROM dbmail.event_log e
  WHERE (( SELECT dbmail.is_admin(CURRENT_USER) AS is_admin) OR (e.mailitem_id IN ( SELECT m.mailitem_id
           FROM dbmail.mailitems m
          WHERE ((m.send_request_user = CURRENT_USER) AND (m.send_request_role = ( SELECT (to_regrole(quote_ident((CURRENT_USER)::text)))::oid AS to_regrole))))));

CREATE VIEW dbmail.sysmail_faileditems WITH (security_barrier='true') AS
 SELECT sysmail_allitems.mailitem_id,
    sysmail_allitems.profile_id,
    sysmail_allitems.recipients,
    sysmail_allitems.copy_recipients,
    sysmail_allitems.blind_copy_recipients,
    sysmail_allitems.subject,
    sysmail_allitems.body,
    sysmail_allitems.body_format,
    sysmail_allitems.importance,
    sysmail_allitems.sensitivity,
    sysmail_allitems.file_attachments,
    sysmail_allitems.attachment_encoding,
    sysmail_allitems.query,
    sysmail_allitems.execute_query_database,
    sysmail_allitems.attach_query_result_as_file,
    sysmail_allitems.query_result_header,
    sysmail_allitems.query_result_width,
    sysmail_allitems.query_result_separator,
    sysmail_allitems.exclude_query_output,
    sysmail_allitems.append_query_error,
    sysmail_allitems.send_request_date,
    sysmail_allitems.send_request_user,
    sysmail_allitems.sent_account_id,
    sysmail_allitems.sent_status,
    sysmail_allitems.sent_date,
    sysmail_allitems.last_mod_date,
    sysmail_allitems.last_mod_user,
    sysmail_allitems.from_address,
    sysmail_allitems.reply_to,
    sysmail_allitems.headers,
    sysmail_allitems.send_at,
    sysmail_allitems.idempotency_key,
    sysmail_allitems.query_result_format,
    sysmail_allitems.message_id,
    sysmail_allitems.send_attempts,
    sysmail_allitems.last_error,
    sysmail_allitems.next_attempt_at,
    sysmail_allitems.sent_by,
    sysmail_allitems.smtp_response
   FROM dbmail.sysmail_allitems
  WHERE ((sysmail_allitems.sent_status)::text = 'failed'::text);

CREATE VIEW dbmail.sysmail_mailattachments WITH (security_barrier='true') AS
 SELECT a.attachment_id,
    a.mailitem_id,
    a.filename,
    a.filesize,
    a.attachment,
    a.last_mod_date,
    a.last_mod_user,
    a.content_type
   FROM dbmail.attachments a
  WHERE (( SELECT dbmail.is_admin(CURRENT_USER) AS is_admin) OR (a.mailitem_id IN ( SELECT m.mailitem_id
           FROM dbmail.mailitems m
          WHERE ((m.send_request_user = CURRENT_USER) AND (m.send_request_role = ( SELECT (to_regrole(quote_ident((CURRENT_USER)::text)))::oid AS to_regrole))))));

CREATE VIEW dbmail.sysmail_sentitems WITH (security_barrier='true') AS
 SELECT sysmail_allitems.mailitem_id,
    sysmail_allitems.profile_id,
    sysmail_allitems.recipients,
    sysmail_allitems.copy_recipients,
    sysmail_allitems.blind_copy_recipients,
    sysmail_allitems.subject,
    sysmail_allitems.body,
    sysmail_allitems.body_format,
    sysmail_allitems.importance,
    sysmail_allitems.sensitivity,
    sysmail_allitems.file_attachments,
    sysmail_allitems.attachment_encoding,
    sysmail_allitems.query,
    sysmail_allitems.execute_query_database,
    sysmail_allitems.attach_query_result_as_file,
    sysmail_allitems.query_result_header,
    sysmail_allitems.query_result_width,
    sysmail_allitems.query_result_separator,
    sysmail_allitems.exclude_query_output,
    sysmail_allitems.append_query_error,
    sysmail_allitems.send_request_date,
    sysmail_allitems.send_request_user,
    sysmail_allitems.sent_account_id,
    sysmail_allitems.sent_status,
    sysmail_allitems.sent_date,
    sysmail_allitems.last_mod_date,
    sysmail_allitems.last_mod_user,
    sysmail_allitems.from_address,
    sysmail_allitems.reply_to,
    sysmail_allitems.headers,
    sysmail_allitems.send_at,
    sysmail_allitems.idempotency_key,
    sysmail_allitems.query_result_format,
    sysmail_allitems.message_id,
    sysmail_allitems.send_attempts,
    sysmail_allitems.last_error,
    sysmail_allitems.next_attempt_at,
    sysmail_allitems.sent_by,
    sysmail_allitems.smtp_response
   FROM dbmail.sysmail_allitems
  WHERE ((sysmail_allitems.sent_status)::text = 'sent'::text);

CREATE VIEW dbmail.sysmail_unsentitems WITH (security_barrier='true') AS
 SELECT sysmail_allitems.mailitem_id,
    sysmail_allitems.profile_id,
    sysmail_allitems.recipients,
    sysmail_allitems.copy_recipients,
    sysmail_allitems.blind_copy_recipients,
    sysmail_allitems.subject,
    sysmail_allitems.body,
    sysmail_allitems.body_format,
    sysmail_allitems.importance,
    sysmail_allitems.sensitivity,
    sysmail_allitems.file_attachments,
    sysmail_allitems.attachment_encoding,
    sysmail_allitems.query,
    sysmail_allitems.execute_query_database,
    sysmail_allitems.attach_query_result_as_file,
    sysmail_allitems.query_result_header,
    sysmail_allitems.query_result_width,
    sysmail_allitems.query_result_separator,
    sysmail_allitems.exclude_query_output,
    sysmail_allitems.append_query_error,
    sysmail_allitems.send_request_date,
    sysmail_allitems.send_request_user,
    sysmail_allitems.sent_account_id,
    sysmail_allitems.sent_status,
    sysmail_allitems.sent_date,
    sysmail_allitems.last_mod_date,
    sysmail_allitems.last_mod_user,
    sysmail_allitems.from_address,
    sysmail_allitems.reply_to,
    sysmail_allitems.headers,
    sysmail_allitems.send_at,
    sysmail_allitems.idempotency_key,
    sysmail_allitems.query_result_format,
    sysmail_allitems.message_id,
    sysmail_allitems.send_attempts,
    sysmail_allitems.last_error,
    sysmail_allitems.next_attempt_at,
    sysmail_allitems.sent_by,
    sysmail_allitems.smtp_response
   FROM dbmail.sysmail_allitems
  WHERE ((sysmail_allitems.sent_status)::text = ANY (ARRAY['unsent'::text, 'sending'::text, 'retrying'::text]));

CREATE TABLE dbmail.system_state (
    singleton boolean DEFAULT true NOT NULL,
    started boolean DEFAULT true NOT NULL,
    installation_id uuid DEFAULT gen_random_uuid() NOT NULL,
    last_mod_date timestamp with time zone DEFAULT now() NOT NULL,
    last_mod_user name DEFAULT CURRENT_USER NOT NULL,
    timeline text,
    timeline_since timestamp with time zone,
    max_recipients_per_mail bigint,
    max_mail_size bigint,
    max_mails_per_user_per_day bigint,
    public_default_profile integer,
    role_defaults boolean DEFAULT false NOT NULL,
    CONSTRAINT system_state_singleton_check CHECK (singleton)
);

ALTER TABLE ONLY dbmail.account_secrets
    ADD CONSTRAINT account_secrets_pkey PRIMARY KEY (account_id);

ALTER TABLE ONLY dbmail.accounts
    ADD CONSTRAINT accounts_pkey PRIMARY KEY (account_id);

ALTER TABLE ONLY dbmail.attachments
    ADD CONSTRAINT attachments_pkey PRIMARY KEY (attachment_id);

ALTER TABLE ONLY dbmail.attempts
    ADD CONSTRAINT attempts_pkey PRIMARY KEY (attempt_id);

ALTER TABLE ONLY dbmail.caller_stamps
    ADD CONSTRAINT caller_stamps_pkey PRIMARY KEY (stamp_id);

ALTER TABLE ONLY dbmail.daily_mail_counts
    ADD CONSTRAINT daily_mail_counts_pkey PRIMARY KEY (role_id, hour_start);

ALTER TABLE ONLY dbmail.event_log
    ADD CONSTRAINT event_log_pkey PRIMARY KEY (log_id);

ALTER TABLE ONLY dbmail.mailitems
    ADD CONSTRAINT mailitems_pkey PRIMARY KEY (mailitem_id);

ALTER TABLE ONLY dbmail.migrations
    ADD CONSTRAINT migrations_pkey PRIMARY KEY (version);

ALTER TABLE ONLY dbmail.notified_job_runs
    ADD CONSTRAINT notified_job_runs_pkey PRIMARY KEY (operator_id, runid);

ALTER TABLE ONLY dbmail.operators
    ADD CONSTRAINT operators_pkey PRIMARY KEY (operator_id);

ALTER TABLE ONLY dbmail.principal_profiles
    ADD CONSTRAINT principal_profiles_pkey PRIMARY KEY (profile_id, principal_id);

ALTER TABLE ONLY dbmail.profile_accounts
    ADD CONSTRAINT profile_accounts_pkey PRIMARY KEY (profile_id, account_id);

ALTER TABLE ONLY dbmail.profiles
    ADD CONSTRAINT profiles_pkey PRIMARY KEY (profile_id);

ALTER TABLE ONLY dbmail.send_rates
    ADD CONSTRAINT send_rates_pkey PRIMARY KEY (account_id);

ALTER TABLE ONLY dbmail.senders
    ADD CONSTRAINT senders_pkey PRIMARY KEY (sender_id);

ALTER TABLE ONLY dbmail.settings
    ADD CONSTRAINT settings_pkey PRIMARY KEY (paramname);

ALTER TABLE ONLY dbmail.system_state
    ADD CONSTRAINT system_state_pkey PRIMARY KEY (singleton);

CREATE UNIQUE INDEX accounts_name_key ON dbmail.accounts USING btree (lower(name));

CREATE INDEX attachments_mailitem_idx ON dbmail.attachments USING btree (mailitem_id);

CREATE INDEX attempts_mailitem_idx ON dbmail.attempts USING btree (mailitem_id);

CREATE INDEX caller_stamps_backend_idx ON dbmail.caller_stamps USING btree (backend_pid, transaction_id, stamp_id);

CREATE INDEX event_log_date_idx ON dbmail.event_log USING btree (log_date);

CREATE INDEX event_log_mailitem_idx ON dbmail.event_log USING btree (mailitem_id) WHERE (mailitem_id IS NOT NULL);

CREATE INDEX mailitems_due_idx ON dbmail.mailitems USING btree (next_attempt_at, mailitem_id) WHERE ((sent_status)::text = ANY (ARRAY['unsent'::text, 'retrying'::text]));

CREATE INDEX mailitems_failed_idx ON dbmail.mailitems USING btree (mailitem_id) WHERE ((sent_status)::text = 'failed'::text);

CREATE UNIQUE INDEX mailitems_idempotency_key ON dbmail.mailitems USING btree (send_request_role, idempotency_key) WHERE (idempotency_key IS NOT NULL);

CREATE INDEX mailitems_leased_idx ON dbmail.mailitems USING btree (lease_expires_at) WHERE ((sent_status)::text = 'sending'::text);

CREATE INDEX mailitems_profile_pending_idx ON dbmail.mailitems USING btree (profile_id) WHERE ((sent_status)::text = ANY (ARRAY['unsent'::text, 'sending'::text, 'retrying'::text]));

CREATE INDEX mailitems_request_date_idx ON dbmail.mailitems USING btree (send_request_date);

CREATE INDEX mailitems_user_idx ON dbmail.mailitems USING btree (send_request_user, mailitem_id);

CREATE INDEX notified_job_runs_ended_idx ON dbmail.notified_job_runs USING btree (run_ended_at);

CREATE UNIQUE INDEX operators_name_key ON dbmail.operators USING btree (lower(name));

CREATE UNIQUE INDEX principal_profiles_one_default ON dbmail.principal_profiles USING btree (principal_id) WHERE is_default;

CREATE INDEX profile_accounts_account_idx ON dbmail.profile_accounts USING btree (account_id);

CREATE UNIQUE INDEX profiles_name_key ON dbmail.profiles USING btree (lower(name));

CREATE INDEX send_slots_account_idx ON dbmail.send_slots USING btree (account_id);

CREATE INDEX send_slots_mailitem_idx ON dbmail.send_slots USING btree (mailitem_id) WHERE (finished_at IS NULL);

CREATE INDEX senders_live_idx ON dbmail.senders USING btree (last_heartbeat) WHERE (stopped_at IS NULL);

CREATE TRIGGER refresh_send_defaults AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON dbmail.principal_profiles FOR EACH STATEMENT EXECUTE FUNCTION dbmail.refresh_send_defaults();

CREATE TRIGGER refresh_send_defaults AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON dbmail.settings FOR EACH STATEMENT EXECUTE FUNCTION dbmail.refresh_send_defaults();

CREATE TRIGGER replace_default_row BEFORE INSERT ON dbmail.settings FOR EACH ROW EXECUTE FUNCTION dbmail.replace_default_row();

CREATE TRIGGER replace_default_row BEFORE INSERT ON dbmail.system_state FOR EACH ROW EXECUTE FUNCTION dbmail.replace_default_row();

ALTER TABLE ONLY dbmail.account_secrets
    ADD CONSTRAINT account_secrets_account_id_fkey FOREIGN KEY (account_id) REFERENCES dbmail.accounts(account_id) ON DELETE CASCADE;

ALTER TABLE ONLY dbmail.attachments
    ADD CONSTRAINT attachments_mailitem_id_fkey FOREIGN KEY (mailitem_id) REFERENCES dbmail.mailitems(mailitem_id) ON DELETE CASCADE;

ALTER TABLE ONLY dbmail.notified_job_runs
    ADD CONSTRAINT notified_job_runs_operator_id_fkey FOREIGN KEY (operator_id) REFERENCES dbmail.operators(operator_id) ON DELETE CASCADE;

ALTER TABLE ONLY dbmail.principal_profiles
    ADD CONSTRAINT principal_profiles_profile_id_fkey FOREIGN KEY (profile_id) REFERENCES dbmail.profiles(profile_id) ON DELETE CASCADE;

ALTER TABLE ONLY dbmail.profile_accounts
    ADD CONSTRAINT profile_accounts_account_id_fkey FOREIGN KEY (account_id) REFERENCES dbmail.accounts(account_id) ON DELETE CASCADE;

ALTER TABLE ONLY dbmail.profile_accounts
    ADD CONSTRAINT profile_accounts_profile_id_fkey FOREIGN KEY (profile_id) REFERENCES dbmail.profiles(profile_id) ON DELETE CASCADE;

ALTER TABLE ONLY dbmail.profiles
    ADD CONSTRAINT profiles_last_success_account_id_fkey FOREIGN KEY (last_success_account_id) REFERENCES dbmail.accounts(account_id) ON DELETE SET NULL;

ALTER TABLE ONLY dbmail.send_rates
    ADD CONSTRAINT send_rates_account_id_fkey FOREIGN KEY (account_id) REFERENCES dbmail.accounts(account_id) ON DELETE CASCADE;

ALTER TABLE ONLY dbmail.send_slots
    ADD CONSTRAINT send_slots_account_id_fkey FOREIGN KEY (account_id) REFERENCES dbmail.accounts(account_id) ON DELETE CASCADE;

GRANT USAGE ON SCHEMA dbmail TO dbmail_user;
GRANT USAGE ON SCHEMA dbmail TO dbmail_admin;
GRANT USAGE ON SCHEMA dbmail TO dbmail_sender;

REVOKE ALL ON TYPE dbmail.attachment FROM PUBLIC;
GRANT ALL ON TYPE dbmail.attachment TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.add_query_result(query text, query_result text, attach_query_result_as_file boolean, query_attachment_filename text, query_result_format text, fixed_size bigint, max_size bigint, INOUT body text, INOUT body_format text, INOUT files dbmail.attachment[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.address_domain(address text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.address_problem(address text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.apply_outcome(mailitem_id bigint, sender_id text, lease_token uuid, outcome text, account_id integer, smtp_response text, error text, account_errors jsonb, process_id integer, retry_rounds integer, retry_delay integer, smtp_attempts jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.attachment(filename text, content bytea, content_type text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.attachment(filename text, content bytea, content_type text) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.begin_migration(version integer, name text, previous_name text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.caller_role() FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.cancel_mailitems(mailitem_ids bigint[]) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.cancel_mailitems(mailitem_ids bigint[]) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.check_account(a dbmail.accounts, s dbmail.account_secrets) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.check_attachment(parameter text, filename text, size bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.check_auth(a dbmail.accounts, s dbmail.account_secrets) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.check_daily_limit(sender name, sender_oid oid, max_per_day bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.check_dkim(a dbmail.accounts, s dbmail.account_secrets) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.check_given_size(subject text, recipients text, copy_recipients text, blind_copy_recipients text, from_address text, reply_to text, headers jsonb, body text, max_size bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.check_header_text(parameter text, value text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.check_headers(headers jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.check_mail_size(parameter text, value text, size bigint, max_size bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.check_mailitem_ids(mailitem_ids bigint[], null_allowed boolean) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.check_operator(enabled boolean, email_address text, pager_address text, weekday_pager_start_time integer, weekday_pager_end_time integer, saturday_pager_start_time integer, saturday_pager_end_time integer, sunday_pager_start_time integer, sunday_pager_end_time integer, pager_days integer, netsend_address text, category_name text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.check_operator_addresses(parameter text, value text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.check_operator_name(parameter text, operator_name text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.check_pager_time(parameter text, value integer) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.check_profile_name(profile_name text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.check_query_source(call_stack text, query text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.check_secret(parameter text, secret text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.check_send_arguments(subject text, body text, body_format text, importance text, sensitivity text, query text, execute_query_database text, attach_query_result_as_file boolean, query_result_header boolean, query_result_width integer, query_result_separator text, exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean, query_result_no_padding boolean, file_attachments text, attachments dbmail.attachment[], headers jsonb, idempotency_key text, query_result_format text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.check_send_arguments(subject text, body text, body_format text, importance text, sensitivity text, query text, execute_query_database text, attach_query_result_as_file boolean, query_result_header boolean, query_result_width integer, query_result_separator text, exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean, query_result_no_padding boolean, file_attachments text, attachments dbmail.attachment[], headers jsonb, idempotency_key text, query_result_format text) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.claim_job_failure(operator_id integer, runid bigint, jobid bigint, run_ended_at timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.claim_job_failure(operator_id integer, runid bigint, jobid bigint, run_ended_at timestamp with time zone) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.claim_mailitems(sender_id text, batch_size integer, lease_seconds integer) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.claim_mailitems(sender_id text, batch_size integer, lease_seconds integer) TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.collect_attachments(attachments dbmail.attachment[], file_attachments text, mail_size bigint, max_size bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.config_changed() FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.content_type_for(filename text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.count_daily_mail(sender_oid oid) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.csv_line(fields text[]) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.csv_line(fields text[]) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.delete_mailitems(sent_before timestamp with time zone, sent_status text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.delete_mailitems(sent_before timestamp with time zone, sent_status text) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.extend_leases(sender_id text, mailitem_ids bigint[], lease_tokens uuid[], lease_seconds integer) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.extend_leases(sender_id text, mailitem_ids bigint[], lease_tokens uuid[], lease_seconds integer) TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.find_by_id_or_name(kind text, id bigint, name text, required boolean, id_parameter text, name_parameter text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.find_setting(parameter_name text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.format_query_result(relation regclass, json_rows boolean, result_format text, header boolean, width integer, separator text, no_padding boolean, no_truncate boolean, max_bytes bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.format_query_result(relation regclass, json_rows boolean, result_format text, header boolean, width integer, separator text, no_padding boolean, no_truncate boolean, max_bytes bigint) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.given_name(thing text, name text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.html_escape(value text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.html_escape(value text) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.html_row(cells text[], numeric_columns boolean[]) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.html_row(cells text[], numeric_columns boolean[]) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.is_admin(role_name name) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.is_admin(role_name name) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.is_member_of(member oid, role oid) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.is_plain_address(address text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.job_failure_operator(operator_name text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.job_failure_operator(operator_name text) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.live_senders() FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.log_event(event_type text, description text, mailitem_id bigint, account_id integer, process_id integer, sender_id text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.log_event(event_type text, description text, mailitem_id bigint, account_id integer, process_id integer, sender_id text) TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.may_use_sender_id(login oid) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.must_wake_senders() FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.normalise_setting(parameter_name text, parameter_value text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.note_timeline() FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.notify_job_failures(operator_name text, profile_name text, since interval) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.notify_job_failures(operator_name text, profile_name text, since interval) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.operator_address(id integer, name text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.operator_address(id integer, name text) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.parse_address_list(parameter text, list text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.parse_addresses(parameter text, list text, counted bigint, max_count bigint, header_field boolean) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.parse_bare_address(parameter text, value text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.parse_envelope(recipients text, copy_recipients text, blind_copy_recipients text, max_count bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.parse_single_address(parameter text, value text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.plain_address_pattern() FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.plain_envelope(address text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.principal_name(principal_id oid) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.query_result_limit() FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.query_result_limit() TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.queue_mail(profile_name text, recipients text, copy_recipients text, blind_copy_recipients text, subject text, body text, body_format text, importance text, sensitivity text, file_attachments text, query text, execute_query_database text, attach_query_result_as_file boolean, query_attachment_filename text, query_result_header boolean, query_result_width integer, query_result_separator text, exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean, query_result_no_padding boolean, from_address text, reply_to text, attachments dbmail.attachment[], headers jsonb, send_at timestamp with time zone, idempotency_key text, query_result_format text, query_result text, caller name) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.queue_mail(profile_name text, recipients text, copy_recipients text, blind_copy_recipients text, subject text, body text, body_format text, importance text, sensitivity text, file_attachments text, query text, execute_query_database text, attach_query_result_as_file boolean, query_attachment_filename text, query_result_header boolean, query_result_width integer, query_result_separator text, exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean, query_result_no_padding boolean, from_address text, reply_to text, attachments dbmail.attachment[], headers jsonb, send_at timestamp with time zone, idempotency_key text, query_result_format text, query_result text, caller name) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.raise_error(sqlstate text, parameter text, value text, problem text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.raise_error(sqlstate text, parameter text, value text, problem text) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.read_attachment_files(file_attachments text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.record_migration(version integer, name text, checksum text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.record_outcome(mailitem_id bigint, sender_id text, lease_token uuid, outcome text, account_id integer, smtp_response text, error text, account_errors jsonb, process_id integer, attempts jsonb) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.record_outcome(mailitem_id bigint, sender_id text, lease_token uuid, outcome text, account_id integer, smtp_response text, error text, account_errors jsonb, process_id integer, attempts jsonb) TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.record_outcomes(sender_id text, outcomes jsonb, process_id integer) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.record_outcomes(sender_id text, outcomes jsonb, process_id integer) TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.refresh_send_defaults() FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.release_mailitems(sender_id text, mailitem_ids bigint[], lease_tokens uuid[]) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.release_mailitems(sender_id text, mailitem_ids bigint[], lease_tokens uuid[]) TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.replace_default_row() FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.require_admin() FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.require_sender() FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.require_sender() TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.resolve_profile(sender name, sender_oid oid, profile_name text, usual_default integer) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.resolve_security(enable_ssl boolean, security text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.retry_mailitems(mailitem_ids bigint[], sent_status text, sent_before timestamp with time zone, profile_name text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.retry_mailitems(mailitem_ids bigint[], sent_status text, sent_before timestamp with time zone, profile_name text) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.role_listed(role_name name, roles text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.run_query(query text, caller_search_path text, OUT relation regclass, OUT json_rows boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.run_query(query text, caller_search_path text, OUT relation regclass, OUT json_rows boolean) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.schema_version() FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.schema_version() TO dbmail_sender;
GRANT ALL ON FUNCTION dbmail.schema_version() TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.secret_source(secret text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.send_as_caller(profile_name text, recipients text, copy_recipients text, blind_copy_recipients text, subject text, body text, body_format text, importance text, sensitivity text, file_attachments text, query text, execute_query_database text, attach_query_result_as_file boolean, query_attachment_filename text, query_result_header boolean, query_result_width integer, query_result_separator text, exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean, query_result_no_padding boolean, from_address text, reply_to text, attachments dbmail.attachment[], headers jsonb, send_at timestamp with time zone, idempotency_key text, query_result_format text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.send_as_caller(profile_name text, recipients text, copy_recipients text, blind_copy_recipients text, subject text, body text, body_format text, importance text, sensitivity text, file_attachments text, query text, execute_query_database text, attach_query_result_as_file boolean, query_attachment_filename text, query_result_header boolean, query_result_width integer, query_result_separator text, exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean, query_result_no_padding boolean, from_address text, reply_to text, attachments dbmail.attachment[], headers jsonb, send_at timestamp with time zone, idempotency_key text, query_result_format text) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.send_usual_as_caller(recipients text, subject text, body text, body_format text, importance text, exclude_query_output boolean, append_query_error boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.send_usual_as_caller(recipients text, subject text, body text, body_format text, importance text, exclude_query_output boolean, append_query_error boolean) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.send_usual_mail(recipients text, subject text, body text, body_format text, importance text, exclude_query_output boolean, append_query_error boolean, caller name) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.send_usual_mail(recipients text, subject text, body text, body_format text, importance text, exclude_query_output boolean, append_query_error boolean, caller name) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.send_with_query(profile_name text, recipients text, copy_recipients text, blind_copy_recipients text, subject text, body text, body_format text, importance text, sensitivity text, file_attachments text, query text, execute_query_database text, attach_query_result_as_file boolean, query_attachment_filename text, query_result_header boolean, query_result_width integer, query_result_separator text, exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean, query_result_no_padding boolean, from_address text, reply_to text, attachments dbmail.attachment[], headers jsonb, send_at timestamp with time zone, idempotency_key text, query_result_format text, caller_search_path text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.send_with_query(profile_name text, recipients text, copy_recipients text, blind_copy_recipients text, subject text, body text, body_format text, importance text, sensitivity text, file_attachments text, query text, execute_query_database text, attach_query_result_as_file boolean, query_attachment_filename text, query_result_header boolean, query_result_width integer, query_result_separator text, exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean, query_result_no_padding boolean, from_address text, reply_to text, attachments dbmail.attachment[], headers jsonb, send_at timestamp with time zone, idempotency_key text, query_result_format text, caller_search_path text) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.sender_accounts() FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sender_accounts() TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.sender_attachment_chunk(sender_id text, attachment_id bigint, lease_token uuid, chunk_offset bigint, chunk_length integer) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sender_attachment_chunk(sender_id text, attachment_id bigint, lease_token uuid, chunk_offset bigint, chunk_length integer) TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.sender_attachments(sender_id text, mailitem_id bigint, lease_token uuid) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sender_attachments(sender_id text, mailitem_id bigint, lease_token uuid) TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.sender_heartbeat(sender_id text, hostname text, process_id integer, version text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sender_heartbeat(sender_id text, hostname text, process_id integer, version text) TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.sender_listening() FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sender_listening() TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.sender_queue_stats() FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sender_queue_stats() TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.sender_settle(timeout_ms integer) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sender_settle(timeout_ms integer) TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.sender_stopped(sender_id text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sender_stopped(sender_id text) TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.sender_unwatch() FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sender_unwatch() TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.sender_watch() FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sender_watch() TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.sending_caller(call_stack text, caller name, own_name text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.sending_role(sender name) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.set_started(started boolean) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.setting(parameter_name text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.show_value(value text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.show_value(value text) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.sp_add_operator(name text, enabled boolean, email_address text, pager_address text, weekday_pager_start_time integer, weekday_pager_end_time integer, saturday_pager_start_time integer, saturday_pager_end_time integer, sunday_pager_start_time integer, sunday_pager_end_time integer, pager_days integer, netsend_address text, category_name text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sp_add_operator(name text, enabled boolean, email_address text, pager_address text, weekday_pager_start_time integer, weekday_pager_end_time integer, saturday_pager_start_time integer, saturday_pager_end_time integer, sunday_pager_start_time integer, sunday_pager_end_time integer, pager_days integer, netsend_address text, category_name text) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sp_delete_operator(name text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sp_delete_operator(name text) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sp_help_operator(operator_name text, operator_id integer) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sp_help_operator(operator_name text, operator_id integer) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sp_notify_operator(profile_name text, id integer, name text, subject text, body text, file_attachments text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sp_notify_operator(profile_name text, id integer, name text, subject text, body text, file_attachments text) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.sp_send_dbmail(profile_name text, recipients text, copy_recipients text, blind_copy_recipients text, subject text, body text, body_format text, importance text, sensitivity text, file_attachments text, query text, execute_query_database text, attach_query_result_as_file boolean, query_attachment_filename text, query_result_header boolean, query_result_width integer, query_result_separator text, exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean, query_result_no_padding boolean, from_address text, reply_to text, attachments dbmail.attachment[], headers jsonb, send_at timestamp with time zone, idempotency_key text, query_result_format text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sp_send_dbmail(profile_name text, recipients text, copy_recipients text, blind_copy_recipients text, subject text, body text, body_format text, importance text, sensitivity text, file_attachments text, query text, execute_query_database text, attach_query_result_as_file boolean, query_attachment_filename text, query_result_header boolean, query_result_width integer, query_result_separator text, exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean, query_result_no_padding boolean, from_address text, reply_to text, attachments dbmail.attachment[], headers jsonb, send_at timestamp with time zone, idempotency_key text, query_result_format text) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.sp_update_operator(name text, new_name text, enabled boolean, email_address text, pager_address text, weekday_pager_start_time integer, weekday_pager_end_time integer, saturday_pager_start_time integer, saturday_pager_end_time integer, sunday_pager_start_time integer, sunday_pager_end_time integer, pager_days integer, netsend_address text, category_name text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sp_update_operator(name text, new_name text, enabled boolean, email_address text, pager_address text, weekday_pager_start_time integer, weekday_pager_end_time integer, saturday_pager_start_time integer, saturday_pager_end_time integer, sunday_pager_start_time integer, sunday_pager_end_time integer, pager_days integer, netsend_address text, category_name text) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.split_quoted_list(parameter text, list text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.status_counts(OUT unsent bigint, OUT sending bigint, OUT retrying bigint, OUT sent bigint, OUT failed bigint, OUT oldest_unsent_due timestamp with time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.store_secrets(s dbmail.account_secrets) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.sysmail_add_account_sp(account_name text, email_address text, display_name text, replyto_address text, description text, mailserver_name text, mailserver_type text, port integer, username text, password text, use_default_credentials boolean, enable_ssl boolean, security text, timeout integer, tls_reject_unauthorized boolean, auth_method text, oauth2_token_url text, oauth2_client_id text, oauth2_client_secret text, oauth2_scope text, oauth2_refresh_token text, dkim_domain text, dkim_selector text, dkim_private_key text, max_messages_per_minute integer) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_add_account_sp(account_name text, email_address text, display_name text, replyto_address text, description text, mailserver_name text, mailserver_type text, port integer, username text, password text, use_default_credentials boolean, enable_ssl boolean, security text, timeout integer, tls_reject_unauthorized boolean, auth_method text, oauth2_token_url text, oauth2_client_id text, oauth2_client_secret text, oauth2_scope text, oauth2_refresh_token text, dkim_domain text, dkim_selector text, dkim_private_key text, max_messages_per_minute integer) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_add_principalprofile_sp(principal_id oid, principal_name text, profile_id integer, profile_name text, is_default boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_add_principalprofile_sp(principal_id oid, principal_name text, profile_id integer, profile_name text, is_default boolean) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_add_profile_sp(profile_name text, description text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_add_profile_sp(profile_name text, description text) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_add_profileaccount_sp(profile_id integer, profile_name text, account_id integer, account_name text, sequence_number integer) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_add_profileaccount_sp(profile_id integer, profile_name text, account_id integer, account_name text, sequence_number integer) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_cancel_mailitems_sp(mailitem_ids bigint[]) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_cancel_mailitems_sp(mailitem_ids bigint[]) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.sysmail_configure_sp(parameter_name text, parameter_value text, description text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_configure_sp(parameter_name text, parameter_value text, description text) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_delete_account_sp(account_id integer, account_name text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_delete_account_sp(account_id integer, account_name text) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_delete_log_sp(logged_before timestamp with time zone, event_type text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_delete_log_sp(logged_before timestamp with time zone, event_type text) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_delete_mailitems_sp(sent_before timestamp with time zone, sent_status text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_delete_mailitems_sp(sent_before timestamp with time zone, sent_status text) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.sysmail_delete_principalprofile_sp(principal_id oid, principal_name text, profile_id integer, profile_name text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_delete_principalprofile_sp(principal_id oid, principal_name text, profile_id integer, profile_name text) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_delete_profile_sp(profile_id integer, profile_name text, force_delete boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_delete_profile_sp(profile_id integer, profile_name text, force_delete boolean) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_delete_profileaccount_sp(profile_id integer, profile_name text, account_id integer, account_name text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_delete_profileaccount_sp(profile_id integer, profile_name text, account_id integer, account_name text) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_help_account_sp(account_id integer, account_name text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_help_account_sp(account_id integer, account_name text) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_help_configure_sp(parameter_name text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_help_configure_sp(parameter_name text) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_help_principalprofile_sp(principal_id oid, principal_name text, profile_id integer, profile_name text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_help_principalprofile_sp(principal_id oid, principal_name text, profile_id integer, profile_name text) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_help_profile_sp(profile_id integer, profile_name text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_help_profile_sp(profile_id integer, profile_name text) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_help_profileaccount_sp(profile_id integer, profile_name text, account_id integer, account_name text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_help_profileaccount_sp(profile_id integer, profile_name text, account_id integer, account_name text) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_help_queue_sp(queue_type text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_help_queue_sp(queue_type text) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_help_status_sp() FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_help_status_sp() TO dbmail_admin;
GRANT ALL ON FUNCTION dbmail.sysmail_help_status_sp() TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.sysmail_retry_mailitems_sp(mailitem_ids bigint[], sent_status text, sent_before timestamp with time zone, profile_name text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_retry_mailitems_sp(mailitem_ids bigint[], sent_status text, sent_before timestamp with time zone, profile_name text) TO dbmail_user;

REVOKE ALL ON FUNCTION dbmail.sysmail_start_sp() FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_start_sp() TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_stop_sp() FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_stop_sp() TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_update_account_sp(account_id integer, account_name text, email_address text, display_name text, replyto_address text, description text, mailserver_name text, mailserver_type text, port integer, username text, password text, use_default_credentials boolean, enable_ssl boolean, timeout integer, security text, tls_reject_unauthorized boolean, auth_method text, oauth2_token_url text, oauth2_client_id text, oauth2_client_secret text, oauth2_scope text, oauth2_refresh_token text, dkim_domain text, dkim_selector text, dkim_private_key text, max_messages_per_minute integer) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_update_account_sp(account_id integer, account_name text, email_address text, display_name text, replyto_address text, description text, mailserver_name text, mailserver_type text, port integer, username text, password text, use_default_credentials boolean, enable_ssl boolean, timeout integer, security text, tls_reject_unauthorized boolean, auth_method text, oauth2_token_url text, oauth2_client_id text, oauth2_client_secret text, oauth2_scope text, oauth2_refresh_token text, dkim_domain text, dkim_selector text, dkim_private_key text, max_messages_per_minute integer) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_update_principalprofile_sp(principal_id oid, principal_name text, profile_id integer, profile_name text, is_default boolean) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_update_principalprofile_sp(principal_id oid, principal_name text, profile_id integer, profile_name text, is_default boolean) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_update_profile_sp(profile_id integer, profile_name text, description text) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_update_profile_sp(profile_id integer, profile_name text, description text) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.sysmail_update_profileaccount_sp(profile_id integer, profile_name text, account_id integer, account_name text, sequence_number integer) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.sysmail_update_profileaccount_sp(profile_id integer, profile_name text, account_id integer, account_name text, sequence_number integer) TO dbmail_admin;

REVOKE ALL ON FUNCTION dbmail.take_caller_stamp(entry_point text) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.take_send_slot(sender_id text, mailitem_id bigint, lease_token uuid, account_id integer) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.take_send_slot(sender_id text, mailitem_id bigint, lease_token uuid, account_id integer) TO dbmail_sender;

REVOKE ALL ON FUNCTION dbmail.unconfined(role_name name) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.warn_basic_auth(a dbmail.accounts) FROM PUBLIC;

REVOKE ALL ON FUNCTION dbmail.wrap_line(line text, width integer) FROM PUBLIC;
GRANT ALL ON FUNCTION dbmail.wrap_line(line text, width integer) TO dbmail_user;

GRANT INSERT(inserted) ON TABLE dbmail.caller_stamps TO dbmail_user;

GRANT SELECT ON TABLE dbmail.sysmail_allitems TO dbmail_user;

GRANT SELECT ON TABLE dbmail.sysmail_attempts TO dbmail_user;

GRANT SELECT ON TABLE dbmail.sysmail_event_log TO dbmail_user;

GRANT SELECT ON TABLE dbmail.sysmail_faileditems TO dbmail_user;

GRANT SELECT ON TABLE dbmail.sysmail_mailattachments TO dbmail_user;

GRANT SELECT ON TABLE dbmail.sysmail_sentitems TO dbmail_user;

GRANT SELECT ON TABLE dbmail.sysmail_unsentitems TO dbmail_user;
