#!/usr/bin/env python
"""What the event stream costs a build when nobody reads it, measured in one process (docs/EVENTS.md).

Builds the same network (seeded, sequential) over and over, alternating three ways: events off (nobody
subscribed), events on with nobody reading (a PUB socket bound on loopback that no one has subscribed to, as
``serve --events`` leaves it), and events on and recorded to a file (``--record``). Each way's best wall and CPU
seconds over the rounds, and their ratios to events off. The goal is judged on CPU seconds (the process's, its
ZeroMQ threads included): a PUB nobody reads within 3 % of off. Wall seconds are shown, but on a machine shared
with other work they vary by far more than 3 % from one build to the next.

    python tools/events_bench.py                 # 1,000 peers, 5 rounds each (about a minute)
    python tools/events_bench.py --quick         # 64 peers, 1 round (seconds, for the test suite)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from p2pzmq.network import Network  # noqa: E402
from p2pzmq.publishing import Publisher, Recorder  # noqa: E402

WAYS = ("off", "pub", "record")
#: The goal: a build whose stream nobody reads is at most this much slower than one with events off.
GOAL = 1.03


def build(n: int, way: str, directory: str) -> tuple[float, float, int]:
    """Wall and CPU seconds of creating ``n`` peers with events ``way``, and how many events were emitted."""
    with Network(seed=1) as net:
        sink = None
        if way == "pub":
            sink = Publisher("tcp://127.0.0.1:0", net.config.events_hwm).attach(net.events)
        elif way == "record":
            sink = Recorder(os.path.join(directory, "events.jsonl")).attach(net.events)
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            net.create(n)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            if sink is not None:
                sink.close()
        return wall, cpu, net.events.emitted


def measure(n: int, rounds: int) -> dict:
    """Best wall and CPU seconds per way over ``rounds`` alternating rounds, and the ratios to ``off``."""
    best = {way: [float("inf"), float("inf"), 0] for way in WAYS}
    with tempfile.TemporaryDirectory() as directory:
        for round_ in range(rounds):
            for way in WAYS if round_ % 2 == 0 else reversed(WAYS):  # alternate, so drift favours no way
                wall, cpu, emitted = build(n, way, directory)
                figures = best[way]
                figures[0], figures[1], figures[2] = min(figures[0], wall), min(figures[1], cpu), emitted
    off_wall, off_cpu = best["off"][0], best["off"][1]
    return {"n": n, "rounds": rounds, "goal": GOAL,
            "ways": {way: {"wall": round(wall, 4), "cpu": round(cpu, 4), "events": emitted,
                           "wall_ratio": round(wall / off_wall, 4), "cpu_ratio": round(cpu / off_cpu, 4)}
                     for way, (wall, cpu, emitted) in best.items()}}


def report(figures: dict) -> str:
    lines = [f"{figures['n']} peers, sequential build, best of {figures['rounds']} alternating rounds",
             f"{'events':<8} {'wall s':>8} {'cpu s':>8} {'wall/off':>9} {'cpu/off':>8} {'emitted':>8}"]
    for way, row in figures["ways"].items():
        lines.append(f"{way:<8} {row['wall']:>8.3f} {row['cpu']:>8.3f} {row['wall_ratio']:>9.3f} "
                     f"{row['cpu_ratio']:>8.3f} {row['events']:>8}")
    pub = figures["ways"]["pub"]["cpu_ratio"]
    verdict = "met" if pub <= figures["goal"] else "NOT met"
    lines.append(f"goal: a PUB nobody reads costs at most {figures['goal'] - 1:.0%} of the build's CPU: "
                 f"{pub - 1:+.1%}, {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="peers per build (default 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="builds of each way (default 5)")
    parser.add_argument("--quick", action="store_true", help="64 peers, 1 round")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    args = parser.parse_args(argv)
    n, rounds = (64, 1) if args.quick else (args.n, args.rounds)
    figures = measure(n, rounds)
    print(report(figures), flush=True)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
