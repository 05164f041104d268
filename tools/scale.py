"""Build a large network over worker processes, refresh it once, and measure it (the 20,000- and 50,000-peer runs).

    python tools/scale.py -n 20000 --window 32 --sequential 2000 --json scale-20000.json
    python tools/scale.py -n 50000 --window 32 --sequential 2000 --no-refresh --json scale-50000.json  # 12 workers
    python tools/scale.py -n 2000 --workers 4      # one join at a time: the network equals the oracle's
    python tools/scale.py --quick          # 60 peers over 2 workers, half of them joined in windows: a smoke run
    python tools/scale.py -n 10000 --workers 3 --protocol kademlia --lookup-sample 20

    python tools/scale.py -n 20000 --window 32 --sequential 2000 --erlang-harness SCRIPT --original SRC
    python tools/scale.py -n 50000 --window 32 --sequential 2000 --no-refresh --snapshot /tmp/50000.snap

Before the build it times the Erlang original at the same N when its harness (``--erlang-harness``: SCRIPT SRC N
prints a ``RESULT n=... build_s=... build_cpu_s=...`` line), its sources (``--original``) and ``erl`` are here, else
it prints the original's figure measured earlier on this machine, with its date; and it builds 1,000 peers inproc
in this process to price a request that stays in one process, so that the CPU of the workers can be split between
requests that stayed and requests that crossed (an estimate, printed as such). ``--snapshot PATH`` writes the built
network with ``output_snapshot``, restores it over as many fresh workers (what ``run --from-snapshot`` does) and
checks that the restored network's sampled status equals the saved one's.

An idle tcp peer holds 2 fds and a process may hold RLIMIT_NOFILE of them (20,000 here), so a worker has room for
about 9,600 peers: ``--workers auto`` (the default) starts enough workers for N with a tenth to spare, and at least one
per core; a count too small is refused before anything starts. Each worker listens on a loopback address of its own.

It prints, as it goes, each phase (create by chunks of --chunk peers, a sampled status, one refresh of every peer, a
sampled status again) with its wall seconds, the CPU seconds of every process together and how many of the machine's
cores that is (CPU seconds / wall); then each process's peers, resident memory (after create, peak) and open fds,
the share of peer requests that crossed processes (a worker's peers talk over inproc among themselves); then
the goals for 20,000 peers with their verdicts, and the same as Markdown tables. Status at this size is sampled:
greedy routes between --sample random sources and --sample random targets (Network.route_sample) instead of all N²
routes. With ``--protocol kademlia`` it also runs a sampled net_status (``--lookup-sample`` targets per peer) for its
iterative lookups, computed on every peer's fetched table.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from p2pzmq import snapshot, worker  # noqa: E402
from p2pzmq import protocols  # noqa: E402
from p2pzmq.config import Config  # noqa: E402
from p2pzmq.resources import peer_room  # noqa: E402
from p2pzmq.network import Network  # noqa: E402

MB = 1 << 20
#: ``--workers auto`` leaves this share of each worker's fd room free (live connections take fds too).
SPARE = 0.1
#: The goals of a build over workers, for GOAL_N peers: (what, phase figure, at most).
GOAL_N = 20000
GOALS = (("built", "create_seconds", 300.0), ("built, refreshed once and sampled", "total_work_seconds", 480.0))
GOAL_CORES = 1.7
#: The build at most this many times the Erlang original's of the same size (measured in the same run if it can be).
GOAL_RATIO = 10.0
#: CPU µs of all processes per request that crosses processes, at most.
GOAL_CROSSING_US = 60.0
#: Build goals by size other than GOAL_N: peers -> seconds.
BUILD_GOALS = {GOAL_N: 300.0, 50000: 900.0}
#: The Erlang original's build seconds when it cannot be run here: measured on this machine on that date (OTP 25,
#: the original's code with its 100 ms pacing sleeps removed).
ERLANG_FIGURES = {"date": "2026-12-07", "build_s": {1000: 0.46, 20000: 24.8, 50000: 61.8}}
#: Peers of the in-process probe that prices a request between peers of one process in the same run.
PROBE_N = 1000


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def erlang(n: int, harness: str | None, source: str | None, timeout: float) -> dict:
    """The Erlang original building ``n`` peers, timed now by its harness (``harness`` SRC N prints a RESULT line)
    when the harness, the original's sources and ``erl`` are all here; else its figure measured earlier
    (:data:`ERLANG_FIGURES`)."""
    if harness and source and os.path.exists(harness) and os.path.isdir(source) and shutil.which("erl"):
        say(f"Erlang original: {harness} {source} {n} (load average {load()})")
        try:
            done = subprocess.run(["bash", harness, source, str(n)], capture_output=True, text=True,
                                  timeout=timeout, check=True)
        except (subprocess.SubprocessError, OSError) as exc:
            say(f"Erlang original: failed ({exc}); its earlier figure instead")
        else:
            line = next((row for row in done.stdout.splitlines() if row.startswith("RESULT")), "")
            fields = dict(item.split("=", 1) for item in line.split()[1:])
            if "build_s" in fields:
                found = {key: float(value) for key, value in fields.items()}
                say(f"Erlang original: {line} (load average {load()})")
                return {"source": "measured in this run", **found}
            say(f"Erlang original: no RESULT line ({done.stdout[-200:]!r}); its earlier figure instead")
    figure = ERLANG_FIGURES["build_s"].get(n)
    source = f"measured earlier, {ERLANG_FIGURES['date']}" if figure is not None else "none"
    return {"source": source, "build_s": figure}


def probe(seed: int, protocol: str, n: int = PROBE_N) -> dict:
    """CPU µs per request between peers of one process (inproc, sequential joins), measured in this run: the part
    of a worker's CPU that its inproc requests cost, so the rest can be put on the requests that cross."""
    cpu0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    with Network(Config(seed=seed, transport="inproc", protocol=protocol)) as net:
        net.create(n)
        requests = net.stats()["requests"]
    cpu = sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu0
    return {"peers": n, "requests": requests, "cpu_s": round(cpu, 2), "us_per_request": round(cpu / requests * 1e6, 1)}


def workers_for(n: int, requested: str) -> int:
    """How many workers to start for ``n`` peers: ``requested`` (a number, checked against the fd room of a fresh
    process, which the workers inherit) or ``auto``: enough for the fd budget, and at least one per core."""
    room = peer_room("tcp")
    if requested == "auto":
        return max(os.cpu_count() or 1, math.ceil(n / (room * (1 - SPARE))))
    count = int(requested)
    if count < 1 or math.ceil(n / count) > room:
        raise SystemExit(f"scale.py: {count} workers cannot hold {n} tcp peers: a worker has room for {room} "
                         f"within its {resource.getrlimit(resource.RLIMIT_NOFILE)[0]} fds; use --workers "
                         f"{math.ceil(n / room)} or more (or auto)")
    return count


class Meter:
    """CPU seconds of the supervisor and every worker together, against wall time: how many cores a phase used."""

    def __init__(self, net: Network) -> None:
        self._net = net
        self.phases: list[dict] = []
        self._start = self._reading()

    def _reading(self) -> tuple[float, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        workers = sum(member.get("cpu_seconds", 0.0) for member in self._net.stats().get("workers", []))
        return time.perf_counter(), usage.ru_utime + usage.ru_stime + workers

    def elapsed(self) -> float:
        """Wall seconds since the current phase began."""
        return time.perf_counter() - self._start[0]

    def lap(self, name: str) -> dict:
        """Close the phase ``name`` (since the previous lap) and return its figures."""
        (wall0, cpu0), (wall1, cpu1) = self._start, self._reading()
        self._start = (wall1, cpu1)
        phase = {"phase": name, "wall_s": round(wall1 - wall0, 2), "cpu_s": round(cpu1 - cpu0, 2),
                 "cores": round((cpu1 - cpu0) / max(wall1 - wall0, 1e-9), 2)}
        self.phases.append(phase)
        return phase


def _process_row(role: str, pid: int, stats: dict) -> dict:
    """One process's line of figures from its ``stats`` (the supervisor's or a worker's)."""
    return {"role": role, "pid": pid, "peers": stats["peers"] if role == "worker" else 0,
            "rss_mb": round(stats["rss_bytes"] / MB, 1), "peak_rss_mb": round(stats["peak_rss_bytes"] / MB, 1),
            "fds": stats["fds"], "cpu_seconds": stats["cpu_seconds"], "timeouts": stats["timeouts"]}


def lookups(net: Network, args, figures: dict, meter: "Meter", when: str) -> None:
    """Under kademlia: the iterative lookups of a net_status sampling ``--lookup-sample`` targets per peer."""
    if args.protocol != "kademlia":
        return
    figures[f"lookups_{when}"] = net.net_status(sample=min(args.lookup_sample, len(net.peers)))["lookups"]
    phase = meter.lap(f"sampled lookups {when.replace('_', ' ')}")
    figures[f"lookups_{when}"]["seconds"] = phase["wall_s"]
    say(f"sampled lookups {when.replace('_', ' ')} ({phase['wall_s']} s): {json.dumps(figures[f'lookups_{when}'])}")


def refresh(net: Network, args, figures: dict, meter: "Meter") -> None:
    """Refresh every peer once (``--window`` at a time), then sample the status again."""
    net.refresh_peers(concurrency=args.window)
    phase = meter.lap("refresh once")
    figures["refresh_seconds"] = phase["wall_s"]
    say(f"refreshed every peer once in {phase['wall_s']} s, {phase['cpu_s']} CPU s, {phase['cores']} cores")
    figures["status_after_refresh"] = net.route_sample(args.sample, args.seed)
    phase = meter.lap("sampled status after refresh")
    figures["status_seconds"] = phase["wall_s"]
    say(f"sampled status after refresh ({phase['wall_s']} s): {json.dumps(figures['status_after_refresh'])}")
    lookups(net, args, figures, meter, "after_refresh")
    figures["total_work_seconds"] = round(figures["create_seconds"] + figures["refresh_seconds"]
                                          + figures["status_seconds"], 1)


def processes(net: Network) -> list[dict]:
    stats = net.stats()
    return ([_process_row("supervisor", os.getpid(), stats)]
            + [_process_row("worker", member["pid"], member) for member in stats["workers"]])


def report(rows: list[dict]) -> None:
    """Say each process's line of figures (see :func:`processes`)."""
    for process in rows:
        say(f"{process['role']} pid {process['pid']}: {process['peers']} peers, peak {process['peak_rss_mb']:.0f} MB, "
            f"now {process['rss_mb']:.0f} MB, {process['fds']} fds, {process['cpu_seconds']:.0f} CPU s")


def goals(figures: dict) -> list[dict]:
    """The goals of a build with this run's figures. A build time has a verdict only for a run of a size with a goal
    (20,000 or 50,000 peers: a larger build takes longer by nature, its progress lines say when it passed 20,000);
    the ratio to the Erlang original at any size it was timed at; the cores kept busy, for 20,000 peers or more;
    the CPU per crossing request whenever requests crossed."""
    n, large = figures["n"], figures["n"] >= GOAL_N
    found = []
    for what, key, limit in GOALS:
        # the build has a goal at each size of BUILD_GOALS; the whole run's, at GOAL_N only
        size = n if key == "create_seconds" and n in BUILD_GOALS else GOAL_N
        limit = BUILD_GOALS[size] if key == "create_seconds" else limit
        if key in figures:
            found.append({"goal": f"{size:,} peers {what} in at most {limit:.0f} s", "value": f"{figures[key]:.0f} s",
                          "met": figures[key] <= limit if n == size else None, "scope": f"applies to {size:,} peers"})
    original = figures.get("erlang", {}).get("build_s")
    if original:
        ratio = figures["create_seconds"] / original
        cpu = figures["erlang"].get("build_cpu_s")
        create_cpu = next((phase.get("cpu_s") for phase in figures.get("phases", []) if phase["phase"] == "create"), None)
        # wall against wall; CPU against CPU beside it, when both were measured in this run
        beside = f" (CPU s: {create_cpu / cpu:.1f}x)" if cpu and create_cpu else ""
        found.append({"goal": f"built in at most {GOAL_RATIO:.0f}x the Erlang original's {original:.3g} s "
                              f"({figures['erlang']['source']})", "value": f"{ratio:.1f}x{beside}",
                      "met": ratio <= GOAL_RATIO, "scope": ""})
    create = next(phase for phase in figures["phases"] if phase["phase"] == "create")
    found.append({"goal": f"at least {GOAL_CORES} cores busy while building", "value": f"{create['cores']:.2f}",
                  "met": create["cores"] >= GOAL_CORES if large else None,
                  "scope": f"applies at {GOAL_N:,} peers or more"})
    crossing = figures.get("cpu_per_request", {}).get("crossing_us")
    if crossing is not None:
        found.append({"goal": f"CPU per request between processes at most {GOAL_CROSSING_US:.0f} µs",
                      "value": f"{crossing:.0f} µs", "met": crossing <= GOAL_CROSSING_US, "scope": ""})
    return found


def per_request(figures: dict, inproc: dict) -> dict:
    """CPU µs per peer request over the build, refresh and statuses: all processes' CPU seconds over all requests,
    and the part of it that crossing requests cost: the rest, once every request that stayed in its process is
    priced at the in-process probe's figure of this run (an estimate: an inproc request inside a busy worker)."""
    cpu = sum(process["cpu_seconds"] - empty["cpu_seconds"]
              for process, empty in zip(figures["processes"], figures["processes_at_start"]))
    requests, crossed = figures["requests"], figures["crossed"]
    result = {"cpu_s": round(cpu, 1), "all_us": round(cpu / max(requests, 1) * 1e6, 1),
              "inproc_us": inproc["us_per_request"]}
    if crossed:
        rest = cpu - (requests - crossed) * inproc["us_per_request"] / 1e6
        result["crossing_us"] = round(rest / crossed * 1e6, 1)
    return result


def markdown(figures: dict) -> list[str]:
    """The run as Markdown tables, for BENCHMARKS.md's Multi-process section."""
    lines = [f"`{figures['command']}` ({figures['date']}, load average {figures['load_average']} at the start, "
             f"{figures['load_average_end']} at the end; {figures['workers']} workers)", "",
             "| phase | wall s | CPU s (all processes) | cores used |", "|---|---|---|---|"]
    lines += [f"| {p['phase']} | {p['wall_s']:,.1f} | {p['cpu_s']:,.1f} | {p['cores']:.2f} |"
              for p in figures["phases"]]
    lines += ["", "| process | peers | RSS MB: empty / after create / peak | KB per peer (create) "
                  "| fds after create / at the end | CPU s |", "|---|---|---|---|---|---|"]
    for empty, created, end in zip(figures["processes_at_start"], figures["processes_after_create"],
                                   figures["processes"]):
        per_peer = f"{(created['rss_mb'] - empty['rss_mb']) * 1024 / end['peers']:.0f}" if end["peers"] else ""
        lines.append(f"| {end['role']} {end['pid']} | {end['peers']:,} "
                     f"| {empty['rss_mb']:,.0f} / {created['rss_mb']:,.0f} / {end['peak_rss_mb']:,.0f} | {per_peer} "
                     f"| {created['fds']:,} / {end['fds']:,} | {end['cpu_seconds']:,.0f} |")
    cost, original = figures["cpu_per_request"], figures["erlang"]
    lines += ["", "| requests | crossed processes | CPU µs per request, all | in one process (probe) "
                  "| crossing (estimate) | Erlang original build: wall s / CPU s |", "|---|---|---|---|---|---|",
              f"| {figures['requests']:,} | {figures['crossed']:,} ({figures['crossed_share']:.1%}) "
              f"| {cost['all_us']} | {cost['inproc_us']} | {cost.get('crossing_us', '')} "
              f"| {original['build_s'] if original['build_s'] is not None else 'not known'} / "
              f"{original.get('build_cpu_s', 'not known')} ({original['source']}) |"]
    if "snapshot" in figures:
        saved = figures["snapshot"]
        lines += ["", "| snapshot MB | output_snapshot s | restore s (fresh workers) | status after restore "
                      "equals the saved network's |", "|---|---|---|---|",
                  f"| {saved['bytes'] / MB:.1f} | {saved['write_s']} | {saved.get('restore_s', '')} "
                  f"| {saved.get('same_status', '')} |"]
    lines += ["", "| goal | this run | verdict |", "|---|---|---|"]
    lines += [f"| {goal['goal']} | {goal['value']} | "
              f"{goal['scope'] if goal['met'] is None else 'met' if goal['met'] else '**not met**'} |"
              for goal in figures["goals"]]
    return lines


def restore(path: str, config: Config, workers: int, figures: dict) -> None:
    """``run --from-snapshot``'s restore of ``path`` over ``workers`` fresh local workers, timed; then the same
    sampled status as after the build, which must come out equal."""
    saved = figures["snapshot"]
    start = time.perf_counter()
    loaded = snapshot.read(path)  # before any worker starts: reading blocks this process (see run --from-snapshot)
    saved["read_s"] = round(time.perf_counter() - start, 2)
    launched = worker.launch(worker.local_hosts("127.0.0.1", workers), config)
    try:
        with Network(config) as net:
            for endpoint in launched.endpoints:
                net.attach(endpoint)
            cpu0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) + sum(
                member["cpu_seconds"] for member in net.stats()["workers"])
            start = time.perf_counter()
            net.restore(loaded)
            saved["restore_s"] = round(time.perf_counter() - start, 2)
            saved["restore_cpu_s"] = round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) + sum(
                member["cpu_seconds"] for member in net.stats()["workers"]) - cpu0, 1)
            saved["restore_fds"] = [member["fds"] for member in net.stats()["workers"]]
            say(f"restored {len(net.peers)} peers from {path} in {saved['restore_s']} s, {saved['restore_cpu_s']} "
                f"CPU s (read {saved['read_s']} s; fds per worker {saved['restore_fds']})")
            again = net.route_sample(figures["status_sample"], figures["seed"])
            saved["same_status"] = again == figures["status_after_create"]
            say(f"sampled status after restore equals the saved network's: {saved['same_status']}")
    finally:
        launched.reap(config.shutdown_timeout)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("--workers", default="auto", help="how many worker processes (default auto: enough for N "
                                                           "within each worker's fd limit, with a tenth to spare, "
                                                           "and at least one per core)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample", type=int, default=200, help="sources and targets of the sampled status")
    parser.add_argument("--chunk", type=int, default=1000, help="report progress every CHUNK peers created")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--window", type=int, default=1,
                        help="join and refresh up to WINDOW peers at once (default 1: the original's one at a time, "
                             "the network equals the oracle's; more: faster, a different network of the same kind)")
    parser.add_argument("--sequential", type=int, default=1000,
                        help="with --window: the first peers still join one at a time, so that the later windows "
                             "join a well-connected network (default 1000)")
    parser.add_argument("--protocol", choices=protocols.names(), default=protocols.DEFAULT)
    parser.add_argument("--lookup-sample", type=int, default=20,
                        help="kademlia: iterative lookups from every peer to this many random targets (default 20)")
    parser.add_argument("--no-refresh", action="store_true",
                        help="stop after the build and its sampled status (a build of 50,000 peers takes about an "
                             "hour here; its refresh would take as long again)")
    parser.add_argument("--erlang-harness", metavar="SCRIPT", default=os.environ.get("P2PZMQ_ERLANG_HARNESS"),
                        help="the Erlang original's scale harness (SCRIPT SRC N prints a RESULT line): run at N in "
                             "this run, before the build (default $P2PZMQ_ERLANG_HARNESS); without it, erl or "
                             "--original, the original's figure measured earlier is printed instead")
    parser.add_argument("--original", metavar="SRC", default=os.environ.get("P2PZMQ_ORIGINAL"),
                        help="a directory of the original's sources for the harness (default $P2PZMQ_ORIGINAL)")
    parser.add_argument("--snapshot", metavar="PATH",
                        help="after the build's status: output_snapshot PATH, then restore it over fresh workers "
                             "(as many) and compare the restored network's sampled status with the saved one's")
    parser.add_argument("--heartbeat", type=float, default=Config.heartbeat_timeout,
                        help="seconds a worker waits for its supervisor (a loaded machine may starve it longer)")
    parser.add_argument("--quick", action="store_true", help="60 peers over 2 workers (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.workers, args.sample, args.chunk, args.sequential, args.window = 60, "2", 20, 30, 30, 6
    workers = workers_for(args.n, args.workers)
    config = Config(seed=args.seed, transport="tcp", protocol=args.protocol, heartbeat_timeout=args.heartbeat,
                    worker_timeout=max(Config.worker_timeout, args.heartbeat))
    figures = {"n": args.n, "workers": workers, "seed": args.seed, "status_sample": args.sample, "window": args.window, "protocol": args.protocol,
               "command": " ".join(["python tools/scale.py", *(argv if argv is not None else sys.argv[1:])]),
               "date": time.strftime("%Y-%m-%d %H:%M"), "load_average": load()}
    say(f"load average {figures['load_average']}; {workers} workers for {args.n} peers")
    figures["erlang"] = erlang(args.n, args.erlang_harness, args.original, timeout=1800)
    figures["inproc_probe"] = probe(args.seed, args.protocol, min(PROBE_N, args.n))
    say(f"in-process probe: {json.dumps(figures['inproc_probe'])}")
    started = time.perf_counter()
    # Each worker gets its own loopback address, as with serve --workers: 20,000 tcp peers on 127.0.0.1 run out of
    # ephemeral ports (32768-60999 here) at about 12,000.
    launched = worker.launch(worker.local_hosts("127.0.0.1", workers), config)
    try:
        with Network(config) as net:
            for endpoint in launched.endpoints:
                net.attach(endpoint)
            figures["processes_at_start"] = processes(net)
            meter = Meter(net)
            say(f"{workers} workers attached in {time.perf_counter() - started:.1f} s; creating {args.n} peers")
            while len(net.peers) < args.n:
                count = min(args.chunk, args.n - len(net.peers))
                if len(net.peers) < args.sequential:
                    count = min(count, args.sequential - len(net.peers))
                chunk = time.perf_counter()
                net.create(count, concurrency=args.window if len(net.peers) >= args.sequential else 1)
                elapsed = meter.elapsed()
                say(f"{len(net.peers)} peers in {elapsed:.0f} s ({len(net.peers) / elapsed:.1f} joins/s; the last "
                    f"{count} at {count / (time.perf_counter() - chunk):.1f} joins/s)")
            phase = meter.lap("create")
            figures["create_seconds"] = phase["wall_s"]
            figures["processes_after_create"] = processes(net)
            say(f"created in {phase['wall_s']} s, {phase['cpu_s']} CPU s, {phase['cores']} cores")
            report(figures["processes_after_create"])
            figures["status_after_create"] = net.route_sample(args.sample, args.seed)
            phase = meter.lap("sampled status after create")
            say(f"sampled status after create ({phase['wall_s']} s): {json.dumps(figures['status_after_create'])}")
            lookups(net, args, figures, meter, "after_create")
            if args.snapshot:
                written = net.output_snapshot(args.snapshot)
                phase = meter.lap("output_snapshot")
                figures["snapshot"] = {"path": args.snapshot, "bytes": os.path.getsize(args.snapshot),
                                       "write_s": phase["wall_s"], "write_cpu_s": phase["cpu_s"]}
                say(f"output_snapshot {args.snapshot} in {phase['wall_s']} s, {phase['cpu_s']} CPU s: "
                    f"{json.dumps(written)}")
            if not args.no_refresh:
                refresh(net, args, figures, meter)
            figures["phases"] = meter.phases
            figures["processes"] = processes(net)
            workers_stats = net.stats()["workers"]
            figures["requests"] = sum(member["requests"] for member in workers_stats)
            # peers of one worker talk over inproc: only requests between workers cross processes
            figures["crossed"] = sum(member["crossed"] for member in workers_stats)
            figures["crossed_share"] = round(figures["crossed"] / max(figures["requests"], 1), 4)
            figures["cpu_per_request"] = per_request(figures, figures["inproc_probe"])
            say(f"CPU per request: {json.dumps(figures['cpu_per_request'])}")
            figures["timeouts"] = sum(process["timeouts"] for process in figures["processes"])
            wall = time.perf_counter() - started
            # CPU seconds of every process over the wall time so far: how many of the machine's cores the run used
            figures["cores_used"] = round(sum(process["cpu_seconds"] for process in figures["processes"]) / wall, 2)
            report(figures["processes"])
            say(f"cores used: {figures['cores_used']} of {os.cpu_count()} (CPU seconds of all processes / wall)")
            say(f"peer requests {figures['requests']}, timeouts {figures['timeouts']}; "
                f"{figures['crossed']} crossed processes ({figures['crossed_share']:.1%}; "
                f"(W - 1)/W = {(workers - 1) / workers:.1%})")
            stopping = time.perf_counter()
    finally:
        launched.reap(config.shutdown_timeout)
    # die, then every worker process gone: exit code 0 is a clean stop, -9 one reap had to kill
    figures["stop_seconds"] = round(time.perf_counter() - stopping, 2)
    figures["worker_exit_codes"] = [process.returncode for process in launched.processes]
    say(f"die: every worker ended within {figures['stop_seconds']} s, exit codes {figures['worker_exit_codes']}")
    if args.snapshot:
        restore(args.snapshot, config, workers, figures)
    figures["total_seconds"] = round(time.perf_counter() - started, 1)
    figures["load_average_end"] = load()
    say(f"load average {figures['load_average_end']}")
    figures["goals"] = goals(figures)
    say(f"done in {figures['total_seconds']} s")
    print("\n".join(markdown(figures)))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
