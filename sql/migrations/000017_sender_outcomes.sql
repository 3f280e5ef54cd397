-- pg-dbmail 000017: the sender protocol, part two (dbmail_sender only): what a sender reads to send an item
-- it holds (the accounts of every profile with their credentials, the item's attachments) and how it
-- reports the outcome. Retry timing and the final status are decided here, in one place, so every sender
-- behaves alike and a restart loses nothing. And the senders' half of the wake-up protocol. Every function
-- asks require_sender first (SenderRoles), except sender_unwatch, which only gives a lock back.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(17, 'sender_outcomes', 'sender_claims');

-- The status procedure's work: records the outcome of one attempt round over the profile's accounts.
--   sent      delivered through account_id (smtp_response: the server's reply)
--   retrying  every account failed with a transient error: wait AccountRetryDelay, then try them all
--             again; after AccountRetryAttempts further rounds the item is failed
--   failed    a permanent failure (every recipient rejected with 5xx, no usable account, ...)
-- account_errors lists the failures of this round, [{"account_id": 1, "error": "..."}]: on success they
-- are logged as warnings with their account, on final failure as one error (as SQL Server does).
-- attempts lists every SMTP attempt of this round, [{"account_id": 1, "started_at": "...", "duration_ms": 120,
-- "outcome": "refused", "smtp_code": 550, "smtp_response": "..."}] (outcome: sent, refused for a permanent
-- 5xx refusal, failed otherwise); each becomes a row of dbmail.attempts (sysmail_attempts), numbered with
-- the round. Optional: a sender that reports none records none.
-- Returns the item's status afterwards, or 'lease_lost' when this sender no longer holds the item under
-- this lease token (it was reclaimed after the lease expired, or deleted, or the token is wrong or
-- missing): then nothing is changed.
--
-- apply_outcome is the one implementation, shared by record_outcome (one item) and record_outcomes (a
-- batch); an owner-only helper, it inherits the caller's pinned search_path. retry_rounds and
-- retry_delay are AccountRetryAttempts and AccountRetryDelay, read once per call by the caller.
CREATE FUNCTION dbmail.apply_outcome(
  mailitem_id bigint, sender_id text, lease_token uuid, outcome text, account_id integer, smtp_response text,
  error text, account_errors jsonb, process_id integer, retry_rounds integer, retry_delay integer,
  smtp_attempts jsonb
) RETURNS text
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

-- One outcome (see apply_outcome), for the item this sender holds under lease_token.
CREATE FUNCTION dbmail.record_outcome(
  mailitem_id bigint, sender_id text, lease_token uuid, outcome text, account_id integer DEFAULT NULL,
  smtp_response text DEFAULT NULL, error text DEFAULT NULL, account_errors jsonb DEFAULT NULL,
  process_id integer DEFAULT NULL, attempts jsonb DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- Confined to the roles SenderRoles lists, where it lists any.
  PERFORM dbmail.require_sender();
  RETURN dbmail.apply_outcome(mailitem_id, sender_id, lease_token, outcome, account_id, smtp_response, error,
    account_errors, process_id, COALESCE(dbmail.setting('AccountRetryAttempts')::integer, 1),
    COALESCE(dbmail.setting('AccountRetryDelay')::integer, 60), attempts);
END;
$$;

-- Many outcomes of one sender in one transaction (one commit instead of one per message), each with
-- exactly record_outcome's effect. outcomes is a JSON array of objects with record_outcome's arguments
-- by name: mailitem_id, lease_token, outcome, and optionally account_id, smtp_response, error,
-- account_errors, attempts. Returns each item's status afterwards (or 'lease_lost'), in mailitem_id order, which is
-- also the order its rows are locked in (so two batches cannot deadlock on each other's items). A bad
-- entry fails the whole call, changing nothing.
CREATE FUNCTION dbmail.record_outcomes(sender_id text, outcomes jsonb, process_id integer DEFAULT NULL)
RETURNS TABLE (mailitem_id bigint, status text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- Every profile's accounts in failover order, with what the sender needs to connect (including the
-- secrets, or their env:/file: references). is_last_success marks the sticky account. Confined to the roles
-- SenderRoles lists, where it lists any: the passwords are the first thing a sender login of another
-- database would want.
CREATE FUNCTION dbmail.sender_accounts()
RETURNS TABLE (
  profile_id integer, profile_name text, account_id integer, sequence_number integer,
  is_last_success boolean, account_name text, email_address text, display_name text, replyto_address text,
  mailserver_name text, port integer, username text, password text, use_default_credentials boolean,
  security text, timeout integer, tls_reject_unauthorized boolean, auth_method text, oauth2_token_url text,
  oauth2_client_id text, oauth2_client_secret text, oauth2_scope text, oauth2_refresh_token text,
  dkim_domain text, dkim_selector text, dkim_private_key text, max_messages_per_minute integer
)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- The attachments of an item this sender holds under this lease token.
CREATE FUNCTION dbmail.sender_attachments(sender_id text, mailitem_id bigint, lease_token uuid)
RETURNS TABLE (attachment_id bigint, filename text, content_type text, filesize bigint, attachment bytea)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT dbmail.require_sender();
  SELECT a.attachment_id, a.filename, a.content_type, a.filesize, a.attachment
  FROM dbmail.attachments a
  JOIN dbmail.mailitems m ON m.mailitem_id = a.mailitem_id
  WHERE a.mailitem_id = $2 AND m.lease_owner = $1 AND m.lease_token = $3
  ORDER BY a.attachment_id;
$$;

-- A piece of one attachment of an item this sender holds under lease_token: up to chunk_length bytes
-- from byte chunk_offset (counting from 0; empty past the end). The sender streams large attachments this
-- way instead of holding them whole in memory. NULL when the sender no longer holds the item (another
-- sender reclaimed it, or it was deleted) or the token is not its lease's: the message must not go out.
CREATE FUNCTION dbmail.sender_attachment_chunk(
  sender_id text, attachment_id bigint, lease_token uuid, chunk_offset bigint, chunk_length integer
) RETURNS bytea
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- The queue at a glance, for the sender's /metrics (its login may not read the sysmail_* views): items
-- per status (dbmail.status_counts: from indexes, so on 1,000,000 items about 0.1 s against about 1 s for
-- a GROUP BY over the table), and how long the oldest unsent item has waited since it was due (queued,
-- or its send_at), 0 when none waits. The sender caches the answer for a scrape or two.
CREATE FUNCTION dbmail.sender_queue_stats()
RETURNS TABLE (
  unsent bigint, sending bigint, retrying bigint, sent bigint, failed bigint,
  oldest_unsent_age_seconds double precision
)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT dbmail.require_sender();
  SELECT c.unsent, c.sending, c.retrying, c.sent, c.failed,
         COALESCE(greatest(extract(epoch FROM now() - c.oldest_unsent_due), 0), 0)::double precision
  FROM dbmail.status_counts() c;
$$;

-- The wake-up protocol. sp_send_dbmail sends NOTIFY dbmail_queue only when a sender listens and none is
-- awake (dbmail.must_wake_senders, 000012, which reads the three advisory locks below). So:
-- * a sender's LISTEN connection holds the first lock shared while it listens (sender_listening), and
--   settles (below) before it looks for mail after every (re)connect;
-- * one awake sender at a time, the watcher, holds the second (sender_watch): calls that see it send no
--   NOTIFY, counting on the watcher to look again after they commit. The watcher looks again after each
--   batch while it is busy; to go idle it gives the lock back (sender_unwatch), then settles, then looks
--   once more;
-- * settling (sender_settle) takes the third lock exclusively: it waits until every call that counted on
--   a watcher has committed or rolled back (each holds the third lock shared from before it looked),
--   and meanwhile calls notify. A look after it sees their mail. A call that looked after the watcher
--   gave its lock back notifies.
-- Anyone who can connect can take advisory locks: holding the second lock would make senders rely on
-- their poll (--poll-interval-ms) for new mail, delaying it but never losing it.

-- Held, shared, by a LISTEN connection for as long as it listens (a session lock; it ends with the
-- connection).
CREATE FUNCTION dbmail.sender_listening() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM dbmail.require_sender();
  PERFORM pg_advisory_lock_shared(1684172140, 1);
END;
$$;

-- Whether this session became the watcher (or already was): never waits. A session lock, taken once
-- (the sender keeps count; sender_unwatch gives it back).
CREATE FUNCTION dbmail.sender_watch() RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM dbmail.require_sender();
  RETURN pg_try_advisory_lock(1684172140, 2);
END;
$$;

-- The watcher goes idle: it settles and looks once more after this.
CREATE FUNCTION dbmail.sender_unwatch() RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN pg_advisory_unlock(1684172140, 2);
END;
$$;

-- Waits (up to timeout_ms) until every transaction that queued mail counting on a watcher has ended;
-- true when it has, false when the time ran out (look anyway, and settle again soon: the mail of a
-- transaction still open is not seen yet). Call it in a transaction of its own: the lock is given back
-- at its end, and calls notify while it is held or wanted.
CREATE FUNCTION dbmail.sender_settle(timeout_ms integer) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
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

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(17, 'sender_outcomes', '0bf65d9cc5456fa11026fb26c6e82391780a8479f6d495a844e38e948e6b1aff');
