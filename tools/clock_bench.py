#!/usr/bin/env python
"""CPU cost of the clock's primitives against the direct gevent calls they replaced, measured in the same run.

    python tools/clock_bench.py [--repeat 7] [--quick]

Each figure is one parked wait that something wakes at once (a callback of the loop switches the waiter, as a
socket's fd does), in µs of this process's CPU (``time.process_time``), best of ``--repeat`` runs:

* ``fresh gevent.Timeout``: the wait every socket made before the clock (``serving.wait_for``: a new Timeout,
  started, closed);
* ``REAL.wait``: ``Clock.wait`` on the wall clock, a fresh loop timer that switches a sentinel into the waiter;
* ``FakeClock.wait``: the same on the fake clock of the tests (a heap entry, no loop timer);

and ``REAL.now()`` against ``time.monotonic()``, which a deadline reads. The ratios divide each by the direct
call's cost in this run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import gevent
from gevent.hub import Waiter, get_hub

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from p2pzmq.clock import REAL, FakeClock  # noqa: E402


def fresh_timeout_wait(waiter: Waiter, timeout: float) -> bool:
    """How a socket waited before the clock (main's ``serving.wait_for``), kept here as the reference."""
    timer = gevent.Timeout(timeout)
    try:
        timer.start()
        waiter.get()
    except gevent.Timeout as expired:
        if expired is not timer:
            raise
        return False
    finally:
        timer.close()
    return True


def parked_waits(wait, count: int) -> float:
    """µs of CPU per wait of ``wait(waiter, 1.0)`` that a loop callback ends at once."""
    loop = get_hub().loop
    started = time.process_time()
    for _ in range(count):
        waiter = Waiter()
        loop.run_callback(waiter.switch, None)
        if not wait(waiter, 1.0):
            raise RuntimeError("a wait timed out: the measurement is void")
    return (time.process_time() - started) / count * 1e6


def reads(read, count: int) -> float:
    started = time.process_time()
    for _ in range(count):
        read()
    return (time.process_time() - started) / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each measurement; the best counts")
    parser.add_argument("--quick", action="store_true", help="fewer waits per run (for the test suite)")
    args = parser.parse_args(argv)
    count = 2_000 if args.quick else 100_000
    fake = FakeClock()
    waits = {"fresh gevent.Timeout": fresh_timeout_wait, "REAL.wait": REAL.wait, "FakeClock.wait": fake.wait}
    best = {name: min(parked_waits(wait, count) for _ in range(args.repeat)) for name, wait in waits.items()}
    now = {"time.monotonic()": min(reads(time.monotonic, count * 10) for _ in range(args.repeat)),
           "REAL.now()": min(reads(REAL.now, count * 10) for _ in range(args.repeat))}
    base = best["fresh gevent.Timeout"]
    print("| parked wait, woken at once | CPU µs | against a fresh gevent.Timeout |")
    print("|---|---|---|")
    for name, value in best.items():
        print(f"| {name} | {value:.2f} | {value / base:.2f}x |")
    print()
    print("| reading the time | CPU µs | against time.monotonic() |")
    print("|---|---|---|")
    for name, value in now.items():
        print(f"| {name} | {value:.3f} | {value / now['time.monotonic()']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
