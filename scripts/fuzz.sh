#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) each, JOBS at a time (default 2), seeded with the examples and
# with valid signed/encrypted input made by crates/node/examples/fuzz_seeds.rs.
# Usage: scripts/fuzz.sh [SECONDS] [JOBS] [TARGET...]. Logs and any crash inputs end up in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-600}; jobs=${2:-2}; shift $(( $# > 2 ? 2 : $# )) || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(json_decode xml_decode jws_verify jwe_decrypt jwk_parse directory_load peer_input)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
mkdir -p corpus/json_decode corpus/xml_decode artifacts
(cd .. && cargo run --release -q -p sdx-node --example fuzz_seeds -- fuzz/corpus >/dev/null)
cp ../examples/*.json ../examples/invalid/*.json corpus/json_decode/ 2>/dev/null || true
cp ../examples/*.xml ../examples/invalid/*.xml corpus/xml_decode/ 2>/dev/null || true
run() {
  local t=$1
  mkdir -p "corpus/$t"
  cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    > "artifacts/$t.log" 2>&1 && echo "$t: ok" || echo "$t: FAILED (see fuzz/artifacts/$t.log)"
  grep -E "^#[0-9]+ +DONE|Done [0-9]+ runs" "artifacts/$t.log" | tail -n 1
}
i=0
for t in "${targets[@]}"; do
  run "$t" &
  i=$((i + 1))
  if [ $((i % jobs)) -eq 0 ]; then wait; fi
done
wait
