#!/usr/bin/env python3
"""Soak: a network under churn, status and snapshots for a while, checking that nothing drifts.

    python tools/soak.py --minutes 10          # the test suite: --seconds 15, and 60 under `pytest -m soak`

Builds ``--peers`` peers (default 200), starts churn (joins at ``--join-rate`` per second and sessions of mean
``--peers / --join-rate`` seconds, so the size stays near ``--peers``; half of the departures are crashes, half
graceful leaves) and, until it ends, loops: ``net_status``, a TGF snapshot, and the invariants:

- every alive peer's table holds its owner and at most 160 entries;
- greenlets: a handful, whatever the number of peers (an idle peer holds none; one holds a greenlet only while it
  walks, and churn joins one peer at a time): a leak would grow with time;
- file descriptors: 2 per alive peer (one per ZeroMQ socket) plus the count before the network, within a margin;
- memory: the largest resident size in the second half of the run is at most ``--memory-ratio`` times the largest
  in the first half (a leak grows with time; the peer count does not);
- after ``die``: no greenlet and no socket is left, and the descriptors are back where they started.

It prints what it measured and exits 1 if any invariant failed.
"""
from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import tempfile
import time

import gevent
import greenlet

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from p2pzmq.config import Config  # noqa: E402
from p2pzmq.resources import open_fds, rss_bytes  # noqa: E402
from p2pzmq.network import Network  # noqa: E402

GREENLET_MARGIN = 4
FD_MARGIN = 16


def live_greenlets() -> int:
    gc.collect()
    return sum(1 for g in gc.get_objects()
               if isinstance(g, greenlet.greenlet) and g and g.parent is not None and not g.dead
               and type(g).__name__ != "Hub")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="how long churn runs")
    length.add_argument("--seconds", type=float, help="how long churn runs (default 60)")
    parser.add_argument("--peers", type=int, default=200)
    parser.add_argument("--join-rate", type=float, default=0.5, help="joins per second (default 0.5)")
    parser.add_argument("--crash-fraction", type=float, default=0.5)
    parser.add_argument("--client-timeout", type=float, default=0.5,
                        help="seconds before a peer or the supervisor gives up on a dead peer (default 0.5)")
    parser.add_argument("--memory-ratio", type=float, default=1.5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the measurements as one JSON object")
    args = parser.parse_args(argv)
    args.duration = args.minutes * 60 if args.minutes is not None else (args.seconds or 60.0)
    return args


def soak(args: argparse.Namespace) -> dict:
    gevent.get_hub().loop  # the event loop's own descriptors exist before the baseline, not because of us
    fds_before = open_fds()
    greenlets_before = live_greenlets()
    config = Config(seed=args.seed, client_timeout=args.client_timeout, evict_after=1)
    samples, failures = [], []
    with tempfile.TemporaryDirectory() as directory, Network(config) as net:
        started = time.monotonic()
        net.create(args.peers)
        created = time.monotonic() - started
        fds_base = open_fds() - 2 * len(net.peers)
        net.churn(join_rate=args.join_rate, leave_rate=args.join_rate / args.peers, duration=args.duration,
                  crash_fraction=args.crash_fraction, seed=args.seed)
        churn_started = time.monotonic()
        snapshot = os.path.join(directory, "soak.tgf")
        while net.churned["running"]:
            status = net.net_status()
            net.output_tgf(snapshot)
            ids, tables, _ = net.snapshot()  # ids and tables read together: churn changes the list meanwhile
            alive = len(ids)
            sample = {"t": round(time.monotonic() - churn_started, 2), "alive": alive,
                      "connectivity": status["connectivity"], "failed_hops": status["failed_hops"],
                      "rss": rss_bytes(), "fds": open_fds(), "greenlets": live_greenlets() - greenlets_before}
            samples.append(sample)
            bad = [peer_id for peer_id, table in zip(ids, tables) if peer_id not in table or len(table) > 160]
            if bad:
                failures.append(f"t={sample['t']}: {len(bad)} tables without their owner or above 160 entries")
            # No greenlet per idle peer: churn, the peer walking for it and the command in progress hold a few.
            if sample["greenlets"] > GREENLET_MARGIN:
                failures.append(f"t={sample['t']}: {sample['greenlets']} greenlets for {alive} peers")
            if abs(sample["fds"] - (fds_base + 2 * alive)) > FD_MARGIN:
                failures.append(f"t={sample['t']}: {sample['fds']} fds for {alive} peers (base {fds_base})")
        churned = dict(net.churned)
        stats = net.stats()
    left = live_greenlets() - greenlets_before
    fds_after = open_fds()
    if left > 0:
        failures.append(f"{left} greenlets left after die")
    if net.sockets_left_open:
        failures.append(f"{net.sockets_left_open} sockets left open at die")
    if fds_after > fds_before:
        failures.append(f"{fds_after - fds_before} more fds after die than before the network")
    half = len(samples) // 2
    first = max((s["rss"] for s in samples[:half]), default=0)
    second = max((s["rss"] for s in samples[half:]), default=0)
    if half and second > args.memory_ratio * first:
        failures.append(f"memory grew: {second / 2**20:.1f} MiB vs {first / 2**20:.1f} MiB in the first half")
    if not samples:
        failures.append("no status round completed during churn")
    return {"seconds": args.duration, "peers": args.peers, "create_seconds": round(created, 2),
            "status_rounds": len(samples), "churn": churned,
            "alive": {"min": min((s["alive"] for s in samples), default=0),
                      "max": max((s["alive"] for s in samples), default=0)},
            "connectivity": {"min": min((s["connectivity"] for s in samples), default=0),
                             "max": max((s["connectivity"] for s in samples), default=0)},
            "rss_mib": {"first_half_max": round(first / 2**20, 1), "second_half_max": round(second / 2**20, 1),
                        "ratio": round(second / first, 3) if first else None},
            "fds": {"before": fds_before, "after_die": fds_after},
            "timeouts": stats["timeouts"], "dropped": stats["dropped"],
            "evicted": net.counters["evicted"], "leaves": net.counters["leaves"],
            "failures": failures}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.ERROR)
    report = soak(args)
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            if key != "failures":
                print(f"{key}: {json.dumps(value)}")
        for failure in report["failures"]:
            print(f"FAILED: {failure}")
        print("soak: OK" if not report["failures"] else f"soak: {len(report['failures'])} invariant(s) failed")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
