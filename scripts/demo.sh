#!/usr/bin/env bash
# One command on a fresh machine: installs the build dependencies, builds, starts two
# throwaway TimescaleDB clusters on loopback, fills the source with sample data, dual-writes
# a few rows into the target, and runs stage -> copy -> verify -> clean, printing each step.
# The clusters are removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release

pgbin=$(pg_config --bindir)
[ -x "$pgbin/initdb" ] || pgbin=/usr/lib/postgresql/15/bin
pglib=$(pg_config --pkglibdir)
if ! ls "$pglib"/timescaledb*.so >/dev/null 2>&1; then
  echo "demo: TimescaleDB is not installed in this PostgreSQL ($pglib has no timescaledb.so)." >&2
  echo "demo: install TimescaleDB for PostgreSQL 15 (see README.md, \"TimescaleDB\") and run again." >&2
  exit 1
fi

work=$(mktemp -d /tmp/backfill-demo-XXXXXX)
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$work"
  as_pg=(runuser -u postgres --)
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
source_port=$(free_port)
target_port=$(free_port)
cleanup() {
  for c in source target; do
    [ -d "$work/$c" ] && (cd "$work" && "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/$c" -m immediate stop >/dev/null 2>&1) || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

for c in source:$source_port target:$target_port; do
  name=${c%%:*}; port=${c##*:}
  (cd "$work" && "${as_pg[@]}" "$pgbin/initdb" -A trust -U postgres --no-sync -D "$work/$name" >/dev/null)
  (cd "$work" && "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/$name" -l "$work/$name.log" -w start -o \
    "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work -c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off" >/dev/null)
done
SOURCE="host=127.0.0.1 port=$source_port user=postgres dbname=postgres"
TARGET="postgresql://postgres@127.0.0.1:$target_port/postgres"
psql_source() { psql -X -q -v ON_ERROR_STOP=1 "$SOURCE" "$@"; }
psql_target() { psql -X -q -v ON_ERROR_STOP=1 "$TARGET" "$@"; }

schema="CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE TABLE public.conditions (time timestamptz NOT NULL, device int, temperature double precision, note text);
SELECT create_hypertable('public.conditions', 'time', chunk_time_interval => interval '1 day');"
psql_source -c "$schema" >/dev/null
psql_target -c "$schema" >/dev/null
echo "== source: 14 days of conditions, one row per device every 10 seconds"
psql_source -c "INSERT INTO conditions SELECT t, d, 20 + 5 * sin(extract(epoch FROM t) / 3600) + d, 'sample'
  FROM generate_series(timestamptz '2024-01-01 00:00+00', timestamptz '2024-01-14 23:59:50+00', interval '10 seconds') t,
       generate_series(1, 4) d;"
psql_source -At -c "SELECT count(*) || ' rows in ' || (SELECT count(*) FROM show_chunks('conditions')) || ' chunks' FROM conditions"
echo "== target: the application already dual-writes from 2024-01-10 12:00 on"
psql_target -c "INSERT INTO conditions SELECT t, 1, 21, 'dual write' FROM generate_series(timestamptz '2024-01-10 12:00+00', timestamptz '2024-01-14 23:00+00', interval '1 hour') t;"

bin="$root/build/bin/timescaledb-backfill"
# Prints the command as it can be pasted into a shell (arguments quoted), passwords masked.
quote() {
  case "$1" in
    *[!A-Za-z0-9_./:=@-]*) printf " '%s'" "${1//\'/\'\\\'\'}" ;;
    *) printf ' %s' "$1" ;;
  esac
}
run() {
  echo
  { printf '$ timescaledb-backfill'; for a in "$@"; do quote "$a"; done; echo; } |
    sed -E 's/(password=)[^ '"'"']*/\1***/g'
  "$bin" "$@"
}
run stage --source "$SOURCE" --target "$TARGET" --until '2024-01-10T12:00:00'
echo; echo "progress query (spec):"
psql_target -c "select hypertable_schema, hypertable_name, count(*) as total_chunks, count(worked) as finished_chunks, count(worked is null) pending_chunks from __backfill.task group by 1, 2"
run copy --source "$SOURCE" --target "$TARGET" --parallelism 4
run verify --source "$SOURCE" --target "$TARGET"
echo; echo "rows below --until: source $(psql_source -At -c "SELECT count(*) FROM conditions WHERE time < '2024-01-10 12:00+00'"), target $(psql_target -At -c "SELECT count(*) FROM conditions WHERE time < '2024-01-10 12:00+00'")"
echo "dual writes kept in the target: $(psql_target -At -c "SELECT count(*) FROM conditions WHERE note = 'dual write'")"
run clean --target "$TARGET"
echo; echo "demo: done"
