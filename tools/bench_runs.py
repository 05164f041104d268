"""What tools/bench.py measures in a process of its own: the simulator, each figure next to the raw limits measured
in the same process within seconds of it (tools/bench_raw.py).

* :func:`measure_build`: sequential builds (J = 1) of N peers in one process over inproc or tcp, alternating with
  raw measurements, best of several rounds; the last build's tables are checked against the message-free oracle
  (tests/model.py), which the sequential build must equal exactly. Inproc rounds also measure the floor of the same
  build (tools/bench_floor.py: the protocol alone, and the lean build with nothing of p2pzmq around its messages);
* :func:`measure_row`: one N through create, one refresh and ``net_status``, with memory and fds per peer.

Every function returns plain data (JSON), printed by ``tools/bench.py --one``.
"""
from __future__ import annotations

import collections
import os

import bench_floor
from bench_raw import Clock, best, raw_limits

#: The raw measurements each kind of build is compared with.
RAWS_FOR = {"inproc": ("green", "plain"), "tcp": ("green", "plain_tcp", "green_tcp")}


def thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of each thread of this process so far: ``{thread id: (name, seconds)}``. libzmq
    names its I/O thread ``ZMQbg/IO/0``."""
    tick = os.sysconf("SC_CLK_TCK")
    threads = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii", errors="replace") as stat:
                text = stat.read()
        except OSError:
            continue  # the thread ended meanwhile
        fields = text[text.rindex(")") + 2:].split()  # fields 3 onwards: utime and stime are fields 14 and 15
        threads[int(tid)] = (text[text.index("(") + 1:text.rindex(")")], (int(fields[11]) + int(fields[12])) / tick)
    return threads


def io_thread_seconds(before: dict, after: dict) -> float:
    """CPU seconds libzmq's I/O threads spent between two :func:`thread_cpu` readings."""
    spent: collections.Counter = collections.Counter()
    for tid, (name, seconds) in after.items():
        spent[name] += seconds - before.get(tid, (name, 0.0))[1]
    return sum(seconds for name, seconds in spent.items() if name.startswith("ZMQbg/IO"))


def _build(n: int, transport: str, seed: int, oracle: list[list[int]] | None) -> dict:
    """Build ``n`` peers one join at a time in a fresh network: CPU and wall seconds of ``create`` (and how much of
    that CPU libzmq's I/O thread spent) and the requests it made; given the ``oracle``'s tables, whether the
    network's equal them (fetched after the clock stopped)."""
    from p2pzmq.config import Config
    from p2pzmq.network import Network

    with Network(Config(seed=seed, transport=transport, join_concurrency=1)) as network:
        before = network.counters["requests"]
        threads = thread_cpu()
        clock = Clock()
        network.create(n)
        wall, cpu = clock.seconds()
        built = {"wall_s": wall, "cpu_s": cpu, "requests": network.counters["requests"] - before,
                 "io_thread_cpu_s": io_thread_seconds(threads, thread_cpu())}
        if oracle is not None:
            built["oracle"] = [[contact.id for contact in table.preorder()] for table in network.tables()] == oracle
    return built


def measure_build(n: int, transport: str, rounds: int, round_trips: int, seed: int = 1) -> dict:
    """``rounds`` sequential builds of ``n`` peers over ``transport``, each preceded by the raw limits it is compared
    with, and the raw limits once more at the end, so every build lies between two raw measurements seconds away.
    The best build (least CPU) and the best raw rates make the ratios; every round is kept too."""
    names = RAWS_FOR[transport]
    raws, builds, floors = [], [], []
    for index in range(rounds):
        raws.append(raw_limits(round_trips, names, repeats=1))
        oracle = None
        if transport == "inproc":
            floor, oracle = _floor(n, seed)
            floors.append(floor)
        last = index == rounds - 1
        if last and oracle is None:
            oracle = bench_floor.protocol_alone(n, seed)[1]
        builds.append(_build(n, transport, seed, oracle if last else None))
    raws.append(raw_limits(round_trips, names, repeats=1))
    fastest = min(builds, key=lambda build: build["cpu_s"])
    measured = {"n": n, "transport": transport, "rounds": rounds, "raw": best(raws), "raw_rounds": raws,
                "builds": builds, "cpu_s": fastest["cpu_s"], "wall_s": fastest["wall_s"],
                "requests": fastest["requests"], "io_thread_cpu_s": fastest["io_thread_cpu_s"],
                "oracle": builds[-1]["oracle"]}
    if floors:
        measured["floor_rounds"] = floors
        measured["floor"] = {key: min(floor[key] for floor in floors) for key in ("protocol_cpu_s", "lean_cpu_s")}
        measured["floor"].update(lean_requests=floors[0]["lean_requests"],
                                 oracle=all(floor["oracle"] for floor in floors))
    return measured


def _floor(n: int, seed: int) -> tuple[dict, list[list[int]]]:
    """The protocol alone and the lean build (tools/bench_floor.py) of the same network, the lean one checked against
    the oracle's tables; and those tables, for the build of the same round to be checked against too."""
    protocol_cpu_s, oracle = bench_floor.protocol_alone(n, seed)
    lean = bench_floor.lean_build(n, seed)
    return ({"protocol_cpu_s": protocol_cpu_s, "lean_cpu_s": lean["cpu_s"], "lean_requests": lean["requests"],
             "oracle": lean["tables"] == oracle}, oracle)


def measure_row(n: int, join_concurrency: int, refresh: bool, round_trips: int, seed: int = 1) -> dict:
    """Measure the raw limits in this process, then build N peers, refresh once and compute net_status: wall and CPU
    seconds of each phase, requests from the network's own ``stats``, resident memory and fds."""
    from p2pzmq.config import Config
    from p2pzmq.network import Network

    raw = raw_limits(round_trips, RAWS_FOR["inproc"], repeats=2)
    with Network(Config(seed=seed, join_concurrency=join_concurrency)) as network:
        base = network.stats()
        clock = Clock()
        network.create(n)
        create_s = clock.seconds()
        created = network.stats()
        clock = Clock()
        if refresh:
            network.refresh_peers()
        refresh_s = clock.seconds()
        refreshed = network.stats()
        clock = Clock()
        status = network.net_status()
        status_s = clock.seconds()
        done = network.stats()
    return {
        "n": n, "join_concurrency": join_concurrency, "raw": raw,
        "create_s": create_s, "create_requests": created["requests"] - base["requests"],
        "refresh_s": refresh_s, "refresh_requests": refreshed["requests"] - created["requests"],
        "status_s": status_s, "status_sample": status.get("sample", 0),
        "connectivity": status.get("estimate", status["connectivity"]),
        "rss_per_peer": (refreshed["rss_bytes"] - base["rss_bytes"]) / n,
        "rss_peak_per_peer": (done["rss_bytes"] - base["rss_bytes"]) / n,
        "fds": done["fds"], "timeouts": done["timeouts"], "dropped": done["dropped"],
    }
