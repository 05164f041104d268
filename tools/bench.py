#!/usr/bin/env python
"""Benchmark p2pzmq against the limit of its own stack, measured in the same run (issue 5).

One run measures, side by side:

* the raw limit: round trips per second between two greenlets over stock ``zmq.green`` ROUTER<->ROUTER inproc,
  the same with plain pyzmq and no greenlets, and the same over p2pzmq's own green transport;
* the simulator, for each N (each N in a fresh subprocess, so memory is measured from a clean baseline):
  protocol requests per second during create and during one refresh, ``net_status`` time, resident memory and
  file descriptors per peer; and create with ``--join-concurrency`` J for the build-time gain.

It prints a table with the ratio simulator / raw, and with ``--write`` writes ``BENCHMARKS.md``, a PNG chart
and the figures as JSON (``docs/bench.png``, ``docs/bench.json``).

    python tools/bench.py --quick            # <= 2 minutes, up to 1,000 peers
    python tools/bench.py --write            # the full run: N = 16, 128, 1,000, 4,000, 9,000
    python tools/bench.py --smoke            # a few seconds, for the test suite
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

FULL_SIZES = [16, 128, 1000, 4000, 9000]
QUICK_SIZES = [16, 128, 1000]
SMOKE_SIZES = [16]
#: The original needed about 1.6 s to build 16 peers (100 ms each, most of it its 100 ms pause per creation).
ORIGINAL_SECONDS_PER_PEER = 0.1


# -- the raw limit ------------------------------------------------------------------------------------------------


def raw_green(round_trips: int) -> float:
    """Round trips per second between two greenlets over stock zmq.green ROUTER<->ROUTER inproc."""
    import gevent
    import zmq.green as zmq

    ctx = zmq.Context()
    server, client = ctx.socket(zmq.ROUTER), ctx.socket(zmq.ROUTER)
    for sock in (server, client):
        sock.setsockopt(zmq.LINGER, 0)
    server.bind("inproc://bench-green")
    client.setsockopt(zmq.CONNECT_ROUTING_ID, b"server")
    client.connect("inproc://bench-green")

    def echo():
        for _ in range(round_trips):
            server.send_multipart(server.recv_multipart())

    def ask():
        for _ in range(round_trips):
            client.send_multipart([b"server", b"ping"])
            client.recv_multipart()

    echoing = gevent.spawn(echo)
    started = time.perf_counter()
    gevent.spawn(ask).join()
    elapsed = time.perf_counter() - started
    echoing.join()
    server.close()
    client.close()
    ctx.term()
    return round_trips / elapsed


def raw_plain(round_trips: int) -> float:
    """Round trips per second over plain pyzmq ROUTER<->ROUTER inproc in one thread (no greenlets, no loop)."""
    import zmq

    ctx = zmq.Context()
    server, client = ctx.socket(zmq.ROUTER), ctx.socket(zmq.ROUTER)
    for sock in (server, client):
        sock.setsockopt(zmq.LINGER, 0)
    server.bind("inproc://bench-plain")
    client.setsockopt(zmq.CONNECT_ROUTING_ID, b"server")
    client.connect("inproc://bench-plain")
    started = time.perf_counter()
    for _ in range(round_trips):
        client.send_multipart([b"server", b"ping"])
        server.send_multipart(server.recv_multipart())
        client.recv_multipart()
    elapsed = time.perf_counter() - started
    server.close()
    client.close()
    ctx.term()
    return round_trips / elapsed


def raw_lean(round_trips: int) -> float:
    """Round trips per second between two greenlets over p2pzmq's own green transport (ROUTER<->ROUTER inproc)."""
    import gevent

    from p2pzmq.transport import Context, Endpoints

    ctx = Context()
    server, client = ctx.router(), ctx.router()
    address = server.bind(Endpoints("inproc", ctx.namespace).new("bench"))
    route = client.route(address)

    def echo():
        for _ in range(round_trips):
            sender, *frames = server.recv()
            server.reply(sender, frames)

    def ask():
        for _ in range(round_trips):
            client.send_to(route, [b"ping"])
            client.recv()

    echoing = gevent.spawn(echo)
    started = time.perf_counter()
    gevent.spawn(ask).join()
    elapsed = time.perf_counter() - started
    echoing.join()
    server.close()
    client.close()
    ctx.term()
    return round_trips / elapsed


def raw_limits(round_trips: int, repeats: int = 3) -> dict:
    """The best of ``repeats`` runs of each raw measurement (the limit is what the stack can do, not an average)."""
    return {"green": max(raw_green(round_trips) for _ in range(repeats)),
            "plain": max(raw_plain(round_trips) for _ in range(repeats)),
            "lean": max(raw_lean(round_trips) for _ in range(repeats))}


# -- the simulator (one N per subprocess) -------------------------------------------------------------------------


def simulate(n: int, join_concurrency: int, refresh: bool) -> dict:
    """Build N peers, refresh once, compute net_status; figures from the network's own ``stats``."""
    from p2pzmq.config import Config
    from p2pzmq.network import Network

    with Network(Config(seed=1, join_concurrency=join_concurrency)) as network:
        base = network.stats()
        network.create(n)
        created = network.stats()
        if refresh:
            network.refresh_peers()
        refreshed = network.stats()
        status = network.net_status()
        done = network.stats()
    return {
        "n": n, "join_concurrency": join_concurrency,
        "create_s": created["seconds"]["create"],
        "create_requests": created["requests"] - base["requests"],
        "refresh_s": refreshed["seconds"]["refresh"],
        "refresh_requests": refreshed["requests"] - created["requests"],
        "status_s": done["seconds"]["net_status"],
        "status_sample": status.get("sample", 0),
        "connectivity": status.get("estimate", status["connectivity"]),
        "rss_per_peer": (refreshed["rss_bytes"] - base["rss_bytes"]) / n,
        "rss_peak_per_peer": (done["rss_bytes"] - base["rss_bytes"]) / n,
        "fds": done["fds"], "timeouts": done["timeouts"], "dropped": done["dropped"],
    }


def simulate_in_subprocess(n: int, join_concurrency: int = 1, refresh: bool = True) -> dict:
    argv = [sys.executable, os.path.abspath(__file__), "--one", str(n), "--join-concurrency", str(join_concurrency)]
    if not refresh:
        argv.append("--no-refresh")
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# -- report -------------------------------------------------------------------------------------------------------


def rate(requests: int, seconds: float) -> float:
    return requests / seconds if seconds else 0.0


def table_lines(raw: dict, rows: list[dict], joins: list[dict]) -> list[str]:
    lines = [
        "| raw limit (ROUTER<->ROUTER inproc, round trips/s) | |",
        "|---|---|",
        f"| stock `zmq.green`, two greenlets | {raw['green']:,.0f} |",
        f"| plain pyzmq, no greenlets | {raw['plain']:,.0f} |",
        f"| p2pzmq's green transport, two greenlets | {raw['lean']:,.0f} |",
        "",
        "| N | create s | s/peer | create req/s | ratio to zmq.green | refresh s | refresh req/s | ratio "
        "| net_status s | status mode | connectivity % | KB/peer | peak KB/peer | fds | timeouts |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        create_rate = rate(row["create_requests"], row["create_s"])
        refresh_rate = rate(row["refresh_requests"], row["refresh_s"])
        mode = f"sample {row['status_sample']}" if row["status_sample"] else "exact"
        lines.append(
            f"| {row['n']:,} | {row['create_s']:.2f} | {row['create_s'] / row['n'] * 1000:.1f} ms "
            f"| {create_rate:,.0f} | {create_rate / raw['green']:.2f} | {row['refresh_s']:.2f} "
            f"| {refresh_rate:,.0f} | {refresh_rate / raw['green']:.2f} | {row['status_s']:.2f} | {mode} "
            f"| {row['connectivity']} | {row['rss_per_peer'] / 1024:.1f} | {row['rss_peak_per_peer'] / 1024:.1f} "
            f"| {row['fds']:,} | {row['timeouts']} |")
    if joins:
        lines += ["", "| N | join concurrency | create s | create req/s | speed-up vs J = 1 | connectivity % |",
                  "|---|---|---|---|---|---|"]
        sequential = {row["n"]: row["create_s"] for row in rows}
        for row in joins:
            lines.append(f"| {row['n']:,} | {row['join_concurrency']} | {row['create_s']:.2f} "
                         f"| {rate(row['create_requests'], row['create_s']):,.0f} "
                         f"| {sequential[row['n']] / row['create_s']:.2f}x | {row['connectivity']} |")
    return lines


def machine() -> str:
    import gevent

    from p2pzmq.transport import zmq_version

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; Python "
            f"{platform.python_version()}, gevent {gevent.__version__}, {zmq_version()}")


def write_chart(rows: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [row["n"] for row in rows]
    fig, (times, memory) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in (("create_s", "create"), ("refresh_s", "refresh (1 pass)"), ("status_s", "net_status")):
        times.plot(sizes, [max(row[key], 1e-3) for row in rows], marker="o", label=label)
    times.set(xscale="log", yscale="log", xlabel="peers (N)", ylabel="seconds", title="Time against N")
    times.legend()
    memory.plot(sizes, [row["rss_per_peer"] / 1024 for row in rows], marker="o", label="after create + refresh")
    memory.plot(sizes, [row["rss_peak_per_peer"] / 1024 for row in rows], marker="s", label="after net_status")
    memory.axhline(60, color="grey", linestyle="--", label="target 60 KB")
    memory.set(xscale="log", xlabel="peers (N)", ylabel="resident KB per peer", title="Memory per peer")
    memory.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="N up to 1,000 (under 2 minutes)")
    mode.add_argument("--smoke", action="store_true", help="a tiny run for the test suite")
    mode.add_argument("--one", type=int, metavar="N", help="(internal) measure one N and print it as JSON")
    parser.add_argument("--sizes", type=lambda text: [int(x) for x in text.split(",")], help="e.g. 16,128,1000")
    parser.add_argument("--join-concurrency", type=int, default=1, metavar="J")
    parser.add_argument("--no-refresh", action="store_true")
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md and docs/bench.png")
    parser.add_argument("--output", default=ROOT, help="directory for BENCHMARKS.md and docs/ (default: the repo)")
    args = parser.parse_args(argv)

    if args.one is not None:
        print(json.dumps(simulate(args.one, args.join_concurrency, not args.no_refresh)))
        return 0

    sizes = args.sizes or (SMOKE_SIZES if args.smoke else QUICK_SIZES if args.quick else FULL_SIZES)
    round_trips = 2000 if args.smoke else 20000
    started = time.perf_counter()
    raw = raw_limits(round_trips, repeats=1 if args.smoke else 3)
    rows = []
    for n in sizes:
        rows.append(simulate_in_subprocess(n))
        print(f"measured N = {n:,} ({time.perf_counter() - started:.0f} s so far): {json.dumps(rows[-1])}",
              file=sys.stderr, flush=True)
    join_sizes = [n for n in sizes if n >= 1000][:1] or sizes[-1:]
    joins = [simulate_in_subprocess(n, j, refresh=False) for n in join_sizes for j in (4, 16)]
    lines = table_lines(raw, rows, joins)
    print("\n".join(lines))
    if args.write:
        write_report(args.output, raw, rows, joins, lines, time.perf_counter() - started)
    return 0


def write_report(directory: str, raw: dict, rows: list[dict], joins: list[dict], lines: list[str],
                 seconds: float) -> None:
    os.makedirs(os.path.join(directory, "docs"), exist_ok=True)
    write_chart(rows, os.path.join(directory, "docs", "bench.png"))
    with open(os.path.join(directory, "docs", "bench.json"), "w", encoding="utf-8") as out:
        json.dump({"raw": raw, "rows": rows, "joins": joins}, out, indent=1)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    smallest = rows[0]
    text = BENCHMARKS_TEMPLATE.format(
        date=date, machine=machine(), seconds=seconds, table="\n".join(lines),
        small_n=smallest["n"], small_s=smallest["create_s"], small_ms=smallest["create_s"] / smallest["n"] * 1000,
        original_s=smallest["n"] * ORIGINAL_SECONDS_PER_PEER)
    with open(os.path.join(directory, "BENCHMARKS.md"), "w", encoding="utf-8") as out:
        out.write(text)


BENCHMARKS_TEMPLATE = """# Benchmarks

Written by `python tools/bench.py --write` on {date} (the run took {seconds:.0f} s).

Machine: {machine}.

Every ratio compares the simulator with the raw limit **measured in the same run** (best of 3 runs of 20,000 round
trips each). "create req/s" counts every protocol request (get_peers, find_closest) and supervisor command sent
while building, divided by the build time; "refresh" is one discovery pass of every peer. Each N runs in a fresh
process, inproc, seed 1, tree metric; KB/peer is the growth of resident memory after create and one refresh, divided
by N (peak: after net_status too, which fetches every table). net_status is exact (all N² routes) up to 2,000 peers
and samples 100 random targets per peer above; above 256 peers it routes locally on tables fetched once per peer
(tests/test_status.py shows it gives the same result as routing by find_peer messages).

{table}

![time and memory against N](docs/bench.png)

**Per-peer build time against the original.** The original built {small_n} peers in about {original_s:.1f} s
(100 ms per peer, mostly its fixed 100 ms pause between creations); p2pzmq builds {small_n} peers in {small_s:.3f} s,
{small_ms:.1f} ms per peer.

**Parallel joins** (`--join-concurrency J`, last table): up to J peers bootstrap at once, each from a peer that
existed before its batch. Ids and bootstrap choices still come from the seed, but the tables depend on how the
concurrent walks interleave, so the network differs from the sequential build and from the message-free oracle
(which the default J = 1 still matches exactly, tests/test_status.py). Connectivity stays in the same range.
"""


if __name__ == "__main__":
    sys.exit(main())
