#!/usr/bin/env bash
# scale.sh [OUT_DIR]: the scale run. NODES wsgate nodes (default 26) on one Redis and one
# integration backend hold CONNS client connections (default 500,000), each with a `$connect`
# and a `$disconnect` integration and a record in Redis; then, at full size:
#
#   open    `wsgate-load idle` opens CONNS connections spread evenly over the nodes (worker
#           processes of at most 19,000 connections, 32 source addresses): time to open all,
#           the cluster's connect rate, Redis ops/s and CPU while connecting
#   rest    REST seconds with nothing happening but the cluster's own upkeep: Redis ops/s (by
#           command) and CPU at rest, node RSS per connection (in all and per node), kernel
#           memory per connection (Slab and TCP buffer pages, both ends of each socket), Redis
#           memory per connection record
#   fanout  one post to each of FANOUT_GROUPS groups (default 25: 20,000 members each at full size; every
#           connection joined one through its `$connect`), all at once through different
#           nodes, then one `@broadcast` to the whole stage: deliveries, and the time until the
#           last member had each (the held clients time every frame against its post time)
#   push    a `wsgate-load faults` run beside the held connections: PUSH_CONNS more connections
#           over all nodes, PUSH_RATE posts a second through a node chosen round-robin (so
#           almost every push crosses nodes), each acknowledgement checked against the delivery
#           ledger; KILL_AFTER seconds in, the last node is killed with SIGKILL
#   kill    time until every connection of the dead node (read from Redis before the kill)
#           has had its `$disconnect` (the reaper, counted at the backend), and a sample of its
#           ids posted to through node 1: each must answer 410
#   end     the held connections close, CLOSE_RATE a second (default 2000; 0: all at once);
#           the run ends when every `$connect` had its `$disconnect` and Redis holds no record
#
# Writes OUT_DIR/summary.json (the figures) and the raw material beside it: idle.json and
# faults.json (the load tool's reports), samples.jsonl (Redis INFO, node RSS, /proc/meminfo and
# /proc/net/sockstat every SAMPLE seconds), commandstats-{rest-start,rest-end}.txt, the logs.
# Exit status 1 when an acknowledged push was lost, a push to a dead connection did not answer
# 410, the `$connect`s and `$disconnect`s do not balance, or a record is left in Redis.
#
# The machine's limits: one process may open at most 20,000 files here (hard RLIMIT_NOFILE,
# which root cannot raise without CAP_SYS_RESOURCE), so a node holds at most ~19,900 sockets:
# 500,000 needs 26 nodes. Memory: see docs/scaling.md for what a run takes.
#
# Environment: WSGATE_BIN, LOAD_BIN (default target/release/{wsgate,wsgate-load}); NODES, CONNS,
# REST (60), FANOUT_GROUPS (25), FANOUT_WAIT (20: seconds given to each fan-out), PUSH_CONNS
# (2000), PUSH_RATE (1000), KILL_AFTER (20), PUSH_SECONDS (90), RATE (0: as fast as the
# handshakes in flight allow), INFLIGHT (512), SAMPLE (5), BACKEND_THREADS (2). SCALE_SHORT=1 is the CI variant: 3
# nodes, 3,000 connections in 3 groups, 5 s at rest, 300 pushes a second for 15 s, lease_ttl 3 s:
# about a minute. The cluster's lease_ttl and reaper_interval are the gateway's defaults (10 s,
# 5 s) unless LEASE_TTL and REAPER_INTERVAL say otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
here="load-tests/scripts"
if [ "${SCALE_SHORT:-0}" = 1 ]; then
  # A dead node is reaped within lease_ttl + reaper_interval: short ones keep the run short.
  LEASE_TTL="${LEASE_TTL:-3s}" REAPER_INTERVAL="${REAPER_INTERVAL:-1s}" STORE_TIMEOUT="${STORE_TIMEOUT:-1s}"
fi
# shellcheck source=cluster-lib.sh
. "$here/cluster-lib.sh"

OUT="${1:-load-results/scale-$(date +%s)}"
mkdir -p "$OUT"
WORK="$(cd "$OUT" && pwd)"
WSGATE_BIN="$(realpath "${WSGATE_BIN:-target/release/wsgate}")"
LOAD_BIN="$(realpath "${LOAD_BIN:-target/release/wsgate-load}")"
for b in "$WSGATE_BIN" "$LOAD_BIN"; do
  [ -x "$b" ] || { echo "scale: $b is missing (cargo build --release -p wsgate -p wsgate-load)" >&2; exit 2; }
done
if [ "${SCALE_SHORT:-0}" = 1 ]; then
  NODES="${NODES:-3}" CONNS="${CONNS:-3000}" REST="${REST:-5}" PUSH_CONNS="${PUSH_CONNS:-200}"
  PUSH_RATE="${PUSH_RATE:-300}" KILL_AFTER="${KILL_AFTER:-5}" PUSH_SECONDS="${PUSH_SECONDS:-15}"
  SAMPLE="${SAMPLE:-1}" GROUPS_="${FANOUT_GROUPS:-3}" FANOUT_WAIT="${FANOUT_WAIT:-3}" MARGIN=25
  CLOSE_RATE="${CLOSE_RATE:-5000}"
else
  NODES="${NODES:-26}" CONNS="${CONNS:-500000}" REST="${REST:-60}" PUSH_CONNS="${PUSH_CONNS:-2000}"
  PUSH_RATE="${PUSH_RATE:-1000}" KILL_AFTER="${KILL_AFTER:-20}" PUSH_SECONDS="${PUSH_SECONDS:-90}"
  SAMPLE="${SAMPLE:-5}" GROUPS_="${FANOUT_GROUPS:-25}" FANOUT_WAIT="${FANOUT_WAIT:-20}" MARGIN=60
  CLOSE_RATE="${CLOSE_RATE:-2000}"
fi
RATE="${RATE:-0}" INFLIGHT="${INFLIGHT:-512}"
export BACKEND_THREADS="${BACKEND_THREADS:-2}"
per_node=$(((CONNS + PUSH_CONNS + NODES - 1) / NODES))
limit="$(ulimit -n)"
if [ $((per_node + 100)) -gt "$limit" ]; then
  echo "scale: $per_node connections a node do not fit under this machine's open-files limit ($limit): raise NODES" >&2
  exit 2
fi
rm -f "$WORK"/{marks.env,samples.jsonl,fanout-answers.txt,victim-not-410.txt,summary.json}
NET_TAG="wsc$(($$ % 100000))"
NET_MODE=direct
SAMPLER=""
trap '[ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null; cluster_down 2>/dev/null || true' EXIT
prefix="scale${NET_TAG}"
now_ms() { date +%s%3N; }
# mark NAME: NAME=now (ms) into marks.env, so a run stopped early can still be read.
mark() { local t; t="$(now_ms)"; printf -v "$1" '%s' "$t"; echo "$1=$t" >>"$WORK/marks.env"; }

redis_start
backend_start
# Redis and the backend stand for machines of their own: on two shared cores, the nodes' and
# the load processes' hundred-odd threads would otherwise starve the single-threaded Redis
# (store calls past their timeout, handshakes past the client's) during the opening burst.
renice -n -10 -p "$(cat "$WORK/redis.pid")" >/dev/null 2>&1 || true
renice -n -5 -p "$BACKEND_PID" >/dev/null 2>&1 || true
nodes_config "$NODES" "$prefix"
for k in $(seq 1 "$NODES"); do node_start "$k"; done
node_pids() { local p; for p in "${NODE_PIDS[@]}"; do printf -- '--wsgate-pid %s ' "$p"; done; }
idle_urls() { local p; for p in "${NODE_PORTS[@]}"; do printf -- '--wsgate-url ws://127.0.0.1:%s/prod ' "$p"; done; }

# One JSON line of everything sampled: Redis INFO (memory, commands, CPU), the nodes' RSS, the
# kernel's slab and TCP figures, the backend's counts.
sample() {
  local rss=() k
  for k in "${!NODE_PIDS[@]}"; do
    rss+=("$(awk '/^VmRSS:/ {print $2}' "/proc/${NODE_PIDS[$k]}/status" 2>/dev/null || echo null)")
  done
  python3 - "$1" "$(now_ms)" "$(rcli info | tr -d '\r' | tr '\n' ';')" "${rss[*]}" \
    "$(backend_get /stats 2>/dev/null || echo '{}')" <<'PY'
import json, sys
phase, t, info, rss, stats = sys.argv[1:6]
kv = dict(l.split(":", 1) for l in info.split(";") if ":" in l and not l.startswith("#"))
mem = {l.split()[0]: int(l.split()[1]) for l in open("/proc/meminfo") if l.split()[0] in ("Slab:", "MemAvailable:")}
tcp = open("/proc/net/sockstat").read().split("TCP:")[1].split("\n")[0].split()
tcp = dict(zip(tcp[::2], map(int, tcp[1::2])))
node_rss = [None if v == "null" else int(v) for v in rss.split()]
print(json.dumps({
    "phase": phase, "t_ms": int(t),
    "redis_used_memory": int(kv.get("used_memory", 0)),
    "redis_commands": int(kv.get("total_commands_processed", 0)),
    "redis_cpu_s": float(kv.get("used_cpu_sys", 0)) + float(kv.get("used_cpu_user", 0)),
    "redis_ops_per_sec": int(kv.get("instantaneous_ops_per_sec", 0)),
    "redis_keys": int(kv.get("db0", "keys=0,").split(",")[0].split("=")[1]) if "db0" in kv else 0,
    "node_rss_kib": node_rss,
    "slab_kib": mem["Slab:"], "mem_available_kib": mem["MemAvailable:"],
    "tcp": tcp, "backend": json.loads(stats or "{}"),
}))
PY
}
PHASE=idle
echo "$PHASE" >"$WORK/phase"
sample before >>"$WORK/samples.jsonl"
( while :; do sample "$(cat "$WORK/phase")" >>"$WORK/samples.jsonl" || true; sleep "$SAMPLE"; done ) &
SAMPLER=$!
phase() { echo "$1" >"$WORK/phase"; sample "$1-start" >>"$WORK/samples.jsonl"; }
# A count of the backend's (-1 when it does not answer in time: it is busy, try again).
stat() {
  local s
  s="$(backend_get /stats 2>/dev/null)" || { echo -1; return 0; }
  jq -r ".$1 // -1" <<<"$s"
}
connected() { stat connected_ids; }

# open: the hold covers rest, the push phase and a margin; it starts when all are open.
hold=$((REST + 2 * FANOUT_WAIT + PUSH_SECONDS + 10 + MARGIN))
phase open
mark T_OPEN
# shellcheck disable=SC2046
"$LOAD_BIN" idle --target wsgate $(idle_urls) $(node_pids) --backend off --conns "$CONNS" \
  --rate "$RATE" --inflight "$INFLIGHT" --hold "$hold" --groups "$GROUPS_" --close-rate "$CLOSE_RATE" --src-ips 32 --threads 1 --connect-timeout 30 \
  --no-progress --out-dir "$WORK" --name idle >"$WORK/idle.out" 2>"$WORK/idle.err" &
IDLE=$!
# All open: the backend counts CONNS live `$connect`s (or the idle run gave up). Should the
# machine's available memory fall under MEM_FLOOR_MIB (default 1024) first, the run stops there
# rather than thrash, and says at how many connections.
last=0 still=0 STOPPED=""
while kill -0 "$IDLE" 2>/dev/null; do
  n="$(connected)"
  [ "$n" -ge "$CONNS" ] && break
  if [ "$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)" -lt "${MEM_FLOOR_MIB:-1024}" ]; then
    STOPPED="machine memory: less than ${MEM_FLOOR_MIB:-1024} MiB available at $n connections"
    echo "scale: stopping: $STOPPED" >&2
    sample stopped >>"$WORK/samples.jsonl"
    kill -TERM "$IDLE" 2>/dev/null || true
    for k in "${!NODE_PIDS[@]}"; do kill -9 "${NODE_PIDS[$k]}" 2>/dev/null || true; done
    jq -n --arg why "$STOPPED" --argjson n "$n" '{passed: false, stopped: $why, connections: $n}' >"$WORK/summary.json"
    cat "$WORK/summary.json"
    exit 1
  fi
  if [ "$n" = "$last" ]; then still=$((still + 1)); else still=0; last="$n"; fi
  [ "$still" -ge 60 ] && { echo "scale: stuck at $n of $CONNS connections" >&2; break; }
  sleep 0.5
done
mark T_OPENED
OPENED="$(connected)"
echo "scale: $OPENED connections open in $(((T_OPENED - T_OPEN) / 1000)) s" >&2

# rest
phase rest
rcli info commandstats | tr -d '\r' >"$WORK/commandstats-rest-start.txt"
sleep "$REST" # the measured window at rest, not a wait for a result
rcli info commandstats | tr -d '\r' >"$WORK/commandstats-rest-end.txt"
sample rest-end >>"$WORK/samples.jsonl"
# What one record and one membership hold, by MEMORY USAGE of a sample of keys.
{
  for key in $(rcli --scan --pattern "$prefix:conn:*" | head -50); do
    id="${key#"$prefix:conn:"}"
    printf '%s %s %s\n' "$(rcli memory usage "$key")" "$(rcli memory usage "$prefix:joined:$id")" \
      "$(rcli smembers "$prefix:joined:$id" | wc -l)"
  done
} >"$WORK/memory-usage.txt"
rcli --scan --pattern "$prefix:group:*" | head -5 | while read -r key; do
  printf '%s %s %s\n' "$key" "$(key_size "$key")" "$(rcli memory usage "$key" samples 0)"
done >"$WORK/memory-usage-groups.txt"

# fanout: every group at once, then the whole stage
phase fanout
posts=()
for g in $(seq 0 $((GROUPS_ - 1))); do
  port="${NODE_PORTS[$((g % NODES))]}"
  curl -s -o /dev/null -w '%{http_code}\n' -X POST --data "G:$(date +%s%N):g$g" \
    "http://127.0.0.1:$port/prod/@groups/g$g" >>"$WORK/fanout-answers.txt" &
  posts+=($!)
done
for p in "${posts[@]}"; do wait "$p" || true; done
sleep "$FANOUT_WAIT" # the window the deliveries have; the clients time each one
curl -s -o /dev/null -w '%{http_code}\n' -X POST --data "B:$(date +%s%N)" \
  "http://127.0.0.1:${NODE_PORTS[0]}/prod/@broadcast" >>"$WORK/fanout-answers.txt"
sleep "$FANOUT_WAIT"

# push, with the kill of the last node KILL_AFTER seconds in
phase push
victim="$NODES"
victim_id="${prefix}-node-$victim"
# shellcheck disable=SC2046
"$LOAD_BIN" faults $(node_urls) --conns "$PUSH_CONNS" --ramp 1000 --push-rate "$PUSH_RATE" \
  --msg-rate 0 --duration "$PUSH_SECONDS" --drain 10 --seed 5 --threads 2 \
  --out "$WORK/faults.json" >"$WORK/faults.out" 2>"$WORK/faults.err" &
FAULTS=$!
sleep "$KILL_AFTER" # the schedule of the kill
rcli smembers "$prefix:node:$victim_id" >"$WORK/victim-ids.txt"
victim_n="$(wc -l <"$WORK/victim-ids.txt")"
before=-1
while [ "$before" = -1 ]; do before="$(stat disconnect_events)"; done
phase kill
mark T_KILL
kill -9 "$(node_pid "$victim")"
wait "$(node_pid "$victim")" 2>/dev/null || true
# Reaped: the backend has seen victim_n more `$disconnect`s than before the kill (the others'
# own closes are few: the push phase's clients reconnect, they do not close).
T_REAPED="" T_FIRST=""
deadline=$(($(date +%s) + 300))
while [ "$(date +%s)" -lt "$deadline" ]; do
  d="$(stat disconnect_events)"
  [ -z "$T_FIRST" ] && [ "$d" -gt "$before" ] && mark T_FIRST
  if [ $((d - before)) -ge "$victim_n" ]; then mark T_REAPED; break; fi
  sleep 0.2
done
sample reaped >>"$WORK/samples.jsonl"
# Pushes to the dead node's connections through node 1: 410 each.
gone=0 other=0
while read -r id; do
  code="$(curl -s -o /dev/null -w '%{http_code}' -X POST --data x \
    "http://127.0.0.1:${NODE_PORTS[0]}/prod/@connections/$id")"
  if [ "$code" = 410 ]; then gone=$((gone + 1)); else other=$((other + 1)); echo "$id $code" >>"$WORK/victim-not-410.txt"; fi
done < <(shuf -n 100 "$WORK/victim-ids.txt")
wait "$FAULTS" || true

# end: the idle hold runs out, every connection closes
phase end
wait "$IDLE" || true
mark T_CLOSED
# Every `$disconnect` delivered and every record gone (node indexes are pruned in batches).
settle_end=$(($(date +%s) + 300 + CONNS / 500))
while [ "$(date +%s)" -lt "$settle_end" ]; do
  if [ "$(connected)" = 0 ]; then
    redis_records "$prefix" >/dev/null
    [ "$REDIS_LEFT" = 0 ] && break
  fi
  sleep 1
done
redis_records "$prefix" >"$WORK/redis-left.txt"
mark T_SETTLED
kill "$SAMPLER" 2>/dev/null || true
SAMPLER=""
for k in $(seq 1 $((NODES - 1))); do node_term "$k"; done
backend_get /stats >"$WORK/backend.json"

python3 "$here/scale_report.py" "$WORK" --nodes "$NODES" --conns "$CONNS" --opened "$OPENED" \
  --push-conns "$PUSH_CONNS" --t-open "$T_OPEN" --t-opened "$T_OPENED" --t-kill "$T_KILL" \
  --t-first-reap "${T_FIRST:-0}" --t-reaped "${T_REAPED:-0}" --victim-conns "$victim_n" --gone "$gone" --not-gone "$other" \
  --t-closed "$T_CLOSED" --t-settled "$T_SETTLED" >"$WORK/summary.json"
jq . "$WORK/summary.json"
jq -e '.passed' "$WORK/summary.json" >/dev/null
