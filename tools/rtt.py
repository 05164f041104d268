"""Round trip of one supervisor command to a peer's client: inproc, tcp in one process, tcp to a worker process.

    python tools/rtt.py [--count 3000]

Each round trip is ``Network.tables()`` on a one-peer network (one ClientPeers request and its reply). The three
figures come from the same run, so compare them with each other rather than with other machines or runs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from p2pzmq import worker  # noqa: E402
from p2pzmq.config import Config  # noqa: E402
from p2pzmq.network import Network  # noqa: E402


def round_trips(net: Network, count: int) -> float:
    """Mean seconds per round trip over ``count`` (after a warm-up that opens the connection)."""
    for _ in range(50):
        net.tables()
    started = time.perf_counter()
    for _ in range(count):
        net.tables()
    return (time.perf_counter() - started) / count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args(argv)
    results = {}
    for label, transport in (("inproc, one process", "inproc"), ("tcp, one process", "tcp")):
        with Network(Config(seed=1, transport=transport)) as net:
            net.create(1)
            results[label] = round_trips(net, args.count)
    config = Config(seed=1, transport="tcp")
    launched = worker.launch(["127.0.0.1"], config)
    try:
        with Network(config) as net:
            net.attach(launched.endpoints[0], 1)
            results["tcp, supervisor to a worker process"] = round_trips(net, args.count)
    finally:
        launched.reap(config.shutdown_timeout)
    base = results["inproc, one process"]
    for label, seconds in results.items():
        print(f"{label:40s} {seconds * 1e6:8.1f} us per round trip  "
              f"({1 / seconds:8.0f}/s, {seconds / base:.2f}x inproc)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
