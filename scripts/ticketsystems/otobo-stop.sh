#!/bin/bash
# otobo-stop.sh - stop what otobo-start.sh started, by pid (TERM, then KILL after a timeout).
#
#   usage: scripts/ticketsystems/otobo-stop.sh [--purge]
#
#   --purge  also deletes the state ($SDX_TS_DIR/otobo: OTOBO tree, database cluster, logs) and the env file,
#            so the next start begins from scratch (Debian packages and the system user otobo stay).
set -uo pipefail
TS_DIR=${SDX_TS_DIR:-/var/tmp/sdx-ts}
BASE=$TS_DIR/otobo
HOMEDIR=$BASE/src
PGBIN=/usr/lib/postgresql/15/bin
PIDF=$BASE/run/starman.pid
log() { printf '[otobo-stop] %s\n' "$*" >&2; }

PURGE=0
case "${1:-}" in
  --purge) PURGE=1 ;;
  '') ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { log "ERROR: run as root"; exit 1; }
[ -d "$TS_DIR" ] || { log "nothing to stop ($TS_DIR does not exist)"; exit 0; }

# Wait for a start in progress, and keep starts out while stopping.
exec 9>"$TS_DIR/otobo.lock"
flock -w 600 9 || { log "ERROR: could not get the lock $TS_DIR/otobo.lock"; exit 1; }

stop_pid() {  # PID NAME: TERM, wait up to 15 s, then KILL
  local p=$1 name=$2
  kill -0 "$p" 2>/dev/null || return 0
  log "stopping $name (pid $p)"
  kill -TERM "$p" 2>/dev/null
  for _ in $(seq 1 75); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.2; done
  log "$name (pid $p) still alive, KILL"
  kill -KILL "$p" 2>/dev/null
  for _ in $(seq 1 25); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.2; done
}

# 1. starman (the master stops its workers)
if [ -f "$PIDF" ]; then
  stop_pid "$(cat "$PIDF")" starman
fi
rm -f "$PIDF"
# Workers of a master that died (kill -9) keep the port: our listeners are those working in the OTOBO tree.
PORT=$(cat "$BASE/run/starman.port" 2>/dev/null || echo "${OTOBO_PORT:-8580}")
for p in $(ss -ltnpH "( sport = :$PORT )" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true); do
  [ "$(readlink "/proc/$p/cwd" 2>/dev/null)" = "$HOMEDIR" ] && stop_pid "$p" "orphaned starman worker"
done
rm -f "$BASE/run/starman.port"

# 2. OTOBO daemon (its pid file is under var/run of the OTOBO tree)
for f in "$HOMEDIR"/var/run/Daemon-NodeID-*.pid; do
  [ -f "$f" ] || continue
  DPID=$(head -1 "$f" | tr -dc 0-9)
  if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
    if id otobo >/dev/null 2>&1; then
      (cd "$HOMEDIR" && timeout 30 runuser -u otobo -- perl bin/otobo.Daemon.pl stop </dev/null >/dev/null 2>&1)
    fi
    stop_pid "$DPID" "OTOBO daemon"
  fi
  rm -f "$f"
done

# 3. PostgreSQL cluster (fast shutdown, then the postmaster pid)
if [ -f "$BASE/pgdata/postmaster.pid" ]; then
  PGPID=$(head -1 "$BASE/pgdata/postmaster.pid" | tr -dc 0-9)
  if [ -n "$PGPID" ] && kill -0 "$PGPID" 2>/dev/null; then
    log "stopping PostgreSQL (pid $PGPID)"
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$BASE/pgdata" -m fast -w -t 30 stop >/dev/null 2>&1 || stop_pid "$PGPID" PostgreSQL
  fi
fi

if [ "$PURGE" = 1 ]; then
  log "purging $BASE and $TS_DIR/otobo.env"
  rm -rf "$BASE" "$TS_DIR/otobo.env"
fi
log "stopped"
