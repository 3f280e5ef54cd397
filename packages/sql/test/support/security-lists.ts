// What each role may call, by name: the lists the security tests check the grants and probes against.

/** Every configuration procedure of SPEC section 4 except sysmail_delete_mailitems_sp (users may call it). */
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
  "sender_queue_stats",
  "sender_stopped",
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
];
