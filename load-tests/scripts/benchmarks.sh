#!/usr/bin/env bash
# The measurements behind BENCHMARKS.md: every scenario against the raw baseline and wsgate in
# the same invocation, repeated RUNS times (default 3), plus the built-in backend's own HTTP
# capacity under wrk. Loopback only. Takes about 20 minutes on 2 cores.
#
#   load-tests/scripts/benchmarks.sh [OUT_DIR]
#
# Environment:
#   RUNS=3            repetitions of each measurement (the summary gives medians)
#   PORT_SHIFT=10000  added to the ports of the bundled configs (8080-8082 and the backend's
#                     3900), so a gateway someone else runs on the default ports is left alone
#   WSGATE_BIN, WSGATE_LOAD_BIN   prebuilt release binaries (default: target/release/...)
#   SKIP_50K=1        skip the 50k idle run
#   HALF_RATE=N       posts/s of the half-load push run (default: half of wsgate's median peak)
#
# Needs redis-server on 127.0.0.1:6379 (cross-node) and wrk (backend capacity).
set -euo pipefail
cd "$(dirname "$0")/../.."

runs="${RUNS:-3}"
shift_by="${PORT_SHIFT:-10000}"
target_dir="${CARGO_TARGET_DIR:-target}"
W="${WSGATE_BIN:-$target_dir/release/wsgate}"
B="${WSGATE_LOAD_BIN:-$target_dir/release/wsgate-load}"
out="${1:-load-results/benchmarks-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out/configs"

port() { echo $(($1 + shift_by)); }
backend="127.0.0.1:$(port 3900)"
for f in load-tests/configs/*.yaml; do
  sed -e "s/127.0.0.1:8080/127.0.0.1:$(port 8080)/; s/127.0.0.1:8081/127.0.0.1:$(port 8081)/" \
    -e "s/127.0.0.1:8082/127.0.0.1:$(port 8082)/; s/127.0.0.1:3900/$backend/" \
    -e "s/prefix: wsgate-bench/prefix: wsgate-bench-$(port 0)/" "$f" >"$out/configs/$(basename "$f")"
done
for f in "$out"/configs/*.yaml; do "$W" check --config "$f" >/dev/null; done

common=(--no-progress --out-dir "$out" --backend-listen "$backend" --wsgate-bin "$W")
bench="$out/configs/wsgate-bench.yaml"
bare="$out/configs/wsgate-bare.yaml"
bench_h2="$out/configs/wsgate-bench-h2.yaml"
bench_transform="$out/configs/wsgate-bench-transform.yaml"

run() {
  local name="$1"
  shift
  printf '==> %s: wsgate-load %s\n' "$name" "$*" | tee -a "$out/commands.txt"
  "$B" "$@" "${common[@]}" --name "$name" >"$out/$name.txt" 2>&1 || {
    echo "failed: see $out/$name.txt" >&2
    exit 1
  }
}

for i in $(seq 1 "$runs"); do
  run "idle-10k-$i" idle --target both --raw-no-registry --wsgate-config "$bare" --conns 10000 --hold 3
  run "push-peak-$i" push --target both --wsgate-config "$bare" --conns 1000 --posters 32 --warmup 2 --duration 10
  run "upstream-$i" upstream --target both --wsgate-config "$bench" --conns 100 --warmup 2 --duration 10
  run "upstream-h2-$i" upstream --target both --wsgate-config "$bench_h2" --conns 100 --warmup 2 --duration 10
  # http_proxy against a request model + request and response templates (`http`), same route key.
  run "upstream-http-proxy-$i" upstream --target both --wsgate-config "$bench" --conns 100 --warmup 2 --duration 10 --action echo_http
  run "upstream-transform-$i" upstream --target both --wsgate-config "$bench_transform" --conns 100 --warmup 2 --duration 10 --action echo_http
  run "ready-$i" ready --target both --wsgate-config "$bare" --conns 3000
  run "storm-$i" connect-storm --target both --wsgate-config "$bench" --warmup 1 --duration 8
  run "storm-bare-$i" connect-storm --target both --wsgate-config "$bare" --warmup 1 --duration 8
  redis_pid=$(redis-cli -h 127.0.0.1 -p 6379 info server | awk -F: '/^process_id/ {print $2}' | tr -d '\r')
  redis_before=$(awk '{print $14 + $15}' "/proc/$redis_pid/stat" 2>/dev/null || echo 0)
  run "cross-$i" cross-node --target wsgate-same --target wsgate \
    --node-a-config "$out/configs/wsgate-node-a.yaml" --node-b-config "$out/configs/wsgate-node-b.yaml" \
    --conns 1000 --posters 32 --warmup 2 --duration 10
  redis_after=$(awk '{print $14 + $15}' "/proc/$redis_pid/stat" 2>/dev/null || echo 0)
  echo "redis_cpu_ticks $((redis_after - redis_before)) hz $(getconf CLK_TCK)" >"$out/cross-$i.redis"
done

# Push at half of wsgate's median peak: latency at a load the gateway is not saturated by.
half="${HALF_RATE:-$(python3 - "$out" "$runs" <<'EOF'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
peaks = []
for i in range(1, runs + 1):
    r = json.load(open(f"{out}/push-peak-{i}.json"))
    peaks += [t["summary"]["deliveries_per_sec"] for t in r["targets"] if t["name"] == "wsgate"]
print(int(statistics.median(peaks) / 2))
EOF
)}"
for i in $(seq 1 "$runs"); do
  run "push-half-$i" push --target both --wsgate-config "$bare" --conns 1000 --posters 32 --rate "$half" --warmup 2 --duration 10
done

# 50k idle connections: three wsgate processes (one process may hold ~19.9k sockets here).
if [ -z "${SKIP_50K:-}" ]; then
  for i in $(seq 1 "$runs"); do
    pids=()
    urls=()
    for n in 1 2 3; do
      p=$(port $((8090 + n)))
      sed "s/^listen: .*/listen: 127.0.0.1:$p/" "$bare" >"$out/configs/wsgate-bare-$n.yaml"
      "$W" --config "$out/configs/wsgate-bare-$n.yaml" >"$out/idle-50k-$i-wsgate-$n.log" 2>&1 &
      pids+=("$!")
      urls+=(--wsgate-url "ws://127.0.0.1:$p/prod" --wsgate-pid "$!")
    done
    for n in 1 2 3; do
      for _ in $(seq 1 100); do
        curl -fs "http://127.0.0.1:$(port $((8090 + n)))/healthz" >/dev/null && break
        sleep 0.1
      done
    done
    run "idle-50k-$i" idle --target both --raw-no-registry "${urls[@]}" --conns 50000 --hold 3
    kill "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
  done
fi

# The backend's own HTTP capacity: wrk posting a MESSAGE event as wsgate sends it to /echo.
if command -v wrk >/dev/null 2>&1; then
  bport=$(port 3901)
  event='{"requestContext":{"routeKey":"echo","messageId":"TABmWQteGvsvtMaP","eventType":"MESSAGE","extendedRequestId":"EX1cVTud6gjvOIbo","requestTime":"25/Nov/2026:17:00:35 +0000","messageDirection":"IN","stage":"prod","connectedAt":1795626035245,"requestTimeEpoch":1795626035256,"identity":{"sourceIp":"127.0.0.2"},"requestId":"EX1cVTud6gjvOIbo","domainName":"127.0.0.1:18080","connectionId":"P57tLfWDNOJaJnsU","apiId":"bench"},"body":"{\"action\":\"echo\",\"seq\":2,\"t\":1795626035256518188,\"data\":\"xxxxx\"}","isBase64Encoded":false}'
  printf '%s' "$event" >"$out/echo-event.json"
  cat >"$out/echo.lua" <<EOF
local f = io.open("$out/echo-event.json", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
EOF
  for i in $(seq 1 "$runs"); do
    "$B" backend --listen "127.0.0.1:$bport" --max-seconds 60 >/dev/null &
    bpid=$!
    sleep 0.5
    before=$(awk '{print $14 + $15}' "/proc/$bpid/stat")
    printf '==> backend-%s: wrk -t1 -c100 -d10s -s echo.lua http://127.0.0.1:%s/echo\n' "$i" "$bport" | tee -a "$out/commands.txt"
    wrk -t1 -c100 -d10s -s "$out/echo.lua" "http://127.0.0.1:$bport/echo" >"$out/backend-$i.txt"
    after=$(awk '{print $14 + $15}' "/proc/$bpid/stat")
    echo "backend_cpu_ticks $((after - before)) hz $(getconf CLK_TCK)" >>"$out/backend-$i.txt"
    kill "$bpid"
    wait "$bpid" 2>/dev/null || true
  done
fi

python3 load-tests/scripts/bench_summary.py "$out" | tee "$out/summary.md"
