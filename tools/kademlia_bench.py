#!/usr/bin/env python
"""Kademlia beside the original, measured in one run: build, table sizes, greedy routing, iterative lookups, and the
same status after a crash of a fifth of the peers, before any refresh.

Each (protocol, N) builds in a fresh subprocess, inproc, one join at a time (the network then equals the message-free
model's), and reports: build seconds (wall and CPU), protocol requests per join, table sizes, net_status's greedy
connectivity and mean hops, under kademlia its iterative lookups (success, mean rounds and requests), and the time
the status took. net_status is exact (all pairs) while its work fits the status budget (Config.status_exact) and
samples 100 targets per peer beyond, as by default. It prints one Markdown table row per run, and the figures as JSON with ``--json``.

    python tools/kademlia_bench.py -n 100 300 1000 3000 --json figures.json
    python tools/kademlia_bench.py -n 9000 --protocol kademlia       # one process holds at most about 9,600 peers
    python tools/kademlia_bench.py --quick                           # a few seconds, for the test suite
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

HEADER = ("| protocol | N | build s wall / CPU | requests per join | table size mean [min-max] | status s | "
          "greedy reach % | mean hops | lookups found % | mean rounds | requests per lookup | after 20 % crash: "
          "greedy % / lookups % |\n|---|---|---|---|---|---|---|---|---|---|---|---|")


def measure(protocol: str, n: int, seed: int, kill: float) -> dict:
    """Build, status, crash ``kill`` of the peers, status again: the figures of one run (in this process)."""
    from p2pzmq import Network

    wall, cpu = time.perf_counter(), time.process_time()
    with Network(n, seed=seed, protocol=protocol) as net:
        figures = {"protocol": protocol, "n": n, "seed": seed,
                   "build_wall": round(time.perf_counter() - wall, 2), "build_cpu": round(time.process_time() - cpu, 2),
                   # every peer request of the build; the supervisor's Join commands (one per join) aside
                   "requests_per_join": round((net.counters["requests"] - (n - 1)) / max(n - 1, 1), 1)}
        figures["status"] = _status(net)
        net.kill_peers(count=int(n * kill), seed=seed)
        figures["after_kill"] = _status(net)
        figures["timeouts"] = net.counters["timeouts"]
    return figures


def _status(net) -> dict:
    started = time.perf_counter()
    status = net.net_status()
    sizes = [row["tree_size"] for row in status["peers"]]
    summary = {"seconds": round(time.perf_counter() - started, 2), "alive": status["n"],
               "table_mean": round(statistics.fmean(sizes), 1), "table_min": min(sizes), "table_max": max(sizes),
               "greedy": status["hops"]["success_rate"], "mean_hops": status["hops"]["mean"],
               "sample": status.get("sample", 0)}
    if "lookups" in status:
        lookups = status["lookups"]
        summary.update(lookups=lookups["success_rate"], mean_rounds=lookups["rounds"]["mean"],
                       rounds=lookups["rounds"]["histogram"], requests_per_lookup=lookups["requests_mean"])
    return summary


def row(figures: dict) -> str:
    status, after = figures["status"], figures["after_kill"]

    def percent(value) -> str:
        return "-" if value is None else f"{100 * value:.2f}"

    return (f"| {figures['protocol']} | {figures['n']:,} | {figures['build_wall']} / {figures['build_cpu']} | "
            f"{figures['requests_per_join']} | {status['table_mean']} [{status['table_min']}-{status['table_max']}] | "
            f"{status['seconds']} | {percent(status['greedy'])} | {status['mean_hops']} | "
            f"{percent(status.get('lookups'))} | {status.get('mean_rounds', '-')} | "
            f"{status.get('requests_per_lookup', '-')} | {percent(after['greedy'])} / "
            f"{percent(after.get('lookups'))} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--protocol", choices=("original", "kademlia", "both"), default="both")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kill", type=float, default=0.2, help="fraction of the peers crashed (default 0.2)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="N = 30 and 60, both protocols: a smoke run")
    parser.add_argument("--one", nargs=2, metavar=("PROTOCOL", "N"), help=argparse.SUPPRESS)  # a child's run
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.seed, args.kill)), flush=True)
        return 0
    if args.quick:
        args.n, args.protocol = [30, 60], "both"
    protocols = ["original", "kademlia"] if args.protocol == "both" else [args.protocol]
    print(HEADER, flush=True)
    results = []
    for n in args.n:
        for protocol in protocols:
            child = subprocess.run([sys.executable, __file__, "--one", protocol, str(n), "--seed", str(args.seed),
                                    "--kill", str(args.kill)], stdout=subprocess.PIPE, text=True)
            if child.returncode:  # its error is on stderr, which this process shares
                print(f"kademlia_bench.py: the run of {protocol} with {n} peers failed (exit {child.returncode})",
                      file=sys.stderr)
                return 1
            results.append(json.loads(child.stdout))
            print(row(results[-1]), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
