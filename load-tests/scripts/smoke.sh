#!/usr/bin/env bash
# Short smoke of every wsgate-load scenario through the binary: seconds, not minutes.
# Each run is count-bounded and uses --fail-on-errors (any error or lost delivery fails the
# run); no timing is ever judged.
#
#   load-tests/scripts/smoke.sh                         # against the raw baseline
#   WSGATE_BIN=target/release/wsgate load-tests/scripts/smoke.sh   # raw, then wsgate (ratios)
#   WSGATE_CROSS=1 ...                                  # also cross-node through two wsgate
#                                                       # nodes (needs redis on 127.0.0.1:6379)
# WSGATE_LOAD_BIN picks a prebuilt wsgate-load; otherwise it is built (debug profile).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -n "${WSGATE_LOAD_BIN:-}" ]; then
  bin="$WSGATE_LOAD_BIN"
else
  cargo build -q -p wsgate-load
  bin="${CARGO_TARGET_DIR:-target}/debug/wsgate-load"
fi
out="$(mktemp -d "${TMPDIR:-/tmp}/wsgate-load-smoke.XXXXXX")"
trap 'rm -rf "$out"' EXIT

targets=(--target raw)
if [ -n "${WSGATE_BIN:-}" ]; then
  targets=(--target both --wsgate-bin "$WSGATE_BIN" --wsgate-config load-tests/configs/wsgate-bench.yaml)
fi
common=(--no-progress --fail-on-errors --sample-ms 200 --out-dir "$out")

run() {
  printf '==> wsgate-load %s\n' "$*"
  "$bin" "$@" "${common[@]}"
}

run idle "${targets[@]}" --conns 300 --hold 0.5 --whoami
run idle "${targets[@]}" --conns 300 --hold 0.2 --workers 2 --threads 1
run connect-storm "${targets[@]}" --concurrency 8 --count 500 --warmup 0 --duration 5
run upstream "${targets[@]}" --conns 20 --count 2000 --warmup 0 --duration 5
run upstream "${targets[@]}" --conns 20 --count 500 --rate 1000 --warmup 0 --duration 5
run upstream "${targets[@]}" --conns 5 --count 200 --action sink --one-way --warmup 0 --duration 5
run push "${targets[@]}" --conns 200 --posters 4 --count 2000 --warmup 0 --duration 5
run push "${targets[@]}" --conns 200 --posters 4 --count 500 --rate 1000 --warmup 0 --duration 5
run ready "${targets[@]}" --conns 100 --posters 4
run ready "${targets[@]}" --conns 50 --action echo_http
run cross-node --target raw --conns 50 --posters 2 --count 300 --warmup 0 --duration 5
if [ -n "${WSGATE_BIN:-}" ] && [ -n "${WSGATE_CROSS:-}" ]; then
  run cross-node --target wsgate --wsgate-bin "$WSGATE_BIN" --conns 50 --posters 2 --count 300 --warmup 0 --duration 5
fi
for f in "$out"/*.json; do
  [ -s "$f" ] && [ -s "${f%.json}.html" ] || { echo "missing report for $f" >&2; exit 1; }
done
echo "smoke: all scenarios ran without errors"
