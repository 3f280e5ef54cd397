-- pg-dbmail 000011: a lease is proven by a token, and a sender_id belongs to the login that registered it.
--
-- The sender functions used to take sender_id as the proof of holding an item, and sent_by shows sender
-- ids: any dbmail_sender login could record outcomes for, renew, release or read the attachments of items
-- another sender held, and heartbeat or stop under its id. Now each claim draws a random lease token that
-- only the claimer learns (claim_mailitems returns it; no view or other function shows it), and every
-- function that acts on a held item wants it with the sender_id: a wrong or missing token is a lease not
-- held ('lease_lost', left out, NULL), never an error. And dbmail.senders records the login that
-- registered each id: a heartbeat, stop or claim under an id another login registered is refused (42501).
-- Everything else is as 000005 and 000009 left it.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(11, 'lease_tokens', 'input_hardening');

-- The token of the claim that leased a sending item to lease_owner; NULL when nobody holds the item.
ALTER TABLE dbmail.mailitems ADD COLUMN lease_token uuid;

-- The login (session_user) that registered the id, by oid: an oid outlives a rename, and a login dropped
-- and created again under its old name is a new oid. NULL for ids registered before this migration.
ALTER TABLE dbmail.senders ADD COLUMN login oid;

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
REVOKE ALL ON FUNCTION dbmail.may_use_sender_id(oid) FROM PUBLIC;

-- Registers or refreshes a sender; returns whether delivery is started and the current settings. A new id
-- is registered to the calling login. A known one is refreshed only for that login (or a superuser, which
-- leaves the registration as it is); it moves to the caller only when its login is gone. Checked in the
-- upsert itself, so two logins registering one new id at once cannot both succeed.
CREATE OR REPLACE FUNCTION dbmail.sender_heartbeat(
  sender_id text, hostname text DEFAULT NULL, process_id integer DEFAULT NULL, version text DEFAULT NULL
) RETURNS TABLE (started boolean, settings jsonb)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- Confined to the roles SenderRoles lists, where it lists any (000010).
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
  RETURN QUERY
  SELECT st.started, (SELECT jsonb_object_agg(c.paramname, c.paramvalue) FROM dbmail.settings c)
  FROM dbmail.system_state st;
END;
$$;

-- A sender that exits cleanly says so, so it stops counting as live at once. Only under its own login: the
-- error undoes the update.
CREATE OR REPLACE FUNCTION dbmail.sender_stopped(sender_id text) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  registered_by oid;
BEGIN
  -- Confined to the roles SenderRoles lists, where it lists any (000010).
  PERFORM dbmail.require_sender();
  UPDATE dbmail.senders s SET stopped_at = now() WHERE s.sender_id = sender_stopped.sender_id
  RETURNING s.login INTO registered_by;
  IF FOUND AND NOT dbmail.may_use_sender_id(registered_by) THEN
    PERFORM dbmail.raise_error('42501', 'sender_id', sender_id, 'registered by another login');
  END IF;
END;
$$;

-- As in 000009, and: an id registered by another login is refused; every item claimed (due, or taken over)
-- gets this call's lease token, returned as lease_token; an item failed under UnknownOutcomePolicy fail
-- loses its token with its owner.
DROP FUNCTION dbmail.claim_mailitems(text, integer, integer);
CREATE FUNCTION dbmail.claim_mailitems(sender_id text, batch_size integer DEFAULT 20, lease_seconds integer DEFAULT 300)
RETURNS TABLE (
  mailitem_id bigint, profile_id integer, envelope jsonb, subject text, body text, body_format text,
  importance text, sensitivity text, from_address text, reply_to text, headers jsonb, message_id text,
  send_attempts integer, attachment_count integer, lease_expires_at timestamptz, lease_token uuid
)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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
BEGIN
  -- Confined to the roles SenderRoles lists, where it lists any (000010).
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
  SELECT st.started, (SELECT s.login FROM dbmail.senders s WHERE s.sender_id = claimer)
    INTO delivering, registered_by
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
  -- whose leases were taken over above.
  RETURN QUERY
  WITH taken AS (
    UPDATE dbmail.mailitems m SET sent_status = 'sending', lease_owner = claimer, lease_token = token,
      lease_expires_at = lease_end, last_mod_date = now(), last_mod_user = modifier
    WHERE m.mailitem_id IN (
      SELECT x.mailitem_id FROM dbmail.mailitems x
      WHERE x.sent_status IN ('unsent', 'retrying') AND x.next_attempt_at <= now()
      ORDER BY x.next_attempt_at, x.mailitem_id
      LIMIT batch_size - cardinality(claimed) FOR UPDATE SKIP LOCKED)
    RETURNING m.*)
  SELECT t.mailitem_id, t.profile_id, t.envelope, t.subject, t.body, t.body_format::text, t.importance::text,
         t.sensitivity::text, t.from_address, t.reply_to, t.headers, t.message_id, t.send_attempts,
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

-- As in 000005, and: the item is held only with its lease token as well as its owner (a wrong or missing
-- token is 'lease_lost'), and the token goes with the lease.
DROP FUNCTION dbmail.apply_outcome(bigint, text, text, integer, text, text, jsonb, integer, integer, integer);
CREATE FUNCTION dbmail.apply_outcome(
  mailitem_id bigint, sender_id text, lease_token uuid, outcome text, account_id integer, smtp_response text,
  error text, account_errors jsonb, process_id integer, retry_rounds integer, retry_delay integer
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
  SELECT string_agg(format('account %s: %s', f.value ->> 'account_id', f.value ->> 'error'), '; ')
    INTO summary FROM jsonb_array_elements(COALESCE(account_errors, '[]')) f;

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
REVOKE ALL ON FUNCTION dbmail.apply_outcome(bigint, text, uuid, text, integer, text, text, jsonb, integer, integer,
  integer) FROM PUBLIC;

-- As in 000005, with the item's lease token after sender_id.
DROP FUNCTION dbmail.record_outcome(bigint, text, text, integer, text, text, jsonb, integer);
CREATE FUNCTION dbmail.record_outcome(
  mailitem_id bigint, sender_id text, lease_token uuid, outcome text, account_id integer DEFAULT NULL,
  smtp_response text DEFAULT NULL, error text DEFAULT NULL, account_errors jsonb DEFAULT NULL,
  process_id integer DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- Confined to the roles SenderRoles lists, where it lists any (000010).
  PERFORM dbmail.require_sender();
  RETURN dbmail.apply_outcome(mailitem_id, sender_id, lease_token, outcome, account_id, smtp_response, error,
    account_errors, process_id, COALESCE(dbmail.setting('AccountRetryAttempts')::integer, 1),
    COALESCE(dbmail.setting('AccountRetryDelay')::integer, 60));
END;
$$;

-- As in 000005; each entry carries its item's lease_token too.
CREATE OR REPLACE FUNCTION dbmail.record_outcomes(sender_id text, outcomes jsonb, process_id integer DEFAULT NULL)
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
  -- Confined to the roles SenderRoles lists, where it lists any (000010).
  PERFORM dbmail.require_sender();
  IF outcomes IS NULL OR jsonb_typeof(outcomes) <> 'array' THEN
    PERFORM dbmail.raise_error('22023', 'outcomes', outcomes::text, 'must be a JSON array');
  END IF;
  FOR entry IN
    SELECT o.* FROM jsonb_to_recordset(outcomes) AS o(
      mailitem_id bigint, lease_token uuid, outcome text, account_id integer, smtp_response text, error text,
      account_errors jsonb)
    ORDER BY o.mailitem_id
  LOOP
    IF entry.mailitem_id IS NULL THEN
      PERFORM dbmail.raise_error('22004', 'mailitem_id', NULL, 'every outcome names its mail item');
    END IF;
    mailitem_id := entry.mailitem_id;
    status := dbmail.apply_outcome(entry.mailitem_id, record_outcomes.sender_id, entry.lease_token, entry.outcome,
      entry.account_id, entry.smtp_response, entry.error, entry.account_errors, record_outcomes.process_id,
      retry_rounds, retry_delay);
    RETURN NEXT;
  END LOOP;
END;
$$;

-- As in 000005, and: only the items named with their lease tokens (one per claim is enough; order and
-- repeats do not matter) are given back, and they lose their tokens.
DROP FUNCTION dbmail.release_mailitems(text, bigint[]);
CREATE FUNCTION dbmail.release_mailitems(sender_id text, mailitem_ids bigint[], lease_tokens uuid[]) RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  held bigint[];
  released integer;
BEGIN
  -- Confined to the roles SenderRoles lists, where it lists any (000010).
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

-- As in 000009, and: only the items named with their lease tokens are renewed; renewing counts as a
-- heartbeat only under the login that registered sender_id.
DROP FUNCTION dbmail.extend_leases(text, bigint[], integer);
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
  -- Confined to the roles SenderRoles lists, where it lists any (000010).
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

-- The attachments of an item this sender holds under this lease token.
DROP FUNCTION dbmail.sender_attachments(text, bigint);
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

-- As in 000005, with the lease token of the attachment's item after attachment_id: NULL without it.
DROP FUNCTION dbmail.sender_attachment_chunk(text, bigint, bigint, integer);
CREATE FUNCTION dbmail.sender_attachment_chunk(
  sender_id text, attachment_id bigint, lease_token uuid, chunk_offset bigint, chunk_length integer
) RETURNS bytea
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- Confined to the roles SenderRoles lists, where it lists any (000010).
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

-- The functions made anew above, granted as 000006 granted their predecessors: to dbmail_sender only.
REVOKE ALL ON FUNCTION
  dbmail.claim_mailitems(text, integer, integer),
  dbmail.record_outcome(bigint, text, uuid, text, integer, text, text, jsonb, integer),
  dbmail.release_mailitems(text, bigint[], uuid[]),
  dbmail.extend_leases(text, bigint[], uuid[], integer),
  dbmail.sender_attachments(text, bigint, uuid),
  dbmail.sender_attachment_chunk(text, bigint, uuid, bigint, integer)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  dbmail.claim_mailitems(text, integer, integer),
  dbmail.record_outcome(bigint, text, uuid, text, integer, text, text, jsonb, integer),
  dbmail.release_mailitems(text, bigint[], uuid[]),
  dbmail.extend_leases(text, bigint[], uuid[], integer),
  dbmail.sender_attachments(text, bigint, uuid),
  dbmail.sender_attachment_chunk(text, bigint, uuid, bigint, integer)
TO dbmail_sender;

-- As in 000005, confined to the roles SenderRoles lists, where it lists any (000010): the passwords
-- are the first thing a sender login of another database would want.
CREATE OR REPLACE FUNCTION dbmail.sender_accounts()
RETURNS TABLE (
  profile_id integer, profile_name text, account_id integer, sequence_number integer,
  is_last_success boolean, account_name text, email_address text, display_name text, replyto_address text,
  mailserver_name text, port integer, username text, password text, use_default_credentials boolean,
  security text, timeout integer, tls_reject_unauthorized boolean
)
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT dbmail.require_sender();
  SELECT p.profile_id, p.name, a.account_id, pa.sequence_number,
         p.last_success_account_id IS NOT DISTINCT FROM a.account_id, a.name, a.email_address,
         a.display_name, a.replyto_address, a.mailserver_name, a.port, a.username, s.password,
         a.use_default_credentials, a.security, a.timeout, a.tls_reject_unauthorized
  FROM dbmail.profiles p
  JOIN dbmail.profile_accounts pa ON pa.profile_id = p.profile_id
  JOIN dbmail.accounts a ON a.account_id = pa.account_id
  LEFT JOIN dbmail.account_secrets s ON s.account_id = a.account_id
  ORDER BY p.profile_id, pa.sequence_number, a.account_id;
$$;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(11, 'lease_tokens', '5982f17ebfd28e38ae0bba917dac0db562d40bacf0bbe2fca334bbd556518209');
