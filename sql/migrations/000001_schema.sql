-- pg-dbmail 000001: the schema, the three roles, and the tables.
--
-- Everything lives in schema dbmail. Tables are private: users, admins and the sender reach them only
-- through the functions and views of the later files (000005 lists every privilege in one place).
-- Apply with `dbmail migrate`, or with `psql -v ON_ERROR_STOP=1 -1 -f FILE` on each file in order: each
-- file starts with a guard and ends by recording itself in dbmail.migrations, either way.

-- The guard. Later files call dbmail.begin_migration (below); this one cannot, as nothing exists yet.
-- It waits for any other migrator (`dbmail migrate` holds this lock for its whole run; a session that
-- holds it gets it again at once), then refuses to run twice.
DO $$
BEGIN
  PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('pg-dbmail migrations', 0));
  IF pg_catalog.to_regclass('dbmail.migrations') IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '55000', MESSAGE = '000001_schema is already applied to this database';
  ELSIF pg_catalog.to_regnamespace('dbmail') IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '55000',
      MESSAGE = '000001_schema: schema dbmail exists already, but was not installed by these migrations';
  END IF;
END
$$;

CREATE SCHEMA dbmail;
COMMENT ON SCHEMA dbmail IS 'pg-dbmail: Database Mail for PostgreSQL';
REVOKE ALL ON SCHEMA dbmail FROM PUBLIC;

-- Roles are cluster-wide: a second database's install finds them present, and two installs running at
-- once may race to create one (then the loser sees a unique violation on pg_authid).
DO $$
DECLARE
  role_name text;
BEGIN
  FOREACH role_name IN ARRAY ARRAY['dbmail_user', 'dbmail_admin', 'dbmail_sender'] LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
      BEGIN
        EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', role_name);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
      END;
    END IF;
  END LOOP;
END
$$;
COMMENT ON ROLE dbmail_user IS 'pg-dbmail: may send mail and see its own items and events';
COMMENT ON ROLE dbmail_admin IS 'pg-dbmail: configures Database Mail and sees every item and event';
COMMENT ON ROLE dbmail_sender IS 'pg-dbmail: what the sender process logs in as: claims and delivers mail';
-- Admins can send too, with any profile (as sysadmin can in SQL Server).
GRANT dbmail_user TO dbmail_admin;

-- Applied migrations: each file records itself with its last statement (dbmail.record_migration), in
-- its own transaction, whether `dbmail migrate` or `psql -1 -f` runs it.
CREATE TABLE dbmail.migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  checksum text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  applied_by name NOT NULL DEFAULT current_user
);

-- The first statement of every later file: waits for any other migrator (the advisory lock `dbmail
-- migrate` holds for its whole run; a session that holds it gets it again at once), then refuses a file
-- that is already applied, or whose predecessor is not, before the file changes anything. Called by
-- whoever applies the migrations (the owner of schema dbmail, or a superuser), from any search_path.
CREATE FUNCTION dbmail.begin_migration(version integer, name text, previous_name text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
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
REVOKE ALL ON FUNCTION dbmail.begin_migration(integer, text, text) FROM PUBLIC;

-- The last statement of every file: records it. The checksum is the sha256 of the file's text above
-- that statement (`npm run migrations:seal` writes it), so `dbmail migrate` accepts a database installed
-- with psql, and refuses one whose files changed after they were applied.
CREATE FUNCTION dbmail.record_migration(version integer, name text, checksum text) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  INSERT INTO dbmail.migrations (version, name, checksum) VALUES ($1, $2, $3);
$$;
REVOKE ALL ON FUNCTION dbmail.record_migration(integer, text, text) FROM PUBLIC;

-- One row: whether delivery is started, and this installation's identity (part of every Message-ID).
CREATE TABLE dbmail.system_state (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  started boolean NOT NULL DEFAULT true,
  installation_id uuid NOT NULL DEFAULT gen_random_uuid(),
  last_mod_date timestamptz NOT NULL DEFAULT now(),
  last_mod_user name NOT NULL DEFAULT current_user
);
INSERT INTO dbmail.system_state DEFAULT VALUES;

CREATE TABLE dbmail.settings (
  paramname text PRIMARY KEY,
  paramvalue text NOT NULL,
  description text,
  last_mod_date timestamptz NOT NULL DEFAULT now(),
  last_mod_user name NOT NULL DEFAULT current_user
);
INSERT INTO dbmail.settings (paramname, paramvalue, description) VALUES
  ('AccountRetryAttempts', '1', 'Number of retry rounds over all accounts of the profile after the first'),
  ('AccountRetryDelay', '60', 'Seconds to wait after all accounts failed before trying them all again'),
  ('DatabaseMailExeMinimumLifeTime', '600', 'Seconds an idle sender started with --exit-when-idle stays up'),
  ('DefaultAttachmentEncoding', 'MIME', 'Attachment encoding (only MIME)'),
  ('MaxFileSize', '1000000', 'Maximum bytes per attachment (files, in-memory, query results)'),
  ('ProhibitedExtensions', 'exe,dll,vbs,js', 'Attachment extensions that may not be sent (comma list)'),
  ('LoggingLevel', '2', 'Event log level: 1 errors; 2 + warnings and information; 3 + success and verbose'),
  ('AttachmentDirectories', '', 'Directories file_attachments may read from (; list, empty = none)'),
  ('UnknownOutcomePolicy', 'retry',
   'A mail whose sender died before reporting its outcome: retry (send again, same Message-ID) or fail'),
  ('MaxMailsPerUserPerDay', '0', 'Mails one role may queue in 24 hours (0 = unlimited; admins exempt)'),
  ('MaxRecipientsPerMail', '100', 'Addresses per mail, to, cc and bcc together (0 = unlimited)'),
  ('MaxMailSize', '10485760', 'Maximum bytes per mail: subject, body and all attachments (0 = unlimited)');

CREATE TABLE dbmail.accounts (
  account_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  description text,
  email_address text NOT NULL,
  display_name text,
  replyto_address text,
  mailserver_type text NOT NULL DEFAULT 'SMTP' CHECK (mailserver_type = 'SMTP'),
  mailserver_name text NOT NULL,
  port integer NOT NULL DEFAULT 25 CHECK (port BETWEEN 1 AND 65535),
  username text,
  use_default_credentials boolean NOT NULL DEFAULT false,
  security text NOT NULL DEFAULT 'none' CHECK (security IN ('none', 'starttls', 'tls')),
  timeout integer CHECK (timeout > 0),
  tls_reject_unauthorized boolean NOT NULL DEFAULT true,
  last_mod_datetime timestamptz NOT NULL DEFAULT now(),
  last_mod_user name NOT NULL DEFAULT current_user
);
CREATE UNIQUE INDEX accounts_name_key ON dbmail.accounts (lower(name));

-- Secrets apart from the account, so no view or grant on accounts can ever expose them. Only the owner
-- and, through dbmail.sender_accounts(), the sender read this table.
CREATE TABLE dbmail.account_secrets (
  account_id integer PRIMARY KEY REFERENCES dbmail.accounts ON DELETE CASCADE,
  password text NOT NULL
);

CREATE TABLE dbmail.profiles (
  profile_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  description text,
  -- The account that last sent successfully for this profile: new mail tries it first.
  last_success_account_id integer REFERENCES dbmail.accounts ON DELETE SET NULL,
  last_mod_datetime timestamptz NOT NULL DEFAULT now(),
  last_mod_user name NOT NULL DEFAULT current_user
);
CREATE UNIQUE INDEX profiles_name_key ON dbmail.profiles (lower(name));

CREATE TABLE dbmail.profile_accounts (
  profile_id integer NOT NULL REFERENCES dbmail.profiles ON DELETE CASCADE,
  account_id integer NOT NULL REFERENCES dbmail.accounts ON DELETE CASCADE,
  sequence_number integer NOT NULL,
  last_mod_datetime timestamptz NOT NULL DEFAULT now(),
  last_mod_user name NOT NULL DEFAULT current_user,
  PRIMARY KEY (profile_id, account_id)
);
CREATE INDEX profile_accounts_account_idx ON dbmail.profile_accounts (account_id);

-- principal_id is a role's OID, or 0 for public (every dbmail_user member).
CREATE TABLE dbmail.principal_profiles (
  profile_id integer NOT NULL REFERENCES dbmail.profiles ON DELETE CASCADE,
  principal_id oid NOT NULL,
  is_default boolean NOT NULL DEFAULT false,
  last_mod_datetime timestamptz NOT NULL DEFAULT now(),
  last_mod_user name NOT NULL DEFAULT current_user,
  PRIMARY KEY (profile_id, principal_id)
);
CREATE UNIQUE INDEX principal_profiles_one_default ON dbmail.principal_profiles (principal_id) WHERE is_default;

-- The closed sets of values a mail item carries. Domains rather than CHECK constraints on the table: a
-- table's CHECK constraints are parsed again from their stored text by every INSERT or UPDATE
-- statement (a tenth of an sp_send_dbmail call), a domain's stay parsed in the session's type cache.
-- Clients see plain text (PostgreSQL describes a domain column by its base type).
CREATE DOMAIN dbmail.body_format AS text CHECK (VALUE IN ('TEXT', 'HTML'));
CREATE DOMAIN dbmail.importance AS text CHECK (VALUE IN ('LOW', 'NORMAL', 'HIGH'));
CREATE DOMAIN dbmail.sensitivity AS text CHECK (VALUE IN ('NORMAL', 'PERSONAL', 'PRIVATE', 'CONFIDENTIAL'));
CREATE DOMAIN dbmail.sent_status AS text CHECK (VALUE IN ('unsent', 'sending', 'retrying', 'sent', 'failed'));

-- The queue and the audit copy of every message.
CREATE TABLE dbmail.mailitems (
  mailitem_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  profile_id integer NOT NULL,
  recipients text,
  copy_recipients text,
  blind_copy_recipients text,
  -- The three lists parsed once at enqueue: {"to": [{"name": .., "address": ..}], "cc": [..], "bcc": [..]}.
  envelope jsonb NOT NULL,
  subject text NOT NULL,
  body text,
  body_format dbmail.body_format NOT NULL DEFAULT 'TEXT',
  importance dbmail.importance NOT NULL DEFAULT 'NORMAL',
  sensitivity dbmail.sensitivity NOT NULL DEFAULT 'NORMAL',
  file_attachments text,
  attachment_encoding text NOT NULL DEFAULT 'MIME',
  query text,
  execute_query_database text,
  attach_query_result_as_file boolean NOT NULL DEFAULT false,
  query_result_header boolean NOT NULL DEFAULT true,
  query_result_width integer NOT NULL DEFAULT 256,
  query_result_separator text NOT NULL DEFAULT ' ',
  exclude_query_output boolean NOT NULL DEFAULT false,
  append_query_error boolean NOT NULL DEFAULT false,
  query_no_truncate boolean NOT NULL DEFAULT false,
  query_result_no_padding boolean NOT NULL DEFAULT false,
  query_attachment_filename text,
  query_result_format text NOT NULL DEFAULT 'TEXT',
  from_address text,
  reply_to text,
  headers jsonb,
  send_at timestamptz,
  idempotency_key text,
  -- Fixed at enqueue so every attempt, by any sender, carries the same Message-ID.
  message_id text NOT NULL,
  send_request_date timestamptz NOT NULL DEFAULT now(),
  send_request_user name NOT NULL,
  sent_account_id integer,
  sent_status dbmail.sent_status NOT NULL DEFAULT 'unsent',
  sent_date timestamptz,
  -- Rounds over the profile's accounts made so far.
  send_attempts integer NOT NULL DEFAULT 0,
  -- When an unsent or retrying item may next be claimed (send_at, or the end of AccountRetryDelay).
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  -- The sender holding a sending item, and until when; an expired lease makes the item claimable again.
  lease_owner text,
  lease_expires_at timestamptz,
  last_error text,
  smtp_response text,
  sent_by text,
  last_mod_date timestamptz NOT NULL DEFAULT now(),
  last_mod_user name NOT NULL
);
-- The claim's two probes: due work in order, and expired leases. Both stay small however large the history.
CREATE INDEX mailitems_due_idx ON dbmail.mailitems (next_attempt_at, mailitem_id)
  WHERE sent_status IN ('unsent', 'retrying');
CREATE INDEX mailitems_leased_idx ON dbmail.mailitems (lease_expires_at) WHERE sent_status = 'sending';
CREATE INDEX mailitems_user_idx ON dbmail.mailitems (send_request_user, mailitem_id);
-- MaxMailsPerUserPerDay counts one role's items of the last 24 hours with an index-only scan.
CREATE INDEX mailitems_user_date_idx ON dbmail.mailitems (send_request_user, send_request_date);
CREATE INDEX mailitems_request_date_idx ON dbmail.mailitems (send_request_date);
CREATE INDEX mailitems_profile_pending_idx ON dbmail.mailitems (profile_id)
  WHERE sent_status IN ('unsent', 'sending', 'retrying');
CREATE UNIQUE INDEX mailitems_idempotency_key ON dbmail.mailitems (send_request_user, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
-- No statistics on the status: a queue's mix of statuses changes faster than ANALYZE samples it. Sampled
-- while the queue is idle (as autovacuum usually finds it), they say no item is unsent or sending, so
-- every partial index above looks empty and the planner may answer the claim's probes with a full
-- scan of mailitems_profile_pending_idx plus a sort: every pending item read to take a batch. Without
-- them it assumes a small share per status and keeps to the index whose key answers the probe.
ALTER TABLE dbmail.mailitems ALTER COLUMN sent_status SET STATISTICS 0;

CREATE TABLE dbmail.attachments (
  attachment_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  mailitem_id bigint NOT NULL REFERENCES dbmail.mailitems ON DELETE CASCADE,
  filename text NOT NULL,
  content_type text,
  filesize bigint NOT NULL,
  attachment bytea NOT NULL,
  last_mod_date timestamptz NOT NULL DEFAULT now(),
  last_mod_user name NOT NULL
);
CREATE INDEX attachments_mailitem_idx ON dbmail.attachments (mailitem_id);
-- Stored out of line and uncompressed, so a sender can read a large attachment piece by piece
-- (dbmail.sender_attachment_chunk): substring() of an uncompressed TOAST value reads only the chunks
-- it needs. Attachments are mostly compressed formats anyway (PDF, ZIP, images).
ALTER TABLE dbmail.attachments ALTER COLUMN attachment SET STORAGE EXTERNAL;

-- No foreign key to mailitems: the log outlives deleted items, as in SQL Server.
CREATE TABLE dbmail.event_log (
  log_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_type text NOT NULL CHECK (event_type IN ('success', 'information', 'warning', 'error')),
  log_date timestamptz NOT NULL DEFAULT clock_timestamp(),
  description text NOT NULL,
  process_id integer,
  mailitem_id bigint,
  account_id integer,
  sender_id text,
  last_mod_date timestamptz NOT NULL DEFAULT clock_timestamp(),
  last_mod_user name NOT NULL
);
CREATE INDEX event_log_mailitem_idx ON dbmail.event_log (mailitem_id) WHERE mailitem_id IS NOT NULL;
CREATE INDEX event_log_date_idx ON dbmail.event_log (log_date);

-- Who is calling, for the SECURITY DEFINER functions that act for a user (which see their owner as
-- current_user). The public entry point runs as the caller and inserts a row here; PostgreSQL fills
-- role_name with that current_user (users may insert only default values), and the definer function
-- takes the newest row of its own backend and transaction. A row cannot be made for another role.
CREATE TABLE dbmail.caller_stamps (
  stamp_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  role_name name NOT NULL DEFAULT current_user,
  backend_pid integer NOT NULL DEFAULT pg_backend_pid(),
  transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX caller_stamps_backend_idx ON dbmail.caller_stamps (backend_pid, transaction_id, stamp_id);

-- Live sender processes: a heartbeat every few seconds; stopped_at set on a clean exit.
CREATE TABLE dbmail.senders (
  sender_id text PRIMARY KEY,
  hostname text,
  process_id integer,
  version text,
  started_at timestamptz NOT NULL DEFAULT now(),
  last_heartbeat timestamptz NOT NULL DEFAULT now(),
  -- When a claim last found nothing to do (sysmail_help_queue_sp's last_empty_rowset_time).
  last_empty_claim_at timestamptz,
  stopped_at timestamptz
);

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(1, 'schema', 'e7acc62810dfa181bf750fdfae6670d11b223df0fb0e8301d32fc0b0848c708f');
