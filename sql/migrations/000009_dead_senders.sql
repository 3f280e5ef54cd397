-- pg-dbmail 000009: a dead sender's items are taken over as soon as it is known dead.
--
-- A sender killed with -9 used to hold its items until their leases ran out (300 s by default) although
-- its heartbeat showed it dead after 30 s. Now a claim cuts a dead sender's leases at the moment it was
-- known dead and takes its items over at once. A sender renewing its leases counts as alive (it may be
-- unable to heartbeat while it can still renew), so what it holds is never taken over under it.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(9, 'dead_senders', 'operators');

-- The live senders, the only ones a claim has to look at for one that died.
CREATE INDEX senders_live_idx ON dbmail.senders (last_heartbeat) WHERE stopped_at IS NULL;

CREATE OR REPLACE FUNCTION dbmail.claim_mailitems(sender_id text, batch_size integer DEFAULT 20, lease_seconds integer DEFAULT 300)
RETURNS TABLE (
  mailitem_id bigint, profile_id integer, envelope jsonb, subject text, body text, body_format text,
  importance text, sensitivity text, from_address text, reply_to text, headers jsonb, message_id text,
  send_attempts integer, attachment_count integer, lease_expires_at timestamptz
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  claimer text := claim_mailitems.sender_id;
  lease_end timestamptz := now() + make_interval(secs => lease_seconds);
  expired record;
  -- Exactly the items this call claimed: now() is fixed for a transaction, so lease_end cannot tell two
  -- claims of one transaction apart.
  claimed bigint[] := '{}';
  -- last_mod_user of the claimed items, once rather than per row.
  modifier name;
BEGIN
  IF claimer IS NULL OR btrim(claimer) = '' THEN
    PERFORM dbmail.raise_error('22004', 'sender_id', claimer, 'a sender needs an id');
  END IF;
  IF batch_size IS NULL OR batch_size NOT BETWEEN 1 AND 10000 THEN
    PERFORM dbmail.raise_error('22023', 'batch_size', batch_size::text, 'must be from 1 to 10000');
  END IF;
  IF lease_seconds IS NULL OR lease_seconds NOT BETWEEN 1 AND 86400 THEN
    PERFORM dbmail.raise_error('22023', 'lease_seconds', lease_seconds::text, 'must be from 1 to 86400');
  END IF;
  IF NOT (SELECT st.started FROM dbmail.system_state st) THEN
    RETURN;
  END IF;
  modifier := dbmail.caller_role();

  -- A sender that stopped heartbeating (killed, its host lost) is known dead 30 seconds after its last
  -- heartbeat: its leases are cut at that moment, so the takeover below claims its items now instead of
  -- when their leases would have run out (300 s by default). A sender that is alive but stuck keeps
  -- heartbeating, and its lease stays the bound. Never the claimer itself: it is claiming, so alive (its
  -- heartbeat may be old after an outage, and its own items in flight must not come back to it). Not in
  -- the first 30 seconds after the server started: nobody could heartbeat while it was down, and one
  -- sender's first claim may come before another's first heartbeat. Usually no sender has died: one
  -- probe of senders_live_idx says so. Dead senders are taken one claimer at a time (SKIP LOCKED).
  IF EXISTS (SELECT FROM dbmail.senders s
             WHERE s.stopped_at IS NULL AND s.last_heartbeat < now() - interval '30 seconds'
               AND s.sender_id <> claimer)
     AND pg_postmaster_start_time() < now() - interval '30 seconds' THEN
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
  -- whether the SMTP server accepted
  -- them is unknown. UnknownOutcomePolicy retry sends them again (same Message-ID, so a duplicate can
  -- be recognised); fail gives up on them, for mail where a duplicate is worse than none.
  -- There usually are none: one probe of mailitems_leased_idx says so, and the claim is then 3 statements.
  IF EXISTS (SELECT FROM dbmail.mailitems x WHERE x.sent_status = 'sending' AND x.lease_expires_at < now()) THEN
    IF dbmail.setting('UnknownOutcomePolicy') = 'fail' THEN
      FOR expired IN
        UPDATE dbmail.mailitems m SET sent_status = 'failed', sent_date = now(), lease_owner = NULL,
          lease_expires_at = NULL, send_attempts = m.send_attempts + 1,
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
        UPDATE dbmail.mailitems m SET lease_owner = claimer, lease_expires_at = lease_end,
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
  -- whose leases were taken over above.
  RETURN QUERY
  WITH taken AS (
    UPDATE dbmail.mailitems m SET sent_status = 'sending', lease_owner = claimer, lease_expires_at = lease_end,
      last_mod_date = now(), last_mod_user = modifier
    WHERE m.mailitem_id IN (
      SELECT x.mailitem_id FROM dbmail.mailitems x
      WHERE x.sent_status IN ('unsent', 'retrying') AND x.next_attempt_at <= now()
      ORDER BY x.next_attempt_at, x.mailitem_id
      LIMIT batch_size - cardinality(claimed) FOR UPDATE SKIP LOCKED)
    RETURNING m.*)
  SELECT t.mailitem_id, t.profile_id, t.envelope, t.subject, t.body, t.body_format::text, t.importance::text,
         t.sensitivity::text, t.from_address, t.reply_to, t.headers, t.message_id, t.send_attempts,
         (SELECT count(*)::integer FROM dbmail.attachments a WHERE a.mailitem_id = t.mailitem_id),
         t.lease_expires_at
  FROM (SELECT * FROM taken
        UNION ALL
        SELECT m.* FROM dbmail.mailitems m WHERE m.mailitem_id = ANY (claimed)) t
  ORDER BY t.mailitem_id;
  IF NOT FOUND THEN
    UPDATE dbmail.senders s SET last_empty_claim_at = now() WHERE s.sender_id = claimer;
  END IF;
END;
$$;

-- Renews this sender's leases of the items it still holds; returns those items. Renewing counts as a
-- heartbeat: a sender that can renew is alive and must not be taken for dead (see claim_mailitems).
-- The sender's row is locked before the items, in the same order claim_mailitems takes them.
CREATE OR REPLACE FUNCTION dbmail.extend_leases(sender_id text, mailitem_ids bigint[], lease_seconds integer DEFAULT 300)
RETURNS bigint[]
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  held bigint[];
BEGIN
  IF lease_seconds IS NULL OR lease_seconds NOT BETWEEN 1 AND 86400 THEN
    PERFORM dbmail.raise_error('22023', 'lease_seconds', lease_seconds::text, 'must be from 1 to 86400');
  END IF;
  UPDATE dbmail.senders s SET last_heartbeat = now()
  WHERE s.sender_id = extend_leases.sender_id AND s.stopped_at IS NULL;
  -- Locked by key and owner, then checked: sent_status in the WHERE could make the planner walk a
  -- partial index (see apply_outcome).
  SELECT COALESCE(array_agg(h.mailitem_id ORDER BY h.mailitem_id) FILTER (WHERE h.sent_status = 'sending'), '{}')
    INTO held
  FROM (SELECT m.mailitem_id, m.sent_status FROM dbmail.mailitems m
        WHERE m.mailitem_id = ANY (mailitem_ids) AND m.lease_owner = extend_leases.sender_id
        ORDER BY m.mailitem_id FOR UPDATE) h;
  UPDATE dbmail.mailitems m SET lease_expires_at = now() + make_interval(secs => lease_seconds)
  WHERE m.mailitem_id = ANY (held);
  RETURN held;
END;
$$;

-- `stalled` also when the only sender holding mail died less than a lease ago.
CREATE OR REPLACE FUNCTION dbmail.sysmail_help_queue_sp(queue_type text DEFAULT NULL)
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

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(9, 'dead_senders', 'ad7a7f0bad5ac95cb68a8c414bf28b78ca9c8da86313dfc3482dba22326d7957');
