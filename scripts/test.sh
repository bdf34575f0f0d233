#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what the tests need when it is missing
# (xmllint for the XSD checks, OpenSSL headers for the JOSE interoperability oracle, PostgreSQL 15 for the store
# suite), starts one throw-away PostgreSQL cluster for the whole run, then runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v xmllint >/dev/null 2>&1 || missing+=(libxml2-utils)
command -v curl >/dev/null 2>&1 || missing+=(curl)   # docs/operations.md, run by crates/cli/tests/operations.rs
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
PG_BIN=/usr/lib/postgresql/15/bin
[ -x "$PG_BIN/initdb" ] || missing+=(postgresql-15)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "installing: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing packages: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2
    exit 2
  fi
fi

# PostgreSQL: the store suite runs every test on PostgreSQL too. Without SDX_TEST_DATABASE_URL each test binary
# (each process, under nextest) would start its own cluster (crates/store/tests/store/pg.rs); one cluster for the
# whole run is faster. Throw-away: trust auth on 127.0.0.1, fsync off, removed on exit. initdb refuses to run as
# root, so as root it runs as the postgres user in a directory that user can read.
if [ -z "${SDX_TEST_DATABASE_URL:-}" ]; then
  pg_dir=$(mktemp -d /tmp/sdx-pg-XXXXXX)
  chmod 755 "$pg_dir"
  as_pg() { if [ "$(id -u)" -eq 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi; }
  [ "$(id -u)" -eq 0 ] && chown postgres: "$pg_dir"
  trap 'as_pg "$PG_BIN/pg_ctl -D $pg_dir/data -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$pg_dir"' EXIT
  as_pg "$PG_BIN/initdb -D $pg_dir/data -A trust -U postgres -E UTF8 --locale=C --no-sync" >/dev/null
  for pg_port in $(shuf -i 20000-60000 -n 5); do
    if as_pg "$PG_BIN/pg_ctl -D $pg_dir/data -l $pg_dir/log -w -t 60 start -o '-p $pg_port -k $pg_dir \
        -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
        -c max_connections=300'" >/dev/null; then
      export SDX_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
      break
    fi
  done
  if [ -z "${SDX_TEST_DATABASE_URL:-}" ]; then
    echo "could not start PostgreSQL:" >&2
    cat "$pg_dir/log" >&2 || true
    exit 2
  fi
  echo "PostgreSQL for the tests: $SDX_TEST_DATABASE_URL" >&2
fi

# The committed OpenAPI document (snapshot-tested against the code) must be valid OpenAPI 3.1 for a standard tool.
oav=${SDX_OAV_VENV:-/tmp/sdx-oav}
if [ ! -x "$oav/bin/openapi-spec-validator" ]; then
  python3 -m venv "$oav" && "$oav/bin/pip" install -q openapi-spec-validator
fi
"$oav/bin/openapi-spec-validator" docs/openapi.json

# Doc tests first (nextest does not run them), so the suite's summary is the last thing printed.
cargo test --workspace --doc --quiet
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
