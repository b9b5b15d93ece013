#!/usr/bin/env bash
# deploy.sh [OUT_DIR]: deployments under load. Three wsgate nodes share a private Redis with
# `deployments.scope: cluster`; `wsgate-load soak` holds CONNS connections (default 1000) open
# with steady echo messages, pushes and group fan-outs, every acknowledgement checked by the
# delivery ledger, for DEPLOY_SECONDS (default 300). Meanwhile, every DEPLOY_EVERY seconds
# (default 10), a change goes through one node, in turn: `wsgate apply` of a changed definition
# (a new stage variable and a new route), and every third change a `wsgate rollback` instead.
# Each change is timed from the command's start until it returns (command_ms) and until all three
# nodes' /healthz report the new deployment (switch_ms, polled every 20 ms), and the new route is
# checked on a fresh connection to another node.
# Passes when no connection was lost, no acknowledged push or echo was lost or duplicated, no
# client saw an error, every $connect got one $disconnect, nothing is left in Redis, and every
# change reached every node within DEPLOY_SWITCH_LIMIT_MS (default 5000).
# DEPLOY_SHORT=1 is the CI variant: 40 s, 200 connections, a change every 5 s.
# Writes OUT_DIR/soak.json (the wsgate-load report), OUT_DIR/switches.json and
# OUT_DIR/verdict.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
here="load-tests/scripts"
# shellcheck source=cluster-lib.sh
. "$here/cluster-lib.sh"

OUT="${1:-load-results/deploy-$(date +%s)}"
mkdir -p "$OUT"
WORK="$(cd "$OUT" && pwd)"
WSGATE_BIN="$(realpath "${WSGATE_BIN:-target/release/wsgate}")"
LOAD_BIN="$(realpath "${LOAD_BIN:-target/release/wsgate-load}")"
for b in "$WSGATE_BIN" "$LOAD_BIN"; do
  [ -x "$b" ] || { echo "deploy: $b is missing (cargo build --release -p wsgate -p wsgate-load)" >&2; exit 2; }
done
if [ "${DEPLOY_SHORT:-0}" = 1 ]; then
  SECONDS_="${DEPLOY_SECONDS:-40}" CONNS="${CONNS:-200}" RATE="${RATE:-50}" EVERY="${DEPLOY_EVERY:-5}"
else
  SECONDS_="${DEPLOY_SECONDS:-300}" CONNS="${CONNS:-1000}" RATE="${RATE:-200}" EVERY="${DEPLOY_EVERY:-10}"
fi
SWITCH_LIMIT_MS="${DEPLOY_SWITCH_LIMIT_MS:-5000}"
NET_TAG="wsd$(($$ % 100000))"
NET_MODE=direct
trap 'cluster_down 2>/dev/null || true' EXIT
prefix="deploy${NET_TAG}"
redis_start
backend_start
nodes_config 3 "$prefix"
for k in 1 2 3; do
  echo "deployments: { scope: cluster, check_interval: 1s }" >>"$WORK/node-$k.yaml"
done
node_start 1
node_start 2
node_start 3

# The definition of change N: the nodes' own, with a stage variable and a route of its own.
definition() {
  local n="$1"
  cat <<EOF
api:
  name: faults
  route_selection_expression: \$request.body.action
  stages:
    prod:
      variables: { backend: "http://$BACKEND_ADDR", change: "$n" }
  routes:
    \$connect:    { integration: { type: aws_proxy, uri: "\${stageVariables.backend}/connect" } }
    \$disconnect: { integration: { type: aws_proxy, uri: "\${stageVariables.backend}/disconnect" } }
    whoami:      { integration: { type: aws_proxy, uri: "\${stageVariables.backend}/whoami" }, route_response: true }
    echo:        { integration: { type: aws_proxy, uri: "\${stageVariables.backend}/echo" }, route_response: true }
    change$n:    { integration: { type: mock, response: '{"change":$n}' }, route_response: true }
throttling: { new_connections: null }
EOF
}

deployment_of() { # node K -> the deployment id its /healthz reports
  curl -fsS --max-time 2 "http://127.0.0.1:${NODE_PORTS[$(($1 - 1))]}/healthz" | jq -r '.deployment.id'
}
now_ms() { date +%s%3N; }

# shellcheck disable=SC2046
"$LOAD_BIN" soak $(node_urls) --conns "$CONNS" --duration "$SECONDS_" --msg-rate "$RATE" \
  --push-rate "$RATE" --churn 0 --groups 10 --group-rate 2 --sample 5 \
  --pid "$(node_pid 1)" --pid "$(node_pid 2)" --pid "$(node_pid 3)" --redis "$REDIS_LOCAL" --seed 13 \
  --out "$WORK/soak.json" >"$WORK/soak.out" 2>"$WORK/soak.err" &
load_pid=$!

# Changes until a few seconds before the load ends (the last one must land inside the window).
sleep "$EVERY"
end=$(($(date +%s) + SECONDS_ - 2 * EVERY))
n=0
: >"$WORK/switches.jsonl"
while [ "$(date +%s)" -lt "$end" ] && kill -0 "$load_pid" 2>/dev/null; do
  n=$((n + 1))
  via=$(((n - 1) % 3 + 1))
  url="http://127.0.0.1:${NODE_PORTS[$((via - 1))]}"
  started=$(now_ms)
  if [ $((n % 3)) = 0 ]; then
    kind=rollback
    "$WSGATE_BIN" rollback --stage prod --url "$url" >>"$WORK/changes.log" 2>&1 || { echo "deploy: rollback $n failed ($WORK/changes.log)" >&2; kind=failed; }
  else
    kind=apply
    definition "$n" >"$WORK/definition-$n.yaml"
    "$WSGATE_BIN" apply "$WORK/definition-$n.yaml" --description "change $n" --url "$url" >>"$WORK/changes.log" 2>&1 || { echo "deploy: apply $n failed ($WORK/changes.log)" >&2; kind=failed; }
  fi
  command_ms=$(($(now_ms) - started))
  target="$(deployment_of "$via")"
  converged=false
  while [ $(($(now_ms) - started)) -lt $((SWITCH_LIMIT_MS * 2)) ]; do
    if [ "$(deployment_of 1)" = "$target" ] && [ "$(deployment_of 2)" = "$target" ] && [ "$(deployment_of 3)" = "$target" ]; then
      converged=true
      break
    fi
    sleep 0.02
  done
  switch_ms=$(($(now_ms) - started))
  # The route of the last apply answers on another node, on a connection opened now.
  route_ok=null
  if [ "$kind" = apply ]; then
    other=$((via % 3 + 1))
    answer="$(python3 - "${NODE_PORTS[$((other - 1))]}" "$n" <<'PY'
import asyncio, json, sys
port, n = sys.argv[1], sys.argv[2]
async def main():
    # A minimal client: the standard library has no WebSocket, so speak the handshake by hand.
    import base64, os
    r, w = await asyncio.open_connection("127.0.0.1", int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    w.write((f"GET /prod HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await r.readuntil(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n")[0]:
        return "no upgrade"
    payload = json.dumps({"action": f"change{n}"}).encode()
    mask = os.urandom(4)
    w.write(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    await w.drain()
    first = await r.readexactly(2)
    length = first[1] & 0x7F
    if length == 126:
        length = int.from_bytes(await r.readexactly(2), "big")
    text = (await r.readexactly(length)).decode()
    w.close()
    return text
print(asyncio.run(asyncio.wait_for(main(), 5)))
PY
)" || answer="error"
    if [ "$answer" = "{\"change\":$n}" ]; then route_ok=true; else route_ok=false; fi
  fi
  printf '{"n":%d,"kind":"%s","via":%d,"deployment":"%s","converged":%s,"command_ms":%d,"switch_ms":%d,"route_ok":%s}\n' \
    "$n" "$kind" "$via" "$target" "$converged" "$command_ms" "$switch_ms" "$route_ok" >>"$WORK/switches.jsonl"
  rest=$((EVERY * 1000 - ($(now_ms) - started)))
  [ "$rest" -gt 0 ] && sleep "$(awk -v ms="$rest" 'BEGIN{printf "%.3f", ms/1000}')"
done
wait "$load_pid" || true

settle_end=$(($(date +%s) + 30))
while [ "$(date +%s)" -lt "$settle_end" ]; do
  redis_records "$prefix" >/dev/null
  [ "$(backend_get /stats | jq -r '.connected_ids')" = 0 ] && [ "$REDIS_LEFT" = 0 ] && break
  sleep 0.5
done
redis_records "$prefix" >"$WORK/redis-left.txt"
node_term 1
node_term 2
node_term 3
backend_get /stats >"$WORK/backend.json"
python3 - "$WORK" "$SWITCH_LIMIT_MS" <<'PY'
import json, sys
w, limit = sys.argv[1], int(sys.argv[2])
r = json.load(open(f"{w}/soak.json"))
b = json.load(open(f"{w}/backend.json"))
switches = [json.loads(line) for line in open(f"{w}/switches.jsonl") if line.strip()]
json.dump(switches, open(f"{w}/switches.json", "w"), indent=1)
left = {k: int(v) for k, v in (kv.split("=") for kv in open(f"{w}/redis-left.txt").read().split())}
balanced = (b["connect_events"] == b["disconnect_events"] and b["connected_ids"] == 0
            and b["unmatched_disconnects"] == 0 and b["duplicate_connects"] == 0)
times = sorted(s["switch_ms"] for s in switches)
def pct(p):
    return times[min(len(times) - 1, int(p * len(times)))] if times else None
v = {
    "duration_s": r["plan"]["duration_s"], "conns": r["plan"]["conns"],
    "changes": len(switches),
    "applies": sum(s["kind"] == "apply" for s in switches),
    "rollbacks": sum(s["kind"] == "rollback" for s in switches),
    "failed_changes": sum(s["kind"] == "failed" for s in switches),
    "all_converged": all(s["converged"] for s in switches),
    "new_routes_answered": all(s["route_ok"] is not False for s in switches),
    "switch_ms_p50": pct(0.5), "switch_ms_max": times[-1] if times else None,
    "command_ms_p50": sorted(s["command_ms"] for s in switches)[len(switches) // 2] if switches else None,
    "connections": r["connections"], "errors": r["errors"],
    "pushes": r["pushes"], "upstream": r["upstream"], "groups": r["groups"],
    "connect_events": b["connect_events"], "disconnect_events": b["disconnect_events"],
    "balanced": balanced, "redis_left": sum(left.values()),
    "push_p99_ms": r["push_latency"].get("p99_us", 0) / 1000,
    "echo_p99_ms": r["echo_latency"].get("p99_us", 0) / 1000,
}
v["passed"] = bool(
    v["changes"] >= 3 and v["failed_changes"] == 0 and v["all_converged"]
    and v["new_routes_answered"] and v["switch_ms_max"] is not None and v["switch_ms_max"] <= limit
    and r["connections"].get("lost", 0) == 0 and not r["errors"]
    and r["pushes"]["acked_but_lost"] == 0 and r["pushes"]["duplicates"] == 0
    and r["upstream"]["acked_but_lost"] == 0 and r["upstream"]["duplicates"] == 0
    and balanced and v["redis_left"] == 0)
json.dump(v, open(f"{w}/verdict.json", "w"), indent=1)
print(json.dumps(v, indent=1))
sys.exit(0 if v["passed"] else 1)
PY
