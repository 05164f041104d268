#!/usr/bin/env python
"""What the event stream costs a build when nobody reads it, measured in one process (docs/EVENTS.md).

Builds the same network (seeded, sequential) over and over, three ways in rotating order: events off (nobody
subscribed), events on with nobody reading (a PUB socket bound on loopback that no one has subscribed to, as
``serve --events`` leaves it), and events on and recorded to a file (``--record``). Each way's best wall and CPU
seconds over the rounds, and their ratios to events off. The goal is judged on CPU seconds (the process's, its
ZeroMQ threads included): a PUB nobody reads within 3 % of off. Wall seconds are shown, but on a machine shared
with other work they vary by far more than 3 % from one build to the next, and CPU seconds by a few percent. So it
also times one event emitted each way, without the build around it, and gives the build's share that the events
it emitted cost at that price.

    python tools/events_bench.py                 # 1,000 peers, 6 rounds (2 to 5 minutes)
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

from p2pzmq.events import Events  # noqa: E402
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


def emit_cost(way: str, count: int = 20_000) -> float:
    """CPU seconds of one ``joined`` event (a typical one) emitted ``way``: the stream's cost without the build's
    noise, for the build's share below."""
    stream = Events()
    sink = Publisher("tcp://127.0.0.1:0", count).attach(stream) if way == "pub" else None
    try:
        cpu = time.process_time()
        for index in range(count):
            stream.emit("joined", id=str(2 ** 159 + index), host="local", index=index)
        return (time.process_time() - cpu) / count
    finally:
        if sink is not None:
            sink.close()


def measure(n: int, rounds: int) -> dict:
    """Best wall and CPU seconds per way over ``rounds`` rounds, and the ratios to ``off``."""
    best = {way: [float("inf"), float("inf"), 0] for way in WAYS}
    with tempfile.TemporaryDirectory() as directory:
        for round_ in range(rounds):
            shift = round_ % len(WAYS)
            for way in WAYS[shift:] + WAYS[:shift]:  # each way takes each place in turn: drift favours none
                wall, cpu, emitted = build(n, way, directory)
                figures = best[way]
                figures[0], figures[1], figures[2] = min(figures[0], wall), min(figures[1], cpu), emitted
    off_wall, off_cpu = best["off"][0], best["off"][1]
    per_event = {way: emit_cost(way) for way in ("off", "pub")}
    return {"n": n, "rounds": rounds, "goal": GOAL,
            "emit_us": {way: round(cost * 1e6, 3) for way, cost in per_event.items()},
            "pub_share": round(best["pub"][2] * per_event["pub"] / off_cpu, 5),
            "ways": {way: {"wall": round(wall, 4), "cpu": round(cpu, 4), "events": emitted,
                           "wall_ratio": round(wall / off_wall, 4), "cpu_ratio": round(cpu / off_cpu, 4)}
                     for way, (wall, cpu, emitted) in best.items()}}


def report(figures: dict) -> str:
    lines = [f"{figures['n']} peers, sequential build, best of {figures['rounds']} rounds in rotating order",
             f"{'events':<8} {'wall s':>8} {'cpu s':>8} {'wall/off':>9} {'cpu/off':>8} {'emitted':>8}"]
    for way, row in figures["ways"].items():
        lines.append(f"{way:<8} {row['wall']:>8.3f} {row['cpu']:>8.3f} {row['wall_ratio']:>9.3f} "
                     f"{row['cpu_ratio']:>8.3f} {row['events']:>8}")
    cost = figures["emit_us"]
    lines.append(f"one event: {cost['off']:.2f} µs nobody listening, {cost['pub']:.2f} µs "
                 f"to a PUB nobody reads; {figures['ways']['pub']['events']} events x that = "
                 f"{figures['pub_share']:.2%} of the build's CPU")
    pub = figures["ways"]["pub"]["cpu_ratio"]
    verdict = "met" if pub <= figures["goal"] else "NOT met"
    lines.append(f"goal: a PUB nobody reads costs at most {figures['goal'] - 1:.0%} of the build's CPU: "
                 f"{pub - 1:+.1%}, {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="peers per build (default 1000)")
    parser.add_argument("--rounds", type=int, default=6, help="builds of each way (default 6: each way twice in "
                                                              "each place of a round)")
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
