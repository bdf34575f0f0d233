#!/bin/bash
# redmine-stop.sh - stop the Redmine that redmine-start.sh started (by its pid file: TERM, then KILL after 20 s).
#   usage: redmine-stop.sh [--purge]
#   --purge also deletes its state (${SDX_TS_DIR:-/var/tmp/sdx-ts}/redmine/, the env file and the instance
#           symlink in /var/lib/redmine), so the next start sets up a new database. Packages stay installed.
set -uo pipefail
PORT=${REDMINE_PORT:-9081}
TS=${SDX_TS_DIR:-/var/tmp/sdx-ts}
STATE=$TS/redmine
INSTANCE=${REDMINE_INSTANCE:-sdx$PORT}
PIDF=$STATE/rails-server.pid

if [ -d "$TS" ]; then exec 9>"$TS/redmine.lock"; flock -w 600 9 || { echo "redmine-stop: lock busy" >&2; exit 1; }; fi
if [ -f "$PIDF" ] && P=$(cat "$PIDF") && [ -n "$P" ] && kill -0 "$P" 2>/dev/null; then
  echo "redmine-stop: stopping pid $P" >&2
  kill -TERM "$P"
  for _ in $(seq 1 200); do kill -0 "$P" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$P" 2>/dev/null; then echo "redmine-stop: still alive, KILL" >&2; kill -KILL "$P"; sleep 0.2; fi
else
  echo "redmine-stop: not running" >&2
fi
rm -f "$PIDF"
if [ "${1:-}" = --purge ]; then
  echo "redmine-stop: purging $STATE" >&2
  rm -rf "$STATE" "$TS/redmine.env"
  [ -L /var/lib/redmine/"$INSTANCE" ] && rm -f /var/lib/redmine/"$INSTANCE"
fi
echo "redmine-stop: stopped" >&2
