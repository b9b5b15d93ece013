#!/usr/bin/env bash
# Messages/s through wsgate with and without throttling (docs/throttling.md): `upstream` closed
# loop against each config in turn, ROUNDS times alternating, then the median of each.
#
#   cargo build --release -p wsgate -p wsgate-load
#   load-tests/scripts/throttle-overhead.sh            # ACTION=ping (mock), ROUNDS=5, DURATION=10
#   ACTION=echo load-tests/scripts/throttle-overhead.sh # through the aws_proxy backend
#
# The Redis config needs redis-server on 127.0.0.1:6379.
set -euo pipefail
cd "$(dirname "$0")/../.."
target_dir="${CARGO_TARGET_DIR:-target}"
load="${WSGATE_LOAD:-$target_dir/release/wsgate-load}"
gateway="${WSGATE_BIN:-$target_dir/release/wsgate}"
rounds="${ROUNDS:-5}"
duration="${DURATION:-10}"
action="${ACTION:-ping}"
conns="${CONNS:-100}"
configs=(wsgate-bench.yaml wsgate-bench-throttled.yaml wsgate-bench-throttled-redis.yaml)
results="$(mktemp)"
trap 'rm -f "$results"' EXIT

for round in $(seq 1 "$rounds"); do
  for config in "${configs[@]}"; do
    line="$("$load" upstream --target wsgate --wsgate-bin "$gateway" \
      --wsgate-config "load-tests/configs/$config" --action "$action" --conns "$conns" \
      --duration "$duration" --warmup 2 --no-progress --no-files --fail-on-errors 2>&1 | grep '^wsgate: ')"
    rate="$(sed -n 's/.* msgs_per_sec=\([0-9.]*\).*/\1/p' <<<"$line")"
    cpu="$(sed -n 's/.* server_cpu_us_per_msg=\([0-9.]*\).*/\1/p' <<<"$line")"
    printf '%s %s %s\n' "$config" "$rate" "$cpu" >>"$results"
    printf 'round %s %-36s msgs/s %8s  server µs/msg %s\n' "$round" "$config" "$rate" "$cpu"
  done
done

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
base="$(awk -v c="${configs[0]}" '$1 == c { print $2 }' "$results" | median)"
echo
echo "action=$action conns=$conns duration=${duration}s rounds=$rounds (medians)"
for config in "${configs[@]}"; do
  rate="$(awk -v c="$config" '$1 == c { print $2 }' "$results" | median)"
  cpu="$(awk -v c="$config" '$1 == c { print $3 }' "$results" | median)"
  awk -v c="$config" -v r="$rate" -v u="$cpu" -v b="$base" \
    'BEGIN { printf "%-36s msgs/s %8.0f  server µs/msg %5.2f  ratio %.3f\n", c, r, u, r / b }'
done
