#!/usr/bin/env bash
# faults.sh [OUT_DIR]: three wsgate nodes on one Redis and one integration backend, under a
# `wsgate-load faults` run (reconnecting clients, echo messages, pushes through random nodes,
# every acknowledgement checked against the delivery ledger), while one fault happens:
#
#   redis-blackhole    Redis partitioned (packets dropped, no RST) for 30 s, then healed
#   redis-restart      Redis killed and restarted empty
#   backend-blackhole  the integration backend partitioned for 20 s
#   backend-reset      the backend answers 10 % of requests with a TCP reset for 20 s
#   redis-loss         10 % of the packets on the Redis link dropped, each way, for 30 s
#   redis-slow         the Redis link limited to SLOW_RATE each way (tbf) for 30 s
#   backend-loss       10 % of the packets on the backend link dropped, each way, for 20 s
#   node-kill          node 2 of 3 killed with SIGKILL (not restarted)
#   node-storm         node-kill under STORM_CONNS connections (default 18000, the most one load
#                      process holds under the 20,000 open-files limit; 2000 in the CI variant),
#                      opened at STORM_RAMP a second (default 1000): its third of the clients
#                      reconnects at once to the two survivors, a reconnect storm
#   node-stop          node 2 of 3 stopped with SIGSTOP for 20 s, then continued
#   rolling-restart    every node in turn stopped with SIGTERM and started again
#
# The link faults (loss, slow) are done in the network namespaces only: loss with nft rules in
# the far host's namespace (needs the nft tool, Debian's nftables), the bandwidth limit with tbf
# qdiscs on both ends of its veth pair. With the fault proxy (no root), or without nft, they are
# skipped and listed as skipped, not emulated. Latency is not injected (no netem qdisc here).
#
# Per scenario it writes OUT_DIR/<scenario>/{load.json,result.json} and the logs (links.log: the
# Redis and backend links' byte counters and the tbf/nft drop counters at the start, the fault,
# the heal and the end), and at the end OUT_DIR/summary.json and a Markdown table on stdout. A
# scenario passes when no push answered 200 was lost (acked_but_lost = 0), nothing was delivered
# twice, and every connection got exactly one $disconnect for its $connect (checked at the
# backend once the load is over); records left in Redis and the time to recover are reported,
# and in result.json the post rate and latencies before and during the fault (what a fault that
# only slows the cluster changes). Exit status 1 if one failed.
#
# Environment: WSGATE_BIN, LOAD_BIN (default target/release/{wsgate,wsgate-load});
# FAULTS_SCENARIOS (space-separated subset); FAULTS_SHORT=1 for the CI variant (four scenarios:
# redis-blackhole redis-loss backend-reset node-kill; 60 connections, 8 s faults, lease 3 s:
# about 2 minutes); FAULTS_NET=proxy forces the fault proxy instead of network namespaces (which
# need root); CONNS, PUSH_RATE, MSG_RATE override the sizes (STORM_CONNS, STORM_RAMP those of
# node-storm); LOSS_PERCENT (10) the loss each way, SLOW_RATE (1mbit) redis-slow's rate each
# way in tc units, LINK_QUEUE (200ms) its tbf queue. How the hosts are built: cluster-lib.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
here="load-tests/scripts"
# shellcheck source=cluster-lib.sh
. "$here/cluster-lib.sh"

OUT="${1:-load-results/faults-$(date +%s)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WSGATE_BIN="$(realpath "${WSGATE_BIN:-target/release/wsgate}")"
LOAD_BIN="$(realpath "${LOAD_BIN:-target/release/wsgate-load}")"
for b in "$WSGATE_BIN" "$LOAD_BIN"; do
  [ -x "$b" ] || { echo "faults: $b is missing (cargo build --release -p wsgate -p wsgate-load)" >&2; exit 2; }
done

if [ "${FAULTS_SHORT:-0}" = 1 ]; then
  SCENARIOS="${FAULTS_SCENARIOS:-redis-blackhole redis-loss backend-reset node-kill}"
  CONNS="${CONNS:-60}" PUSH_RATE="${PUSH_RATE:-60}" MSG_RATE="${MSG_RATE:-60}"
  STORM_CONNS="${STORM_CONNS:-2000}"
  WARM=3 LONG_FAULT=8 FAULT=8 STOP_FAULT=8 AFTER=8
  LEASE_TTL=3s REAPER_INTERVAL=1s STORE_TIMEOUT=1s SETTLE=20
else
  SCENARIOS="${FAULTS_SCENARIOS:-redis-blackhole redis-restart redis-loss redis-slow backend-blackhole backend-reset backend-loss node-kill node-stop rolling-restart node-storm}"
  CONNS="${CONNS:-1000}" PUSH_RATE="${PUSH_RATE:-300}" MSG_RATE="${MSG_RATE:-300}"
  STORM_CONNS="${STORM_CONNS:-18000}"
  WARM=10 LONG_FAULT=30 FAULT=20 STOP_FAULT=20 AFTER=30
  SETTLE=60
fi
STORM_RAMP="${STORM_RAMP:-1000}"
LOSS_PERCENT="${LOSS_PERCENT:-10}"
SLOW_RATE="${SLOW_RATE:-1mbit}"
NET_TAG="wsf$(($$ % 100000))"
net_detect
echo "faults: network mode $NET_MODE, scenarios: $SCENARIOS" >&2
trap 'cluster_down 2>/dev/null || true' EXIT

now_ms() { date +%s%3N; }

# Why SCENARIO cannot run here (nothing when it can): the link faults need namespaces and,
# for loss, nft; the fault proxy has no loss or bandwidth mode, so they are not emulated.
unsupported() {
  case "$1" in
    redis-loss | backend-loss) [ "$NET_LOSS" = 1 ] || echo "$NET_LOSS" ;;
    redis-slow) [ "$NET_RATE" = 1 ] || echo "$NET_RATE" ;;
  esac
}

# link_mark LABEL: the Redis and backend links' counters into $WORK/links.log.
link_mark() {
  { link_stats r | sed "s/^/$1 /"; link_stats b | sed "s/^/$1 /"; } >>"$WORK/links.log" 2>&1 || true
}

# inject SCENARIO: does the fault; sets T_FAULT and T_HEAL (unix ms).
inject() {
  link_mark fault
  T_FAULT="$(now_ms)"
  case "$1" in
    redis-blackhole) partition r; sleep "$LONG_FAULT"; heal r ;;
    redis-restart) redis_restart_empty ;;
    backend-blackhole) partition b; sleep "$FAULT"; heal b ;;
    backend-reset) backend_reset_percent 10; sleep "$FAULT"; backend_reset_percent 0 ;;
    redis-loss) link_loss r "$LOSS_PERCENT"; sleep "$LONG_FAULT"; link_mark heal; link_loss r 0 ;;
    backend-loss) link_loss b "$LOSS_PERCENT"; sleep "$FAULT"; link_mark heal; link_loss b 0 ;;
    redis-slow) link_rate r "$SLOW_RATE"; sleep "$LONG_FAULT"; link_mark heal; link_rate r off ;;
    node-kill | node-storm) kill -9 "$(node_pid 2)"; wait "$(node_pid 2)" 2>/dev/null || true ;;
    node-stop) kill -STOP "$(node_pid 2)"; sleep "$STOP_FAULT"; kill -CONT "$(node_pid 2)" ;;
    rolling-restart)
      for k in 1 2 3; do node_term "$k"; node_start "$k"; sleep 2; done ;;
    *) echo "faults: unknown scenario $1" >&2; return 2 ;;
  esac
  T_HEAL="$(now_ms)"
  link_mark healed
}

fault_length() {
  case "$1" in
    redis-blackhole | redis-loss | redis-slow) echo "$LONG_FAULT" ;;
    backend-blackhole | backend-reset | backend-loss) echo "$FAULT" ;;
    node-stop) echo "$STOP_FAULT" ;;
    rolling-restart) echo 15 ;;
    *) echo 1 ;;
  esac
}

run_one() {
  local name="$1" prefix="faults${NET_TAG}-$1" duration settle_end stats left why
  local conns="$CONNS" ramp=200 warm="$WARM"
  why="$(unsupported "$name")"
  if [ -n "$why" ]; then
    rm -rf "${OUT:?}/$name"
    mkdir -p "$OUT/$name"
    echo "faults: $name skipped: $why" >&2
    jq -n --arg s "$name" --arg n "$NET_MODE" --arg w "$why" \
      '{scenario: $s, net_mode: $n, skipped: $w, passed: true}' >"$OUT/$name/result.json"
    return 0
  fi
  if [ "$name" = node-storm ]; then
    # Every client connected before the kill: the ramp, then the usual warm-up.
    conns="$STORM_CONNS" ramp="$STORM_RAMP" warm=$((WARM + STORM_CONNS / STORM_RAMP))
  fi
  WORK="$OUT/$name"
  rm -rf "$WORK"
  mkdir -p "$WORK"
  redis_start
  backend_start
  nodes_config 3 "$prefix"
  node_start 1; node_start 2; node_start 3
  duration=$((warm + $(fault_length "$name") + AFTER))
  # shellcheck disable=SC2046
  "$LOAD_BIN" faults $(node_urls) --conns "$conns" --ramp "$ramp" --push-rate "$PUSH_RATE" \
    --msg-rate "$MSG_RATE" --duration "$duration" --drain 10 --seed 7 --out "$WORK/load.json" \
    >"$WORK/load.out" 2>"$WORK/load.err" &
  local load=$!
  link_mark start
  sleep "$warm" # schedule of the fault, not a wait for a result
  inject "$name"
  wait "$load" || true
  link_mark end
  # The clients are closed: wait (bounded) until every $connect got its $disconnect and the
  # records are gone; a dead node's connections are reaped after lease_ttl + reaper_interval.
  settle_end=$(($(date +%s) + SETTLE))
  while [ "$(date +%s)" -lt "$settle_end" ]; do
    stats="$(backend_get /stats || echo '{}')"
    redis_records "$prefix" >"$WORK/left.tmp"
    left="$(cat "$WORK/left.tmp")"
    printf '%s connected_ids=%s %s\n' "$(now_ms)" "$(jq -r '.connected_ids' <<<"$stats")" "$left" >>"$WORK/settle.log"
    if [ "$(jq -r '.connected_ids // 1' <<<"$stats")" = 0 ] && [ "$REDIS_LEFT" = 0 ]; then break; fi
    sleep 0.5
  done
  T_SETTLED="$(now_ms)"
  printf '{"t_fault":%s,"t_heal":%s,"t_settled":%s}\n' "$T_FAULT" "$T_HEAL" "$T_SETTLED" >"$WORK/marks.json"
  redis_records "$prefix" >"$WORK/redis-left.txt"
  for k in 1 2 3; do node_term "$k"; done
  backend_get /stats >"$WORK/backend.json" || echo '{}' >"$WORK/backend.json"
  cluster_down
  python3 "$here/faults_judge.py" result --scenario "$name" --net "$NET_MODE" --conns "$conns" \
    --load "$WORK/load.json" --backend "$WORK/backend.json" --redis-left "$WORK/redis-left.txt" \
    --t-fault "$T_FAULT" --t-heal "$T_HEAL" --t-settled "$T_SETTLED" --links "$WORK/links.log" >"$WORK/result.json"
  jq -c '{scenario, passed, acked_but_lost, balanced, redis_left, recover_s}' "$WORK/result.json" >&2
}

for s in $SCENARIOS; do
  run_one "$s"
done
python3 "$here/faults_judge.py" summary "$OUT"/*/result.json >"$OUT/summary.json"
python3 "$here/faults_judge.py" table "$OUT/summary.json"
jq -e 'all(.[]; .passed)' "$OUT/summary.json" >/dev/null
