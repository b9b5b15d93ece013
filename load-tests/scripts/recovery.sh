#!/usr/bin/env bash
# recovery.sh [OUT_DIR]: two wsgate nodes on a private Redis, every group keeping its history,
# and the integration backend, under `wsgate-load recovery` twice:
#
#   clients   every client resets its TCP connection at once (no close frame), stays away
#             AWAY_MS, and reconnects to the other node with recover=GROUP:EPOCH:OFFSET
#   node      node 1, holding every client, is killed with SIGKILL; the clients come back
#             through node 2
#
# while posts continue (RATE a second over 10 groups). Each run passes when every client
# recovered and its offset ledger is exact: every offset from its first message to the last
# post answered 200 seen once, in order, and no notRecovered signal. Writes
# OUT_DIR/<mode>.json (the wsgate-load report), OUT_DIR/summary.json, and prints a table.
# Exit status 1 if a run failed.
#
# Environment: WSGATE_BIN, LOAD_BIN (default target/release/{wsgate,wsgate-load}); CONNS
# (default 1000), RATE (200), AWAY_MS (2000), RECONNECT_MS (1000), MODES ("clients node").
# RECOVERY_SHORT=1 is the CI variant: 200 clients, both modes, about 40 s in all.
#
# The long command, against nodes started from the bundled configs on the Redis at
# 127.0.0.1:6379 (the tool starts the backend and the nodes itself):
#   target/release/wsgate-load recovery --wsgate-bin target/release/wsgate --conns 1000 \
#     --post-rate 200 --groups 10 --away-ms 2000 --reconnect-ms 1000 [--drop node] --out r.json
set -euo pipefail
cd "$(dirname "$0")/../.."
here="load-tests/scripts"
# shellcheck source=cluster-lib.sh
. "$here/cluster-lib.sh"

OUT="${1:-load-results/recovery-$(date +%s)}"
mkdir -p "$OUT"
WORK="$(cd "$OUT" && pwd)"
WSGATE_BIN="$(realpath "${WSGATE_BIN:-target/release/wsgate}")"
LOAD_BIN="$(realpath "${LOAD_BIN:-target/release/wsgate-load}")"
for b in "$WSGATE_BIN" "$LOAD_BIN"; do
  [ -x "$b" ] || { echo "recovery: $b is missing (cargo build --release -p wsgate -p wsgate-load)" >&2; exit 2; }
done
if [ "${RECOVERY_SHORT:-0}" = 1 ]; then
  CONNS="${CONNS:-200}" RATE="${RATE:-100}"
else
  CONNS="${CONNS:-1000}" RATE="${RATE:-200}"
fi
AWAY_MS="${AWAY_MS:-2000}" RECONNECT_MS="${RECONNECT_MS:-1000}"
MODES="${MODES:-clients node}"
NET_TAG="wsr$(($$ % 100000))"
NET_MODE=direct
trap 'cluster_down 2>/dev/null || true' EXIT
redis_start
backend_start

failed=0
for mode in $MODES; do
  prefix="rec${NET_TAG}${mode}"
  nodes_config 2 "$prefix"
  for k in 1 2; do
    cat >>"$WORK/node-$k.yaml" <<EOF
groups:
  history:
    groups: [{ pattern: "*", max_messages: 20000, max_age: 10m }]
    replay_max_messages: 20000
EOF
  done
  node_start 1
  node_start 2
  # shellcheck disable=SC2046
  if ! "$LOAD_BIN" recovery $(node_urls) --pid "$(node_pid 1)" --pid "$(node_pid 2)" \
    --redis "$REDIS_LOCAL" --conns "$CONNS" --groups 10 --post-rate "$RATE" --drop "$mode" \
    --away-ms "$AWAY_MS" --reconnect-ms "$RECONNECT_MS" --group-prefix "${prefix}-" \
    --out "$WORK/$mode.json" --fail-on-loss >"$WORK/$mode.out" 2>"$WORK/$mode.err"; then
    failed=1
  fi
  node_term 1
  node_term 2
done

py=0
# shellcheck disable=SC2086
python3 - "$WORK" $MODES <<'PY' || py=1
import json, os, sys
w, modes = sys.argv[1], sys.argv[2:]
rows, out = [], {}
for m in modes:
    p = f"{w}/{m}.json"
    if not os.path.exists(p):
        out[m] = {"passed": False, "reasons": ["no report (see the .err file)"]}
        continue
    r = json.load(open(p))
    s = r["summary"]
    out[m] = {"passed": r["verdict"]["passed"], "reasons": r["verdict"]["reasons"],
              "summary": s, "clients": r["clients"], "not_recovered": r["not_recovered"]}
    rows.append(f"| {m} | {int(s['clients'])} | {int(s['recovered'])} | "
                f"{s['recovered_p50_ms']:.0f} / {s['recovered_p99_ms']:.0f} / {s['recovered_max_ms']:.0f} ms | "
                f"{s['caught_up_p50_ms']:.0f} / {s['caught_up_p99_ms']:.0f} ms | {int(s['replayed'])} | "
                f"{s.get('redis_commands_per_client', 0):.1f} ({s.get('redis_gross_commands_per_client', 0):.1f}) | "
                f"{s.get('redis_cpu_us_per_client', 0):.0f} µs | "
                f"{int(s['missing'])} / {int(s['duplicates'])} / {int(s['out_of_order'])} | "
                f"{'pass' if r['verdict']['passed'] else 'FAIL'} |")
json.dump(out, open(f"{w}/summary.json", "w"), indent=1)
print("| drop | clients | recovered | recovered p50 / p99 / max | caught up p50 / p99 | replayed | Redis cmds / client over posts (all) | Redis CPU / client | missing / dup / out of order | verdict |")
print("|---|---|---|---|---|---|---|---|---|---|")
print("\n".join(rows))
sys.exit(0 if all(v["passed"] for v in out.values()) else 1)
PY
exit $((failed | py))
