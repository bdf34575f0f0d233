#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: installs what the tests need when it is missing
# (xmllint for the XSD checks, OpenSSL headers for the JOSE interoperability oracle), then runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v xmllint >/dev/null 2>&1 || missing+=(libxml2-utils)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
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

# Doc tests first (nextest does not run them), so the suite's summary is the last thing printed.
cargo test --workspace --doc --quiet
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
