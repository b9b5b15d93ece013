#!/usr/bin/env python3
"""Judges the runs of faults.sh.

result:  one scenario's figures (from the wsgate-load report, the backend's counters and the
         records left in Redis) and its verdict, as JSON on stdout.
summary: the results as one JSON list (a scenario that could not run here is a row with
         `skipped`, the reason, and is listed as skipped in the table).
table:   the summary as a Markdown table (docs/reliability.md).

Before and during the fault (`before_fault`, `during_fault`): posts answered 2xx a second, failed
posts, and the median over the timeline's intervals of each interval's push and echo p50/p99
(intervals without an answer have no percentile and are left out), so a fault that only slows
the cluster (loss, a slow link) shows although nothing fails; and, in namespaces, each link's
kilobytes a second both ways (`links`, from links.log).

Time to recover: from the end of the fault (for a kill, the kill) to the start of the first
timeline interval from which every interval of the window is clean (no failed post, no failed
or lost connection, no error frame, every client connected). None when that never happened.
"""
import argparse
import json
import sys


def clean(row, conns):
    return (
        row["push_err"] == 0
        and row["conn_errs"] == 0
        and row["error_frames"] == 0
        and row["open"] == conns
    )


def recover_s(timeline, window_end_ms, t_fault, t_heal, conns, sample_ms):
    # The last row is taken after the clients closed.
    rows = [r for r in timeline[:-1] if r["t_ms"] <= window_end_ms + sample_ms]
    # Rows whose interval started after the fault.
    after = [r for r in rows if r["t_ms"] - sample_ms >= t_fault]
    start = None
    for r in after:
        if clean(r, conns):
            if start is None:
                start = r["t_ms"] - sample_ms
        else:
            start = None
    if start is None:
        return None
    # A fault no client noticed recovers at once.
    return round(max(0, start - t_heal) / 1000.0, 1)


def median(xs):
    xs = sorted(xs)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def phase(timeline, sample_ms, t0, t1):
    """Figures of the timeline intervals lying wholly in [t0, t1] (unix ms)."""
    rows = [r for r in timeline[:-1] if r["t_ms"] - sample_ms >= t0 and r["t_ms"] <= t1]
    if not rows:
        return None
    secs = len(rows) * sample_ms / 1000.0

    def ms(key, count):
        # Intervals without any such answer have no percentile (0 in the timeline).
        v = median([r[key] for r in rows if key in r and r[count] > 0])
        return None if v is None else round(v / 1000.0, 1)

    return {
        "s": round(secs, 1),
        "push_ok_per_s": round(sum(r["push_ok"] for r in rows) / secs, 1),
        "push_err": sum(r["push_err"] for r in rows),
        "replies_per_s": round(sum(r["replies"] for r in rows) / secs, 1),
        "push_p50_ms": ms("push_p50_us", "push_ok"),
        "push_p99_ms": ms("push_p99_us", "push_ok"),
        "echo_p99_ms": ms("echo_p99_us", "replies"),
    }


def links(path):
    """Kilobytes a second per link before, during and after the fault, from links.log."""
    marks = {}
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) < 5 or "=" not in parts[3]:
            continue
        label, t, name = parts[0], int(parts[1]), parts[2]
        kv = dict(p.split("=", 1) for p in parts[3:7])
        marks.setdefault(name, {})[label] = (t, int(kv["to_host_bytes"]), int(kv["from_host_bytes"]))
    out = {}
    for name, m in marks.items():
        # "heal" is marked just before a link fault is removed, "healed" once it is.
        spans = {
            "before": ("start", "fault"),
            "during": ("fault", "heal" if "heal" in m else "healed"),
            "after": ("healed", "end"),
        }
        for key, (a, b) in spans.items():
            if a in m and b in m and m[b][0] > m[a][0]:
                dt = (m[b][0] - m[a][0]) / 1000.0
                out.setdefault(name, {})[key] = {
                    "to_host_kB_per_s": round((m[b][1] - m[a][1]) / dt / 1000.0, 1),
                    "from_host_kB_per_s": round((m[b][2] - m[a][2]) / dt / 1000.0, 1),
                }
    return out


def result(a):
    load = json.load(open(a.load))
    backend = json.load(open(a.backend))
    left = dict(kv.split("=") for kv in open(a.redis_left).read().split())
    left = {k: int(v) for k, v in left.items()}
    pushes = load["pushes"]
    up = load["upstream"]
    sample_ms = int(load["plan"]["sample_s"] * 1000)
    connects = backend.get("connect_events", 0)
    disconnects = backend.get("disconnect_events", 0)
    balanced = (
        connects == disconnects
        and backend.get("connected_ids", 1) == 0
        and backend.get("unmatched_disconnects", 1) == 0
        and backend.get("duplicate_connects", 1) == 0
    )
    out = {
        "scenario": a.scenario,
        "net_mode": a.net,
        "conns": a.conns,
        "posts_acked": load["push_answers"].get("ok", 0),
        "post_answers": load["push_answers"],
        "acked_and_delivered": pushes["acked_and_delivered"],
        "acked_but_lost": pushes["acked_but_lost"],
        "lost_on_dropped_conn": pushes["lost_on_dropped_conn"],
        "lost_on_live_conn": pushes["lost_on_live_conn"],
        "delivered_without_ack": pushes["delivered_without_ack"],
        "duplicates": pushes["duplicates"],
        "upstream_sent": up["sent"],
        "upstream_replied": up["acked_and_delivered"] + up["delivered_without_ack"],
        "upstream_unanswered_live": up["lost_on_live_conn"],
        "upstream_unanswered_dropped": up["lost_on_dropped_conn"],
        "upstream_duplicates": up["duplicates"],
        # Messages answered by an error frame (matched by count: error frames carry no seq).
        "upstream_error_frames": sum(v for k, v in load["errors"].items() if k.startswith("frame_")),
        "errors": load["errors"],
        "connections": load["connections"],
        "recover_s": recover_s(
            load["timeline"], load["window_end_unix_ms"], a.t_fault, a.t_heal, a.conns, sample_ms
        ),
        "fault_s": round((a.t_heal - a.t_fault) / 1000.0, 1),
        "before_fault": phase(load["timeline"], sample_ms, 0, a.t_fault),
        "during_fault": phase(load["timeline"], sample_ms, a.t_fault, a.t_heal),
        "links": links(a.links) if a.links else None,
        "settle_s": round((a.t_settled - load["window_end_unix_ms"]) / 1000.0, 1),
        "connect_events": connects,
        "disconnect_events": disconnects,
        "connected_ids_left": backend.get("connected_ids"),
        "unmatched_disconnects": backend.get("unmatched_disconnects"),
        "duplicate_connects": backend.get("duplicate_connects"),
        "backend_resets": backend.get("resets", 0),
        "balanced": balanced,
        "redis_left": sum(left.values()),
        "redis_left_by_kind": left,
        "push_p99_ms": round(load["push_latency"]["p99_us"] / 1000.0, 1),
        "echo_p99_ms": round(load["echo_latency"]["p99_us"] / 1000.0, 1),
    }
    out["upstream_silent"] = max(0, out["upstream_unanswered_live"] - out["upstream_error_frames"])
    out["passed"] = (
        out["acked_but_lost"] == 0 and out["duplicates"] == 0 and out["balanced"]
    )
    json.dump(out, sys.stdout, indent=1)
    print()


def table(path):
    rows = json.load(open(path))
    print(
        "| scenario | posts 200 | delivered | acked but lost (dropped conn) | delivered w/o ack | dup "
        "| upstream sent / replied / error frame / silent | client-visible errors | recover s | $connect / $disconnect "
        "| Redis left | pass |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r.get("skipped"):
            print(f"| {r['scenario']} | skipped: {r['skipped']} |" + " |" * 9 + " skipped |")
            continue
        errs = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items(), key=lambda kv: -kv[1])[:4])
        rec = "–" if r["recover_s"] is None else r["recover_s"]
        print(
            f"| {r['scenario']} | {r['posts_acked']} | {r['acked_and_delivered']} "
            f"| {r['acked_but_lost']} ({r['lost_on_dropped_conn']}) | {r['delivered_without_ack']} "
            f"| {r['duplicates']} | {r['upstream_sent']} / {r['upstream_replied']} / {r['upstream_error_frames']} "
            f"/ {r['upstream_silent']} | {errs or 'none'} "
            f"| {rec} | {r['connect_events']} / {r['disconnect_events']}"
            f"{'' if r['balanced'] else ' (unbalanced)'} | {r['redis_left']} "
            f"| {'yes' if r['passed'] else 'NO'} |"
        )


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("result")
    r.add_argument("--scenario", required=True)
    r.add_argument("--net", required=True)
    r.add_argument("--conns", type=int, required=True)
    r.add_argument("--load", required=True)
    r.add_argument("--backend", required=True)
    r.add_argument("--redis-left", required=True)
    r.add_argument("--t-fault", type=int, required=True)
    r.add_argument("--t-heal", type=int, required=True)
    r.add_argument("--t-settled", type=int, required=True)
    r.add_argument("--links", help="links.log of faults.sh (network namespaces only)")
    s = sub.add_parser("summary")
    s.add_argument("files", nargs="+")
    t = sub.add_parser("table")
    t.add_argument("file")
    a = p.parse_args()
    if a.cmd == "result":
        result(a)
    elif a.cmd == "summary":
        rows = [json.load(open(f)) for f in a.files]
        for r in rows:
            if r.get("skipped"):
                continue
            if "upstream_error_frames" not in r:  # results written before these fields
                r["upstream_error_frames"] = sum(
                    v for k, v in r["errors"].items() if k.startswith("frame_")
                )
                r["upstream_silent"] = max(
                    0, r["upstream_unanswered_live"] - r["upstream_error_frames"]
                )
        json.dump(rows, sys.stdout, indent=1)
        print()
    else:
        table(a.file)


if __name__ == "__main__":
    main()
