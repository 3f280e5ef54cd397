#!/usr/bin/env bash
# Instructions per sp_send_dbmail call, counted by valgrind's callgrind in a single-user PostgreSQL of
# its own: unlike calls per second, the count is the same from run to run on a busy machine, so a change
# to the SQL can be judged by a few percent. Needs valgrind and the PostgreSQL server binaries (pg_config
# on PATH, or PG_BIN); run as root (the server runs as the postgres OS user) after `npm run build`.
#
#   bash bench/enqueue-instructions.sh                 # the schema as migrated
#   bash bench/enqueue-instructions.sh what-if.sql     # after these statements (rolled back), e.g.
#                                                      # a CREATE OR REPLACE FUNCTION to try
set -euo pipefail
cd "$(dirname "$0")/.."
PG_BIN=${PG_BIN:-$(pg_config --bindir)}
CALLS=${CALLS:-500}
WHAT_IF=${1:-}
dir=$(mktemp -d)
chown postgres "$dir"
trap 'su postgres -c "$PG_BIN/pg_ctl -D $dir/data stop -m immediate" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT

port=$(node -e 'const s=require("net").createServer().listen(0,()=>{console.log(s.address().port);s.close()})')
su postgres -c "$PG_BIN/initdb -D $dir/data -U postgres -A trust" >/dev/null
su postgres -c "$PG_BIN/pg_ctl -D $dir/data -o '-p $port -k $dir -c listen_addresses=127.0.0.1' -l $dir/log start -w" >/dev/null
url="postgres://postgres@127.0.0.1:$port/postgres"
node packages/sender/dist/cli.js migrate --database-url "$url" >/dev/null
# A profile as the bench's, and a caller who is a plain dbmail_user (no admin shortcuts).
psql -q "$url" <<'SQL' >/dev/null
SELECT dbmail.sysmail_add_account_sp(account_name => 'a', email_address => 'dbmail@example.com',
  mailserver_name => '127.0.0.1', port => 2525);
SELECT dbmail.sysmail_add_profile_sp(profile_name => 'p');
SELECT dbmail.sysmail_add_profileaccount_sp(profile_name => 'p', account_name => 'a', sequence_number => 1);
SELECT dbmail.sysmail_add_principalprofile_sp(principal_name => 'public', profile_name => 'p', is_default => true);
CREATE ROLE bench_user;
GRANT dbmail_user TO bench_user;
SQL
su postgres -c "$PG_BIN/pg_ctl -D $dir/data stop -w" >/dev/null

# Two runs that differ only in CALLS more calls: their difference is what the calls cost, without
# start-up, the warm-up calls or the what-if statements.
send="SELECT count(dbmail.sp_send_dbmail(recipients => 'x@example.com', subject => 's', body => 'b',
  exclude_query_output => true)) FROM generate_series(1,"
count() {
  local file="$dir/$1.sql"
  {
    echo "BEGIN;"
    # Single-user mode with -j ends a statement at a semicolon followed by an empty line.
    if [ -n "$WHAT_IF" ]; then cat "$WHAT_IF"; echo; fi
    echo "SET ROLE bench_user;"; echo
    echo "$send 50);"; echo
    if [ "$2" -gt 0 ]; then echo "$send $2);"; echo; fi
    echo "RESET ROLE;"; echo
    echo "ROLLBACK;"
  } >"$file"
  chmod 644 "$file"
  su postgres -c "valgrind --tool=callgrind --callgrind-out-file=$dir/$1.out $PG_BIN/postgres --single -j \
    -D $dir/data postgres < $file > $dir/$1.log 2>&1"
  if grep -q "ERROR" "$dir/$1.log"; then grep "ERROR" "$dir/$1.log" >&2; exit 1; fi
  awk '/^totals:/ {print $2}' "$dir/$1.out"
}
base=$(count base 0)
with=$(count calls "$CALLS")
echo "$(((with - base) / CALLS)) instructions per sp_send_dbmail call ($CALLS calls, one transaction)"
