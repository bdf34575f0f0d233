#!/bin/bash
# rt-stop.sh - stop the Request Tracker started by rt-start.sh (by the pid in its pid file: TERM, then KILL).
#
#   usage: rt-stop.sh [--purge]     --purge also deletes its state ($SDX_TS_DIR/rt/ and rt.env)
#
# rt-server (Starlet) is stopped with TERM: its workers exit with it. (Its SIGINT handler would chown
# /var/lib/request-tracker5 to www-data.) Environment: SDX_TS_DIR [/var/tmp/sdx-ts], RT_STOP_TIMEOUT [15].
set -euo pipefail

TS_DIR=${SDX_TS_DIR:-/var/tmp/sdx-ts}
STATE=$TS_DIR/rt
TIMEOUT=${RT_STOP_TIMEOUT:-15}
PURGE=0
case "${1:-}" in
  "") ;;
  --purge) PURGE=1 ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac
log() { printf '[rt-stop %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

mkdir -p "$TS_DIR"
exec 9>"$TS_DIR/rt.lock"          # not while rt-start.sh is starting it
flock -w 900 9 || { log "ERROR: could not lock $TS_DIR/rt.lock"; exit 1; }

pid=$(cat "$STATE/rt-server.pid" 2>/dev/null || true)
# Only our rt-server: after a reboot the pid may belong to another process.
if [[ $pid =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "rt-server --port"; then
  # The workers are the server's children; remember them in case the parent dies first.
  children=$(pgrep -P "$pid" || true)
  log "stopping rt-server pid $pid (workers: ${children//$'\n'/ })"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((TIMEOUT * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid did not stop within ${TIMEOUT}s: KILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  for c in $children; do kill -0 "$c" 2>/dev/null && kill -KILL "$c" 2>/dev/null || true; done
  log "stopped"
else
  log "not running"
fi
rm -f "$STATE/rt-server.pid"

# Workers whose parent was killed (kill -9) keep listening: ours are those on our port with our command line.
PORT=$(cat "$STATE/rt-server.port" 2>/dev/null || echo "${RT_PORT:-9080}")
orphans() {
  local p
  for p in $(ss -ltnpH "( sport = :$PORT )" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q "rt-server --port $PORT " && echo "$p"
  done
  return 0
}
left=$(orphans)
if [ -n "$left" ]; then
  log "stopping rt-server workers left without their parent: ${left//$'\n'/ }"
  kill -TERM $left 2>/dev/null || true
  for _ in $(seq 1 $((TIMEOUT * 10))); do [ -z "$(orphans)" ] && break; sleep 0.1; done
  left=$(orphans); [ -z "$left" ] || kill -KILL $left 2>/dev/null || true
fi

if [ "$PURGE" = 1 ]; then
  rm -rf "$STATE" "$TS_DIR/rt.env"
  log "purged $STATE"
fi
