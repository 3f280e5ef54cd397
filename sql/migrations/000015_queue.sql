-- pg-dbmail 000015: the queue's controls and clean-up: start and stop delivery, its status, the queue and
-- the live senders (sysmail_help_queue_sp, with the one flag to alert on), deleting old mail items and
-- events, and the installed schema version.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(15, 'queue', 'entry_points');

-- Starts or stops delivery, for sysmail_start_sp and sysmail_stop_sp.
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
  SELECT dbmail.require_admin();
  SELECT dbmail.set_started(true);
$$;

CREATE FUNCTION dbmail.sysmail_stop_sp() RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT dbmail.require_admin();
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
-- alive to send it (the one flag to alert on), also when the only sender holding mail died less than a
-- lease ago.
-- The number of items in each status, from indexes rather than the table (a million sent items are
-- not read): unsent, sending and retrying through the pending index, failed through its own, the total
-- through the smallest index; sent is what remains. Owner-only: the sender's /metrics
-- (sender_queue_stats) and the admins' sysmail_help_queue_sp ask it, each after its own check.
CREATE FUNCTION dbmail.status_counts(
  OUT unsent bigint, OUT sending bigint, OUT retrying bigint, OUT sent bigint, OUT failed bigint,
  OUT oldest_unsent_due timestamptz
)
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

CREATE FUNCTION dbmail.sysmail_help_queue_sp(queue_type text DEFAULT NULL)
RETURNS TABLE (
  queue_type text, length bigint, state text, last_empty_rowset_time timestamptz,
  last_activated_time timestamptz, live_senders integer, senders jsonb, oldest_unsent_date timestamptz,
  stalled boolean, unsent bigint, sending bigint, retrying bigint, sent bigint, failed bigint
)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
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
$$;

-- sysmail_delete_mailitems_sp's work, as the owner: the caller's own items (by role OID and name), or
-- any for an admin.
CREATE FUNCTION dbmail.delete_mailitems(sent_before timestamptz, sent_status text)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- Deletes events logged before logged_before and/or of event_type. A call with neither is refused
-- (SQL Server would silently empty the whole log). Returns the number deleted.
CREATE FUNCTION dbmail.sysmail_delete_log_sp(logged_before timestamptz DEFAULT NULL, event_type text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- The mailitem_ids of retry and cancel: NULL only where allowed (retry: any item), never empty (a list
-- built from an empty selection would otherwise mean "every item" or silently nothing), no NULL in it.
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

-- sysmail_retry_mailitems_sp's work, as the owner: the caller's own items (by role OID and name), or
-- any for an admin; others' items are not matched, as in delete_mailitems.
CREATE FUNCTION dbmail.retry_mailitems(
  mailitem_ids bigint[], sent_status text, sent_before timestamptz, profile_name text
) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- Puts failed mail items back in the queue, to be sent as if new (every round again, the same
-- Message-ID): those in mailitem_ids (NULL: any), requested before sent_before, of profile_name.
-- dbmail_user members retry only their own items; admins any. Returns the number retried.
CREATE FUNCTION dbmail.sysmail_retry_mailitems_sp(
  mailitem_ids bigint[] DEFAULT NULL, sent_status text DEFAULT 'failed', sent_before timestamptz DEFAULT NULL,
  profile_name text DEFAULT NULL
) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  INSERT INTO dbmail.caller_stamps DEFAULT VALUES;
  RETURN dbmail.retry_mailitems(mailitem_ids, sent_status, sent_before, profile_name);
END;
$$;

-- sysmail_cancel_mailitems_sp's work, as the owner, with the visibility rule of retry_mailitems.
CREATE FUNCTION dbmail.cancel_mailitems(mailitem_ids bigint[]) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- Cancels queued mail items: those of mailitem_ids that are unsent or retrying become failed with
-- last_error 'cancelled'. An item being sent ('sending') is not cancelled (a NOTICE counts them): its
-- sender records what the server said. dbmail_user members cancel only their own items; admins any.
-- Returns the number cancelled.
CREATE FUNCTION dbmail.sysmail_cancel_mailitems_sp(mailitem_ids bigint[]) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  INSERT INTO dbmail.caller_stamps DEFAULT VALUES;
  RETURN dbmail.cancel_mailitems(mailitem_ids);
END;
$$;

-- The installed schema version, so a sender can refuse a database older or newer than itself.
CREATE FUNCTION dbmail.schema_version() RETURNS integer
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN (SELECT max(m.version) FROM dbmail.migrations m);
END;
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(15, 'queue', '8b88a91867068f08db4db0ea9671876b66a5858ae9829c0b8c04ec4d3ea87fe3');
