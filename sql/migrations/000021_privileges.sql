-- pg-dbmail 000021: every privilege, in one place. Nobody but the owner touches a table, and PUBLIC gets
-- nothing (PostgreSQL grants EXECUTE on a new function to PUBLIC: it is taken away here from every
-- function of the schema at once). Each role gets exactly what it needs, below; a function not named here
-- is the owner's alone (the helpers, which the functions granted here call as the owner).

-- The guard: waits for any other migrator; refuses this file if applied already or out of order.
SELECT dbmail.begin_migration(21, 'privileges', 'operator_notifications');

REVOKE ALL ON SCHEMA dbmail FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA dbmail FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA dbmail FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA dbmail FROM PUBLIC;
REVOKE ALL ON TYPE dbmail.attachment FROM PUBLIC;
GRANT USAGE ON SCHEMA dbmail TO dbmail_user, dbmail_admin, dbmail_sender;

-- Admins can send too, with any profile (as sysadmin can in SQL Server).
GRANT dbmail_user TO dbmail_admin;

-- dbmail_user (and so dbmail_admin, a member of it): send, see and delete its own.
GRANT USAGE ON TYPE dbmail.attachment TO dbmail_user;
GRANT SELECT ON dbmail.sysmail_allitems, dbmail.sysmail_sentitems, dbmail.sysmail_unsentitems,
  dbmail.sysmail_faileditems, dbmail.sysmail_event_log, dbmail.sysmail_mailattachments,
  dbmail.sysmail_attempts TO dbmail_user;
GRANT EXECUTE ON FUNCTION
  dbmail.sp_send_dbmail(text, text, text, text, text, text, text, text, text, text, text, text, boolean, text,
    boolean, integer, text, boolean, boolean, boolean, boolean, text, text, dbmail.attachment[], jsonb,
    timestamptz, text, text),
  dbmail.queue_mail(text, text, text, text, text, text, text, text, text, text, text, text, boolean, text,
    boolean, integer, text, boolean, boolean, boolean, boolean, text, text, dbmail.attachment[], jsonb,
    timestamptz, text, text, text, name),
  dbmail.send_as_caller(text, text, text, text, text, text, text, text, text, text, text, text, boolean, text,
    boolean, integer, text, boolean, boolean, boolean, boolean, text, text, dbmail.attachment[], jsonb,
    timestamptz, text, text),
  dbmail.send_usual_as_caller(text, text, text, text, text, boolean, boolean),
  dbmail.send_usual_mail(text, text, text, text, text, boolean, boolean, name),
  dbmail.check_send_arguments(text, text, text, text, text, text, text, boolean, boolean, integer, text, boolean,
    boolean, boolean, boolean, text, dbmail.attachment[], jsonb, text, text),
  dbmail.attachment(text, bytea, text),
  dbmail.sysmail_delete_mailitems_sp(timestamptz, text),
  dbmail.delete_mailitems(timestamptz, text),
  -- Retry and cancel their own items (admins: any), through the caller stamp as the delete does.
  dbmail.sysmail_retry_mailitems_sp(bigint[], text, timestamptz, text),
  dbmail.retry_mailitems(bigint[], text, timestamptz, text),
  dbmail.sysmail_cancel_mailitems_sp(bigint[]),
  dbmail.cancel_mailitems(bigint[]),
  -- Called by the entry points above (which run as the caller) and by the views.
  dbmail.is_admin(name), dbmail.raise_error(text, text, text, text), dbmail.show_value(text),
  -- Called by sp_send_dbmail in the caller's context: the query path runs the caller's own query with the
  -- caller's rights; query_result_limit (SECURITY DEFINER) reads MaxFileSize.
  dbmail.send_with_query(text, text, text, text, text, text, text, text, text, text, text, text, boolean, text,
    boolean, integer, text, boolean, boolean, boolean, boolean, text, text, dbmail.attachment[], jsonb,
    timestamptz, text, text, text),
  dbmail.run_query(text, text),
  dbmail.format_query_result(regclass, boolean, text, boolean, integer, text, boolean, boolean, bigint),
  dbmail.wrap_line(text, integer),
  dbmail.html_row(text[], boolean[]),
  dbmail.csv_line(text[]),
  dbmail.html_escape(text),
  dbmail.query_result_limit(),
  -- Notify an operator (SQL Server grants sp_notify_operator to the SQLAgent*Role roles). operator_address
  -- is its SECURITY DEFINER half: it returns only the address of an operator that can be notified, which
  -- the caller would see in its own mail item anyway.
  dbmail.sp_notify_operator(text, integer, text, text, text, text),
  dbmail.operator_address(integer, text)
TO dbmail_user;
-- Only the column that means nothing: every other column of the stamp takes its default, so the stamp
-- records the inserting role itself, in its own transaction (see dbmail.caller_stamps).
GRANT INSERT (inserted) ON dbmail.caller_stamps TO dbmail_user;

-- dbmail_admin: every configuration procedure; manage operators (sysadmin in SQL Server), and mail them
-- pg_cron failures.
GRANT EXECUTE ON FUNCTION
  dbmail.sysmail_add_account_sp(text, text, text, text, text, text, text, integer, text, text, boolean, boolean,
    text, integer, boolean, text, text, text, text, text, text, text, text, text, integer),
  dbmail.sysmail_update_account_sp(integer, text, text, text, text, text, text, text, integer, text, text,
    boolean, boolean, integer, text, boolean, text, text, text, text, text, text, text, text, text, integer),
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
  dbmail.sysmail_delete_log_sp(timestamptz, text),
  dbmail.sp_add_operator(text, boolean, text, text, integer, integer, integer, integer, integer, integer, integer,
    text, text),
  dbmail.sp_update_operator(text, text, boolean, text, text, integer, integer, integer, integer, integer, integer,
    integer, text, text),
  dbmail.sp_delete_operator(text),
  dbmail.sp_help_operator(text, integer),
  dbmail.notify_job_failures(text, text, interval),
  dbmail.job_failure_operator(text),
  dbmail.claim_job_failure(integer, bigint, bigint, timestamptz)
TO dbmail_admin;

-- dbmail_sender: the sender protocol, and reading the status it obeys. Nothing else. require_sender lets
-- a sender ask whether SenderRoles lets it serve this database.
GRANT EXECUTE ON FUNCTION
  dbmail.sender_heartbeat(text, text, integer, text),
  dbmail.sender_stopped(text),
  dbmail.claim_mailitems(text, integer, integer),
  dbmail.record_outcome(bigint, text, uuid, text, integer, text, text, jsonb, integer, jsonb),
  dbmail.record_outcomes(text, jsonb, integer),
  dbmail.release_mailitems(text, bigint[], uuid[]),
  dbmail.take_send_slot(text, bigint, uuid, integer),
  dbmail.extend_leases(text, bigint[], uuid[], integer),
  dbmail.sender_listening(),
  dbmail.sender_watch(),
  dbmail.sender_unwatch(),
  dbmail.sender_settle(integer),
  dbmail.sender_accounts(),
  dbmail.sender_attachments(text, bigint, uuid),
  dbmail.sender_attachment_chunk(text, bigint, uuid, bigint, integer),
  dbmail.log_event(text, text, bigint, integer, integer, text),
  dbmail.require_sender(),
  dbmail.schema_version(),
  dbmail.sysmail_help_status_sp()
TO dbmail_sender;
-- And the queue's figures, for its /metrics (it may not read the sysmail_* views).
GRANT EXECUTE ON FUNCTION dbmail.sender_queue_stats() TO dbmail_sender;
-- Admins may read the schema version too.
GRANT EXECUTE ON FUNCTION dbmail.schema_version() TO dbmail_admin;

-- Records this file in dbmail.migrations; the checksum is the sha256 of the text above this line
-- (written by `npm run migrations:seal`).
SELECT dbmail.record_migration(21, 'privileges', '94db062303deb9e8570ed9f08d9e8ed42f05af258279bd4d360b6cf6c7a95ec7');
