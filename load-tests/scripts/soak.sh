#!/usr/bin/env bash
# soak.sh [OUT_DIR]: two wsgate nodes on a private Redis and the integration backend under
# `wsgate-load soak` for SOAK_SECONDS (default 3600): CONNS connections (default 2000) with steady
# churn, echo messages, pushes and group fan-outs, every acknowledgement checked by the delivery
# ledger; every 10 s the nodes' RSS and open fds, Redis used_memory and latency percentiles.
# Passes when no acknowledged push or echo message was lost, nothing was duplicated, no error was
# seen by a client, every $connect got one
# $disconnect, no connection record is left in Redis, and RSS and fds are flat after the
# warm-up (a fifth of the run; the test is in load-tests/src/scenario/soak.rs).
# SOAK_SHORT=1 is the CI variant: 150 s, 200 connections.
# Writes OUT_DIR/soak.json (the wsgate-load report) and OUT_DIR/verdict.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
here="load-tests/scripts"
# shellcheck source=cluster-lib.sh
. "$here/cluster-lib.sh"

OUT="${1:-load-results/soak-$(date +%s)}"
mkdir -p "$OUT"
WORK="$(cd "$OUT" && pwd)"
WSGATE_BIN="$(realpath "${WSGATE_BIN:-target/release/wsgate}")"
LOAD_BIN="$(realpath "${LOAD_BIN:-target/release/wsgate-load}")"
for b in "$WSGATE_BIN" "$LOAD_BIN"; do
  [ -x "$b" ] || { echo "soak: $b is missing (cargo build --release -p wsgate -p wsgate-load)" >&2; exit 2; }
done
if [ "${SOAK_SHORT:-0}" = 1 ]; then
  SECONDS_="${SOAK_SECONDS:-150}" CONNS="${CONNS:-200}" RATE="${RATE:-50}" CHURN="${CHURN:-2}" SAMPLE=5
else
  SECONDS_="${SOAK_SECONDS:-3600}" CONNS="${CONNS:-2000}" RATE="${RATE:-200}" CHURN="${CHURN:-10}" SAMPLE=10
fi
NET_TAG="wss$(($$ % 100000))"
NET_MODE=direct
trap 'cluster_down 2>/dev/null || true' EXIT
prefix="soak${NET_TAG}"
redis_start
backend_start
nodes_config 2 "$prefix"
node_start 1
node_start 2
# shellcheck disable=SC2046
"$LOAD_BIN" soak $(node_urls) --conns "$CONNS" --duration "$SECONDS_" --msg-rate "$RATE" \
  --push-rate "$RATE" --churn "$CHURN" --groups 10 --group-rate 2 --sample "$SAMPLE" \
  --pid "$(node_pid 1)" --pid "$(node_pid 2)" --redis "$REDIS_LOCAL" --seed 11 \
  --out "$WORK/soak.json" >"$WORK/soak.out" 2>"$WORK/soak.err" || true
settle_end=$(($(date +%s) + 30))
while [ "$(date +%s)" -lt "$settle_end" ]; do
  redis_records "$prefix" >/dev/null
  [ "$(backend_get /stats | jq -r '.connected_ids')" = 0 ] && [ "$REDIS_LEFT" = 0 ] && break
  sleep 0.5
done
redis_records "$prefix" >"$WORK/redis-left.txt"
node_term 1
node_term 2
backend_get /stats >"$WORK/backend.json"
python3 - "$WORK" <<'PY'
import json, sys
w = sys.argv[1]
r = json.load(open(f"{w}/soak.json"))
b = json.load(open(f"{w}/backend.json"))
left = {k: int(v) for k, v in (kv.split("=") for kv in open(f"{w}/redis-left.txt").read().split())}
balanced = (b["connect_events"] == b["disconnect_events"] and b["connected_ids"] == 0
            and b["unmatched_disconnects"] == 0 and b["duplicate_connects"] == 0)
tl = r["timeline"]
v = {
    "duration_s": r["plan"]["duration_s"], "conns": r["plan"]["conns"],
    "pushes": r["pushes"], "upstream": r["upstream"], "groups": r["groups"],
    "connections": r["connections"], "errors": r["errors"],
    "connect_events": b["connect_events"], "disconnect_events": b["disconnect_events"],
    "balanced": balanced, "redis_left": sum(left.values()),
    "rss_kib_first_last": [tl[0].get("rss_kib"), tl[-2].get("rss_kib")] if len(tl) > 1 else None,
    "fds_first_last": [tl[0].get("fds"), tl[-2].get("fds")] if len(tl) > 1 else None,
    "redis_used_memory_first_last": [tl[0].get("redis_used_memory"), tl[-2].get("redis_used_memory")] if len(tl) > 1 else None,
    "push_p99_ms_max": max((s["push_p99_us"] for s in tl), default=0) / 1000,
    "echo_p99_ms_max": max((s["echo_p99_us"] for s in tl), default=0) / 1000,
    "soak": r.get("soak"),
}
# An echo message unanswered on a connection that stayed open is a lost message (errors would
# name an error frame).
v["passed"] = bool(r["passed"] and balanced and v["redis_left"] == 0 and not r["errors"]
                   and r["upstream"]["lost_on_live_conn"] == 0)
json.dump(v, open(f"{w}/verdict.json", "w"), indent=1)
print(json.dumps(v, indent=1))
sys.exit(0 if v["passed"] else 1)
PY
