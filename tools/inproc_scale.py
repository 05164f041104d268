"""Build the largest inproc network one process holds, and say what each peer costs in fds and memory.

    python tools/inproc_scale.py -n 18000            # about the most this machine's 20,000 fds allow
    python tools/inproc_scale.py --quick             # 2,000 peers: a smoke run

An idle peer holds one socket (one fd, its mailbox, docs/DESIGN.md §3); a peer that walks has a second one for its
client while it walks. The tool first prints the process's room (``resources.peer_room``), refuses an N beyond it,
then builds N peers joining one at a time (the original's build, equal to the message-free oracle), reporting every
--chunk peers, and ends with the fds, memory and CPU of the process, per peer, and a sampled status.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from p2pzmq.config import Config  # noqa: E402
from p2pzmq.resources import FDS_PER_PEER, open_fds, peer_room, process_usage  # noqa: E402
from p2pzmq.network import Network  # noqa: E402

MB = 1 << 20


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=18000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=2000, help="report progress every CHUNK peers")
    parser.add_argument("--sample", type=int, default=200, help="sources and targets of the sampled status")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="2,000 peers (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.chunk, args.sample = 2000, 500, 50
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    room = peer_room("inproc")
    say(f"fd limit {limit}, {open_fds()} open, room for {room} inproc peers at {FDS_PER_PEER['inproc']} fd each")
    if args.n > room:
        print(f"inproc_scale.py: this process has room for {room} inproc peers, not {args.n}", file=sys.stderr)
        return 2
    figures = {"n": args.n, "seed": args.seed, "fd_limit": limit, "room": room, "date": time.strftime("%Y-%m-%d %H:%M"),
               "load_average": ", ".join(f"{x:.1f}" for x in os.getloadavg())}
    with Network(Config(seed=args.seed)) as net:
        empty = process_usage()
        started, cpu0 = time.perf_counter(), empty["cpu_seconds"]
        while len(net.peers) < args.n:
            net.create(min(args.chunk, args.n - len(net.peers)))
            usage = process_usage()
            say(f"{len(net.peers)} peers in {time.perf_counter() - started:.0f} s, {usage['fds']} fds, "
                f"{usage['rss_bytes'] / MB:.0f} MB")
        built = process_usage()
        figures["create_seconds"] = round(time.perf_counter() - started, 1)
        figures["create_cpu_seconds"] = round(built["cpu_seconds"] - cpu0, 1)
        figures["requests"] = net.stats()["requests"]
        figures["fds"] = built["fds"]
        figures["fds_per_peer"] = round((built["fds"] - empty["fds"]) / args.n, 3)
        figures["kb_per_peer"] = round((built["rss_bytes"] - empty["rss_bytes"]) / 1024 / args.n, 1)
        figures["peak_rss_mb"] = round(built["peak_rss_bytes"] / MB)
        figures["cpu_us_per_request"] = round(figures["create_cpu_seconds"] / max(figures["requests"], 1) * 1e6, 1)
        figures["status"] = net.route_sample(args.sample, args.seed)
    say(f"built {args.n} inproc peers in one process in {figures['create_seconds']} s "
        f"({figures['create_cpu_seconds']} CPU s, {figures['requests']} requests, "
        f"{figures['cpu_us_per_request']} CPU us each)")
    say(f"fds: {figures['fds']} of {limit} ({figures['fds_per_peer']} per peer); "
        f"memory {figures['kb_per_peer']} KB per peer, peak {figures['peak_rss_mb']} MB")
    say(f"sampled status: {json.dumps(figures['status'])}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
