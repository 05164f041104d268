#!/usr/bin/env python
"""How long saving and restoring a snapshot takes, and the floor under the restore, measured in one run.

For each N it writes a snapshot of N peers of the original protocol whose tables are full (160 entries: the owner
and 159 peers drawn with the seed, the largest file and the most work per peer; a restore does not care whether
the tables came from a build), restores it over W local worker processes (``--workers``, default: as few as the
fd limit allows), saves the restored network again (``output_snapshot``: every table fetched from its peer), and
checks that the second file is byte-identical to the first. It prints, per N: the file's size, the seconds to
write and read the file, to restore (start every peer, install every table), to save, and the floor under the
restore: one process binding as many port-0 tcp sockets on one fresh loopback address as one worker binds (two per
peer), timed in the same run by a subprocess of its own; the first and last thousand binds show how binding
slows as an address fills.

    python tools/snapshot_bench.py -n 1000 10000            # figures for BENCHMARKS.md
    python tools/snapshot_bench.py -n 50000 --timeout 900   # bounded: gives up after --timeout seconds
    python tools/snapshot_bench.py --quick                  # a few seconds, for the test suite
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

import gevent

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from p2pzmq import snapshot, worker  # noqa: E402  (after the path, so the tool runs from a checkout)
from p2pzmq.config import Config  # noqa: E402
from p2pzmq.contact import Contact  # noqa: E402
from p2pzmq.resources import FD_HEADROOM, FDS_PER_PEER  # noqa: E402
from p2pzmq.ids import new_id  # noqa: E402
from p2pzmq.network import Network  # noqa: E402
from p2pzmq.protocols.original.table import Table  # noqa: E402

FLOOR_ADDRESS = "127.0.2.1"  # no worker of the run binds here
HEADER = ("| peers | workers | file MB | write s | read s | restore s | save s | same file | bind floor s "
          "(first / last 1,000 binds) |\n|---|---|---|---|---|---|---|---|---|")


def synthetic(n: int, seed: int) -> snapshot.Snapshot:
    """N peers of the original protocol, each table its owner and up to 159 others drawn with ``seed``."""
    rng = random.Random(seed)
    ids = [new_id(rng) for _ in range(n)]
    others = min(n - 1, 159)
    tables = []
    for owner in range(n):
        chosen = {owner}
        while len(chosen) <= others:
            chosen.add(rng.randrange(n))
        # as a table's wire form: the preorder of the tree that inserting them in this order builds
        contacts = [Contact(ids[index], "", "") for index in [owner, *chosen - {owner}]]
        position = {ids[index]: index for index in chosen}
        tables.append([position[contact.id] for contact in Table.from_preorder(contacts).preorder()])
    config = Config(seed=seed)
    streams = {"ids": random.Random(seed).getstate(), "cookies": random.Random(seed + 1).getstate(),
               "status": random.Random(seed + 2).getstate()}
    return snapshot.Snapshot(protocol="original", settings={"metric": config.metric, "table_capacity": 160,
                                                           "evict_after": 0},
                             metric=config.metric, seed=seed, ids=ids, tables=tables, streams=streams)


def workers_for(n: int, limit: int) -> int:
    """As few workers as hold ``n`` tcp peers within the fd ``limit`` each."""
    per_worker = (limit - FD_HEADROOM) // FDS_PER_PEER["tcp"]
    return max(1, -(-n // per_worker))


def bind_floor(count: int, address: str) -> dict:
    """Seconds to bind ``count`` ROUTER sockets at ``tcp://address:0`` in this process: in all, and for the first
    and the last thousand (ran in a subprocess of its own: ``--bind-floor``)."""
    from p2pzmq.transport import Context

    ctx = Context(max_sockets=count + 64)
    sockets, marks = [], []
    start = time.perf_counter()
    try:
        for index in range(count):
            if index % 1000 == 0:
                marks.append(time.perf_counter())
            sock = ctx.router()
            sockets.append(sock)
            sock.bind(f"tcp://{address}:0")
        end = time.perf_counter()
    finally:
        for sock in sockets:
            sock.close()
        ctx.term()
    marks.append(end)
    return {"binds": count, "seconds": round(end - start, 3), "first_1000": round(marks[1] - marks[0], 3),
            "last_1000": round(marks[-1] - marks[-2], 3)}


def measure(n: int, seed: int, workers: int, directory: str) -> dict:
    path, again = os.path.join(directory, f"{n}.snap"), os.path.join(directory, f"{n}-again.snap")
    saved = synthetic(n, seed)
    start = time.perf_counter()
    size = snapshot.write(path, saved)
    written = time.perf_counter() - start
    floor = subprocess.run([sys.executable, __file__, "--bind-floor", str(2 * -(-n // workers)), FLOOR_ADDRESS],
                           capture_output=True, text=True, check=True)
    config = Config(seed=seed, transport="tcp")
    launched = worker.launch(worker.local_hosts(config.host, workers), config)
    try:
        with Network(config) as net:
            for endpoint in launched.endpoints:
                net.attach(endpoint)
            start = time.perf_counter()
            loaded = snapshot.read(path)
            read = time.perf_counter() - start
            start = time.perf_counter()
            net.restore(loaded)
            restored = time.perf_counter() - start
            start = time.perf_counter()
            net.output_snapshot(again)
            resaved = time.perf_counter() - start
    finally:
        launched.reap(config.shutdown_timeout)
    with open(path, "rb") as first, open(again, "rb") as second:
        same = first.read() == second.read()
    return {"n": n, "workers": workers, "bytes": size, "write_s": round(written, 3), "read_s": round(read, 3),
            "restore_s": round(restored, 3), "save_s": round(resaved, 3), "same_file": same,
            "bind_floor": json.loads(floor.stdout)}


def row(figures: dict) -> str:
    floor = figures["bind_floor"]
    return (f"| {figures['n']:,} | {figures['workers']} | {figures['bytes'] / 1e6:.1f} | {figures['write_s']} | "
            f"{figures['read_s']} | {figures['restore_s']} | {figures['save_s']} | {figures['same_file']} | "
            f"{floor['seconds']} ({floor['first_1000']} / {floor['last_1000']}) |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, nargs="+", default=[1000, 10000], help="network sizes")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: as few as fit)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up on a size after this many seconds")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="200 peers on one worker")
    parser.add_argument("--bind-floor", nargs=2, metavar=("COUNT", "ADDRESS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bind_floor:
        print(json.dumps(bind_floor(int(args.bind_floor[0]), args.bind_floor[1])))
        return 0
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    sizes = [200] if args.quick else args.n
    figures = []
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="snapshot-bench-") as directory:
        for n in sizes:
            workers = args.workers or workers_for(n, limit)
            with gevent.Timeout(args.timeout):
                figures.append(measure(n, args.seed, workers, directory))
            print(row(figures[-1]), flush=True)
            os.remove(os.path.join(directory, f"{n}.snap"))
            os.remove(os.path.join(directory, f"{n}-again.snap"))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=1)
    return 0 if all(item["same_file"] for item in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
