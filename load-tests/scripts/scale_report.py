#!/usr/bin/env python3
"""The figures of one scale.sh run, as JSON on stdout.

Reads WORK/samples.jsonl (one line per sample: the phase, Redis INFO, the nodes' RSS, the
kernel's Slab and TCP figures, the backend's counts), WORK/commandstats-rest-{start,end}.txt,
WORK/faults.json (the push phase's wsgate-load report), WORK/backend.json and
WORK/redis-left.txt, and the times scale.sh passes.

Per connection figures divide a difference against the sample taken before the first
connection (`before`) by the connections open at the sample (`rest-end`). Kernel memory is the
growth of `Slab` (socket, inode, dentry and file objects of both ends of every socket: the load
tool's sockets are on this machine too) and of the TCP buffer pages (`/proc/net/sockstat` mem).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from faults_judge import phase  # noqa: E402


def commandstats(path):
    out = {}
    for line in open(path).read().splitlines():
        if not line.startswith("cmdstat_"):
            continue
        name, rest = line[len("cmdstat_"):].split(":", 1)
        kv = dict(p.split("=") for p in rest.split(","))
        out[name] = (int(kv["calls"]), int(kv["usec"]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    for k in ("nodes", "conns", "opened", "push-conns", "t-open", "t-opened", "t-kill",
              "t-first-reap", "t-reaped", "victim-conns", "gone", "not-gone", "t-closed",
              "t-settled"):
        ap.add_argument(f"--{k}", type=int, required=True)
    a = ap.parse_args()
    w = a.work
    samples = [json.loads(l) for l in open(f"{w}/samples.jsonl") if l.strip()]
    by = {s["phase"]: s for s in samples}
    before, open_start, rest_start, rest_end = by["before"], by["open-start"], by["rest-start"], by["rest-end"]
    n = max(1, rest_end["backend"].get("connected_ids", a.opened))

    open_s = (a.t_opened - a.t_open) / 1000.0
    rest_s = (rest_end["t_ms"] - rest_start["t_ms"]) / 1000.0
    rss = [v for v in rest_end["node_rss_kib"] if v is not None]
    rss0 = [v for v in before["node_rss_kib"] if v is not None]
    per_node = [(x - y) / (n / len(rss)) for x, y in zip(rss, rss0)]

    cs0 = commandstats(f"{w}/commandstats-rest-start.txt")
    cs1 = commandstats(f"{w}/commandstats-rest-end.txt")
    rest_cmds = {}
    for name, (calls, usec) in cs1.items():
        c0, u0 = cs0.get(name, (0, 0))
        if calls - c0 > 0:
            rest_cmds[name] = {
                "per_s": round((calls - c0) / rest_s, 1),
                "cpu_us_per_s": round((usec - u0) / rest_s, 1),
            }
    rest_cmds = dict(sorted(rest_cmds.items(), key=lambda kv: -kv[1]["per_s"]))

    out = {
        "nodes": a.nodes,
        "conns": a.conns,
        "open": {
            "opened": a.opened,
            "seconds": round(open_s, 1),
            "connects_per_s": round(a.opened / open_s, 1) if open_s else None,
            "redis_commands_per_connect": round(
                (rest_start["redis_commands"] - open_start["redis_commands"]) / max(1, a.opened), 2),
            "redis_ops_per_s": round(
                (rest_start["redis_commands"] - open_start["redis_commands"]) / open_s, 1) if open_s else None,
            "redis_cpu_share": round(
                (rest_start["redis_cpu_s"] - open_start["redis_cpu_s"]) / open_s, 3) if open_s else None,
        },
        "rest": {
            "seconds": round(rest_s, 1),
            "connections": n,
            "redis_ops_per_s": round((rest_end["redis_commands"] - rest_start["redis_commands"]) / rest_s, 1),
            "redis_cpu_share": round((rest_end["redis_cpu_s"] - rest_start["redis_cpu_s"]) / rest_s, 4),
            "redis_commands": rest_cmds,
            "redis_used_memory_bytes": rest_end["redis_used_memory"],
            "redis_bytes_per_connection": round(
                (rest_end["redis_used_memory"] - before["redis_used_memory"]) / n, 1),
            "redis_keys": rest_end["redis_keys"],
            "node_rss_total_mib": round(sum(rss) / 1024, 1),
            "node_rss_kib_per_connection": round((sum(rss) - sum(rss0)) / n, 2),
            "node_rss_kib_per_connection_min_max": [round(min(per_node), 2), round(max(per_node), 2)] if per_node else None,
            "kernel_slab_kib_per_connection": round((rest_end["slab_kib"] - before["slab_kib"]) / n, 2),
            "tcp_buffer_pages": rest_end["tcp"].get("mem"),
            "tcp_inuse": rest_end["tcp"].get("inuse"),
            "machine_memory_used_mib": round((before["mem_available_kib"] - rest_end["mem_available_kib"]) / 1024, 1),
        },
    }

    try:
        load = json.load(open(f"{w}/faults.json"))
        sample_ms = int(load["plan"]["sample_s"] * 1000)
        pushes = load["pushes"]
        out["push"] = {
            "posts_acked": load["push_answers"].get("ok", 0),
            "post_answers": load["push_answers"],
            "acked_and_delivered": pushes["acked_and_delivered"],
            "acked_but_lost": pushes["acked_but_lost"],
            "duplicates": pushes["duplicates"],
            "before_kill": phase(load["timeline"], sample_ms, 0, a.t_kill),
            "after_kill": phase(load["timeline"], sample_ms, a.t_kill, load["window_end_unix_ms"]),
            "errors": load["errors"],
        }
    except (OSError, KeyError, ValueError) as e:
        out["push"] = {"error": f"no push report: {e}"}

    # Fan-out: what the held clients counted and timed (idle.json).
    try:
        t = json.load(open(f"{w}/idle.json"))["targets"][0]
        summ, cnt = t["summary"], t["counters"]
        out["open"]["connects_per_s_load_tool"] = round(summ.get("connects_per_sec", 0), 1)
        out["open"]["handshake_p50_p99_ms"] = [summ.get("handshake_p50_ms"), summ.get("handshake_p99_ms")]
        out["open"]["connect_errors"] = summ.get("connect_errors")
        out["open"]["closed_while_opening"] = cnt.get("closed_while_opening")
        out["open"]["dropped_while_held"] = cnt.get("dropped_while_held")
        fan = {
            "group_deliveries": cnt.get("group_deliveries", 0),
            "group_delivery_p50_p99_ms": [summ.get("group_delivery_p50_ms"), summ.get("group_delivery_p99_ms")],
            "group_last_member_ms": summ.get("group_delivery_max_ms"),
            "broadcast_deliveries": cnt.get("broadcast_deliveries", 0),
            "broadcast_delivery_p50_p99_ms": [summ.get("broadcast_delivery_p50_ms"), summ.get("broadcast_delivery_p99_ms")],
            "broadcast_last_member_ms": summ.get("broadcast_delivery_max_ms"),
            "post_answers": open(f"{w}/fanout-answers.txt").read().split(),
        }
        for k in ("group", "broadcast"):
            last = fan[f"{k}_last_member_ms"]
            fan[f"{k}_deliveries_per_s"] = round(fan[f"{k}_deliveries"] / (last / 1000.0), 1) if last else None
        out["fanout"] = fan
    except (OSError, KeyError, ValueError, IndexError) as e:
        out["fanout"] = {"error": f"no idle report: {e}"}

    # Redis memory by key kind, from MEMORY USAGE of a sample of records.
    rows = [l.split() for l in open(f"{w}/memory-usage.txt").read().splitlines() if l.strip()]
    rows = [r for r in rows if len(r) == 3 and r[0].isdigit()]
    groups = [l.split() for l in open(f"{w}/memory-usage-groups.txt").read().splitlines() if l.strip()]
    groups = [g for g in groups if len(g) == 3 and g[1].isdigit() and g[2].isdigit()]
    out["rest"]["redis_memory_usage_sample"] = {
        "records_sampled": len(rows),
        "conn_record_bytes": round(sum(int(r[0]) for r in rows) / len(rows), 1) if rows else None,
        "joined_set_bytes": round(sum(int(r[1]) for r in rows if r[1].isdigit()) / len(rows), 1) if rows else None,
        "group_member_bytes": round(sum(int(g[2]) for g in groups) / max(1, sum(int(g[1]) for g in groups)), 1)
        if groups else None,
    }

    # Redis commands per push: the push phase before the kill, less the cluster's rest rate and
    # the push clients' own connects (commands per connect as measured while opening).
    try:
        ps, ks = by["push-start"], by["kill-start"]
        dt = (ks["t_ms"] - ps["t_ms"]) / 1000.0
        acked = out["push"]["before_kill"]["push_ok_per_s"] * dt
        cmds = (ks["redis_commands"] - ps["redis_commands"]
                - out["rest"]["redis_ops_per_s"] * dt
                - a.push_conns * out["open"]["redis_commands_per_connect"])
        out["push"]["redis_commands_per_push"] = round(max(0.0, cmds) / acked, 2) if acked else None
        out["push"]["redis_cpu_share"] = round((ks["redis_cpu_s"] - ps["redis_cpu_s"]) / dt, 3)
    except (KeyError, TypeError, ZeroDivisionError):
        pass

    reaped = a.t_reaped > 0
    out["kill"] = {
        "victim_connections": a.victim_conns,
        "all_disconnected_s": round((a.t_reaped - a.t_kill) / 1000.0, 1) if reaped else None,
        "first_disconnect_s": round((a.t_first_reap - a.t_kill) / 1000.0, 1) if a.t_first_reap else None,
        "reap_per_s": round(a.victim_conns / ((a.t_reaped - a.t_first_reap) / 1000.0), 1)
        if reaped and a.t_reaped > a.t_first_reap else None,
        "posts_to_dead_ids_410": a.gone,
        "posts_to_dead_ids_other": a.not_gone,
    }

    backend = json.load(open(f"{w}/backend.json"))
    left = {k: int(v) for k, v in (kv.split("=") for kv in open(f"{w}/redis-left.txt").read().split())}
    balanced = (
        backend.get("connect_events") == backend.get("disconnect_events")
        and backend.get("connected_ids", 1) == 0
        and backend.get("unmatched_disconnects", 1) == 0
        and backend.get("duplicate_connects", 1) == 0
    )
    out["end"] = {
        "close_and_settle_s": round((a.t_settled - a.t_closed) / 1000.0, 1),
        "connect_events": backend.get("connect_events"),
        "disconnect_events": backend.get("disconnect_events"),
        "balanced": balanced,
        "redis_left": sum(left.values()),
    }
    push = out["push"]
    out["passed"] = bool(
        a.opened >= a.conns
        and push.get("acked_but_lost", 1) == 0
        and push.get("duplicates", 1) == 0
        and reaped
        and a.not_gone == 0
        and balanced
        and out["end"]["redis_left"] == 0
        and out["fanout"].get("group_deliveries") == a.conns
        and out["fanout"].get("broadcast_deliveries") == a.conns
    )
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
