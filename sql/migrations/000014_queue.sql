-- pg-dbmail 000014: the queue's controls and clean-up: start and stop delivery, its status, the queue and
-- the live senders (sysmail_help_queue_sp, with the one flag to alert on), and deleting old mail items
-- and events.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(14, 'queue', 'send');

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
         s.started AND queue.due > 0 AND live.live_count = 0
  FROM queue, live, dbmail.system_state s;
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
    AND (deleter_is_admin OR (m.send_request_user = deleter AND m.send_request_role = deleter_oid));
  GET DIAGNOSTICS deleted = ROW_COUNT;
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

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(14, 'queue', '88d95dd2af8bf13e4d1754735702e7f4e79c92faca806fee7ca0252177e6cca0');
