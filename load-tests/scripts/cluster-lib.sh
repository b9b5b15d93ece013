# shellcheck shell=bash
# Test hosts for faults.sh and soak.sh (sourced): Redis, the integration backend and N wsgate
# nodes, and the faults that can be done to them.
#
# Network: with `ip netns` (root, iproute2), Redis and the backend each run in a network
# namespace of their own, joined to this one by a veth pair (10.77.1.0/24 and 10.77.2.0/24), and
# a partition is the far end of the pair set down: packets are dropped without RST, so TCP
# stalls until it is restored. Packet loss is nft rules in the far namespace dropping a share of
# the packets each way (`numgen random`, link_loss), a slow link tbf qdiscs on both ends of the
# pair (link_rate); latency is not injected (this kernel has no netem qdisc). net_detect probes
# both (NET_LOSS, NET_RATE). Without namespaces (no root, no CAP_NET_ADMIN) both run on loopback
# behind `wsgate-load faultproxy`, which stalls or resets the connections it carries instead; it
# has no loss or bandwidth mode, so those faults are not available there.
# The gateway nodes run in this namespace on 127.0.0.1: wsgate-load only sends load to loopback
# addresses, and node faults are process faults (SIGKILL, SIGSTOP, restart).
#
# NET_MODE=direct (set by soak.sh) runs Redis and the backend on loopback with nothing between.
#
# Needs: WSGATE_BIN, LOAD_BIN, WORK (a scratch directory), NET_TAG (unique short name).

NET_MODE=""
REDIS_ADDR=""     # host:port the nodes use
BACKEND_ADDR=""   # host:port the nodes use
BACKEND_PID=""
NODE_PIDS=()
NODE_PORTS=()
LEASE_TTL="${LEASE_TTL:-10s}"
REAPER_INTERVAL="${REAPER_INTERVAL:-5s}"
STORE_TIMEOUT="${STORE_TIMEOUT:-2s}"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") >/dev/null 2>&1; }

# Chooses the network mode: netns when a namespace and a veth pair can be created. With netns
# it also probes what the link faults need, setting NET_LOSS (nft's numgen drop works in a
# namespace) and NET_RATE (a tbf qdisc can be put on a veth) to 1, or else to why not.
NET_LOSS="needs network namespaces (root); the fault proxy cannot drop packets"
NET_RATE="needs network namespaces (root); the fault proxy cannot limit bandwidth"
net_detect() {
  local ns="${NET_TAG}probe"
  if [ "${FAULTS_NET:-auto}" != proxy ] && [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1 \
    && ip netns add "$ns" 2>/dev/null; then
    if ip link add "${NET_TAG}p0" type veth peer name "${NET_TAG}p1" 2>/dev/null; then
      NET_MODE=netns
      NET_RATE="no tbf qdisc in this kernel"
      if tc qdisc add dev "${NET_TAG}p0" root tbf rate 1mbit burst 16kb latency 100ms 2>/dev/null; then
        NET_RATE=1
      fi
      NET_LOSS="the nft tool is not installed (Debian package nftables)"
      if command -v nft >/dev/null 2>&1; then
        NET_LOSS="nft cannot add a numgen drop rule in a namespace here"
        if echo 'table inet probe { chain input { type filter hook input priority 0; numgen random mod 100 < 10 drop; }; }' \
          | ip netns exec "$ns" nft -f - 2>/dev/null; then
          NET_LOSS=1
        fi
      fi
      ip link del "${NET_TAG}p0"
      ip netns del "$ns"
      return
    fi
    ip netns del "$ns"
  fi
  NET_MODE=proxy
}

# host NAME INDEX: namespace NAME with 10.77.INDEX.2 on its end of a veth pair.
host_up() {
  local ns="${NET_TAG}$1" i="$2"
  ip netns add "$ns"
  ip link add "${ns}0" type veth peer name "${ns}1"
  ip link set "${ns}1" netns "$ns"
  ip addr add "10.77.$i.1/24" dev "${ns}0"
  ip link set "${ns}0" up
  ip netns exec "$ns" ip addr add "10.77.$i.2/24" dev "${ns}1"
  ip netns exec "$ns" ip link set "${ns}1" up
  ip netns exec "$ns" ip link set lo up
}

host_down() {
  local ns="${NET_TAG}$1"
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
  ip link del "${ns}0" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}

# Partition (drop without RST) and heal the link to host NAME.
partition() {
  if [ "$NET_MODE" = netns ]; then
    ip netns exec "${NET_TAG}$1" ip link set "${NET_TAG}$1"1 down
  else
    proxy_mode "$1" stall
  fi
}
heal() {
  if [ "$NET_MODE" = netns ]; then
    ip netns exec "${NET_TAG}$1" ip link set "${NET_TAG}$1"1 up
  else
    proxy_mode "$1" pass
  fi
}

# link_loss NAME PERCENT: drops PERCENT % of the packets on host NAME's end of its link, each
# way (nftables in the host's namespace: `numgen random` on input and output of its veth, so its
# loopback is untouched); 0 removes the rules. Each direction drops on its own draw, so about
# 2 x PERCENT % of round trips lose a packet. Needs netns and nft (NET_LOSS=1).
link_loss() {
  local ns="${NET_TAG}$1" dev="${NET_TAG}$1"1
  ip netns exec "$ns" nft delete table inet wsfault 2>/dev/null || true
  [ "$2" = 0 ] && return 0
  ip netns exec "$ns" nft -f - <<EOF
table inet wsfault {
  chain input { type filter hook input priority 0; iifname "$dev" numgen random mod 100 < $2 counter drop; }
  chain output { type filter hook output priority 0; oifname "$dev" numgen random mod 100 < $2 counter drop; }
}
EOF
}

# link_rate NAME RATE: limits host NAME's link to RATE (tc syntax, e.g. 512kbit) each way, with a
# tbf qdisc on both ends of its veth pair (burst 16 KiB); what does not fit in LINK_QUEUE of
# queue at RATE (default 200ms) is dropped. "off" removes them. Needs netns and tbf (NET_RATE=1).
LINK_QUEUE="${LINK_QUEUE:-200ms}"
link_rate() {
  local ns="${NET_TAG}$1"
  tc qdisc del dev "${ns}0" root 2>/dev/null || true
  ip netns exec "$ns" tc qdisc del dev "${ns}1" root 2>/dev/null || true
  [ "$2" = off ] && return 0
  tc qdisc add dev "${ns}0" root tbf rate "$2" burst 16kb latency "$LINK_QUEUE"
  ip netns exec "$ns" tc qdisc add dev "${ns}1" root tbf rate "$2" burst 16kb latency "$LINK_QUEUE"
}

# link_stats NAME: one line of host NAME's link counters as seen from this end (bytes and packets
# each way), and the drop counters of its tbf qdiscs and nft rules when there are any.
link_stats() {
  local ns="${NET_TAG}$1" d="/sys/class/net/${NET_TAG}$1"0/statistics
  [ "$NET_MODE" = netns ] || return 0
  printf '%s %s to_host_bytes=%s to_host_packets=%s from_host_bytes=%s from_host_packets=%s' \
    "$(date +%s%3N)" "$1" "$(cat "$d/rx_bytes")" "$(cat "$d/rx_packets")" "$(cat "$d/tx_bytes")" "$(cat "$d/tx_packets")"
  printf ' tbf_host_end="%s"' "$(tc -s qdisc show dev "${ns}0" root | tr '\n' ' ' | tr -s ' ')"
  printf ' tbf_far_end="%s"' "$(ip netns exec "$ns" tc -s qdisc show dev "${ns}1" root | tr '\n' ' ' | tr -s ' ')"
  printf ' nft_drops="%s"\n' "$(ip netns exec "$ns" nft list table inet wsfault 2>/dev/null \
    | grep -o 'counter packets [0-9]*' | awk '{print $3}' | tr '\n' ' ')"
}

declare -A PROXY_CTL=()
declare -A PROXY_PID=()
# proxy NAME LISTEN_PORT UPSTREAM
proxy_start() {
  local ctl
  ctl="$(free_port)"
  "$LOAD_BIN" faultproxy --listen "127.0.0.1:$2" --upstream "$3" --control "127.0.0.1:$ctl" \
    >"$WORK/proxy-$1.log" 2>&1 &
  PROXY_PID[$1]=$!
  PROXY_CTL[$1]=$ctl
  for _ in $(seq 1 100); do port_open 127.0.0.1 "$ctl" && return 0; sleep 0.05; done
  echo "faults: the fault proxy for $1 did not start" >&2
  return 1
}
proxy_mode() {
  curl -fsS -X PUT --data "$2" "http://127.0.0.1:${PROXY_CTL[$1]}/mode" >/dev/null
}

in_host() { # NAME CMD...: run CMD where host NAME's services are reachable on their own address
  local name="$1"
  shift
  if [ "$NET_MODE" = netns ]; then ip netns exec "${NET_TAG}$name" "$@"; else "$@"; fi
}

REDIS_LOCAL=""    # where Redis really listens (host:port), for redis-cli
redis_start() {
  local port
  if [ "$NET_MODE" = netns ]; then
    host_up r 1
    REDIS_LOCAL="10.77.1.2:6379"
    REDIS_ADDR="$REDIS_LOCAL"
  elif [ "$NET_MODE" = direct ]; then
    REDIS_LOCAL="127.0.0.1:$(free_port)"
    REDIS_ADDR="$REDIS_LOCAL"
  else
    port="$(free_port)"
    REDIS_LOCAL="127.0.0.1:$port"
    REDIS_ADDR="127.0.0.1:$(free_port)"
    proxy_start r "${REDIS_ADDR##*:}" "$REDIS_LOCAL"
  fi
  redis_run
}
redis_run() {
  in_host r redis-server --bind "${REDIS_LOCAL%%:*}" --port "${REDIS_LOCAL##*:}" --protected-mode no \
    --save "" --appendonly no --daemonize yes --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log"
  for _ in $(seq 1 100); do rcli ping >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "faults: redis-server did not start ($WORK/redis.log)" >&2
  return 1
}
redis_restart_empty() {
  kill -9 "$(cat "$WORK/redis.pid")" 2>/dev/null || true
  for _ in $(seq 1 100); do rcli ping >/dev/null 2>&1 || break; sleep 0.05; done
  rm -f "$WORK/redis.pid"
  redis_run
}
rcli() { in_host r redis-cli -h "${REDIS_LOCAL%%:*}" -p "${REDIS_LOCAL##*:}" "$@"; }
redis_stop() { kill -9 "$(cat "$WORK/redis.pid" 2>/dev/null)" 2>/dev/null || true; }

BACKEND_LOCAL=""
backend_start() {
  if [ "$NET_MODE" = netns ]; then
    host_up b 2
    BACKEND_LOCAL="10.77.2.2:3900"
    BACKEND_ADDR="$BACKEND_LOCAL"
  elif [ "$NET_MODE" = direct ]; then
    BACKEND_LOCAL="127.0.0.1:$(free_port)"
    BACKEND_ADDR="$BACKEND_LOCAL"
  else
    BACKEND_LOCAL="127.0.0.1:$(free_port)"
    BACKEND_ADDR="127.0.0.1:$(free_port)"
    proxy_start b "${BACKEND_ADDR##*:}" "$BACKEND_LOCAL"
  fi
  # Started directly (not through a shell function) so that $! is the backend itself
  # (`ip netns exec` execs it).
  local netns=()
  [ "$NET_MODE" = netns ] && netns=(ip netns exec "${NET_TAG}b")
  "${netns[@]}" "$LOAD_BIN" backend --listen "$BACKEND_LOCAL" --threads "${BACKEND_THREADS:-1}" --max-seconds 7200 \
    >"$WORK/backend.log" 2>&1 &
  BACKEND_PID=$!
  for _ in $(seq 1 100); do backend_get /healthz >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "faults: the backend did not start ($WORK/backend.log)" >&2
  return 1
}
backend_get() { in_host b curl -fsS --max-time 5 "http://$BACKEND_LOCAL$1"; }
backend_reset_percent() {
  in_host b curl -fsS --max-time 5 -X PUT --data "$1" "http://$BACKEND_LOCAL/fault/reset-percent" >/dev/null
}
backend_stop() { kill "$BACKEND_PID" 2>/dev/null || true; wait "$BACKEND_PID" 2>/dev/null || true; }

# nodes_config N PREFIX: writes node configs $WORK/node-K.yaml.
nodes_config() {
  local n="$1" prefix="$2" k
  NODE_PORTS=()
  for k in $(seq 1 "$n"); do
    NODE_PORTS+=("$(free_port)")
    cat >"$WORK/node-$k.yaml" <<EOF
listen: 127.0.0.1:${NODE_PORTS[$((k - 1))]}
node_id: ${prefix}-node-$k
store: { kind: redis, url: "redis://$REDIS_ADDR", prefix: $prefix, timeout: $STORE_TIMEOUT }
cluster: { lease_ttl: $LEASE_TTL, reaper_interval: $REAPER_INTERVAL }
api:
  name: faults
  route_selection_expression: \$request.body.action
  stages:
    prod:
      variables: { backend: "http://$BACKEND_ADDR" }
  routes:
    \$connect:    { integration: { type: aws_proxy, uri: "\${stageVariables.backend}/connect" } }
    \$disconnect: { integration: { type: aws_proxy, uri: "\${stageVariables.backend}/disconnect" } }
    whoami:      { integration: { type: aws_proxy, uri: "\${stageVariables.backend}/whoami" }, route_response: true }
    echo:        { integration: { type: aws_proxy, uri: "\${stageVariables.backend}/echo" }, route_response: true }
limits: { idle_timeout: 10m, max_message_bytes: 131072, max_frame_bytes: 32768 }
throttling: { new_connections: null }
EOF
  done
}

# node_start K: starts node K (1-based) and waits for /healthz.
node_start() {
  local k="$1" port="${NODE_PORTS[$(($1 - 1))]}"
  "$WSGATE_BIN" --config "$WORK/node-$k.yaml" >>"$WORK/node-$k.log" 2>&1 &
  NODE_PIDS[$((k - 1))]=$!
  for _ in $(seq 1 200); do
    curl -fsS --max-time 1 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "faults: node $k did not become healthy ($WORK/node-$k.log)" >&2
  return 1
}
node_pid() { echo "${NODE_PIDS[$(($1 - 1))]}"; }
node_term() { # graceful stop, bounded
  local pid
  pid="$(node_pid "$1")"
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
node_urls() { local p; for p in "${NODE_PORTS[@]}"; do printf -- '--node ws://127.0.0.1:%s/prod ' "$p"; done; }

# What the gateways left in Redis under PREFIX about connections: connection records
# (`conn:*`), group memberships (`joined:*`, `group:*`), members of the per-node and per-stage
# indexes and owed `$disconnect`s. Prints `kind=count ...` and sets REDIS_LEFT to the total.
key_size() {
  case "$(rcli type "$1")" in
    set) rcli scard "$1" ;; zset) rcli zcard "$1" ;; hash) rcli hlen "$1" ;; list) rcli llen "$1" ;;
    string) echo 1 ;; *) echo 0 ;;
  esac
}
redis_records() {
  local p="$1" kind pat key n total=0 out=""
  for kind in conn joined group node stage owed; do
    case "$kind" in
      conn | joined) pat="$p:$kind:*" ;;
      group | node | stage) pat="$p:$kind:*" ;;
      owed) pat="{$p}:owed" ;;
    esac
    n=0
    while read -r key; do
      [ -n "$key" ] || continue
      case "$kind" in conn | joined) n=$((n + 1)) ;; *) n=$((n + $(key_size "$key"))) ;; esac
    done < <(rcli --scan --pattern "$pat" 2>/dev/null)
    out="$out$kind=$n "
    total=$((total + n))
  done
  REDIS_LEFT=$total
  echo "${out% }"
}

cluster_down() {
  local k
  for k in "${!NODE_PIDS[@]}"; do kill -9 "${NODE_PIDS[$k]}" 2>/dev/null || true; done
  NODE_PIDS=()
  backend_stop
  redis_stop
  for k in "${!PROXY_PID[@]}"; do kill "${PROXY_PID[$k]}" 2>/dev/null || true; done
  PROXY_PID=()
  if [ "$NET_MODE" = netns ]; then host_down r; host_down b; fi
}
