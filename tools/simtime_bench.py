"""What simulated time costs a sequential build, as ratios measured in one run (docs/DESIGN.md §12, BENCHMARKS.md).

Each round builds N peers one join at a time (seed 1), each build in a fresh process, in the order: no model, the
virtual clock with ``--latency MODEL``, and, with ``--baseline DIR`` (a checkout of an earlier version, e.g. the
commit before simulated time), that version's build without a model. It prints every build's CPU seconds of
``create``, its requests and simulated seconds, then the ratios of the best (least CPU) build of each kind:
virtual / none (the goal: at most 1.3) and none / baseline (the goal: within 3 %).

    python tools/simtime_bench.py                       # 1,000 peers, 50 ms, 3 rounds
    python tools/simtime_bench.py -n 200 --rounds 1 --baseline /path/to/old/checkout
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

_BUILD = """
import json, sys, time
from p2pzmq.config import Config
from p2pzmq.network import Network
n, latency = int(sys.argv[1]), sys.argv[2]
options = {} if latency == "none" else {"latency": latency, "network_clock": "virtual"}
with Network(Config(seed=1, join_concurrency=1, **options)) as network:
    before = network.counters["requests"]
    cpu = time.process_time()
    network.create(n)
    cpu = time.process_time() - cpu
    now = network.ping().get("now")
    print(json.dumps({"cpu": cpu, "requests": network.counters["requests"] - before, "now": now}))
"""


def build(n: int, latency: str, source: str | None) -> dict:
    """One build in a fresh process; ``source``: the checkout to import p2pzmq from (None: the installed one)."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.path.abspath(source)
    done = subprocess.run([sys.executable, "-c", _BUILD, str(n), latency], env=env, capture_output=True, text=True,
                          timeout=3600, check=True, cwd=source or None)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--latency", default="constant:50ms")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", metavar="DIR", help="a checkout of an earlier version to compare none with")
    args = parser.parse_args(argv)
    kinds = {"none": ("none", None), "virtual": (args.latency, None)}
    if args.baseline:
        kinds["baseline"] = ("none", args.baseline)
    best: dict[str, dict] = {}
    for number in range(1, args.rounds + 1):
        for kind, (latency, source) in kinds.items():
            result = build(args.n, latency, source)
            print(f"round {number} {kind:8} cpu {result['cpu']:.3f} s, {result['requests']} requests, "
                  f"simulated {result['now']} s", flush=True)
            if kind not in best or result["cpu"] < best[kind]["cpu"]:
                best[kind] = result
    print(f"N = {args.n}, best of {args.rounds}: virtual ({args.latency}) / none = "
          f"{best['virtual']['cpu'] / best['none']['cpu']:.3f}x CPU")
    if "baseline" in best:
        print(f"none / baseline = {best['none']['cpu'] / best['baseline']['cpu']:.3f}x CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
