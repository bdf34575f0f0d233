#!/bin/bash
# rt-start.sh - a Request Tracker 5 (Debian bookworm) for SDX on 127.0.0.1, reached over REST2.
#
#   usage: rt-start.sh            (as root; idempotent; safe to run from several processes at once)
#
# Steps, each done only when missing: Debian packages -> own site config under $STATE (the Debian config
# in /etc is not loaded) -> SQLite database -> API user, rights, queues, custom field, API token (Perl,
# because REST2 cannot apply a custom field to a queue) -> rt-server (Starlet) on 127.0.0.1:$RT_PORT
# -> wait until REST2 answers with the token -> write $SDX_TS_DIR/rt.env.
#
# A running instance that answers is reused; a dead one (stale pid file) is restarted.
#
# Environment (defaults in brackets):
#   RT_PORT [9080]  SDX_TS_DIR [/var/tmp/sdx-ts]  RT_WORKERS [2]  RT_MAX_FILE_BYTES [10485760]
#   RT_ROOT_PASSWORD [sdx-root-pw]  RT_START_TIMEOUT [90] (seconds to wait for REST2)
#   RT_BCRYPT_COST [6] (bcrypt cost of passwords and tokens; RT's default 12 costs ~0.3 s CPU per REST call)
#   RT_PUSH_URL [http://127.0.0.1:9082]  where a global scrip tells the SDX connector that a ticket changed (POST
#   /push, bearer token RT_PUSH_TOKEN of the env file; see docs/connectors.md)
#
# State: $SDX_TS_DIR/rt/ (site config, SQLite database, mason cache, mbox of the mails RT would send,
# token, pid file, logs). Stop with rt-stop.sh (--purge deletes the state).
set -euo pipefail

PORT=${RT_PORT:-9080}
TS_DIR=${SDX_TS_DIR:-/var/tmp/sdx-ts}
STATE=$TS_DIR/rt
WORKERS=${RT_WORKERS:-2}
MAX_FILE_BYTES=${RT_MAX_FILE_BYTES:-10485760}
ROOT_PW=${RT_ROOT_PASSWORD:-sdx-root-pw}
BCRYPT_COST=${RT_BCRYPT_COST:-6}
START_TIMEOUT=${RT_START_TIMEOUT:-90}
PUSH_URL=${RT_PUSH_URL:-http://127.0.0.1:9082}
API_USER=sdx-api
CASE_FIELD='SDX Case'
# The queues the API user works in: RT's own "General" (incoming cases) and "SDX" (a ticket moved there is
# handed to the partner; see crates/connectors/examples/rt.toml). Both get the custom field and the same rights.
QUEUES=("General" "SDX")
SETUP_VERSION=4          # bump when the Perl setup below changes: it then runs again on the next start

RT_SERVER=/usr/share/request-tracker5/libexec/rt-server
RT_SETUP_DB=/usr/sbin/rt-setup-database-5
URL=http://127.0.0.1:$PORT

T0=$(date +%s%3N)
log() { local t=$(( $(date +%s%3N) - T0 )); printf '[rt-start %s +%d.%03ds] %s\n' "$(date +%H:%M:%S)" $((t/1000)) $((t%1000)) "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (installs Debian packages)"
[[ $PORT =~ ^[0-9]+$ ]] || die "RT_PORT must be a number, not '$PORT'"
[[ $MAX_FILE_BYTES =~ ^[0-9]+$ ]] || die "RT_MAX_FILE_BYTES must be a number of bytes"
mkdir -p "$TS_DIR"

# One start at a time (tests in several processes call this script at once).
exec 9>"$TS_DIR/rt.lock"
flock -w 900 9 || die "could not lock $TS_DIR/rt.lock within 900 s"
log "lock taken (port $PORT, state $STATE)"

# The secret of the push scrip (made once, kept with the instance); the setup runs again when it or the URL change.
mkdir -p "$STATE"
if [ "$(wc -c <"$STATE/push-token" 2>/dev/null || echo 0)" != 32 ]; then
  (umask 077; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STATE/push-token")
fi
PUSH_TOKEN=$(cat "$STATE/push-token")
SETUP_STAMP=setup.v$SETUP_VERSION.$(printf '%s %s' "$PUSH_URL" "$PUSH_TOKEN" | sha1sum | cut -c1-12)

# Every RT command must see our config only: RT_SITE_CONFIG_DIR replaces /etc/request-tracker5/RT_SiteConfig.d,
# so Debian's dbconfig database and its WebPath /rt are not loaded.
export RT_SITE_CONFIG=$STATE/etc/RT_SiteConfig.pm
export RT_SITE_CONFIG_DIR=$STATE/etc/RT_SiteConfig.d

api_ok() {   # REST2 answers with the token (200 on a small authenticated call)
  local token
  token=$(cat "$STATE/token" 2>/dev/null) || return 1
  [ -n "$token" ] || return 1
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: token $token" \
        "$URL/REST/2.0/queues/all" 2>/dev/null)" = 200 ]
}
server_pid() {   # pid of our running rt-server, or nothing (a reused pid or a zombie is not ours)
  local pid
  pid=$(cat "$STATE/rt-server.pid" 2>/dev/null) || return 0
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "rt-server --port" && echo "$pid"
  return 0
}
orphans() {   # rt-server processes of ours still listening on the port (workers whose parent was killed)
  local pid
  for pid in $(ss -ltnpH "( sport = :$PORT )" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "rt-server --port $PORT " && echo "$pid"
  done
  return 0
}
write_env() {
  local tmp=$TS_DIR/rt.env.$$
  cat >"$tmp" <<ENV
# written by rt-start.sh $(date -u +%FT%TZ); values with spaces are quoted so that a shell can source it
RT_URL=$URL
RT_TOKEN=$(cat "$STATE/token")
RT_CASE_FIELD="$CASE_FIELD"
RT_QUEUE=${QUEUES[0]}
RT_QUEUES="$(IFS=,; echo "${QUEUES[*]}")"
RT_API_USER=$API_USER
RT_MAX_FILE_BYTES=$MAX_FILE_BYTES
RT_STATE=$STATE
RT_PUSH_URL=$PUSH_URL
RT_PUSH_TOKEN=$PUSH_TOKEN
ENV
  chmod 600 "$tmp"
  mv -f "$tmp" "$TS_DIR/rt.env"
  log "wrote $TS_DIR/rt.env"
}

SITE_CONFIG=$(cat <<CONF
# Generated by rt-start.sh - do not edit (rewritten on every start).
use utf8;
Set(\$rtname, 'sdx-rt');
Set(\$Organization, 'sdx.localhost');
Set(\$Timezone, 'UTC');
Set(\$DatabaseType, 'SQLite');
Set(\$DatabaseName, '$STATE/rtdb');
Set(\$WebPath, '');
Set(\$WebDomain, '127.0.0.1');
Set(\$WebPort, $PORT);
Set(\$WebBaseURL, '$URL');
Set(\$CanonicalizeRedirectURLs, 0);
Set(\$MasonDataDir, '$STATE/mason_data');
Set(\$MasonSessionDir, '$STATE/session_data');
# No mail ever leaves: what RT would send is appended to an mbox file.
Set(\$MailCommand, 'mbox');
\$RT::VarPath = '$STATE/var';   # where the mbox goes (RT_SiteConfig.pm is Perl)
Set(\$CorrespondAddress, 'rt@localhost');
Set(\$CommentAddress, 'rt-comment@localhost');
Set(\$LogToSyslog, undef);
Set(\$LogToSTDERR, 'warning');
Set(\$LogToFile, undef);
# Files: one explicit limit. Above it RT drops the file (and records an AttachmentDrop transaction) instead of
# storing a truncated one; the SDX connector refuses such files before it writes anything (TooLarge).
Set(\$MaxAttachmentSize, $MAX_FILE_BYTES);
Set(\$TruncateLongAttachments, 0);
Set(\$DropLongAttachments, 1);
# RT hashes the API token with bcrypt and checks it on EVERY request; at RT's default cost 12 that is ~0.3 s of
# CPU per REST call. The token is 128 random bits, not a password a human chose, so a low cost does not make
# it guessable. (RT raises a hash's cost on use, never lowers it: the token is created after this is set.)
Set(\$BcryptCost, $BCRYPT_COST);
# RT's default lifecycle plus "closed": a resolved ticket whose originator confirmed the solution. It is
# reachable only from "resolved" (SDX: resolved -> closed) and left only by re-opening. Everything else is
# RT 5.0.3's default lifecycle unchanged (a site %Lifecycles entry replaces the core entry of the same name).
Set(%Lifecycles,
    default => {
        initial  => [qw(new)],
        active   => [qw(open stalled)],
        inactive => [qw(resolved closed rejected deleted)],
        defaults => {
            on_create => 'new', approved => 'open', denied => 'rejected',
            reminder_on_open => 'open', reminder_on_resolve => 'resolved',
        },
        transitions => {
            ''       => [qw(new open resolved)],
            new      => [qw(    open stalled resolved        rejected deleted)],
            open     => [qw(new      stalled resolved        rejected deleted)],
            stalled  => [qw(new open         resolved        rejected deleted)],
            resolved => [qw(new open stalled          closed rejected deleted)],
            closed   => [qw(    open                                 deleted)],
            rejected => [qw(new open stalled resolved                deleted)],
            deleted  => [qw(new open stalled resolved        rejected        )],
        },
        rights => { '* -> deleted' => 'DeleteTicket', '* -> *' => 'ModifyTicket' },
        actions => [
            'new -> open'      => { label => 'Open It', update => 'Respond' },
            'new -> resolved'  => { label => 'Resolve', update => 'Comment' },
            'new -> rejected'  => { label => 'Reject',  update => 'Respond' },
            'new -> deleted'   => { label => 'Delete' },
            'open -> stalled'  => { label => 'Stall',   update => 'Comment' },
            'open -> resolved' => { label => 'Resolve', update => 'Comment' },
            'open -> rejected' => { label => 'Reject',  update => 'Respond' },
            'stalled -> open'  => { label => 'Open It' },
            'resolved -> open' => { label => 'Re-open', update => 'Comment' },
            'resolved -> closed' => { label => 'Close' },
            'closed -> open'   => { label => 'Re-open', update => 'Comment' },
            'rejected -> open' => { label => 'Re-open', update => 'Comment' },
            'deleted -> open'  => { label => 'Undelete' },
        ],
    },
);
# Priorities by name (REST2 shows and takes these names).
Set(%PriorityAsString, Default => { Low => 0, Medium => 50, High => 100 });
1;
CONF
)

# Fast path: already running with this config, set up, and answering.
if [ -n "$(server_pid)" ] && [ -f "$STATE/$SETUP_STAMP" ] \
   && [ "$(cat "$RT_SITE_CONFIG" 2>/dev/null)" = "$SITE_CONFIG" ] && api_ok; then
  log "reusing the running RT (pid $(server_pid))"
  write_env
  log "done"
  exit 0
fi

########################################################################################
# 1. Debian packages
########################################################################################
PKGS=(request-tracker5 rt5-db-sqlite rt5-standalone dma w3m curl)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  mkdir -p "$STATE/log"
  log "apt: installing ${missing[*]} (about a minute)"
  debconf-set-selections <<SEL
request-tracker5 request-tracker5/dbconfig-install boolean true
request-tracker5 request-tracker5/database-type select sqlite3
request-tracker5 request-tracker5/initial-root-password password $ROOT_PW
request-tracker5 request-tracker5/install-cronjobs boolean false
request-tracker5 request-tracker5/handle-siteconfig-permissions boolean true
dma dma/mailname string localhost
dma dma/relayhost string
SEL
  apt-get -o DPkg::Lock::Timeout=600 update -q >"$STATE/log/apt-update.log" 2>&1 \
    || log "apt-get update failed (continuing with the lists there are)"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
      "${missing[@]}" >"$STATE/log/apt-install.log" 2>&1 \
    || { tail -20 "$STATE/log/apt-install.log" >&2; die "apt-get install failed (log: $STATE/log/apt-install.log)"; }
  log "apt: done"
else
  log "apt: packages present"
fi
[ -x "$RT_SERVER" ] || die "$RT_SERVER missing after install"

########################################################################################
# 2. Our own site config
########################################################################################
# A dead server (stale pid file) or a foreign process on the port.
pid=$(server_pid)
if [ -n "$pid" ]; then
  log "rt-server pid $pid runs with another config or does not answer: restarting it"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$STATE/rt-server.pid"
left=$(orphans)
if [ -n "$left" ]; then
  log "stopping rt-server workers left without their parent: ${left//$'\n'/ }"
  kill -TERM $left 2>/dev/null || true
  for _ in $(seq 1 50); do [ -z "$(orphans)" ] && break; sleep 0.2; done
  left=$(orphans); [ -z "$left" ] || kill -KILL $left 2>/dev/null || true
  sleep 0.2
fi
if ss -ltnH "( sport = :$PORT )" | grep -q .; then
  die "port $PORT is in use by another process (set RT_PORT to use another one)"
fi

mkdir -p "$STATE/etc/RT_SiteConfig.d" "$STATE/log" "$STATE/mason_data" "$STATE/session_data" "$STATE/var"
chmod 700 "$STATE"
printf '%s\n' "$SITE_CONFIG" >"$STATE/etc/RT_SiteConfig.pm.new"
mv -f "$STATE/etc/RT_SiteConfig.pm.new" "$RT_SITE_CONFIG"
printf '%s\n' "$ROOT_PW" >"$STATE/rootpw"; chmod 600 "$STATE/rootpw"

########################################################################################
# 3. Database
########################################################################################
if [ ! -f "$STATE/db.done" ]; then
  log "db: creating $STATE/rtdb"
  rm -f "$STATE/rtdb" "$STATE"/setup.v* "$STATE/token"
  "$RT_SETUP_DB" --action init --skip-create --root-password-file "$STATE/rootpw" \
      >"$STATE/log/setup-database.log" 2>&1 \
    || "$RT_SETUP_DB" --action init --root-password-file "$STATE/rootpw" >"$STATE/log/setup-database.log" 2>&1 \
    || { tail -20 "$STATE/log/setup-database.log" >&2; rm -f "$STATE/rtdb"; die "rt-setup-database-5 failed"; }
  touch "$STATE/db.done"
  log "db: done"
fi

########################################################################################
# 4. API user, rights, queues, custom field, token (RT's Perl API)
########################################################################################
if [ ! -f "$STATE/$SETUP_STAMP" ] || [ ! -s "$STATE/token" ]; then
  log "setup: user $API_USER, queues ${QUEUES[*]}, custom field '$CASE_FIELD', token"
  SDX_API_USER=$API_USER SDX_CASE_FIELD=$CASE_FIELD SDX_QUEUES=$(IFS=$'\t'; echo "${QUEUES[*]}") \
  SDX_TOKEN_FILE=$STATE/token SDX_PUSH_URL=$PUSH_URL SDX_PUSH_TOKEN=$PUSH_TOKEN perl -e '
use strict; use warnings;
use lib "/usr/share/request-tracker5/lib";
use RT; RT::LoadConfig(); RT::Init();
my $sys = RT->SystemUser;
sub ok { my ($what, $ok, $msg) = @_; die "$what: $msg\n" unless $ok; }

# The API user: privileged (an agent), no password (it logs in by token only).
my $user = RT::User->new($sys);
$user->Load($ENV{SDX_API_USER});
unless ($user->Id) {
    ok("create user", $user->Create(Name => $ENV{SDX_API_USER}, RealName => "SDX connector",
        EmailAddress => "$ENV{SDX_API_USER}\@localhost", Privileged => 1));
}
ok("privileged", $user->SetPrivileged(1)) unless $user->Privileged;

# Queues.
my @queues;
for my $name (split /\t/, $ENV{SDX_QUEUES}) {
    my $q = RT::Queue->new($sys);
    $q->Load($name);
    ok("create queue $name", $q->Create(Name => $name, Description => "SDX")) unless $q->Id;
    push @queues, $q;
}

# The custom field for the SDX case id: one free-form value on tickets, applied to our queues.
my $cf = RT::CustomField->new($sys);
$cf->LoadByName(Name => $ENV{SDX_CASE_FIELD}, LookupType => RT::Ticket->CustomFieldLookupType);
unless ($cf->Id) {
    ok("create custom field", $cf->Create(Name => $ENV{SDX_CASE_FIELD}, Type => "Freeform", MaxValues => 1,
        LookupType => RT::Ticket->CustomFieldLookupType, Description => "SDX case id"));
}
for my $q (@queues) {
    next if $cf->IsAdded($q->Id);
    ok("apply custom field to " . $q->Name, $cf->AddToObject($q));
}

# Rights on each queue: everything an agent needs, but not DeleteTicket (a connector never deletes).
my @rights = qw(SeeQueue ShowTicket CreateTicket ModifyTicket ReplyToTicket CommentOnTicket ShowTicketComments
    OwnTicket TakeTicket Watch WatchAsAdminCc SeeCustomField ModifyCustomField ShowOutgoingEmail);
my $principal = $user->PrincipalObj;
# Listing custom fields (GET /customfields) checks the right on the field itself, not on a queue.
for my $right (qw(SeeCustomField ModifyCustomField)) {
    next if $principal->HasRight(Right => $right, Object => $cf);
    ok("grant $right on the custom field", $principal->GrantRight(Right => $right, Object => $cf));
}
for my $q (@queues) {
    for my $right (@rights) {
        next if $principal->HasRight(Right => $right, Object => $q);
        ok("grant $right on " . $q->Name, $principal->GrantRight(Right => $right, Object => $q));
    }
}
# SDX push: a global scrip tells the connector, once per request that changed a ticket (batch stage, after
# every change of the request is written), which ticket changed. The connector reads the ticket itself; a push
# that fails (no connector listening) changes nothing in RT, and polling remains the safety net.
my $push = qq{eval { require LWP::UserAgent; LWP::UserAgent->new(timeout => 2)->post(q{$ENV{SDX_PUSH_URL}/push},
    Authorization => q{Bearer $ENV{SDX_PUSH_TOKEN}}, q{Content-Type} => q{application/json},
    Content => q[{"ticket":] . \$self->TicketObj->Id . q[}]) }; return 1;};
my $scrip = RT::Scrip->new($sys);
$scrip->LoadByCols(Description => "SDX push");
if (!$scrip->Id) {
    ok("create the push scrip", $scrip->Create(Description => "SDX push", ScripCondition => "On Transaction",
        ScripAction => "User Defined", Template => "Blank", Stage => "TransactionBatch",
        CustomPrepareCode => "return 1;", CustomCommitCode => $push));
}
elsif (($scrip->CustomCommitCode // "") ne $push) {
    ok("update the push scrip", $scrip->SetCustomCommitCode($push));
}

# The API token (its secret is shown once, at creation). RT checks the token with bcrypt on every request,
# trying every token of the user in turn: keep exactly one.
my $old = RT::AuthTokens->new($sys);
$old->LimitOwner(VALUE => $user->Id);
while (my $t = $old->Next) { $t->Delete }
my $token = RT::AuthToken->new($sys);
my ($id, $msg, $secret) = $token->Create(Owner => $user->Id, Description => "sdx-connector");
die "create token: $msg\n" unless $id && $secret;
open my $fh, ">", "$ENV{SDX_TOKEN_FILE}.new" or die "$ENV{SDX_TOKEN_FILE}: $!\n";
print $fh $secret, "\n"; close $fh or die "$!\n";
chmod 0600, "$ENV{SDX_TOKEN_FILE}.new";
rename "$ENV{SDX_TOKEN_FILE}.new", $ENV{SDX_TOKEN_FILE} or die "$!\n";
' >"$STATE/log/setup.log" 2>&1 || { tail -20 "$STATE/log/setup.log" >&2; die "RT setup failed (log: $STATE/log/setup.log)"; }
  rm -f "$STATE"/setup.v*
  touch "$STATE/$SETUP_STAMP"
  log "setup: done"
fi

########################################################################################
# 5. Server
########################################################################################
log "server: starting rt-server on 127.0.0.1:$PORT with $WORKERS workers"
cd "$STATE"
setsid "$RT_SERVER" --port "$PORT" --host 127.0.0.1 --max-workers "$WORKERS" \
    >>"$STATE/log/rt-server.log" 2>&1 </dev/null 9>&- &   # 9>&-: the server must not hold the lock
echo $! >"$STATE/rt-server.pid"
echo "$PORT" >"$STATE/rt-server.port"
deadline=$(( $(date +%s) + START_TIMEOUT ))
until api_ok; do
  pid=$(server_pid)
  [ -n "$pid" ] || { tail -20 "$STATE/log/rt-server.log" >&2; die "rt-server exited (log: $STATE/log/rt-server.log)"; }
  [ "$(date +%s)" -lt "$deadline" ] || { tail -20 "$STATE/log/rt-server.log" >&2; die "REST2 did not answer within ${START_TIMEOUT}s"; }
  sleep 0.3
done
log "server: REST2 answers (pid $(server_pid))"
write_env
log "done"
