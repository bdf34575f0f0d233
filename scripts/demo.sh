#!/usr/bin/env bash
# The main job for now: shows the SDX standard in code on the shipped examples. Exits 0 only if every step works.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p sdx-cli
sdx=target/debug/sdx
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== 1. validate every example (JSON and XML)"
$sdx validate examples/*.json examples/*.xml

echo "== 2. invalid examples are refused with their error code"
for f in examples/invalid/*.json examples/invalid/*.xml; do
  want=$(basename "$f"); want=${want%%[-.]*}
  if $sdx validate "$f" 2>"$work/err" >/dev/null; then echo "   $f was accepted" >&2; exit 1; fi
  grep -q "error\[$want\]" "$work/err" || { echo "   $f did not give $want:" >&2; cat "$work/err" >&2; exit 1; }
  printf '   %-55s %s\n' "$(basename "$f")" "$want"
done

first=$(ls examples/*.json | head -n 1)
echo "== 3. convert $first to XML and back (lossless)"
$sdx convert --to xml "$first" > "$work/doc.xml"
$sdx convert --to json "$work/doc.xml" > "$work/doc.json"
$sdx convert --to json "$first" | cmp - "$work/doc.json"
head -n 12 "$work/doc.xml"

echo "== 4. schemas"
$sdx schema --out "$work/schema"
ls "$work/schema" "$work/schema/codelists" | head -n 30

echo "== 5. sign (ES256), verify, encrypt to the receiver (RSA-OAEP-256 + A256GCM), decrypt, verify again"
$sdx keys generate --alg ES256 --out "$work/mila-sig"
$sdx keys generate --alg RSA-OAEP-256 --out "$work/bela-enc"
$sdx sign --key "$work/mila-sig/private.pem" "$first" > "$work/doc.jws"
$sdx verify --key "$work/mila-sig/public.jwk" "$work/doc.jws"
$sdx encrypt --to "$work/bela-enc/public.jwk" "$work/doc.jws" > "$work/doc.jwe"
$sdx decrypt --key "$work/bela-enc/private.pem" "$work/doc.jwe" > "$work/doc2.jws"
$sdx verify --key "$work/mila-sig/public.jwk" "$work/doc2.jws"
echo "== all steps passed"
