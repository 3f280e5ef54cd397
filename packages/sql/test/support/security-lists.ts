// What each role may call, by name: the lists the security tests check the grants and probes against.

/** Every configuration procedure of SPEC section 4 except the USER_PROCEDURES (users may call those). */
export const CONFIG_PROCEDURES = [
  "sysmail_add_account_sp",
  "sysmail_update_account_sp",
  "sysmail_delete_account_sp",
  "sysmail_help_account_sp",
  "sysmail_add_profile_sp",
  "sysmail_update_profile_sp",
  "sysmail_delete_profile_sp",
  "sysmail_help_profile_sp",
  "sysmail_add_profileaccount_sp",
  "sysmail_update_profileaccount_sp",
  "sysmail_delete_profileaccount_sp",
  "sysmail_help_profileaccount_sp",
  "sysmail_add_principalprofile_sp",
  "sysmail_update_principalprofile_sp",
  "sysmail_delete_principalprofile_sp",
  "sysmail_help_principalprofile_sp",
  "sysmail_configure_sp",
  "sysmail_help_configure_sp",
  "sysmail_start_sp",
  "sysmail_stop_sp",
  "sysmail_help_status_sp",
  "sysmail_help_queue_sp",
  "sysmail_delete_log_sp",
  // Operators: SQL Server Agent's procedures, and the pg_cron failure notices with their helpers.
  "sp_add_operator",
  "sp_update_operator",
  "sp_delete_operator",
  "sp_help_operator",
  "notify_job_failures",
  "job_failure_operator",
  "claim_job_failure",
];

/**
 * The sysmail_*_sp procedures a dbmail_user may call, on its own items only (admins: any), with the
 * definer halves that do their work behind a caller stamp.
 */
export const USER_PROCEDURES = [
  "sysmail_delete_mailitems_sp",
  "sysmail_retry_mailitems_sp",
  "sysmail_cancel_mailitems_sp",
];
export const USER_PROCEDURE_HALVES = ["delete_mailitems", "retry_mailitems", "cancel_mailitems"];

export const HELP_PROCEDURES = CONFIG_PROCEDURES.filter((name) => name.includes("_help_"));

/** The sender protocol: dbmail_sender only. */
export const SENDER_FUNCTIONS = [
  "claim_mailitems",
  "extend_leases",
  "record_outcome",
  "record_outcomes",
  "release_mailitems",
  "schema_version",
  "sender_accounts",
  "sender_attachment_chunk",
  "sender_attachments",
  "sender_heartbeat",
  "sender_listening",
  "sender_queue_stats",
  "sender_settle",
  "sender_stopped",
  "sender_unwatch",
  "sender_watch",
  "take_send_slot",
  "log_event",
];

export const VIEWS = [
  "sysmail_allitems",
  "sysmail_sentitems",
  "sysmail_unsentitems",
  "sysmail_faileditems",
  "sysmail_event_log",
  "sysmail_mailattachments",
  "sysmail_attempts",
];
