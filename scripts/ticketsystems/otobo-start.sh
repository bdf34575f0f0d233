#!/bin/bash
# otobo-start.sh - bring up OTOBO 11 (rel-11_0) on 127.0.0.1 for SDX tests and demos (Debian 12, as root).
#
#   usage: scripts/ticketsystems/otobo-start.sh
#
# Idempotent: every step checks what is already there and does only what is missing; a running instance is
# reused, a dead one (starman, daemon, PostgreSQL) is started again. Safe when several processes start it at
# once (flock on $SDX_TS_DIR/otobo.lock). Progress goes to stderr with timings.
#
# Steps: Debian packages -> source tree (tarball) -> user 'otobo' -> Kernel/Config.pm -> private PostgreSQL 15
#        on 127.0.0.1:$PG_PORT -> schema -> SysConfig -> agents -> dynamic field SDXCase -> GenericInterface web
#        service SDX (REST, with the SDX::VocabularyGet operation) -> OTOBO daemon -> starman on
#        127.0.0.1:$OTOBO_PORT -> wait until the REST API answers -> write $SDX_TS_DIR/otobo.env.
#
# Environment (defaults in brackets):
#   SDX_TS_DIR [/var/tmp/sdx-ts]     state in $SDX_TS_DIR/otobo, env file $SDX_TS_DIR/otobo.env
#   OTOBO_PORT [8580]   PG_PORT [54329]   OTOBO_WORKERS [4]   OTOBO_DAEMON [1]
#   OTOBO_PUSH_URL [http://127.0.0.1:8591]   where OTOBO tells the SDX connector that a ticket changed (POST
#                       /push, basic auth, password in OTOBO_PUSH_TOKEN of the env file; see docs/connectors.md)
#   OTOBO_ROOT_PW [OtoboAdm1n!]   OTOBO_API_USER [sdx-api]   OTOBO_API_PW [SdxApi-Pass1]   OTOBO_DB_PW [otobo-db-pw]
#   SDX_OTOBO_TARBALL   the OTOBO source (otobo-src.tar.gz, OTOBO 11.0, rel-11_0, commit 9f0e4d92, GPL-3.0);
#                       else <repo>/../shared/ticketsystems/otobo/otobo-src.tar.gz,
#                       else /work/shared/ticketsystems/otobo/otobo-src.tar.gz
#
# Env file: OTOBO_URL (GenericInterface base of web service SDX), OTOBO_USER, OTOBO_PASSWORD, OTOBO_CASE_FIELD,
# OTOBO_WEB (agent UI), OTOBO_QUEUE, OTOBO_MAX_FILE_BYTES, OTOBO_ADMIN_USER, OTOBO_ADMIN_PASSWORD, OTOBO_PUSH_URL,
# OTOBO_PUSH_TOKEN.
set -euo pipefail

TS_DIR=${SDX_TS_DIR:-/var/tmp/sdx-ts}
BASE=$TS_DIR/otobo
WEB_PORT=${OTOBO_PORT:-8580}
PG_PORT=${PG_PORT:-54329}
WORKERS=${OTOBO_WORKERS:-4}
WITH_DAEMON=${OTOBO_DAEMON:-1}
ROOT_PW=${OTOBO_ROOT_PW:-OtoboAdm1n!}
API_USER=${OTOBO_API_USER:-sdx-api}
API_PW=${OTOBO_API_PW:-SdxApi-Pass1}
DB_PW=${OTOBO_DB_PW:-otobo-db-pw}
PUSH_URL=${OTOBO_PUSH_URL:-http://127.0.0.1:8591}
CASE_FIELD=SDXCase
QUEUE=Raw
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

HOMEDIR=$BASE/src                  # OTOBO "Home"
PGBIN=/usr/lib/postgresql/15/bin
PGDATA=$BASE/pgdata
PGSOCK=$BASE/pgsock
STATE=$BASE/state
RUN=$BASE/run
LOGDIR=$BASE/log
SETUP=$BASE/setup
ENV_FILE=$TS_DIR/otobo.env
APT=(apt-get -o DPkg::Lock::Timeout=600 -q)

now_ms() { date +%s%3N; }
T_START=$(now_ms)
secs() { local d=$(( $1 )); printf '%d.%01d' $((d/1000)) $(((d%1000)/100)); }   # ms -> "s.d"
log() { printf '[otobo-start %s +%6ss] %s\n' "$(date +%H:%M:%S)" "$(secs "$(now_ms) - T_START")" "$*" >&2; }
die() { printf '[otobo-start] ERROR: %s\n' "$*" >&2; exit 1; }
as_otobo() { (cd "$HOMEDIR" && runuser -u otobo -- "$@" </dev/null); }
console() { as_otobo perl bin/otobo.Console.pl "$@"; }
psql_pg()    { runuser -u postgres -- psql -h "$PGSOCK" -p "$PG_PORT" -U postgres -X -q -v ON_ERROR_STOP=1 "$@" </dev/null; }
psql_otobo() { PGPASSWORD=$DB_PW psql -h 127.0.0.1 -p "$PG_PORT" -U otobo -d otobo -X -q -v ON_ERROR_STOP=1 "$@" </dev/null; }
port_in_use() { ss -ltnH "( sport = :$1 )" | grep -q .; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }
# Workers of a starman master that died (kill -9) keep the port open: our own listeners on the port are the
# processes whose working directory is the OTOBO tree. TERM, then KILL.
reap_orphans() {
  local pids p
  pids=$(ss -ltnpH "( sport = :$WEB_PORT )" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true)
  for p in $pids; do
    [ "$(readlink "/proc/$p/cwd" 2>/dev/null)" = "$HOMEDIR" ] || continue
    log "web: stopping orphaned starman worker pid $p"
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in $pids; do
    for _ in $(seq 1 25); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    [ "$(readlink "/proc/$p/cwd" 2>/dev/null)" = "$HOMEDIR" ] && kill -KILL "$p" 2>/dev/null || true
  done
}

[ "$(id -u)" = 0 ] || die "run as root (installs packages, creates the system user otobo)"
mkdir -p "$TS_DIR"
chmod a+x "$TS_DIR"                      # postgres and otobo must traverse it
# fd 9 holds the lock; every long-lived child (PostgreSQL, daemon, starman) is started with 9>&- so that the
# lock ends with this script.
exec 9>"$TS_DIR/otobo.lock"
if ! flock -n 9; then
  log "waiting for another otobo-start.sh (lock $TS_DIR/otobo.lock)"
  flock -w 1800 9 || die "could not get the lock $TS_DIR/otobo.lock within 30 minutes"
fi
mkdir -p "$BASE" "$STATE" "$LOGDIR" "$SETUP"
# The secret OTOBO sends with its pushes to the connector (made once, kept with the instance). 128 bits: OTOBO
# base64-encodes "user:password" with a line break after 76 characters, which an HTTP server rightly refuses.
if [ "$(wc -c <"$STATE/push-token" 2>/dev/null || echo 0)" != 32 ]; then
  (umask 077; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$STATE/push-token")
fi
PUSH_TOKEN=$(cat "$STATE/push-token")
chmod 755 "$BASE"

########################################################################################
# 1. Debian packages (everything bin/otobo.CheckModules.pl marks "required", DBD::Pg, starman,
#    optional ones Debian ships). No CPAN.
########################################################################################
PKGS=(
  libarchive-zip-perl libconst-fast-perl libcapture-tiny-perl libjson-xs-perl libtimedate-perl
  libdatetime-perl libdatetime-timezone-perl libcss-minifier-xs-perl libconvert-binhex-perl libdbi-perl
  libdbix-connector-perl libfile-chmod-perl libhttp-message-perl libjavascript-minifier-xs-perl
  libscalar-list-utils-perl liblist-allutils-perl libwww-perl libmoo-perl libnamespace-autoclean-perl
  libnet-dns-perl libnet-smtp-ssl-perl libpath-class-perl libplack-perl libsub-exporter-perl
  libtemplate-perl libtext-csv-perl libtext-csv-xs-perl libtext-trim-perl libtry-tiny-perl liburi-perl
  libxml-libxml-perl libyaml-libyaml-perl libplack-middleware-header-perl libplack-middleware-reverseproxy-perl
  libdbd-pg-perl starman postgresql-15 postgresql-client-15
  libio-socket-ssl-perl libxml-libxslt-perl libcrypt-eksblowfish-perl libnet-ldap-perl libauthen-sasl-perl
  libauthen-ntlm-perl libmail-imapclient-perl libencode-hanextra-perl liblinux-inotify2-perl
  libcpanel-json-xs-perl libcrypt-jwt-perl libdata-dump-perl libtext-qrcode-perl
  # blobs missing from the source tarball, found through @INC: CPAN::Audit::DB, PDF::API2 CJK maps
  libcpan-audit-perl libpdf-api2-perl
  curl jq ca-certificates iproute2 util-linux
)
mapfile -t installed < <(dpkg-query -W -f='${Package} ${Status}\n' "${PKGS[@]}" 2>/dev/null | awk '/install ok installed/ {print $1}')
missing=()
for p in "${PKGS[@]}"; do
  [[ " ${installed[*]} " == *" $p "* ]] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt: installing ${#missing[@]} packages"
  "${APT[@]}" update >"$LOGDIR/apt-update.log" 2>&1 || { tail -20 "$LOGDIR/apt-update.log" >&2; die "apt-get update failed"; }
  DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y --no-install-recommends "${missing[@]}" \
    >"$LOGDIR/apt-install.log" 2>&1 || { tail -20 "$LOGDIR/apt-install.log" >&2; die "apt-get install failed (log $LOGDIR/apt-install.log)"; }
  log "apt: done"
else
  log "apt: all ${#PKGS[@]} packages installed"
fi
T_APT=$(now_ms)

########################################################################################
# 2. Source tree: extract the tarball into $HOMEDIR.
########################################################################################
find_tarball() {
  if [ -n "${SDX_OTOBO_TARBALL:-}" ]; then
    [ -f "$SDX_OTOBO_TARBALL" ] || die "SDX_OTOBO_TARBALL=$SDX_OTOBO_TARBALL does not exist"
    echo "$SDX_OTOBO_TARBALL"; return
  fi
  local c
  for c in "$REPO/../shared/ticketsystems/otobo/otobo-src.tar.gz" /work/shared/ticketsystems/otobo/otobo-src.tar.gz; do
    [ -f "$c" ] && { echo "$c"; return; }
  done
  die "no OTOBO source tarball: set SDX_OTOBO_TARBALL, or put otobo-src.tar.gz (OTOBO 11.0, rel-11_0) at $REPO/../shared/ticketsystems/otobo/ or /work/shared/ticketsystems/otobo/"
}
if [ ! -f "$HOMEDIR/RELEASE" ]; then
  TARBALL=$(find_tarball)
  log "source: extracting $TARBALL -> $HOMEDIR"
  rm -rf "$HOMEDIR"; mkdir -p "$HOMEDIR"
  tar -xzf "$TARBALL" -C "$HOMEDIR" --strip-components=1 || die "extracting $TARBALL failed"
  rm -f "$STATE"/schema.done "$STATE"/sysconfig.* "$STATE"/perms.done "$STATE"/setup.*
fi

########################################################################################
# 3. OS user 'otobo' (OTOBO refuses to run as root), Kernel/Config.pm, permissions
########################################################################################
if ! id otobo >/dev/null 2>&1; then
  log "user: creating system user otobo"
  useradd -r -U -d "$HOMEDIR" -c 'OTOBO user' -s /bin/bash otobo
fi
CONFIG_NEW=$(cat <<EOF
# Generated by otobo-start.sh (SDX) - local settings only.
package Kernel::Config;
use v5.24;
use strict;
use warnings;
use utf8;

sub Load {
    my \$Self = shift;
    \$Self->{DatabaseHost} = '127.0.0.1';
    \$Self->{Database}     = 'otobo';
    \$Self->{DatabaseUser} = 'otobo';
    \$Self->{DatabasePw}   = '$DB_PW';
    \$Self->{DatabaseDSN}  = "DBI:Pg:dbname=\$Self->{Database};host=\$Self->{DatabaseHost};port=$PG_PORT";
    \$Self->{Home}         = '$HOMEDIR';
    return 1;
}

use Kernel::Config::Defaults; # import Translatable()
use parent qw(Kernel::Config::Defaults);

1;
EOF
)
if [ ! -f "$HOMEDIR/Kernel/Config.pm" ] || [ "$(cat "$HOMEDIR/Kernel/Config.pm")" != "$CONFIG_NEW" ]; then
  log "config: writing Kernel/Config.pm (PostgreSQL 127.0.0.1:$PG_PORT)"
  printf '%s\n' "$CONFIG_NEW" >"$HOMEDIR/Kernel/Config.pm"
  rm -f "$STATE/perms.done"
fi
if [ ! -f "$STATE/perms.done" ]; then
  log "perms: bin/otobo.SetPermissions.pl"
  perl "$HOMEDIR/bin/otobo.SetPermissions.pl" --otobo-user=otobo --web-group=otobo >"$LOGDIR/setpermissions.log" 2>&1 \
    || die "otobo.SetPermissions.pl failed (log $LOGDIR/setpermissions.log)"
  touch "$STATE/perms.done"
fi
install -d -o otobo -g otobo "$RUN" "$SETUP"

########################################################################################
# 4. Private PostgreSQL 15 cluster on 127.0.0.1:$PG_PORT (unix socket in $PGSOCK)
########################################################################################
install -d -o postgres -g postgres -m 700 "$PGDATA"
install -d -o postgres -g postgres -m 755 "$PGSOCK" "$BASE/pglog"
if [ ! -f "$PGDATA/PG_VERSION" ]; then
  log "pg: initdb $PGDATA"
  runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >"$LOGDIR/initdb.log" 2>&1 || die "initdb failed (log $LOGDIR/initdb.log)"
fi
pg_ready() { pg_isready -q -h "$PGSOCK" -p "$PG_PORT" -t 2 >/dev/null 2>&1; }
pg_status() { runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }
if pg_ready; then
  log "pg: running"
else
  # A postmaster killed a moment ago still looks alive to pg_ctl (a zombie until reaped): wait for it.
  for _ in $(seq 1 20); do pg_status || break; pg_ready && break; sleep 0.5; done
  if ! pg_ready; then
    pg_status && die "PostgreSQL in $PGDATA runs but does not answer on port $PG_PORT (log $BASE/pglog/postgresql.log)"
    port_in_use "$PG_PORT" && die "port $PG_PORT is already in use (set PG_PORT)"
    log "pg: starting on 127.0.0.1:$PG_PORT"
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -l "$BASE/pglog/postgresql.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PGSOCK -c max_connections=100" start >/dev/null 9>&- \
      || die "PostgreSQL did not start (log $BASE/pglog/postgresql.log)"
  fi
fi
if [ "$(psql_pg -Atc "select count(*) from pg_roles where rolname='otobo'")" = 0 ]; then
  log "pg: creating role and database otobo"
  psql_pg -c "CREATE ROLE otobo WITH LOGIN PASSWORD '$DB_PW'"
  psql_pg -c "ALTER ROLE otobo WITH PASSWORD '$DB_PW'"
fi
if [ "$(psql_pg -Atc "select count(*) from pg_database where datname='otobo'")" = 0 ]; then
  psql_pg -c "CREATE DATABASE otobo OWNER=otobo ENCODING 'utf-8'"
  rm -f "$STATE"/sysconfig.* "$STATE"/setup.*
fi

########################################################################################
# 5. Schema: OTOBO ships XML (scripts/database/*.xml) -> PostgreSQL SQL, loaded with psql
########################################################################################
if [ "$(psql_otobo -Atc "select count(*) from information_schema.tables where table_name='valid'")" = 0 ]; then
  log "schema: XML -> PostgreSQL SQL"
  install -d -o otobo -g otobo "$BASE/sql"
  for f in otobo-schema otobo-initial_insert; do
    console Dev::Tools::Database::XML2SQL --database-type postgresql --source-path "scripts/database/$f.xml" \
      --target-directory "$BASE/sql" --target-filename "$f" --split-files --quiet
  done
  log "schema: loading"
  for f in otobo-schema otobo-initial_insert otobo-schema-post; do
    psql_otobo -f "$BASE/sql/$f.postgresql.sql" >"$LOGDIR/psql-$f.log" 2>&1 || { tail "$LOGDIR/psql-$f.log" >&2; die "loading $f failed"; }
  done
  rm -f "$STATE"/sysconfig.* "$STATE"/setup.*
fi

########################################################################################
# 6. SysConfig: XML -> DB + deploy, and the settings of a closed network (no mail, no outbound HTTP)
########################################################################################
SETTINGS=(
  "SecureMode=1"                                          # leave installer mode
  "HttpType=http"
  "FQDN=localhost"
  "SystemID=10"
  "DefaultLanguage=en"
  "Ticket::Type=1"                                        # ticket types in the agent UI (SDX: Ticket.kind)
  "CheckEmailAddresses=0"                                 # no MX/DNS checks (offline)
  "CheckMXRecord=0"
  "SendmailModule=Kernel::System::Email::DoNotSendEmail"  # never send mail
  "CloudServices::Disabled=1"
  "WebUserAgent::Proxy=http://127.0.0.1:9/"               # any outbound HTTP hits a closed local port
  "LogModule=Kernel::System::Log::File"                   # default is syslog
  "LogModule::LogFile=$HOMEDIR/var/log/otobo.log"
)
# The dynamic field SDXCase (created in step 7) in the sidebar of the agent's ticket zoom.
ZOOM_SETTING='Ticket::Frontend::AgentTicketZoom###DynamicField'
ZOOM_YML=$'---\n'"$CASE_FIELD: '1'"$'\n'
RESTART_WEB=0
SETTINGS_HASH=$(printf '%s\n' "${SETTINGS[@]}" "$ZOOM_YML" | sha1sum | cut -c1-12)
if [ ! -f "$STATE/sysconfig.$SETTINGS_HASH" ] || [ ! -f "$HOMEDIR/Kernel/Config/Files/ZZZAAuto.pm" ]; then
  log "sysconfig: Maint::Config::Rebuild"
  console Maint::Config::Rebuild --quiet
  console Admin::Config::Update --setting-name WebUserAgent::Proxy --valid 1 --no-deploy --quiet
  console Admin::Config::Update --setting-name 'DashboardBackend###0405-News' --valid 0 --no-deploy --quiet
  echo '--- []' >"$STATE/empty-array.yml"; chmod 644 "$STATE/empty-array.yml"
  console Admin::Config::Update --setting-name Package::RepositoryRoot --source-path "$STATE/empty-array.yml" --no-deploy --quiet
  for kv in "${SETTINGS[@]}"; do
    console Admin::Config::Update --setting-name "${kv%%=*}" --value "${kv#*=}" --no-deploy --quiet
  done
  printf '%s' "$ZOOM_YML" >"$STATE/zoom-dynamic-field.yml"; chmod 644 "$STATE/zoom-dynamic-field.yml"
  console Admin::Config::Update --setting-name "$ZOOM_SETTING" --source-path "$STATE/zoom-dynamic-field.yml" --no-deploy --quiet
  log "sysconfig: deploy"
  console Maint::Config::Rebuild --quiet
  rm -f "$STATE"/sysconfig.* "$STATE"/setup.*; touch "$STATE/sysconfig.$SETTINGS_HASH"
  RESTART_WEB=1
else
  log "sysconfig: up to date"
fi

########################################################################################
# 7. SDX setup: agents, dynamic field SDXCase (shown in the agent's ticket zoom), the GenericInterface
#    operation SDX::VocabularyGet and the web service SDX. Skipped when nothing of it changed.
########################################################################################
# 7a. SDX::VocabularyGet: OTOBO's GenericInterface has no operation that lists states, priorities, queues,
#     types or dynamic fields; this read-only operation does (for agents only, queues the agent may write).
VOCAB_PM=$(cat <<'EOF'
# Installed by SDX scripts/ticketsystems/otobo-start.sh: read-only GenericInterface operation listing the
# vocabulary a connector needs (valid states with their types, priorities, queues the agent may write, ticket
# types and the default type, ticket dynamic fields) and the request size limit.
package Kernel::GenericInterface::Operation::SDX::VocabularyGet;

use strict;
use warnings;

use parent qw(Kernel::GenericInterface::Operation::Common);

our $ObjectManagerDisabled = 1;

sub new {
    my ( $Type, %Param ) = @_;

    my $Self = {};
    bless( $Self, $Type );

    for my $Needed (qw(DebuggerObject WebserviceID)) {
        if ( !$Param{$Needed} ) {
            return {
                Success      => 0,
                ErrorMessage => "Got no $Needed!",
            };
        }
        $Self->{$Needed} = $Param{$Needed};
    }

    return $Self;
}

sub Run {
    my ( $Self, %Param ) = @_;

    my ( $UserID, $UserType ) = $Self->Auth(%Param);
    if ( !$UserID || $UserType ne 'User' ) {
        return $Self->ReturnError(
            ErrorCode    => 'VocabularyGet.AuthFail',
            ErrorMessage => 'VocabularyGet: User could not be authenticated!',
        );
    }

    my $StateObject = $Kernel::OM->Get('Kernel::System::State');
    my %StateList   = $StateObject->StateList(
        UserID => $UserID,
        Valid  => 1,
    );
    my @States;
    for my $StateID ( sort { $a <=> $b } keys %StateList ) {
        my %State = $StateObject->StateGet( ID => $StateID );
        push @States, {
            Name => $State{Name},
            Type => $State{TypeName},
        };
    }

    my %Priorities = $Kernel::OM->Get('Kernel::System::Priority')->PriorityList( Valid => 1 );
    my %Types      = $Kernel::OM->Get('Kernel::System::Type')->TypeList( Valid => 1 );
    my %Queues     = $Kernel::OM->Get('Kernel::System::Queue')->GetAllQueues(
        UserID => $UserID,
        Type   => 'rw',
    );
    my $DynamicFields = $Kernel::OM->Get('Kernel::System::DynamicField')->DynamicFieldListGet(
        Valid      => 1,
        ObjectType => ['Ticket'],
    );

    return {
        Success => 1,
        Data    => {
            States     => \@States,
            Priorities => [ map { $Priorities{$_} } sort { $a <=> $b } keys %Priorities ],
            Queues     => [ sort values %Queues ],
            Types      => [ map { $Types{$_} } sort { $a <=> $b } keys %Types ],
            DynamicFields => [
                map { { Name => $_->{Name}, Label => $_->{Label}, FieldType => $_->{FieldType} } }
                    @{ $DynamicFields || [] }
            ],
            TypeDefault      => $Kernel::OM->Get('Kernel::Config')->Get('Ticket::Type::Default') // '',
            WebMaxFileUpload => $Kernel::OM->Get('Kernel::Config')->Get('WebMaxFileUpload') || 0,
        },
    };
}

1;
EOF
)

# 7b. Dynamic field SDXCase through OTOBO's own API (Kernel::System::DynamicField->DynamicFieldAdd, what the
#     admin UI does): the 11.0 console can only delete dynamic fields, SQL into dynamic_field would bypass the
#     cache and the field order bookkeeping.
DF_PL=$(cat <<'EOF'
use strict;
use warnings;
use lib '.', 'Kernel/cpan-lib', 'Custom';
use Kernel::System::ObjectManager;

local $Kernel::OM = Kernel::System::ObjectManager->new(
    'Kernel::System::Log' => { LogPrefix => 'sdx-setup' },
);
my ( $Name, $Label ) = @ARGV;
my $DF     = $Kernel::OM->Get('Kernel::System::DynamicField');
my $Config = {
    DefaultValue => '',
    Link         => '',
    LinkPreview  => '',
    RegExList    => [],
    Tooltip      => '',
};
my $Field = $DF->DynamicFieldGet( Name => $Name );
if ( !$Field || !$Field->{ID} ) {
    my $List  = $DF->DynamicFieldList( ResultType => 'HASH', Valid => 0 ) || {};
    my $Order = 1 + scalar keys %{$List};
    my $ID    = $DF->DynamicFieldAdd(
        InternalField => 0,
        Name          => $Name,
        Label         => $Label,
        FieldOrder    => $Order,
        FieldType     => 'Text',
        ObjectType    => 'Ticket',
        Config        => $Config,
        ValidID       => 1,
        UserID        => 1,
    );
    die "DynamicFieldAdd $Name failed\n" if !$ID;
    print "created dynamic field $Name (id $ID)\n";
}
elsif ( $Field->{FieldType} ne 'Text' || $Field->{ObjectType} ne 'Ticket' ) {
    die "dynamic field $Name exists as $Field->{ObjectType}/$Field->{FieldType}, not Ticket/Text\n";
}
elsif ( $Field->{Label} ne $Label || $Field->{ValidID} != 1 ) {
    $DF->DynamicFieldUpdate(
        %{$Field},
        Label   => $Label,
        ValidID => 1,
        Config  => $Field->{Config} || $Config,
        UserID  => 1,
    ) or die "DynamicFieldUpdate $Name failed\n";
    print "updated dynamic field $Name\n";
}
else {
    print "dynamic field $Name present\n";
}
EOF
)

# 7c. The web service: REST provider with the ticket operations the connector uses.
WS_YML=$(cat <<EOF
---
Debugger:
  DebugThreshold: error
  TestMode: '0'
Description: SDX ticket connector (REST) - Session, TicketCreate/Update/Get/Search/HistoryGet, SDX::VocabularyGet
FrameworkVersion: 11.0.x
Provider:
  Operation:
    SessionCreate:
      Description: Create a Session
      MappingInbound: {}
      MappingOutbound: {}
      Type: Session::SessionCreate
    SessionGet:
      Description: Check a Session
      MappingInbound: {}
      MappingOutbound: {}
      Type: Session::SessionGet
    TicketCreate:
      Description: Create a Ticket
      MappingInbound: {}
      MappingOutbound: {}
      Type: Ticket::TicketCreate
    TicketUpdate:
      Description: Update a Ticket
      MappingInbound: {}
      MappingOutbound: {}
      Type: Ticket::TicketUpdate
    TicketGet:
      Description: Retrieve Ticket data
      MappingInbound: {}
      MappingOutbound: {}
      Type: Ticket::TicketGet
    TicketSearch:
      Description: Search for Tickets
      MappingInbound: {}
      MappingOutbound: {}
      Type: Ticket::TicketSearch
    TicketHistoryGet:
      Description: Retrieve Ticket history data
      MappingInbound: {}
      MappingOutbound: {}
      Type: Ticket::TicketHistoryGet
    VocabularyGet:
      Description: States, priorities, queues, types, dynamic fields (SDX)
      MappingInbound: {}
      MappingOutbound: {}
      Type: SDX::VocabularyGet
  Transport:
    Config:
      KeepAlive: ''
      MaxLength: '100000000'
      RouteOperationMapping:
        SessionCreate:
          RequestMethod:
          - POST
          Route: /Session
        SessionGet:
          RequestMethod:
          - GET
          Route: /Session/:SessionID
        TicketCreate:
          RequestMethod:
          - POST
          Route: /Ticket
        TicketUpdate:
          RequestMethod:
          - PATCH
          - PUT
          Route: /Ticket/:TicketID
        TicketGet:
          RequestMethod:
          - GET
          - POST
          Route: /Ticket/:TicketID
        TicketSearch:
          RequestMethod:
          - GET
          - POST
          Route: /TicketSearch
        TicketHistoryGet:
          RequestMethod:
          - GET
          - POST
          Route: /TicketHistory/:TicketID
        VocabularyGet:
          RequestMethod:
          - GET
          - POST
          Route: /Vocabulary
    Type: HTTP::REST
RemoteSystem: ''
Requester:
  Invoker:
    SDXPush:
      Description: Tell the SDX connector that a ticket changed (it reads the ticket itself; polling stays the safety net)
      Events:
      - {Asynchronous: '0', Event: TicketCreate}
      - {Asynchronous: '0', Event: TicketStateUpdate}
      - {Asynchronous: '0', Event: TicketQueueUpdate}
      - {Asynchronous: '0', Event: TicketPriorityUpdate}
      - {Asynchronous: '0', Event: TicketTypeUpdate}
      - {Asynchronous: '0', Event: TicketServiceUpdate}
      - {Asynchronous: '0', Event: TicketTitleUpdate}
      - {Asynchronous: '0', Event: ArticleCreate}
      MappingInbound: {}
      MappingOutbound: {}
      Type: Generic::PassThrough
  Transport:
    Config:
      Authentication:
        AuthType: BasicAuth
        BasicAuthUser: otobo
        BasicAuthPassword: '$PUSH_TOKEN'
      DefaultCommand: POST
      Host: '$PUSH_URL'
      InvokerControllerMapping:
        SDXPush:
          Command: POST
          Controller: /push
      Timeout: '2'
    Type: HTTP::REST
EOF
)
SETUP_HASH=$(printf '%s\n' types-v2-queue-sdx "$ROOT_PW" "$API_USER" "$API_PW" "$VOCAB_PM" "$DF_PL" "$WS_YML" | sha1sum | cut -c1-12)
if [ ! -f "$STATE/setup.$SETUP_HASH" ]; then
  log "setup: agents root@localhost and $API_USER (rw on group users: queues Raw, Junk, Misc, Postmaster)"
  console Admin::User::SetPassword root@localhost "$ROOT_PW" --quiet
  if [ "$(psql_otobo -Atc "select count(*) from users where login='$API_USER'")" = 0 ]; then
    console Admin::User::Add --user-name "$API_USER" --first-name SDX --last-name API \
      --email-address "$API_USER@localhost" --password "$API_PW" --group users --quiet
  else
    console Admin::User::SetPassword "$API_USER" "$API_PW" --quiet
  fi

  # The handover queue of the example connector file: a ticket moved here is forwarded to the partner.
  if [ "$(psql_otobo -Atc "select count(*) from queue where name='SDX'")" = 0 ]; then
    log "setup: queue SDX (group users)"
    console Admin::Queue::Add --name SDX --group users --comment "SDX: an den Partner weiterleiten" --quiet
  fi

  for t in Incident "Service Request"; do
    if [ "$(psql_otobo -Atc "select count(*) from ticket_type where name='$t'")" = 0 ]; then
      log "setup: ticket type $t"
      console Admin::TicketType::Add --name "$t" --quiet
    fi
  done

  log "setup: GenericInterface operation SDX::VocabularyGet"
  install -d -o otobo -g otobo "$HOMEDIR/Custom/Kernel/GenericInterface/Operation/SDX"
  printf '%s\n' "$VOCAB_PM" >"$SETUP/VocabularyGet.pm"
  install -o otobo -g otobo -m 644 "$SETUP/VocabularyGet.pm" "$HOMEDIR/Custom/Kernel/GenericInterface/Operation/SDX/VocabularyGet.pm"

  log "setup: dynamic field $CASE_FIELD (\"SDX Case\", Text, ticket)"
  printf '%s\n' "$DF_PL" >"$SETUP/dynamic-field.pl"; chmod 644 "$SETUP/dynamic-field.pl"
  as_otobo perl "$SETUP/dynamic-field.pl" "$CASE_FIELD" "SDX Case" >&2 || die "creating the dynamic field $CASE_FIELD failed"

  printf '%s\n' "$WS_YML" >"$SETUP/SDX.yml"; chmod 644 "$SETUP/SDX.yml"
  WS_ID=$(psql_otobo -Atc "select id from gi_webservice_config where name='SDX'")
  if [ -z "$WS_ID" ]; then
    log "setup: web service SDX (Admin::WebService::Add)"
    console Admin::WebService::Add --name SDX --source-path "$SETUP/SDX.yml" --quiet
  else
    log "setup: web service SDX (Admin::WebService::Update, id $WS_ID)"
    console Admin::WebService::Update --webservice-id "$WS_ID" --source-path "$SETUP/SDX.yml" --quiet
  fi
  console Maint::Cache::Delete --quiet
  rm -f "$STATE"/setup.*; touch "$STATE/setup.$SETUP_HASH"
  RESTART_WEB=1
else
  log "setup: agents, dynamic field, web service up to date"
fi
T_SETUP=$(now_ms)

########################################################################################
# 8. OTOBO daemon (escalations, pending auto close, cache cleanup). OTOBO_DAEMON=0 skips it.
########################################################################################
if [ "$WITH_DAEMON" = 1 ]; then
  daemon_running() { as_otobo perl bin/otobo.Daemon.pl status 2>/dev/null | grep -q 'Daemon running'; }
  if [ "$RESTART_WEB" = 1 ] && daemon_running; then
    log "daemon: restarting (configuration changed)"
    as_otobo perl bin/otobo.Daemon.pl stop >/dev/null 2>&1 || true
  fi
  if daemon_running; then
    log "daemon: running"
  else
    log "daemon: starting"
    as_otobo perl bin/otobo.Daemon.pl start >"$LOGDIR/daemon-start.log" 2>&1 9>&- || log "daemon: start failed (log $LOGDIR/daemon-start.log), continuing"
  fi
fi

########################################################################################
# 9. Web: starman (preforking PSGI server) with bin/psgi-bin/otobo.psgi on 127.0.0.1:$WEB_PORT
########################################################################################
PIDF=$RUN/starman.pid
running_port=$(cat "$RUN/starman.port" 2>/dev/null || true)
if alive "$PIDF"; then
  if [ "$running_port" != "$WEB_PORT" ] || [ "$RESTART_WEB" = 1 ]; then
    P=$(cat "$PIDF")
    log "web: restarting starman pid $P (port was $running_port, configuration changed: $RESTART_WEB)"
    kill -TERM "$P" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$P" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$P" 2>/dev/null && kill -KILL "$P" 2>/dev/null || true
    rm -f "$PIDF"
  else
    log "web: starman running (pid $(cat "$PIDF"))"
  fi
fi
if ! alive "$PIDF"; then
  rm -f "$PIDF"
  reap_orphans
  port_in_use "$WEB_PORT" && die "port $WEB_PORT is already in use by another process (set OTOBO_PORT)"
  log "web: starting starman on 127.0.0.1:$WEB_PORT ($WORKERS workers)"
  touch "$LOGDIR/starman.log"; chown otobo:otobo "$LOGDIR/starman.log"
  as_otobo starman --listen "127.0.0.1:$WEB_PORT" --workers "$WORKERS" -E deployment \
    --pid "$PIDF" --error-log "$LOGDIR/starman.log" --daemonize bin/psgi-bin/otobo.psgi 9>&- \
    || die "starman did not start (log $LOGDIR/starman.log)"
  echo "$WEB_PORT" >"$RUN/starman.port"
fi

URL="http://127.0.0.1:$WEB_PORT"
REST="$URL/otobo/nph-genericinterface.pl/Webservice/SDX"
ok=0
for _ in $(seq 1 240); do
  S=$(curl -s -m 10 -X POST "$REST/Session" -H 'Content-Type: application/json' \
        -d "{\"UserLogin\":\"$API_USER\",\"Password\":\"$API_PW\"}" | jq -r '.SessionID // empty' 2>/dev/null || true)
  if [ -n "$S" ] && curl -s -m 10 "$REST/Vocabulary?SessionID=$S" | jq -e '.DynamicFields[] | select(.Name=="'"$CASE_FIELD"'")' >/dev/null 2>&1; then
    ok=1; break
  fi
  sleep 0.5
done
[ $ok = 1 ] || { tail -30 "$LOGDIR/starman.log" >&2; die "OTOBO's REST API did not answer on $REST (or lacks /Vocabulary or $CASE_FIELD)"; }

# The largest request OTOBO takes is WebMaxFileUpload (whole body, Kernel::System::Web::Request); a file goes
# base64-encoded into JSON, so a file may be at most 3/4 of it, less 1 MiB for the text and the JSON around it.
WMFU=$(curl -s -m 10 "$REST/Vocabulary?SessionID=$S" | jq -r '.WebMaxFileUpload // 0')
case "$WMFU" in ''|*[!0-9]*) WMFU=0 ;; esac
[ "$WMFU" -gt 2097152 ] || WMFU=48000000
MAX_FILE=$(( WMFU / 4 * 3 - 1048576 ))

umask 022
cat >"$ENV_FILE.tmp" <<EOF
# written by scripts/ticketsystems/otobo-start.sh at $(date -u +%Y-%m-%dT%H:%M:%SZ)
OTOBO_URL=$REST
OTOBO_USER=$API_USER
OTOBO_PASSWORD=$API_PW
OTOBO_CASE_FIELD=$CASE_FIELD
OTOBO_WEB=$URL/otobo/index.pl
OTOBO_QUEUE=$QUEUE
OTOBO_MAX_FILE_BYTES=$MAX_FILE
OTOBO_ADMIN_USER=root@localhost
OTOBO_ADMIN_PASSWORD=$ROOT_PW
OTOBO_PUSH_URL=$PUSH_URL
OTOBO_PUSH_TOKEN=$PUSH_TOKEN
EOF
mv "$ENV_FILE.tmp" "$ENV_FILE"

T_END=$(now_ms)
log "ready: apt $(secs "T_APT - T_START")s, source+db+setup $(secs "T_SETUP - T_APT")s, daemon+web+wait $(secs "T_END - T_SETUP")s, total $(secs "T_END - T_START")s"
echo "apt=$(secs "T_APT - T_START") setup=$(secs "T_SETUP - T_APT") web=$(secs "T_END - T_SETUP") total=$(secs "T_END - T_START")" >"$STATE/last-start-timing.txt"
log "REST $REST (agent $API_USER), agent UI $URL/otobo/index.pl (root@localhost), env $ENV_FILE"
