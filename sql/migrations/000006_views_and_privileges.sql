-- pg-dbmail 000006: the sysmail_* views, and every privilege in one place.
--
-- The views run with their owner's rights over the private tables and filter rows by current_user (the
-- querying role): dbmail_user members see their own items, attachments and events; admins see all. They are
-- security barriers, so a user's own functions in a WHERE clause cannot see rows the filter removes.

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(6, 'views_and_privileges', 'sender');

CREATE VIEW dbmail.sysmail_allitems WITH (security_barrier) AS
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
WHERE m.send_request_user = current_user OR (SELECT dbmail.is_admin(current_user));

CREATE VIEW dbmail.sysmail_sentitems WITH (security_barrier) AS
SELECT * FROM dbmail.sysmail_allitems WHERE sent_status = 'sent';

-- Everything still in the queue: waiting, being sent, or waiting to retry.
CREATE VIEW dbmail.sysmail_unsentitems WITH (security_barrier) AS
SELECT * FROM dbmail.sysmail_allitems WHERE sent_status IN ('unsent', 'sending', 'retrying');

CREATE VIEW dbmail.sysmail_faileditems WITH (security_barrier) AS
SELECT * FROM dbmail.sysmail_allitems WHERE sent_status = 'failed';

-- Users see the events of their own items; events not tied to an item are for admins only.
CREATE VIEW dbmail.sysmail_event_log WITH (security_barrier) AS
SELECT e.log_id, e.event_type, e.log_date, e.description, e.process_id, e.mailitem_id, e.account_id,
       e.last_mod_date, e.last_mod_user, e.sender_id
FROM dbmail.event_log e
WHERE (SELECT dbmail.is_admin(current_user))
   OR e.mailitem_id IN (SELECT m.mailitem_id FROM dbmail.mailitems m WHERE m.send_request_user = current_user);

CREATE VIEW dbmail.sysmail_mailattachments WITH (security_barrier) AS
SELECT a.attachment_id, a.mailitem_id, a.filename, a.filesize, a.attachment, a.last_mod_date,
       a.last_mod_user, a.content_type
FROM dbmail.attachments a
WHERE (SELECT dbmail.is_admin(current_user))
   OR a.mailitem_id IN (SELECT m.mailitem_id FROM dbmail.mailitems m WHERE m.send_request_user = current_user);

-- Privileges. Nobody but the owner touches a table; PUBLIC gets nothing.
REVOKE ALL ON ALL TABLES IN SCHEMA dbmail FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA dbmail FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA dbmail FROM PUBLIC;
REVOKE ALL ON TYPE dbmail.attachment FROM PUBLIC;
GRANT USAGE ON SCHEMA dbmail TO dbmail_user, dbmail_admin, dbmail_sender;
GRANT USAGE ON TYPE dbmail.attachment TO dbmail_user;

-- dbmail_user (and so dbmail_admin, a member of it): send, see and delete its own.
GRANT SELECT ON dbmail.sysmail_allitems, dbmail.sysmail_sentitems, dbmail.sysmail_unsentitems,
  dbmail.sysmail_faileditems, dbmail.sysmail_event_log, dbmail.sysmail_mailattachments TO dbmail_user;
GRANT EXECUTE ON FUNCTION
  dbmail.sp_send_dbmail(text, text, text, text, text, text, text, text, text, text, text, text, boolean, text,
    boolean, integer, text, boolean, boolean, boolean, boolean, text, text, dbmail.attachment[], jsonb,
    timestamptz, text, text),
  dbmail.queue_mail(text, text, text, text, text, text, text, text, text, text, text, text, boolean, text,
    boolean, integer, text, boolean, boolean, boolean, boolean, text, text, dbmail.attachment[], jsonb,
    timestamptz, text, text, text),
  dbmail.check_send_arguments(text, text, text, text, text, text, text, boolean, boolean, integer, text, boolean,
    boolean, boolean, boolean, text, dbmail.attachment[], jsonb, text, text),
  dbmail.attachment(text, bytea, text),
  dbmail.sysmail_delete_mailitems_sp(timestamptz, text),
  dbmail.delete_mailitems(timestamptz, text),
  -- Called by the entry points above (which run as the caller) and by the views.
  dbmail.is_admin(name), dbmail.raise_error(text, text, text, text), dbmail.show_value(text)
TO dbmail_user;
-- Only default values: the stamp records the inserting role itself (see 000001).
GRANT INSERT (transaction_id) ON dbmail.caller_stamps TO dbmail_user;

-- dbmail_admin: every configuration procedure.
GRANT EXECUTE ON FUNCTION
  dbmail.sysmail_add_account_sp(text, text, text, text, text, text, text, integer, text, text, boolean, boolean,
    text, integer, boolean),
  dbmail.sysmail_update_account_sp(integer, text, text, text, text, text, text, text, integer, text, text,
    boolean, boolean, integer, text, boolean),
  dbmail.sysmail_delete_account_sp(integer, text),
  dbmail.sysmail_help_account_sp(integer, text),
  dbmail.sysmail_add_profile_sp(text, text),
  dbmail.sysmail_update_profile_sp(integer, text, text),
  dbmail.sysmail_delete_profile_sp(integer, text, boolean),
  dbmail.sysmail_help_profile_sp(integer, text),
  dbmail.sysmail_add_profileaccount_sp(integer, text, integer, text, integer),
  dbmail.sysmail_update_profileaccount_sp(integer, text, integer, text, integer),
  dbmail.sysmail_delete_profileaccount_sp(integer, text, integer, text),
  dbmail.sysmail_help_profileaccount_sp(integer, text, integer, text),
  dbmail.sysmail_add_principalprofile_sp(oid, text, integer, text, boolean),
  dbmail.sysmail_update_principalprofile_sp(oid, text, integer, text, boolean),
  dbmail.sysmail_delete_principalprofile_sp(oid, text, integer, text),
  dbmail.sysmail_help_principalprofile_sp(oid, text, integer, text),
  dbmail.sysmail_configure_sp(text, text, text),
  dbmail.sysmail_help_configure_sp(text),
  dbmail.sysmail_start_sp(),
  dbmail.sysmail_stop_sp(),
  dbmail.sysmail_help_status_sp(),
  dbmail.sysmail_help_queue_sp(text),
  dbmail.sysmail_delete_log_sp(timestamptz, text)
TO dbmail_admin;

-- dbmail_sender: the sender protocol, and reading the status it obeys. Nothing else.
GRANT EXECUTE ON FUNCTION
  dbmail.sender_heartbeat(text, text, integer, text),
  dbmail.sender_stopped(text),
  dbmail.claim_mailitems(text, integer, integer),
  dbmail.record_outcome(bigint, text, text, integer, text, text, jsonb, integer),
  dbmail.release_mailitems(text, bigint[]),
  dbmail.extend_leases(text, bigint[], integer),
  dbmail.sender_accounts(),
  dbmail.sender_attachments(text, bigint),
  dbmail.log_event(text, text, bigint, integer, integer, text),
  dbmail.schema_version(),
  dbmail.sysmail_help_status_sp()
TO dbmail_sender;
GRANT EXECUTE ON FUNCTION dbmail.schema_version() TO dbmail_admin;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(6, 'views_and_privileges', 'cde8d67c8690425ecfee2284f497aebea6e09b718c0762230f1ad0262b32cf00');
