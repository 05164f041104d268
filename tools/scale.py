"""Build a large network over worker processes, refresh it once, and measure it (the 20,000-peer scale run).

    python tools/scale.py -n 20000 --workers 6 --window 32 --sequential 2000 [--json out.json]
    python tools/scale.py -n 2000 --workers 4      # one join at a time: the network equals the oracle's
    python tools/scale.py --quick          # 60 peers over 2 workers, half of them joined in windows: a smoke run
    python tools/scale.py -n 10000 --workers 3 --protocol kademlia --lookup-sample 20

A tcp peer costs about 4.2 fds and a process may hold 20,000, so 20,000 peers need at least 5 workers (6 leave
headroom). It prints, as it goes, the time of each phase, then one line per process (the supervisor and each
worker): peers, peak and current resident memory, open fds, CPU seconds; and how many cores the run used. Status at
this size is sampled: greedy routes between --sample random sources and --sample random targets
(Network.route_sample) instead of all N² routes. With ``--protocol kademlia`` it also runs a sampled net_status
(``--lookup-sample`` targets per peer) for its iterative lookups, computed on every peer's fetched table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from p2pzmq import worker  # noqa: E402
from p2pzmq.config import PROTOCOLS, Config  # noqa: E402
from p2pzmq.network import Network  # noqa: E402

MB = 1 << 20


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _process_row(role: str, pid: int, stats: dict) -> dict:
    """One process's line of figures from its ``stats`` (the supervisor's or a worker's)."""
    return {"role": role, "pid": pid, "peers": stats["peers"] if role == "worker" else 0,
            "rss_mb": round(stats["rss_bytes"] / MB, 1), "peak_rss_mb": round(stats["peak_rss_bytes"] / MB, 1),
            "fds": stats["fds"], "cpu_seconds": stats["cpu_seconds"], "timeouts": stats["timeouts"]}


def lookups(net: Network, args, figures: dict, when: str) -> None:
    """Under kademlia: the iterative lookups of a net_status sampling ``--lookup-sample`` targets per peer."""
    if args.protocol != "kademlia":
        return
    started = time.perf_counter()
    figures[f"lookups_{when}"] = net.net_status(sample=min(args.lookup_sample, len(net.peers)))["lookups"]
    figures[f"lookups_{when}"]["seconds"] = round(time.perf_counter() - started, 1)
    say(f"sampled lookups {when.replace('_', ' ')}: {json.dumps(figures[f'lookups_{when}'])}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample", type=int, default=200, help="sources and targets of the sampled status")
    parser.add_argument("--chunk", type=int, default=1000, help="report progress every CHUNK peers created")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--window", type=int, default=1,
                        help="join and refresh up to WINDOW peers at once (default 1: the original's one at a time, "
                             "the network equals the oracle's; more: faster, a different network of the same kind)")
    parser.add_argument("--sequential", type=int, default=1000,
                        help="with --window: the first peers still join one at a time, so that the later windows "
                             "join a well-connected network (default 1000)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="original")
    parser.add_argument("--lookup-sample", type=int, default=20,
                        help="kademlia: iterative lookups from every peer to this many random targets (default 20)")
    parser.add_argument("--quick", action="store_true", help="60 peers over 2 workers (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.workers, args.sample, args.chunk, args.sequential, args.window = 60, 2, 20, 30, 30, 6
    config = Config(seed=args.seed, transport="tcp", protocol=args.protocol)
    figures = {"n": args.n, "workers": args.workers, "seed": args.seed, "protocol": args.protocol}
    started = time.perf_counter()
    # Each worker gets its own loopback address, as with serve --workers: 20,000 tcp peers on 127.0.0.1 run out of
    # ephemeral ports (32768-60999 here) at about 12,000.
    launched = worker.launch(worker.local_hosts("127.0.0.1", args.workers), config)
    try:
        with Network(config) as net:
            for endpoint in launched.endpoints:
                net.attach(endpoint)
            say(f"{args.workers} workers attached in {time.perf_counter() - started:.1f} s; creating {args.n} peers")
            created = time.perf_counter()
            while len(net.peers) < args.n:
                count = min(args.chunk, args.n - len(net.peers))
                if len(net.peers) < args.sequential:
                    count = min(count, args.sequential - len(net.peers))
                net.create(count, concurrency=args.window if len(net.peers) >= args.sequential else 1)
                elapsed = time.perf_counter() - created
                say(f"{len(net.peers)} peers in {elapsed:.0f} s ({len(net.peers) / elapsed:.1f} joins/s)")
            figures["create_seconds"] = round(time.perf_counter() - created, 1)
            figures["status_after_create"] = net.route_sample(args.sample, args.seed)
            say(f"sampled status after create: {json.dumps(figures['status_after_create'])}")
            lookups(net, args, figures, "after_create")
            refreshed = time.perf_counter()
            net.refresh_peers(concurrency=args.window)
            figures["refresh_seconds"] = round(time.perf_counter() - refreshed, 1)
            say(f"refreshed every peer once in {figures['refresh_seconds']} s")
            sampled = time.perf_counter()
            figures["status_after_refresh"] = net.route_sample(args.sample, args.seed)
            figures["status_seconds"] = round(time.perf_counter() - sampled, 1)
            say(f"sampled status after refresh ({figures['status_seconds']} s): "
                f"{json.dumps(figures['status_after_refresh'])}")
            lookups(net, args, figures, "after_refresh")
            stats = net.stats()
            wall = time.perf_counter() - started
            processes = [_process_row("supervisor", os.getpid(), stats)]
            processes += [_process_row("worker", member["pid"], member) for member in stats["workers"]]
            figures["processes"] = processes
            figures["requests"] = sum(member["requests"] for member in stats["workers"])
            figures["timeouts"] = sum(member["timeouts"] for member in stats["workers"])
            # CPU seconds of every process over the wall time so far: how many of the machine's cores the run used
            figures["cores_used"] = round(sum(process["cpu_seconds"] for process in processes) / wall, 2)
            for process in processes:
                say(f"{process['role']} pid {process['pid']}: {process['peers']} peers, "
                    f"peak {process['peak_rss_mb']:.0f} MB, now {process['rss_mb']:.0f} MB, {process['fds']} fds, "
                    f"{process['cpu_seconds']:.0f} CPU s")
            say(f"cores used: {figures['cores_used']} of {os.cpu_count()} (CPU seconds of all processes / wall)")
            say(f"peer requests {figures['requests']}, timeouts {figures['timeouts']}")
            stopping = time.perf_counter()
    finally:
        launched.reap(config.shutdown_timeout)
    # die, then every worker process gone: exit code 0 is a clean stop, -9 one reap had to kill
    figures["stop_seconds"] = round(time.perf_counter() - stopping, 2)
    figures["worker_exit_codes"] = [process.returncode for process in launched.processes]
    say(f"die: every worker ended within {figures['stop_seconds']} s, exit codes {figures['worker_exit_codes']}")
    figures["total_seconds"] = round(time.perf_counter() - started, 1)
    say(f"done in {figures['total_seconds']} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
