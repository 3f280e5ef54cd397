-- pg-dbmail 000016: the sender protocol, part one (dbmail_sender only): a sender registers and
-- heartbeats under its sender_id, claims due items under a lease, renews the leases of what it still
-- holds, and gives back what it will not send. A sender_id belongs to the login that registered it, and
-- a lease is proven by a random token that only the claimer learns (claim_mailitems returns it; no view
-- or other function shows it): every function that acts on a held item wants it with the sender_id, and
-- a wrong or missing token is a lease not held, never an error. Each asks require_sender (SenderRoles).

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(16, 'sender_claims', 'queue');

-- Whether the session's login may act under a sender_id registered by `login`: it is that login, or
-- nobody registered the id (NULL), or that login no longer exists (dropped: its ids are free, so a login
-- created again under the same name takes them over at its first heartbeat), or it is a superuser. The
-- login is session_user, which SET ROLE does not change: logins that share a group role (SET ROLE
-- dbmail_sender) stay apart. The usual answer costs one syscache lookup (pg_get_userbyid); the catalog is
-- read only for an id registered by another login. Owner-only: it inherits the caller's pinned search_path.
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

-- Registers or refreshes a sender; returns whether delivery is started and the current settings. A new id
-- is registered to the calling login. A known one is refreshed only for that login (or a superuser, which
-- leaves the registration as it is); it moves to the caller only when its login is gone. Checked in the
-- upsert itself, so two logins registering one new id at once cannot both succeed.
CREATE FUNCTION dbmail.sender_heartbeat(
  sender_id text, hostname text DEFAULT NULL, process_id integer DEFAULT NULL, version text DEFAULT NULL
) RETURNS TABLE (started boolean, settings jsonb)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- A sender that exits cleanly says so, so it stops counting as live at once. Only under its own login: the
-- error undoes the update.
CREATE FUNCTION dbmail.sender_stopped(sender_id text) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- Claims up to batch_size due items for this sender, leasing them for lease_seconds under a new lease
-- token (returned as lease_token). Due: unsent or retrying items whose next_attempt_at has come, and
-- sending items whose lease expired or whose sender is known dead (the outcome of its attempt is unknown:
-- UnknownOutcomePolicy retry sends them again with the same Message-ID, fail gives up on them; an event
-- says so). Returns nothing while Database Mail is stopped. An id registered by another login is refused.
-- A sender renewing its leases is alive (it may renew while unable to heartbeat): never taken over.
-- Generic plans, once per connection: custom ones re-planned the claim on every call (0.4 ms of an empty
-- claim's 0.6, on every mail's path). Its generic plan, not knowing batch_size, would sort every due item:
-- enable_sort off keeps it on mailitems_due_idx's order; jit off, as that penalty would start the JIT.
CREATE FUNCTION dbmail.claim_mailitems(sender_id text, batch_size integer DEFAULT 20, lease_seconds integer DEFAULT 300)
RETURNS TABLE (
  mailitem_id bigint, profile_id integer, envelope jsonb, subject text, body text, body_format text,
  importance text, sensitivity text, from_address text, reply_to text, headers jsonb, message_id text,
  send_attempts integer, attachment_count integer, lease_expires_at timestamptz, lease_token uuid
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
SET enable_sort = off
SET jit = off
AS $$
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
$$;

-- Renews the leases of the items this sender still holds, named with their lease tokens (one per claim
-- is enough; order and repeats do not matter), so that a slow SMTP server does not let another sender
-- reclaim them. Returns the ids it still holds; an item missing from the result was reclaimed or deleted,
-- and must not be sent. Renewing counts as a heartbeat (a sender that can renew is alive and must not be
-- taken for dead, see claim_mailitems), but only under the login that registered sender_id. The sender's
-- row is locked before the items, in the same order claim_mailitems takes them.
CREATE FUNCTION dbmail.extend_leases(
  sender_id text, mailitem_ids bigint[], lease_tokens uuid[], lease_seconds integer DEFAULT 300
) RETURNS bigint[]
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- Gives back claimed items this sender will not send (it is shutting down, or delivery was stopped):
-- only the items named with their lease tokens, which they lose; they are claimable at once.
CREATE FUNCTION dbmail.release_mailitems(sender_id text, mailitem_ids bigint[], lease_tokens uuid[]) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- Before a message goes out through an account with max_messages_per_minute (all senders together): it
-- is admitted while fewer than the limit were sent within the last 60 seconds, are on their way, or wait
-- for a turn that has come; its slot is recorded (apply_outcome finishes it). Otherwise it waits: it
-- takes the turn when enough slots will have left the window (each slot leaves 60 s after it finished;
-- waiting turns queue behind), and the item is given back, due then, with no retry round used. Returns
-- admitted, or the time the item is due again; neither when the item is not this sender's (lease lost).
CREATE FUNCTION dbmail.take_send_slot(sender_id text, mailitem_id bigint, lease_token uuid, account_id integer)
RETURNS TABLE (admitted boolean, due_at timestamptz)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(16, 'sender_claims', '95e48afe0a5647f066a1e7baa3ce1e25eb55c3db49c2f9f068b16698a4d055dd');
