-- pg-dbmail 000010: input hardening (issue 13). Work before the limits is linear and stops at the limit
-- (query results, recipient lists); MaxMailsPerUserPerDay counts from a ledger that deleting mail does
-- not touch; an idempotency replay cannot be raced into skipping the checks; MaxMailSize counts
-- addresses, headers and attachment names too; AdminRoles and SenderRoles confine the cluster-wide
-- dbmail_admin and dbmail_sender roles to the databases they are meant for; attachment names are
-- judged as a receiver reads them; only regular files are read, never more than their checked size;
-- mail is not sent as a dbmail group role, and belongs to the role that sent it, not to its name;
-- caller stamps cannot be planted; a query is exactly one statement, and only the path that ran it
-- records it and its result; addresses that mail programs rewrite are refused.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(10, 'input_hardening', 'dead_senders');

-- ---------------------------------------------------------------------------------------------------
-- AdminRoles and SenderRoles: roles are cluster-wide, so a dbmail_admin or dbmail_sender member is one
-- in every database of the cluster. Listing roles here confines those rights, in this database, to the
-- members that are also members of a listed role. Empty (the default): every member, as before.
-- ---------------------------------------------------------------------------------------------------

INSERT INTO dbmail.settings (paramname, paramvalue, description) VALUES
  ('AdminRoles', '',
   'Roles (; list) whose members are the dbmail_admin members with admin rights in this database (empty = all of them)'),
  ('SenderRoles', '',
   'Roles (; list) whose members are the dbmail_sender members that may act as senders in this database (empty = all of them)');

-- Whether role_name is a member (directly or through other roles) of a role of a `;` list. A listed name
-- that no longer names a role matches nobody.
CREATE FUNCTION dbmail.role_listed(role_name name, roles text) RETURNS boolean
LANGUAGE sql STABLE
AS $$
  SELECT EXISTS (
    SELECT FROM pg_catalog.unnest(pg_catalog.string_to_array(roles, ';')) AS l(listed)
    JOIN pg_catalog.pg_roles r ON r.rolname = l.listed
    WHERE pg_catalog.pg_has_role(role_name, r.oid, 'MEMBER'));
$$;

-- Superusers, and members of the role that owns schema dbmail (its tables are theirs anyway): AdminRoles
-- and SenderRoles never confine them. (pg_has_role is true for superusers.)
CREATE FUNCTION dbmail.unconfined(role_name name) RETURNS boolean
LANGUAGE sql STABLE
AS $$
  SELECT pg_catalog.pg_has_role(role_name,
    (SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = 'dbmail'), 'USAGE');
$$;

-- The one place that decides who is an admin: the views' row filters, the profile check and the
-- exemption from MaxMailsPerUserPerDay (through is_admin), and every admin procedure (through
-- require_admin). A member of dbmail_admin, and, when AdminRoles lists roles, of one of them too.
-- SECURITY DEFINER since 000010: it reads AdminRoles, and the views call it with the caller's rights.
CREATE OR REPLACE FUNCTION dbmail.is_admin(role_name name) RETURNS boolean
LANGUAGE plpgsql STABLE PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- The first thing every admin procedure does (added to each of them below). With AdminRoles empty it
-- lets through whoever may execute the procedure, as before; otherwise only the callers is_admin
-- accepts, and superusers and the schema owner. The caller is the session's role (caller_role): inside
-- a SECURITY DEFINER procedure current_user is its owner.
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

-- The same for the sender protocol: the sender functions call it first. With SenderRoles empty it lets
-- through whoever may execute them (dbmail_sender members), as before; otherwise only members of a
-- listed role, superusers and the schema owner. Granted to dbmail_sender too, so a sender can ask at
-- start whether it may serve this database.
CREATE FUNCTION dbmail.require_sender() RETURNS void
LANGUAGE plpgsql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- log_event is granted to dbmail_sender: a sender that SenderRoles leaves out may not write events
-- either. (Events the other procedures log for users and admins are not affected.)
CREATE OR REPLACE FUNCTION dbmail.log_event(
  event_type text,
  description text,
  mailitem_id bigint DEFAULT NULL,
  account_id integer DEFAULT NULL,
  process_id integer DEFAULT NULL,
  sender_id text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- Checks and normalises one setting's value; raises naming the parameter when it is out of range.
-- STABLE since 000010: AdminRoles and SenderRoles name roles that must exist.
CREATE OR REPLACE FUNCTION dbmail.normalise_setting(parameter_name text, parameter_value text) RETURNS text
LANGUAGE plpgsql STABLE
AS $$
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
$$;

-- ---------------------------------------------------------------------------------------------------
-- Tables.
-- ---------------------------------------------------------------------------------------------------

-- Mail belongs to the role that sent it, not to its name: a role dropped and created again under the
-- same name is another role (another OID) and does not see the old one's mail, nor replay its
-- idempotency keys. The views and the delete procedure match both name and OID (an OID could in
-- principle be reused after the OID counter wraps around; both together cannot, short of that and the
-- same name). Items of roles that no longer exist, or sent as a dbmail group role (anonymous: every
-- member could SET ROLE to it), keep no OID: only admins see them.
ALTER TABLE dbmail.mailitems ADD COLUMN send_request_role oid;
UPDATE dbmail.mailitems m SET send_request_role = r.oid
FROM pg_catalog.pg_roles r
WHERE r.rolname = m.send_request_user AND r.rolname NOT IN ('dbmail_user', 'dbmail_admin', 'dbmail_sender');
DROP INDEX dbmail.mailitems_idempotency_key;
CREATE UNIQUE INDEX mailitems_idempotency_key ON dbmail.mailitems (send_request_role, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
-- MaxMailsPerUserPerDay counts dbmail.daily_mail_counts now; this index served only that count, and
-- cost every insert.
DROP INDEX dbmail.mailitems_user_date_idx;

-- MaxMailsPerUserPerDay's ledger: how many mails each role queued in each hour (UTC), kept 25 hours.
-- Deleting mail items does not touch it, so deleting one's mail does not reset the count. Written while
-- the limit is on (and filled from the mail items of the last 25 hours when it is turned on).
CREATE TABLE dbmail.daily_mail_counts (
  role_id oid NOT NULL,
  hour_start timestamptz NOT NULL,
  mails integer NOT NULL,
  PRIMARY KEY (role_id, hour_start)
);

-- Caller stamps: users could insert a stamp with a transaction id of their choosing (INSERT was granted
-- on that column so that DEFAULT VALUES is allowed); one for a future transaction was never cleaned
-- up. The grant moves to a column that means nothing, so every stamp column takes its default.
ALTER TABLE dbmail.caller_stamps ADD COLUMN inserted boolean DEFAULT true;
COMMENT ON COLUMN dbmail.caller_stamps.inserted IS
  'Means nothing: users may insert into this column only, so that INSERT ... DEFAULT VALUES is allowed and every other column takes its default';
REVOKE INSERT (transaction_id) ON dbmail.caller_stamps FROM dbmail_user;
GRANT INSERT (inserted) ON dbmail.caller_stamps TO dbmail_user;
-- Stamps are consumed in the transaction that makes them: committed ones are all leftovers.
DELETE FROM dbmail.caller_stamps;

-- AdminRoles may not take the calling admin's own rights away (nobody locks a database by accident);
-- turning MaxMailsPerUserPerDay on fills its ledger from the mail still queued or kept.
CREATE OR REPLACE FUNCTION dbmail.sysmail_configure_sp(
  parameter_name text DEFAULT NULL, parameter_value text DEFAULT NULL, description text DEFAULT NULL
) RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
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

-- ---------------------------------------------------------------------------------------------------
-- Addresses: parsed in one pass, counted against MaxRecipientsPerMail as they are parsed (the refusal
-- comes at the first address over the limit, not after the whole list), and refused where a mail
-- program would read them differently from how they are recorded.
-- ---------------------------------------------------------------------------------------------------

-- RFC 5322 addr-spec: a dot-atom or quoted-string local part, a dot-atom or [literal] domain. Non-ASCII
-- letters are allowed (RFC 6531). Returns the problem, or NULL when the address is valid. Since 000010
-- no < or > (allowed in a quoted local part or a domain literal by RFC 5322): nodemailer rewrites them,
-- so the mail would go to another address than the one recorded.
CREATE OR REPLACE FUNCTION dbmail.address_problem(address text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
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
$$;

-- The entries of a `;` list in which double-quoted strings (with \-escapes) may hold ; and , — in one
-- pass over the list: one regular expression finds the closed quoted strings (what is left outside them
-- must have no comma and no quote), another cuts the list into quoted strings, runs of other characters
-- and semicolons. Raises on a comma outside quotes (SQL Server's rule) and on a quote left open.
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

-- Parses one `;`-separated list (`a@x.org; "Doe, Jane" <jane@x.org>`) into
-- [{"name": ..., "address": ...}], raising an error that names the parameter and the offending entry.
-- A comma outside double quotes is refused, as in SQL Server. Empty entries (`a@x.org;`) are skipped.
-- counted addresses came before this list (to, then cc, then bcc); with max_count > 0 the address that
-- makes more than max_count raises MaxRecipientsPerMail's error at once. header_field: the list goes
-- into a header as given (from_address, reply_to), where a display name followed by a colon is group
-- syntax (`Team: <a@x.org>`), which mail programs read as a group: refused there. A display name may
-- have at most 256 characters.
CREATE FUNCTION dbmail.parse_addresses(parameter text, list text, counted bigint, max_count bigint,
  header_field boolean) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
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
$$;

-- One list, without a limit (operators' addresses, and anything else that is not a message's recipients).
CREATE OR REPLACE FUNCTION dbmail.parse_address_list(parameter text, list text) RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$
  SELECT dbmail.parse_addresses(parameter, list, 0, 0, false);
$$;

-- Exactly one address (from_address, reply_to, an account's e-mail and reply-to addresses), which goes
-- into a header as given.
CREATE OR REPLACE FUNCTION dbmail.parse_single_address(parameter text, value text) RETURNS jsonb
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

-- ---------------------------------------------------------------------------------------------------
-- Attachments.
-- ---------------------------------------------------------------------------------------------------

-- One attachment's name and size: a file name (not a path) without line breaks, an extension not in
-- ProhibitedExtensions (the last one, case-insensitive), at most MaxFileSize bytes. Since 000010 the
-- name is judged as a receiver reads it: Windows drops trailing dots and spaces and reads what follows
-- a colon as an alternate data stream (`x.exe::$DATA` is x.exe), and mail programs drop or change
-- invisible and space-like characters (`x.exe` followed by a no-break space, a zero-width space or NEL).
-- A name that a receiver would read differently is refused, so the extension checked is the one the
-- receiver sees.
CREATE OR REPLACE FUNCTION dbmail.check_attachment(parameter text, filename text, size bigint) RETURNS void
LANGUAGE plpgsql STABLE
AS $$
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
$$;

-- Reads the files of a `;` list, as the database server. The only path from dbmail to the file system:
-- SECURITY DEFINER, so it reads with the rights of the role that installed pg-dbmail, which needs
-- pg_read_server_files. Only absolute paths below a directory of AttachmentDirectories are read; `.` and
-- `..` components are refused so a path cannot climb out. (SQL cannot resolve symbolic links: keep the
-- attachment directories writable only by people trusted to place files there.)
-- Since 000010 only regular files with content are read, and never more than the size checked before
-- reading (+1, to notice a file that grew): pg_stat_file shows a FIFO, a device and a socket as a file
-- of size 0 (and so does an empty file, which cannot be told apart); opening a FIFO blocks the backend
-- in the kernel until a writer comes, beyond statement_timeout, pg_cancel_backend and
-- pg_terminate_backend; a device can be read without end. So nothing of size 0 is opened.
CREATE OR REPLACE FUNCTION dbmail.read_attachment_files(file_attachments text) RETURNS dbmail.attachment[]
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
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
$$;

-- ---------------------------------------------------------------------------------------------------
-- Queries: exactly one statement, run in the caller's session with the caller's rights and search_path;
-- formatted in time linear in the result, stopping as soon as the result passes MaxFileSize; and only
-- dbmail.send_with_query, which runs the query itself, can give queue_mail a query and its result.
-- ---------------------------------------------------------------------------------------------------

-- The old helpers: run_query did not pin search_path (for the query's sake; the caller's search_path
-- could then reach its own code), and the formatters sliced arrays and grew strings row by row, in time
-- quadratic in the result.
DROP FUNCTION dbmail.run_query(text, text, boolean, integer, text, boolean, boolean);
DROP FUNCTION dbmail.run_query_as_json(text, text, boolean, integer, text, boolean, boolean);
DROP FUNCTION dbmail.format_result(text[], boolean[], text[], integer, text, boolean, integer, text, boolean, boolean);
DROP FUNCTION dbmail.format_text(text[], boolean[], text[], integer, boolean, integer, text, boolean, boolean);
DROP FUNCTION dbmail.text_line(text[], integer[], boolean[], text, boolean);
DROP FUNCTION dbmail.format_csv(text[], text[], integer, boolean);
DROP FUNCTION dbmail.format_html(text[], boolean[], text[], integer, boolean);

-- MaxFileSize, which a query result may not pass, for the caller's session (which cannot read settings).
CREATE FUNCTION dbmail.query_result_limit() RETURNS bigint
LANGUAGE sql STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT s.paramvalue::bigint FROM dbmail.settings s WHERE s.paramname = 'MaxFileSize';
$$;

-- Runs `query` in the caller's session (SECURITY INVOKER: the caller's rights; its temporary tables are
-- visible), under the caller's search_path (caller_search_path, which sp_send_dbmail read), and keeps
-- its result in a temporary table, which is how its column names and types are learned. Everything
-- else here runs on the pinned search_path: the statements are built before the caller's is set, and
-- it is set back as soon as the query has run. The query is wrapped as a subquery, so it must be one
-- statement that returns rows; a cursor is opened on it first, because PostgreSQL cannot open one on
-- several statements and opening one runs nothing: a query that closes the parenthesis around it to add
-- statements of its own is refused before anything runs. Columns with the same name (SELECT a.id, b.id)
-- cannot be a table's: then each row is kept as JSON (json_rows), which keeps repeated keys, in order.
CREATE FUNCTION dbmail.run_query(query text, caller_search_path text, OUT relation regclass, OUT json_rows boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
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
$$;

-- A TEXT result's line longer than `width` characters, in pieces of `width` (sqlcmd wraps so). In time
-- linear in the line: substr() of text in a multibyte encoding walks the string from its start, so
-- cutting a long line with it takes time quadratic in its length. One byte per character: the bytes are
-- cut. Otherwise: one row per character, grouped.
CREATE FUNCTION dbmail.wrap_line(line text, width integer) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
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

-- One row of an HTML result: escaped values, numbers right-aligned, NULL in grey.
CREATE FUNCTION dbmail.html_row(cells text[], numeric_columns boolean[]) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT '<tr>' || array_to_string(ARRAY(
    SELECT format('<td style="%s%s">%s</td>', 'border:1px solid #d0d7de;padding:4px 8px',
                  CASE WHEN numeric_columns[k] THEN ';text-align:right' ELSE '' END,
                  COALESCE(dbmail.html_escape(cells[k]), '<span style="color:#8c959f">NULL</span>'))
    FROM generate_series(1, cardinality(cells)) k), '') || '</tr>';
$$;

-- Formats the result that run_query kept, as SQL Server's @query does, or NULL as soon as it is sure
-- the result has more than max_bytes bytes. Every pass reads the rows in the order the query returned
-- them, and each does work proportional to the rows it reads; the work stops at the limit:
--   TEXT (like sqlcmd): a header line and a dash line, columns padded to their width (numbers
--     right-aligned), NULL shown as NULL, values cut at 256 characters unless no_truncate, lines
--     wrapped at `width`, and "(N rows affected)". The widths need every row first: one pass adds up
--     each row as it will at least be shown (its values and separators; padding only adds to that) and
--     stops at the first row that passes max_bytes; then the widths; then the lines, counted as they
--     are made.
--   CSV (RFC 4180: quoted when needed, NULL empty, CRLF) and HTML (a table, values escaped): counted
--     row by row as they are made.
--   JSON: one pass adds up the rows' JSON and stops at the first that passes max_bytes; then json_agg.
-- Values are read cut to max_bytes + 1 characters (a text value is then read only that far): a value
-- longer than that makes the result longer than max_bytes anyway.
CREATE FUNCTION dbmail.format_query_result(relation regclass, json_rows boolean, result_format text, header boolean,
  width integer, separator text, no_padding boolean, no_truncate boolean, max_bytes bigint) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
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
  -- The stamp that tells queue_mail who is calling (see dbmail.caller_stamps).
  INSERT INTO dbmail.caller_stamps DEFAULT VALUES;
  RETURN dbmail.queue_mail(profile_name, recipients, copy_recipients, blind_copy_recipients, subject, body,
    body_format, importance, sensitivity, file_attachments, query, execute_query_database,
    attach_query_result_as_file, query_attachment_filename, query_result_header, query_result_width,
    query_result_separator, exclude_query_output, append_query_error, query_no_truncate,
    query_result_no_padding, from_address, reply_to, attachments, headers, send_at, idempotency_key,
    query_result_format, query_result);
END;
$$;

-- ---------------------------------------------------------------------------------------------------
-- Sending.
-- ---------------------------------------------------------------------------------------------------

-- MaxMailSize: refuses when the mail has grown to more than max_size bytes (0 = unlimited), naming the
-- parameter whose content pushed it over. Since 000010 addresses and headers count too.
CREATE OR REPLACE FUNCTION dbmail.check_mail_size(parameter text, value text, size bigint, max_size bigint) RETURNS void
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

-- Validates and queues one message, with its attachments and its query result, on behalf of the role
-- that called sp_send_dbmail (its stamp). SECURITY DEFINER because the tables are private; sp_send_dbmail,
-- which runs as the caller, is the public entry point. Since 000010:
--   - a dbmail group role (dbmail_user, dbmail_admin, dbmail_sender, after SET ROLE) cannot send;
--   - a query and its result come only from dbmail.send_with_query, which ran the query (a direct call
--     could otherwise record a result the query never gave);
--   - the item records the sending role's OID (send_request_role) besides its name;
--   - a replay of an idempotency_key locks the item it replays (FOR KEY SHARE), so that item cannot be
--     deleted before this transaction ends: the replay returns it, or, when it is gone, the call is
--     checked like any new mail;
--   - MaxMailSize counts the addresses (as given, with their display names) and the headers (names and
--     values) with the subject and the body before the lists are parsed, and each attachment's name and
--     content type with its content;
--   - MaxRecipientsPerMail is counted while the lists are parsed (the address over the limit raises);
--   - MaxMailsPerUserPerDay counts dbmail.daily_mail_counts.
CREATE OR REPLACE FUNCTION dbmail.queue_mail(
  profile_name text, recipients text, copy_recipients text, blind_copy_recipients text, subject text,
  body text, body_format text, importance text, sensitivity text, file_attachments text, query text,
  execute_query_database text, attach_query_result_as_file boolean, query_attachment_filename text,
  query_result_header boolean, query_result_width integer, query_result_separator text,
  exclude_query_output boolean, append_query_error boolean, query_no_truncate boolean,
  query_result_no_padding boolean, from_address text, reply_to text, attachments dbmail.attachment[],
  headers jsonb, send_at timestamptz, idempotency_key text, query_result_format text, query_result text
) RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- Every statement here (and in the helpers it calls) looks rows up by key, so a generic plan is as good
-- as a custom one; without this PostgreSQL re-plans several of them on every call (a quarter of the cost).
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
  sender name := dbmail.take_caller_stamp('sp_send_dbmail');
  sender_oid oid;
  call_stack text;
  own_frame text;
  to_list jsonb;
  cc_list jsonb;
  bcc_list jsonb;
  envelope jsonb;
  parsed_from jsonb;
  the_profile integer;
  new_id bigint;
  next_id bigint;
  files dbmail.attachment[] := '{}';
  result_bytes bytea;
  attached dbmail.attachment;
  format_name text := upper(btrim(query_result_format));
  -- The denial-of-service limits (0 = unlimited). A replay of an idempotency_key queues nothing, so it
  -- is not limited: it returns the item already queued.
  replay boolean;
  max_recipients bigint;
  max_size bigint;
  max_per_day bigint;
  header_size bigint := 0;
  fixed_size bigint;
  mail_size bigint;
  recent bigint;
  bucket_mails integer;
BEGIN
  IF sender IN ('dbmail_user', 'dbmail_admin', 'dbmail_sender') THEN
    PERFORM dbmail.raise_error('42501', 'caller', sender::text,
      'mail cannot be sent as a dbmail group role: it would be anonymous (every member of the role may SET ROLE '
      'to it and read it); RESET ROLE, or SET ROLE to a role of your own, first');
  END IF;
  IF query IS NOT NULL THEN
    -- Only send_with_query ran the query whose result this is. The call stack's first line is this
    -- function's frame, the second its caller's, each '<language''s words>dbmail.<name>(<argument
    -- types>)...' (whatever lc_messages says): only objects of schema dbmail are named so, and only its
    -- owner creates them.
    GET DIAGNOSTICS call_stack = PG_CONTEXT;
    own_frame := split_part(call_stack, E'\n', 1);
    IF strpos(own_frame, 'dbmail.queue_mail(') = 0
       OR NOT starts_with(split_part(call_stack, E'\n', 2),
                          left(own_frame, strpos(own_frame, 'dbmail.queue_mail(') - 1) || 'dbmail.send_with_query(') THEN
      PERFORM dbmail.raise_error('42501', 'query', query,
        'a query is run, and its result recorded, only through dbmail.sp_send_dbmail (queue_mail does not take one)');
    END IF;
  END IF;
  sender_oid := to_regrole(quote_ident(sender));
  IF sender_oid IS NULL THEN
    PERFORM dbmail.raise_error('42704', 'caller', sender::text, 'no such role (it was dropped meanwhile)');
  END IF;
  -- Every lookup below is a statement of its own, and each costs as much as the checks around it: they
  -- are as few as the work allows (the three limits in one statement, the replay probe only with a key).
  replay := false;
  IF idempotency_key IS NOT NULL THEN
    -- Locked until this transaction ends: a concurrent delete of the item waits (or, if it committed
    -- first, the item is not found and this is a new mail, checked as one).
    PERFORM FROM dbmail.mailitems m
    WHERE m.send_request_role = sender_oid AND m.idempotency_key = queue_mail.idempotency_key
    FOR KEY SHARE;
    replay := FOUND;
  END IF;
  SELECT max(s.paramvalue) FILTER (WHERE s.paramname = 'MaxRecipientsPerMail')::bigint,
         max(s.paramvalue) FILTER (WHERE s.paramname = 'MaxMailSize')::bigint,
         max(s.paramvalue) FILTER (WHERE s.paramname = 'MaxMailsPerUserPerDay')::bigint
  INTO max_recipients, max_size, max_per_day
  FROM dbmail.settings s
  WHERE s.paramname IN ('MaxRecipientsPerMail', 'MaxMailSize', 'MaxMailsPerUserPerDay');
  IF replay THEN
    max_recipients := 0;
    max_size := 0;
    max_per_day := 0;
  END IF;
  PERFORM dbmail.check_send_arguments(subject, body, COALESCE(body_format, 'TEXT'), importance, sensitivity,
    query, execute_query_database, attach_query_result_as_file, query_result_header, query_result_width,
    query_result_separator, exclude_query_output, append_query_error, query_no_truncate,
    query_result_no_padding, file_attachments, attachments, headers, idempotency_key, query_result_format);

  -- MaxMailSize, before anything is parsed: subject, the address lists as given, the headers and the body.
  IF headers IS NOT NULL THEN
    SELECT COALESCE(sum(octet_length(h.key) + octet_length(h.value)), 0) INTO header_size
    FROM jsonb_each_text(headers) h;
  END IF;
  fixed_size := COALESCE(octet_length(subject), 0) + COALESCE(octet_length(recipients), 0)
    + COALESCE(octet_length(copy_recipients), 0) + COALESCE(octet_length(blind_copy_recipients), 0)
    + COALESCE(octet_length(from_address), 0) + COALESCE(octet_length(reply_to), 0) + header_size;
  mail_size := fixed_size + COALESCE(octet_length(body), 0);
  IF max_size > 0 AND mail_size > max_size THEN
    -- Name what pushed it over, in this order.
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

  -- MaxRecipientsPerMail: every address of the three lists counts, as it is parsed; the list that goes
  -- over is named.
  to_list := dbmail.parse_addresses('recipients', recipients, 0, max_recipients, false);
  cc_list := dbmail.parse_addresses('copy_recipients', copy_recipients, jsonb_array_length(to_list),
    max_recipients, false);
  bcc_list := dbmail.parse_addresses('blind_copy_recipients', blind_copy_recipients,
    jsonb_array_length(to_list) + jsonb_array_length(cc_list), max_recipients, false);
  IF to_list = '[]' AND cc_list = '[]' AND bcc_list = '[]' THEN
    PERFORM dbmail.raise_error('22004', 'recipients, copy_recipients, blind_copy_recipients', NULL,
      'a message needs at least one recipient');
  END IF;
  envelope := jsonb_build_object('to', to_list, 'cc', cc_list, 'bcc', bcc_list);
  IF from_address IS NOT NULL THEN
    parsed_from := dbmail.parse_single_address('from_address', from_address);
  END IF;
  IF reply_to IS NOT NULL THEN
    PERFORM dbmail.parse_single_address('reply_to', reply_to);
  END IF;
  the_profile := dbmail.resolve_profile(sender, profile_name);

  -- MaxMailsPerUserPerDay (SQL Server's planned error 14657): the mails this role queued in this hour
  -- (UTC) and the 24 before it, from the ledger (so never fewer than in the last 24 hours). The
  -- per-role lock makes concurrent sends count each other. Admins are exempt.
  IF max_per_day > 0 AND NOT dbmail.is_admin(sender) THEN
    PERFORM pg_advisory_xact_lock(hashtext('dbmail.MaxMailsPerUserPerDay'), hashtext(sender_oid::text));
    SELECT COALESCE(sum(c.mails), 0) INTO recent FROM dbmail.daily_mail_counts c
    WHERE c.role_id = sender_oid AND c.hour_start >= date_trunc('hour', now(), 'UTC') - interval '24 hours';
    IF recent >= max_per_day THEN
      PERFORM dbmail.raise_error('54000', 'send_request_user', sender, format(
        'has queued %s mails in the last 24 hours, the MaxMailsPerUserPerDay limit (%s); try again later or ask an admin to raise it',
        recent, max_per_day));
    END IF;
  END IF;

  -- MaxMailSize, as the mail grows: each attachment (name, content type and content), then the query result.
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
    mail_size := mail_size + octet_length(attached.filename) + octet_length(attached.content_type)
      + octet_length(attached.content);
    PERFORM dbmail.check_mail_size('attachments', attached.filename, mail_size, max_size);
    files := files || attached;
  END LOOP;
  IF NULLIF(btrim(file_attachments), '') IS NOT NULL THEN
    files := files || dbmail.read_attachment_files(file_attachments);
    mail_size := fixed_size + COALESCE(octet_length(body), 0)
      + (SELECT COALESCE(sum(octet_length(f.filename) + octet_length(f.content_type) + octet_length(f.content)), 0)
         FROM unnest(files) f);
    PERFORM dbmail.check_mail_size('file_attachments', file_attachments, mail_size, max_size);
  END IF;
  IF query IS NOT NULL AND query_result IS NOT NULL THEN
    result_bytes := convert_to(query_result, 'UTF8');
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
      -- An HTML table inline makes the whole body HTML.
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
  END IF;

  next_id := nextval('dbmail.mailitems_mailitem_id_seq');
  INSERT INTO dbmail.mailitems AS m (
    mailitem_id, profile_id, recipients, copy_recipients, blind_copy_recipients, envelope, subject, body,
    body_format, importance, sensitivity, file_attachments, query, execute_query_database,
    attach_query_result_as_file, query_result_header, query_result_width, query_result_separator,
    exclude_query_output, append_query_error, query_no_truncate, query_result_no_padding,
    query_attachment_filename, query_result_format, from_address, reply_to, headers, send_at,
    idempotency_key, message_id, next_attempt_at, send_request_user, send_request_role, last_mod_user)
  OVERRIDING SYSTEM VALUE
  VALUES (
    next_id, the_profile, NULLIF(btrim(recipients), ''), NULLIF(btrim(copy_recipients), ''),
    NULLIF(btrim(blind_copy_recipients), ''), envelope,
    COALESCE(NULLIF(subject, ''), 'PostgreSQL Message'), body,
    upper(btrim(COALESCE(body_format, 'TEXT'))), upper(btrim(importance)), upper(btrim(sensitivity)),
    file_attachments, query, execute_query_database, attach_query_result_as_file, query_result_header,
    query_result_width, query_result_separator, exclude_query_output, append_query_error,
    query_no_truncate, query_result_no_padding, query_attachment_filename,
    upper(btrim(query_result_format)), NULLIF(btrim(from_address), ''), NULLIF(btrim(reply_to), ''),
    headers, send_at, idempotency_key, dbmail.message_id_for(next_id, the_profile, parsed_from),
    GREATEST(COALESCE(send_at, now()), now()), sender, sender_oid, sender)
  ON CONFLICT (send_request_role, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
  RETURNING m.mailitem_id INTO new_id;

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
    INSERT INTO dbmail.daily_mail_counts AS c (role_id, hour_start, mails)
    VALUES (sender_oid, date_trunc('hour', now(), 'UTC'), 1)
    ON CONFLICT ON CONSTRAINT daily_mail_counts_pkey DO UPDATE SET mails = c.mails + 1
    RETURNING c.mails INTO bucket_mails;
    IF bucket_mails = 1 THEN
      -- A new hour for this role: forget what no count looks at any more.
      DELETE FROM dbmail.daily_mail_counts c WHERE c.hour_start < date_trunc('hour', now(), 'UTC') - interval '24 hours';
    END IF;
  END IF;
  IF cardinality(files) > 0 THEN
    INSERT INTO dbmail.attachments (mailitem_id, filename, content_type, filesize, attachment, last_mod_user)
    SELECT new_id, f.filename, f.content_type, octet_length(f.content), f.content, sender
    FROM unnest(files) WITH ORDINALITY AS f(filename, content, content_type, n)
    ORDER BY f.n;
  END IF;
  IF send_at IS NULL OR send_at <= now() THEN
    PERFORM pg_notify('dbmail_queue', '');
  END IF;
  RETURN new_id;
END;
$$;

-- The public entry point. It runs with the caller's rights (SECURITY INVOKER). Without a query it stamps
-- the caller's current_user for queue_mail, which does the rest; with one it hands over to
-- send_with_query, passing the caller's search_path for the query (no search_path is pinned here, so
-- current_setting reads the caller's; every name below is qualified).
CREATE OR REPLACE FUNCTION dbmail.sp_send_dbmail(
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
DECLARE
  new_id bigint;
BEGIN
  IF query IS NULL THEN
    -- The stamp that tells queue_mail who is calling (see dbmail.caller_stamps).
    INSERT INTO dbmail.caller_stamps DEFAULT VALUES;
    new_id := dbmail.queue_mail(profile_name, recipients, copy_recipients, blind_copy_recipients, subject, body,
      body_format, importance, sensitivity, file_attachments, query, execute_query_database,
      attach_query_result_as_file, query_attachment_filename, query_result_header, query_result_width,
      query_result_separator, exclude_query_output, append_query_error, query_no_truncate,
      query_result_no_padding, from_address, reply_to, attachments, headers, send_at, idempotency_key,
      query_result_format, NULL);
  ELSE
    new_id := dbmail.send_with_query(profile_name, recipients, copy_recipients, blind_copy_recipients, subject,
      body, body_format, importance, sensitivity, file_attachments, query, execute_query_database,
      attach_query_result_as_file, query_attachment_filename, query_result_header, query_result_width,
      query_result_separator, exclude_query_output, append_query_error, query_no_truncate,
      query_result_no_padding, from_address, reply_to, attachments, headers, send_at, idempotency_key,
      query_result_format, pg_catalog.current_setting('search_path'));
  END IF;
  -- What SQL Server prints; exclude_query_output silences it.
  IF NOT COALESCE(exclude_query_output, false) THEN
    RAISE NOTICE 'Mail (Id: %) queued.', new_id;
  END IF;
  RETURN new_id;
END;
$$;

-- Deletes mail items; the caller's own (by role OID and name since 000010), or any for an admin.
CREATE OR REPLACE FUNCTION dbmail.delete_mailitems(sent_before timestamptz, sent_status text)
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

-- ---------------------------------------------------------------------------------------------------
-- Views: a user's rows are those of the role itself (OID and name), not of whoever had its name before.
-- ---------------------------------------------------------------------------------------------------

CREATE OR REPLACE VIEW dbmail.sysmail_allitems WITH (security_barrier) AS
SELECT m.mailitem_id, m.profile_id, m.recipients, m.copy_recipients, m.blind_copy_recipients, m.subject,
       m.body, m.body_format, m.importance, m.sensitivity, m.file_attachments, m.attachment_encoding,
       m.query, m.execute_query_database, m.attach_query_result_as_file, m.query_result_header,
       m.query_result_width, m.query_result_separator, m.exclude_query_output, m.append_query_error,
       m.send_request_date, m.send_request_user, m.sent_account_id, m.sent_status, m.sent_date,
       m.last_mod_date, m.last_mod_user,
       -- Beyond SQL Server:
       m.from_address, m.reply_to, m.headers, m.send_at, m.idempotency_key, m.query_result_format,
       m.message_id, m.send_attempts, m.last_error,
       CASE WHEN m.sent_status IN ('unsent', 'retrying') THEN m.next_attempt_at END AS next_attempt_at,
       m.sent_by, m.smtp_response
FROM dbmail.mailitems m
WHERE (m.send_request_user = current_user
       AND m.send_request_role = (SELECT pg_catalog.to_regrole(pg_catalog.quote_ident(current_user))::oid))
   OR (SELECT dbmail.is_admin(current_user));

CREATE OR REPLACE VIEW dbmail.sysmail_event_log WITH (security_barrier) AS
SELECT e.log_id, e.event_type, e.log_date, e.description, e.process_id, e.mailitem_id, e.account_id,
       e.last_mod_date, e.last_mod_user, e.sender_id
FROM dbmail.event_log e
WHERE (SELECT dbmail.is_admin(current_user))
   OR e.mailitem_id IN (SELECT m.mailitem_id FROM dbmail.mailitems m
                        WHERE m.send_request_user = current_user
                          AND m.send_request_role = (SELECT pg_catalog.to_regrole(pg_catalog.quote_ident(current_user))::oid));

CREATE OR REPLACE VIEW dbmail.sysmail_mailattachments WITH (security_barrier) AS
SELECT a.attachment_id, a.mailitem_id, a.filename, a.filesize, a.attachment, a.last_mod_date,
       a.last_mod_user, a.content_type
FROM dbmail.attachments a
WHERE (SELECT dbmail.is_admin(current_user))
   OR a.mailitem_id IN (SELECT m.mailitem_id FROM dbmail.mailitems m
                        WHERE m.send_request_user = current_user
                          AND m.send_request_role = (SELECT pg_catalog.to_regrole(pg_catalog.quote_ident(current_user))::oid));

-- Nothing this file added is anyone's until granted below (PostgreSQL grants EXECUTE to PUBLIC).
REVOKE ALL ON ALL TABLES IN SCHEMA dbmail FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA dbmail FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------------
-- AdminRoles in every admin procedure: each one's first step is dbmail.require_admin() (before any of
-- its own lookups, so a refused caller learns nothing of this database's configuration). The admin
-- procedures are the SECURITY DEFINER functions granted to dbmail_admin and to neither dbmail_user nor
-- dbmail_sender (sysmail_help_status_sp and schema_version, which senders call too, say only whether
-- delivery is started and the schema version); a test checks each calls require_admin. Added to the
-- stored definitions, so this file does not repeat their bodies.
-- ---------------------------------------------------------------------------------------------------
DO $$
DECLARE
  f record;
  definition text;
  patched text;
BEGIN
  FOR f IN
    SELECT p.oid, p.oid::regprocedure AS signature, l.lanname
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang
    WHERE p.pronamespace = 'dbmail'::regnamespace AND p.prosecdef
      AND has_function_privilege('dbmail_admin', p.oid, 'EXECUTE')
      AND NOT has_function_privilege('dbmail_user', p.oid, 'EXECUTE')
      AND NOT has_function_privilege('dbmail_sender', p.oid, 'EXECUTE')
      AND strpos(p.prosrc, 'dbmail.require_admin()') = 0
    ORDER BY p.oid::regprocedure::text
  LOOP
    definition := pg_catalog.pg_get_functiondef(f.oid);
    IF f.lanname = 'sql' THEN
      patched := regexp_replace(definition, E'\nAS \\$function\\$\n',
        E'\nAS $function$\n  SELECT dbmail.require_admin();  -- AdminRoles (000010)\n');
    ELSIF strpos(definition, E'\nAS $function$\nDECLARE\n') > 0 THEN
      patched := regexp_replace(definition, E'\nAS \\$function\\$\nDECLARE\n',
        E'\nAS $function$\nDECLARE\n  admin_checked boolean := dbmail.require_admin();  -- AdminRoles (000010)\n');
    ELSE
      patched := regexp_replace(definition, E'\nAS \\$function\\$\nBEGIN\n',
        E'\nAS $function$\nBEGIN\n  PERFORM dbmail.require_admin();  -- AdminRoles (000010)\n');
    END IF;
    IF patched = definition THEN
      RAISE EXCEPTION '000010_input_hardening: cannot add the AdminRoles check to %', f.signature;
    END IF;
    EXECUTE patched;
  END LOOP;
END
$$;

-- ---------------------------------------------------------------------------------------------------
-- Privileges of what this file added or changed.
-- ---------------------------------------------------------------------------------------------------
-- Called by sp_send_dbmail in the caller's context: the query path runs the caller's own query with the
-- caller's rights; query_result_limit (SECURITY DEFINER) reads MaxFileSize.
GRANT EXECUTE ON FUNCTION
  dbmail.send_with_query(text, text, text, text, text, text, text, text, text, text, text, text, boolean, text,
    boolean, integer, text, boolean, boolean, boolean, boolean, text, text, dbmail.attachment[], jsonb,
    timestamptz, text, text, text),
  dbmail.run_query(text, text),
  dbmail.format_query_result(regclass, boolean, text, boolean, integer, text, boolean, boolean, bigint),
  dbmail.wrap_line(text, integer),
  dbmail.html_row(text[], boolean[]),
  dbmail.query_result_limit()
TO dbmail_user;
-- A sender may ask whether SenderRoles lets it serve this database.
GRANT EXECUTE ON FUNCTION dbmail.require_sender() TO dbmail_sender;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(10, 'input_hardening', '087a695d28c1b3be32cd1677cbce62f4f214db3c11f728d887267273d0f69d9f');
