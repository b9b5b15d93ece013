#!/usr/bin/env python3
"""Summarises a benchmarks.sh output directory: the median of each figure over the runs, the
ratio to the baseline of the same invocation (median of the per-run ratios), and each target
of BENCHMARKS.md as met or missed. Usage: bench_summary.py OUT_DIR"""

import glob
import json
import os
import re
import statistics
import sys

out = sys.argv[1]


def reports(prefix):
    """The JSON reports of runs `prefix-1`, `prefix-2`, ... in run order."""
    found = []
    for path in glob.glob(os.path.join(out, f"{prefix}-*.json")):
        m = re.fullmatch(re.escape(prefix) + r"-(\d+)\.json", os.path.basename(path))
        if m:
            found.append((int(m.group(1)), json.load(open(path))))
    return [r for _, r in sorted(found, key=lambda x: x[0])]


def target(report, name):
    return next(t for t in report["targets"] if t["name"] == name)


def values(runs, name, metric):
    return [target(r, name)["summary"].get(metric, float("nan")) for r in runs]


def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def fmt(x):
    if x != x:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def row(label, runs, metric, base="raw", other="wsgate", per_run=True):
    b = values(runs, base, metric)
    o = values(runs, other, metric)
    ratios = [y / x for x, y in zip(b, o) if x and x == x and y == y]
    runs_txt = " / ".join(fmt(v) for v in o)
    print(
        f"| {label} | {fmt(med(b))} | {fmt(med(o))} | {fmt(med(ratios))}x |"
        + (f" {runs_txt} |" if per_run else "")
    )
    return med(ratios)


verdicts = []


def verdict(name, ok, detail):
    verdicts.append(f"| {name} | {'met' if ok else 'missed'} | {detail} |")


print(f"Medians over the runs in `{out}`; ratio = median of the per-run wsgate/baseline ratios.\n")

runs = reports("idle-10k")
if runs:
    print("### idle, 10k connections (raw without registry, wsgate-bare)\n")
    print("| metric | raw | wsgate | ratio | wsgate per run |\n|---|---|---|---|---|")
    r = row("server RSS KiB/conn", runs, "server_rss_kib_per_conn")
    row("connects/s", runs, "connects_per_sec")
    row("handshake p99 ms", runs, "handshake_p99_ms")
    verdict("idle 10k: RSS/conn <= 1.5x raw", r <= 1.5, f"{fmt(r)}x")
    print()

runs = reports("idle-50k")
if runs:
    print("### idle, 50k connections (3 raw and 3 wsgate processes)\n")
    print("| metric | raw | wsgate | ratio | wsgate per run |\n|---|---|---|---|---|")
    r = row("server RSS KiB/conn", runs, "server_rss_kib_per_conn")
    row("connects/s", runs, "connects_per_sec")
    row("handshake p99 ms", runs, "handshake_p99_ms")
    verdict("idle 50k: RSS/conn <= 1.5x raw", r <= 1.5, f"{fmt(r)}x")
    print()

runs = reports("push-peak")
if runs:
    print("### push, peak (1000 connections, 32 posters, closed loop)\n")
    print("| metric | raw | wsgate | ratio | wsgate per run |\n|---|---|---|---|---|")
    r = row("deliveries/s", runs, "deliveries_per_sec")
    row("delivery p50 ms", runs, "delivery_p50_ms")
    row("delivery p99 ms", runs, "delivery_p99_ms")
    row("server CPU µs/push", runs, "server_cpu_us_per_push")
    row("server RSS KiB/conn (ready)", runs, "server_rss_kib_per_conn")
    verdict("push: deliveries/s >= 0.7x raw", r >= 0.7, f"{fmt(r)}x")
    print()

runs = reports("push-half")
if runs:
    rate = runs[0]["plan"]["rate"]
    print(f"### push at half of wsgate's peak ({fmt(rate)} posts/s, open loop)\n")
    print("| metric | raw | wsgate | ratio | wsgate per run |\n|---|---|---|---|---|")
    row("deliveries/s", runs, "deliveries_per_sec")
    row("delivery p50 ms", runs, "delivery_p50_ms")
    row("delivery p99 ms", runs, "delivery_p99_ms")
    row("delivery p99.9 ms", runs, "delivery_p999_ms")
    row("server CPU µs/push", runs, "server_cpu_us_per_push")
    p99 = med(values(runs, "wsgate", "delivery_p99_ms"))
    verdict("push: p99 < 5 ms at half of peak", p99 < 5, f"{fmt(p99)} ms")
    print()

backend_rates, backend_cpu = [], []
for path in sorted(glob.glob(os.path.join(out, "backend-*.txt"))):
    text = open(path).read()
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    c = re.search(r"backend_cpu_ticks (\d+) hz (\d+)", text)
    n = re.search(r"(\d+) requests in", text)
    if m:
        backend_rates.append(float(m.group(1)))
    if c and n:
        backend_cpu.append(int(c.group(1)) / int(c.group(2)) * 1e6 / int(n.group(1)))

runs = reports("upstream")
if runs:
    print("### upstream (100 connections, `echo` two-way aws_proxy route, closed loop)\n")
    print("| metric | raw | wsgate | ratio | wsgate per run |\n|---|---|---|---|---|")
    row("messages/s", runs, "msgs_per_sec")
    row("round trip p50 ms", runs, "rtt_p50_ms")
    row("round trip p99 ms", runs, "rtt_p99_ms")
    row("server CPU µs/message", runs, "server_cpu_us_per_msg")
    print()
    raw_echo = med(values(runs, "raw", "msgs_per_sec"))
    ws = med(values(runs, "wsgate", "msgs_per_sec"))
    if backend_rates:
        cap = med(backend_rates)
        print(
            f"Backend's own HTTP capacity (wrk, 100 connections): {fmt(cap)} requests/s "
            f"(runs: {' / '.join(fmt(x) for x in backend_rates)}), "
            f"{fmt(med(backend_cpu))} µs of backend CPU per request.\n"
        )
        lower = min(raw_echo, cap)
        verdict(
            "upstream: >= 0.8x min(raw echo, backend capacity)",
            ws >= 0.8 * lower,
            f"{fmt(ws)} msg/s = {fmt(ws / lower)}x of {fmt(lower)}",
        )

runs = reports("ready")
if runs:
    n = runs[0]["plan"]["conns"]
    print(f"### ready, {n:,} connections: memory idle and after one message and one push each "
          "(raw with registry, wsgate-bare)\n")
    print("| metric | raw | wsgate | ratio | wsgate per run |\n|---|---|---|---|---|")
    row("server RSS KiB/conn, idle", runs, "rss_idle_kib_per_conn")
    row("server RSS KiB/conn, ready", runs, "rss_ready_kib_per_conn")
    row("ready ÷ idle", runs, "ready_over_idle")
    print()

for prefix, title in [("storm", "with `$connect` and `$disconnect` (wsgate-bench)"),
                      ("storm-bare", "without integrations (wsgate-bare)")]:
    runs = reports(prefix)
    if runs:
        print(f"### connect-storm, {title}, 64 loops\n")
        print("| metric | raw | wsgate | ratio | wsgate per run |\n|---|---|---|---|---|")
        r = row("connects/s", runs, "connects_per_sec")
        row("handshake p99 ms", runs, "handshake_p99_ms")
        row("server CPU µs/connect", runs, "server_cpu_us_per_connect")
        verdict(f"connect-storm {prefix}: >= 0.5x raw", r >= 0.5, f"{fmt(r)}x")
        print()

runs = reports("cross")
if runs:
    print("### cross-node push (1000 connections on node A, 32 posters through node B)\n")
    print("| metric | same node | cross node | ratio | cross per run |\n|---|---|---|---|---|")
    r = row("deliveries/s", runs, "deliveries_per_sec", base="wsgate-same-node")
    row("delivery p50 ms", runs, "delivery_p50_ms", base="wsgate-same-node")
    row("delivery p99 ms", runs, "delivery_p99_ms", base="wsgate-same-node")
    row("gateway CPU µs/push (both nodes)", runs, "server_cpu_us_per_push", base="wsgate-same-node")
    redis = []
    for i, rep in enumerate(runs, 1):
        path = os.path.join(out, f"cross-{i}.redis")
        if os.path.exists(path):
            m = re.search(r"redis_cpu_ticks (\d+) hz (\d+)", open(path).read())
            posts = sum(t["counters"].get("posts_ok", 0) for t in rep["targets"])
            if m and posts:
                redis.append(int(m.group(1)) / int(m.group(2)) * 1e6 / posts)
    if redis:
        print(f"\nRedis CPU over each whole invocation ÷ posts of both targets: "
              f"{' / '.join(fmt(x) for x in redis)} µs/post.")
    verdict("cross-node push >= 0.5x same-node", r >= 0.5, f"{fmt(r)}x")
    print()

print("### targets\n")
print("| target | verdict | figure |\n|---|---|---|")
print("\n".join(verdicts))
