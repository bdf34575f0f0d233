#!/bin/bash
# redmine-start.sh - a Redmine 5 (Debian 12 package `redmine`) on 127.0.0.1 for SDX, with everything the
# connector needs. Idempotent: installs what is missing, reuses a running instance, restarts a dead one.
# Safe to run from several processes at once (flock on $SDX_TS_DIR/redmine.lock).
#
#   usage: redmine-start.sh            (as root)
#
# State (SQLite DB, files, logs, pid) lives in ${SDX_TS_DIR:-/var/tmp/sdx-ts}/redmine/; Debian's multi-instance
# support reaches it through the symlink /var/lib/redmine/$REDMINE_INSTANCE -> that directory.
# Writes ${SDX_TS_DIR:-/var/tmp/sdx-ts}/redmine.env:
#   REDMINE_URL REDMINE_API_KEY (non-admin user sdx-api) REDMINE_ADMIN_KEY REDMINE_ADMIN_USER
#   REDMINE_ADMIN_PASSWORD REDMINE_PROJECT REDMINE_PROJECT2 REDMINE_CASE_FIELD REDMINE_REQUESTER_FIELD
#   (a third project, sdx-handover, is the handover "queue" of the example connector file)
#   REDMINE_MAX_FILE_BYTES REDMINE_API_ROLE
#
# Environment (defaults in brackets):
#   REDMINE_PORT [9081]  REDMINE_INSTANCE [sdx$REDMINE_PORT]  SDX_TS_DIR [/var/tmp/sdx-ts]
#   REDMINE_API_ROLE [Developer]   role of sdx-api in the projects (Developer: the default workflow restricts it;
#                                  Manager: every transition allowed)
#   REDMINE_MAX_FILE_KB [5120]     Redmine's setting attachment_max_size (KB)
#   REDMINE_API_KEY / REDMINE_ADMIN_KEY (40 hex, fixed defaults)  REDMINE_ADMIN_PASSWORD [SdxAdmin-Pass1]
set -euo pipefail

PORT=${REDMINE_PORT:-9081}
TS=${SDX_TS_DIR:-/var/tmp/sdx-ts}
STATE=$TS/redmine
INSTANCE=${REDMINE_INSTANCE:-sdx$PORT}
ROLE=${REDMINE_API_ROLE:-Developer}
MAX_KB=${REDMINE_MAX_FILE_KB:-5120}
API_KEY=${REDMINE_API_KEY:-5d1c0a6e2b7f48e39a4c1d2e3f405162738495a6}
ADMIN_KEY=${REDMINE_ADMIN_KEY:-adad1e5d7c2b4f60a9e8d7c6b5a4f3e2d1c0b9a8}
ADMIN_PW=${REDMINE_ADMIN_PASSWORD:-SdxAdmin-Pass1}
PROJECT=sdx
PROJECT2=sdx-other
CASE_FIELD="SDX Case"
REQ_FIELD="SDX Requester"
URL=http://127.0.0.1:$PORT
SHARE=/usr/share/redmine
INST=$STATE/instance
PIDF=$STATE/rails-server.pid
ENVF=$TS/redmine.env

now_ms() { date +%s%3N; }
T0=$(now_ms)
log() { local d=$(( $(now_ms) - T0 )); printf '[redmine-start +%d.%01ds] %s\n' $((d/1000)) $(((d%1000)/100)) "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
in_redmine() { (cd "$SHARE" && env REDMINE_INSTANCE="$INSTANCE" RAILS_ENV=production REDMINE_LANG=en "$@" </dev/null); }
api_ok() { # $1 = key; 0 when /users/current.json answers 200 with that key
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "X-Redmine-API-Key: $1" "$URL/users/current.json" 2>/dev/null)" = 200 ]
}
server_pid() { local p; p=$(cat "$PIDF" 2>/dev/null) || return 1; [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"; }

[[ $ADMIN_KEY =~ ^[0-9a-f]{40}$ && $API_KEY =~ ^[0-9a-f]{40}$ ]] || die "REDMINE_API_KEY and REDMINE_ADMIN_KEY must be 40 lowercase hex digits"
[[ $MAX_KB =~ ^[0-9]+$ ]] || die "REDMINE_MAX_FILE_KB must be a number"
[ "$(id -u)" = 0 ] || die "run as root (installs packages)"
mkdir -p "$TS"
exec 9>"$TS/redmine.lock"
log "waiting for the lock $TS/redmine.lock"
flock -w 1800 9 || die "could not take $TS/redmine.lock within 30 min"

SETUP_SIG=$(printf 'v3 %s %s %s %s %s %s' "$INSTANCE" "$ROLE" "$MAX_KB" "$API_KEY" "$ADMIN_KEY" "$ADMIN_PW" | sha256sum | cut -c1-64)

write_env() {
  ( umask 077; : >"$ENVF.tmp" )   # it holds the keys: root only
  cat >"$ENVF.tmp" <<EOF
REDMINE_URL=$URL
REDMINE_API_KEY=$API_KEY
REDMINE_ADMIN_KEY=$ADMIN_KEY
REDMINE_ADMIN_USER=admin
REDMINE_ADMIN_PASSWORD=$ADMIN_PW
REDMINE_PROJECT=$PROJECT
REDMINE_PROJECT2=$PROJECT2
REDMINE_CASE_FIELD=$CASE_FIELD
REDMINE_REQUESTER_FIELD=$REQ_FIELD
REDMINE_MAX_FILE_BYTES=$((MAX_KB * 1024))
REDMINE_API_ROLE=$ROLE
REDMINE_INSTANCE=$INSTANCE
EOF
  mv "$ENVF.tmp" "$ENVF"
}

# 0. Already running with this setup? Then only (re)write the env file.
if p=$(server_pid) && [ "$(cat "$STATE/setup.done" 2>/dev/null)" = "$SETUP_SIG" ] && api_ok "$API_KEY"; then
  write_env
  log "reusing the running Redmine (pid $p) at $URL"
  exit 0
fi

# 1. Debian packages.
PKGS=(redmine redmine-sqlite thin curl)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
mkdir -p "$STATE"
if [ ${#missing[@]} -gt 0 ]; then
  log "apt: installing ${missing[*]}"
  debconf-set-selections <<EOF
redmine redmine/instances/default/dbconfig-install boolean true
redmine redmine/instances/default/database-type select sqlite3
EOF
  apt-get -o DPkg::Lock::Timeout=600 update -q >"$STATE/apt-update.log" 2>&1 || { tail -20 "$STATE/apt-update.log" >&2; die "apt-get update failed"; }
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
    "${PKGS[@]}" >"$STATE/apt-install.log" 2>&1 || { tail -20 "$STATE/apt-install.log" >&2; die "apt-get install failed (see $STATE/apt-install.log)"; }
  log "apt: done"
else
  log "apt: ${PKGS[*]} already installed"
fi

# 2. Our own instance: /var/lib/redmine/$INSTANCE -> $STATE/instance.
mkdir -p "$INST"/{config,log,files,tmp,public/plugin_assets}
if [ "$(readlink /var/lib/redmine/"$INSTANCE" 2>/dev/null)" != "$INST" ]; then
  [ -e /var/lib/redmine/"$INSTANCE" ] && [ ! -L /var/lib/redmine/"$INSTANCE" ] && die "/var/lib/redmine/$INSTANCE exists and is not our symlink"
  ln -sfn "$INST" /var/lib/redmine/"$INSTANCE"
fi
DBYML="production:
  adapter: sqlite3
  database: $STATE/redmine.sqlite3
  timeout: 10000
  encoding: utf8"
[ "$(cat "$INST/config/database.yml" 2>/dev/null)" = "$DBYML" ] || printf '%s\n' "$DBYML" >"$INST/config/database.yml"
[ -s "$INST/config/secret_key.txt" ] || ruby -rsecurerandom -e 'puts SecureRandom.hex(32)' >"$INST/config/secret_key.txt"
if ! (cd "$SHARE" && bundle check >/dev/null 2>&1); then
  log "bundle: resolving the local gems"
  (cd "$SHARE" && bundle install --local --quiet) >"$STATE/bundle.log" 2>&1 || { tail -20 "$STATE/bundle.log" >&2; die "bundle install --local failed"; }
fi

# 3. The server must not run while the database is set up; a dead one leaves a stale pid file.
if p=$(server_pid); then
  log "stopping the running server (pid $p) to set it up again"
  kill -TERM "$p"; for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$p" 2>/dev/null && kill -KILL "$p"
fi
rm -f "$PIDF"
if ss -ltnH "( sport = :$PORT )" | grep -q .; then
  die "port $PORT is in use by another process (set REDMINE_PORT)"
fi

# 4. Database: migrate, default data (two separate rake runs: one run fails on 'issues_visibility').
if [ ! -f "$STATE/db.done" ]; then
  rm -f "$STATE/redmine.sqlite3" "$STATE/setup.done"
  log "db: rake db:migrate"
  in_redmine bundle exec rake db:migrate >"$STATE/db-migrate.log" 2>&1 || { tail -20 "$STATE/db-migrate.log" >&2; die "db:migrate failed"; }
  log "db: rake redmine:load_default_data"
  in_redmine bundle exec rake redmine:load_default_data >"$STATE/db-default-data.log" 2>&1 || { tail -20 "$STATE/db-default-data.log" >&2; die "load_default_data failed"; }
  touch "$STATE/db.done"
fi

# 5. Settings, users, keys, projects, custom fields (rails runner; idempotent).
if [ "$(cat "$STATE/setup.done" 2>/dev/null)" != "$SETUP_SIG" ]; then
  log "setup: rails runner (settings, admin, sdx-api as $ROLE, projects $PROJECT $PROJECT2, fields)"
  cat >"$STATE/setup.rb" <<'RUBY'
e = ENV
Setting.rest_api_enabled = '1'
Setting.login_required = '1'
Setting.attachment_max_size = e.fetch('SDX_MAX_KB')
Setting.default_language = 'en'

def api_token(user, key)
  t = Token.where(user_id: user.id, action: 'api').first || Token.create!(user: user, action: 'api')
  t.update_column(:value, key) unless t.value == key
end

admin = User.find_by_login('admin') or raise 'no admin user'
admin.password = admin.password_confirmation = e.fetch('SDX_ADMIN_PW')
admin.must_change_passwd = false
admin.save!
api_token(admin, e.fetch('SDX_ADMIN_KEY'))

api = User.find_by_login('sdx-api') || User.new.tap { |u| u.login = 'sdx-api' }
api.firstname = 'SDX'
api.lastname = 'Connector'
api.mail = 'sdx-api@example.org'
api.admin = false
api.status = User::STATUS_ACTIVE
api.language = 'en'
if api.new_record?
  api.password = api.password_confirmation = SecureRandom.hex(20)
end
api.must_change_passwd = false
api.save!
api_token(api, e.fetch('SDX_API_KEY'))

role = Role.find_by_name(e.fetch('SDX_ROLE')) or raise "no role #{e['SDX_ROLE']}"
projects = { 'sdx' => 'SDX', 'sdx-other' => 'SDX Other', 'sdx-handover' => 'SDX Weiterleitung' }.map do |ident, name|
  p = Project.find_by_identifier(ident) || Project.new.tap { |x| x.identifier = ident }
  p.name = name
  p.is_public = false
  p.trackers = Tracker.sorted.to_a
  p.enabled_module_names = (p.enabled_module_names | ['issue_tracking'])
  p.save!
  m = Member.where(project_id: p.id, user_id: api.id).first
  if m.nil?
    m = Member.new(project: p, principal: api)
    m.role_ids = [role.id]
    m.save!
  elsif m.role_ids != [role.id]
    m.role_ids = [role.id]
  end
  p
end

{ 'SDX Case' => true, 'SDX Requester' => false }.each do |name, filter|
  cf = IssueCustomField.find_by_name(name) || IssueCustomField.new(name: name)
  cf.field_format = 'string'
  cf.is_for_all = false         # enabled per project: the projects API lists only these (include=issue_custom_fields)
  cf.projects = projects
  cf.visible = true
  cf.editable = true
  cf.is_filter = filter
  cf.searchable = filter
  cf.trackers = Tracker.sorted.to_a
  cf.save!
end
puts "setup ok: role #{role.name}, projects #{projects.map(&:identifier).join(',')}"
RUBY
  in_redmine env SDX_MAX_KB="$MAX_KB" SDX_ADMIN_PW="$ADMIN_PW" SDX_ADMIN_KEY="$ADMIN_KEY" SDX_API_KEY="$API_KEY" \
    SDX_ROLE="$ROLE" bundle exec rails runner "$STATE/setup.rb" >"$STATE/setup.log" 2>&1 \
    || { tail -20 "$STATE/setup.log" >&2; die "setup (rails runner) failed"; }
  echo "$SETUP_SIG" >"$STATE/setup.done"
fi

# 6. Start thin on 127.0.0.1 (rails refuses to start while its pid file exists: removed above).
log "server: starting thin on 127.0.0.1:$PORT"
(
  cd "$SHARE"
  exec 9>&-   # the server must not inherit (and hold) the lock
  exec setsid env REDMINE_INSTANCE="$INSTANCE" RAILS_ENV=production REDMINE_LANG=en \
    bundle exec rails server -u thin -b 127.0.0.1 -p "$PORT" -e production -P "$PIDF" \
    </dev/null >>"$STATE/server.log" 2>&1
) &
for i in $(seq 1 1200); do
  api_ok "$API_KEY" && break
  if ! kill -0 $! 2>/dev/null; then tail -20 "$STATE/server.log" >&2; die "the server exited (see $STATE/server.log)"; fi
  [ "$i" = 1200 ] && { tail -20 "$STATE/server.log" >&2; die "the REST API did not answer within 120 s"; }
  sleep 0.1
done
api_ok "$ADMIN_KEY" || die "the admin key is not accepted"
[ -f "$PIDF" ] || die "no pid file $PIDF"
write_env
log "ready: $URL (pid $(cat "$PIDF")), env in $ENVF"
