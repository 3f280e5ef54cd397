-- pg-dbmail 000002: the domains and the tables. All private: only their owner reads or writes them; the
-- functions of the later files do it for everyone else.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(2, 'tables', 'schema');

-- A mail item's status, and an operator's pager times. Domains rather than CHECK constraints on the
-- table: a table's CHECK constraints are parsed again from their stored text by every INSERT or UPDATE
-- statement (a tenth of an sp_send_dbmail call), a domain's stay parsed in the session's type cache; and
-- one domain states a rule that several columns share once. Clients see plain text or integers
-- (PostgreSQL describes a domain column by its base type).
CREATE DOMAIN dbmail.sent_status AS text CHECK (VALUE IN ('unsent', 'sending', 'retrying', 'sent', 'failed'));
-- A time of day as SQL Server Agent writes it: HHMMSS on a 24-hour clock (090000 = 9:00), 0 to 235959.
CREATE DOMAIN dbmail.pager_time AS integer
  CHECK (VALUE BETWEEN 0 AND 235959 AND VALUE % 10000 < 6000 AND VALUE % 100 < 60);

-- One row: whether delivery is started, and this installation's identity (part of every Message-ID).
CREATE TABLE dbmail.system_state (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  started boolean NOT NULL DEFAULT true,
  installation_id uuid NOT NULL DEFAULT gen_random_uuid(),
  last_mod_date timestamptz NOT NULL DEFAULT now(),
  last_mod_user name NOT NULL DEFAULT current_user,
  -- The WAL timeline the server writes on (the first 8 digits of its WAL file names), as senders last saw
  -- it, and since when: a promoted standby starts a new one (dbmail.note_timeline).
  timeline text,
  timeline_since timestamptz,
  -- What every sp_send_dbmail call needs from settings and principal_profiles, kept here by triggers
  -- (000009, refresh_send_defaults) so that a call reads one row: the three limits (NULL: not set), the
  -- public default profile, and whether any role has a default of its own (the call then looks for it).
  max_recipients_per_mail bigint,
  max_mail_size bigint,
  max_mails_per_user_per_day bigint,
  public_default_profile integer,
  role_defaults boolean NOT NULL DEFAULT false
);
INSERT INTO dbmail.system_state DEFAULT VALUES;

-- AdminRoles and SenderRoles: roles are cluster-wide, so a dbmail_admin or dbmail_sender member is one
-- in every database of the cluster. Listing roles there confines those rights, in this database, to the
-- members that are also members of a listed role. Empty (the default): every member.
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
  ('MaxMailSize', '10485760', 'Maximum bytes per mail: subject, body and all attachments (0 = unlimited)'),
  ('AdminRoles', '',
   'Roles (; list) whose members are the dbmail_admin members with admin rights in this database (empty = all of them)'),
  ('SenderRoles', '',
   'Roles (; list) whose members are the dbmail_sender members that may act as senders in this database (empty = all of them)');

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
  -- How the sender logs in: none, password (username + password) or oauth2 (XOAUTH2 as username, with a
  -- token from oauth2_token_url; the client secret and refresh token are in account_secrets).
  auth_method text NOT NULL DEFAULT 'none' CHECK (auth_method IN ('none', 'password', 'oauth2')),
  oauth2_token_url text,
  oauth2_client_id text,
  oauth2_scope text,
  -- DKIM signing (the private key is in account_secrets): all three or none.
  dkim_domain text,
  dkim_selector text,
  -- The combined rate of all senders through this account (NULL: no limit); see dbmail.send_slots.
  max_messages_per_minute integer CHECK (max_messages_per_minute BETWEEN 1 AND 100000),
  last_mod_datetime timestamptz NOT NULL DEFAULT now(),
  last_mod_user name NOT NULL DEFAULT current_user
);
CREATE UNIQUE INDEX accounts_name_key ON dbmail.accounts (lower(name));

-- Secrets apart from the account, so no view or grant on accounts can ever expose them. Only the owner
-- and, through dbmail.sender_accounts(), the sender read this table. Each is a literal, or an env:NAME
-- or file:/path reference that the sender resolves.
CREATE TABLE dbmail.account_secrets (
  account_id integer PRIMARY KEY REFERENCES dbmail.accounts ON DELETE CASCADE,
  password text,
  oauth2_client_secret text,
  oauth2_refresh_token text,
  dkim_private_key text
);

-- The messages of the last minute through each account with max_messages_per_minute, for all senders
-- together (dbmail.take_send_slot): sent (finished_at, set when the outcome is recorded, after the
-- server's reply, so never before the message's arrival there), on their way (finished_at NULL), or
-- waiting for their turn (waiting: starts_at is when the item is due again).
CREATE TABLE dbmail.send_slots (
  account_id integer NOT NULL REFERENCES dbmail.accounts ON DELETE CASCADE,
  mailitem_id bigint NOT NULL,
  starts_at timestamptz NOT NULL,
  finished_at timestamptz,
  waiting boolean NOT NULL DEFAULT false
);
CREATE INDEX send_slots_account_idx ON dbmail.send_slots (account_id);
CREATE INDEX send_slots_mailitem_idx ON dbmail.send_slots (mailitem_id) WHERE finished_at IS NULL;

-- One row per rate-limited account: locked while a slot is taken, so senders take them one at a time.
CREATE TABLE dbmail.send_rates (
  account_id integer PRIMARY KEY REFERENCES dbmail.accounts ON DELETE CASCADE
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
  -- TEXT or HTML; LOW, NORMAL or HIGH; NORMAL, PERSONAL, PRIVATE or CONFIDENTIAL. Written only by
  -- queue_mail, after its checks (packages/sql/test/send/fast-paths.test.ts): not domains, whose checks
  -- cost every call 11,000 instructions each.
  body_format text NOT NULL DEFAULT 'TEXT',
  importance text NOT NULL DEFAULT 'NORMAL',
  sensitivity text NOT NULL DEFAULT 'NORMAL',
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
  -- Fixed by the first claim (claim_mailitems), so every attempt, by any sender, carries the same
  -- Message-ID; NULL until then (computed there rather than in every sp_send_dbmail call).
  message_id text,
  send_request_date timestamptz NOT NULL DEFAULT now(),
  send_request_user name NOT NULL,
  -- Mail belongs to the role that sent it, not to its name: a role dropped and created again under the
  -- same name is another role (another OID) and does not see the old one's mail, nor replay its
  -- idempotency keys. The views and the delete procedure match both name and OID (an OID could in
  -- principle be reused after the OID counter wraps around; both together cannot, short of that and the
  -- same name). Mail sent as a dbmail group role is refused, so every item has its sender's OID.
  send_request_role oid,
  sent_account_id integer,
  sent_status dbmail.sent_status NOT NULL DEFAULT 'unsent',
  sent_date timestamptz,
  -- Rounds over the profile's accounts made so far.
  send_attempts integer NOT NULL DEFAULT 0,
  -- When an unsent or retrying item may next be claimed (send_at, or the end of AccountRetryDelay).
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  -- The sender holding a sending item, the token of the claim that leased it to that sender (only the
  -- claimer learns it, and every later call about the item wants it), and until when; an expired lease
  -- makes the item claimable again.
  lease_owner text,
  lease_token uuid,
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
CREATE INDEX mailitems_request_date_idx ON dbmail.mailitems (send_request_date);
CREATE INDEX mailitems_profile_pending_idx ON dbmail.mailitems (profile_id)
  WHERE sent_status IN ('unsent', 'sending', 'retrying');
-- The failed items, a small share of the history: sender_queue_stats counts them without reading the
-- history (sent is then the total less the others, counted from the smallest index).
CREATE INDEX mailitems_failed_idx ON dbmail.mailitems (mailitem_id) WHERE sent_status = 'failed';
CREATE UNIQUE INDEX mailitems_idempotency_key ON dbmail.mailitems (send_request_role, idempotency_key)
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

-- Every SMTP attempt: one account tried in one round over the profile's accounts, as the sender reports
-- it with the item's outcome (dbmail.apply_outcome). attempt is the round (send_attempts after it);
-- outcome is sent, refused (a permanent 5xx refusal) or failed (transient, or the account's fault).
-- Deleted with its item (dbmail.delete_mailitems), unlike the event log: it is the item's detail, read
-- through sysmail_attempts. No foreign key, on purpose: apply_outcome locks the item FOR UPDATE and then
-- inserts its attempts, and the key check's FOR KEY SHARE lock on a row its own transaction already holds
-- makes PostgreSQL write a MultiXact for every outcome, which cost the drain about a fifth of its rate
-- (bench/README.md). apply_outcome inserts only while it holds the item, so no attempt is orphaned.
CREATE DOMAIN dbmail.attempt_outcome AS text CHECK (VALUE IN ('sent', 'refused', 'failed'));
CREATE TABLE dbmail.attempts (
  attempt_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  mailitem_id bigint NOT NULL,
  attempt integer NOT NULL,
  account_id integer,
  started_at timestamptz NOT NULL,
  duration_ms integer NOT NULL,
  outcome dbmail.attempt_outcome NOT NULL,
  smtp_code integer,
  smtp_response text,
  sent_by text
);
CREATE INDEX attempts_mailitem_idx ON dbmail.attempts (mailitem_id);

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
-- role_name with that current_user, and the definer function takes the newest row of its own backend
-- and transaction. Users may insert into the column `inserted` only, so every other column takes its
-- default: a row cannot be made for another role, nor for another transaction.
CREATE TABLE dbmail.caller_stamps (
  stamp_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  role_name name NOT NULL DEFAULT current_user,
  backend_pid integer NOT NULL DEFAULT pg_backend_pid(),
  transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
  inserted boolean DEFAULT true
);
COMMENT ON COLUMN dbmail.caller_stamps.inserted IS
  'Means nothing: users may insert into this column only, so that INSERT ... DEFAULT VALUES is allowed and every other column takes its default';
CREATE INDEX caller_stamps_backend_idx ON dbmail.caller_stamps (backend_pid, transaction_id, stamp_id);

-- Live sender processes: a heartbeat every few seconds; stopped_at set on a clean exit (or when a claim
-- finds the sender dead).
CREATE TABLE dbmail.senders (
  sender_id text PRIMARY KEY,
  -- The login (session_user) that registered the id, by oid: an oid outlives a rename, and a login
  -- dropped and created again under its old name is a new oid.
  login oid,
  hostname text,
  process_id integer,
  version text,
  started_at timestamptz NOT NULL DEFAULT now(),
  last_heartbeat timestamptz NOT NULL DEFAULT now(),
  -- When a claim last found nothing to do (sysmail_help_queue_sp's last_empty_rowset_time).
  last_empty_claim_at timestamptz,
  stopped_at timestamptz
);
-- The live senders, the only ones a claim has to look at for one that died.
CREATE INDEX senders_live_idx ON dbmail.senders (last_heartbeat) WHERE stopped_at IS NULL;

-- MaxMailsPerUserPerDay's ledger: how many mails each role queued in each hour (UTC), kept 25 hours.
-- Deleting mail items does not touch it, so deleting one's mail does not reset the count. Written while
-- the limit is on (and filled from the mail items of the last 25 hours when it is turned on).
CREATE TABLE dbmail.daily_mail_counts (
  role_id oid NOT NULL,
  hour_start timestamptz NOT NULL,
  mails integer NOT NULL,
  PRIMARY KEY (role_id, hour_start)
);

-- Operators: people or team mailboxes to notify (SQL Server Agent's). Names are unique ignoring case,
-- as profiles and accounts are. pager_days is a bitmask: 1 Sunday, 2 Monday, 4 Tuesday, 8 Wednesday,
-- 16 Thursday, 32 Friday, 64 Saturday. Nothing pages or sends net send messages here: the pager and net
-- send columns are kept for scripts written for SQL Server, and for a future pager.
CREATE TABLE dbmail.operators (
  operator_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  enabled boolean NOT NULL DEFAULT true,
  -- A ';' list, like sp_send_dbmail's recipients.
  email_address text,
  pager_address text,
  weekday_pager_start_time dbmail.pager_time NOT NULL DEFAULT 90000,
  weekday_pager_end_time dbmail.pager_time NOT NULL DEFAULT 180000,
  saturday_pager_start_time dbmail.pager_time NOT NULL DEFAULT 90000,
  saturday_pager_end_time dbmail.pager_time NOT NULL DEFAULT 180000,
  sunday_pager_start_time dbmail.pager_time NOT NULL DEFAULT 90000,
  sunday_pager_end_time dbmail.pager_time NOT NULL DEFAULT 180000,
  pager_days smallint NOT NULL DEFAULT 0 CHECK (pager_days BETWEEN 0 AND 127),
  netsend_address text,
  category_name text,
  last_mod_date timestamptz NOT NULL DEFAULT now(),
  last_mod_user name NOT NULL DEFAULT current_user
);
CREATE UNIQUE INDEX operators_name_key ON dbmail.operators (lower(name));

-- The pg_cron job runs each operator was mailed about by notify_job_failures, so none is mailed twice.
-- Rows older than notify_job_failures' longest look-back (30 days) are deleted as it runs.
CREATE TABLE dbmail.notified_job_runs (
  operator_id integer NOT NULL REFERENCES dbmail.operators ON DELETE CASCADE,
  runid bigint NOT NULL,
  jobid bigint,
  run_ended_at timestamptz NOT NULL,
  notified_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (operator_id, runid)
);
CREATE INDEX notified_job_runs_ended_idx ON dbmail.notified_job_runs (run_ended_at);

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(2, 'tables', '1370588c3219c2daa997f2e240291ff52d932665de92487b9f118fcf752514e8');
