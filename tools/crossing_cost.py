"""Where the CPU of a request between worker processes goes, and the floor under it, measured in one run.

    python tools/crossing_cost.py -n 2000                 # CPU, cProfile and syscalls, 1 worker against 2
    python tools/crossing_cost.py --floor-only            # the raw pyzmq floor alone

Three measurements, each of a build of N peers (``tools/scale.py --window 32 --sequential N/4 --no-refresh``):

* **CPU**: the build over 1 worker (every request inproc) and over 2 (about half cross), CPU seconds of all
  processes per request; a crossing request costs ``(c2 - (1 - s) c1) / s`` (c1, c2: µs per request of each build,
  s: the share that crossed in the second).
* **profile**: the 2-worker build with each worker under cProfile (``python -m cProfile``): the functions with the
  most own time, summed over both workers, as µs per request of the run.
* **syscalls**: the 1- and 2-worker builds with each worker under ``strace -c -f``: system calls per request, and per
  crossing request by the same difference as the CPU.

The floor: plain pyzmq (no gevent, no p2pzmq), a DEALER in this process and a ROUTER in a child echoing ``--count``
messages of a find_closest's size over tcp loopback, one in flight: CPU µs of both processes per round trip, and
its system calls under ``strace -c -f``. A request between two workers cannot cost less than that.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pstats
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

import scale  # noqa: E402  (tools/scale.py, beside this file)

MESSAGE = b"\x05" + b"r" * 100


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def echo(count: int, warm: int) -> int:
    """The floor's child: a plain ROUTER on a tcp port of its own, echoing ``warm`` then ``count`` messages; prints
    the CPU seconds (all its threads) of the ``count``."""
    import zmq
    ctx = zmq.Context(1)
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    for _ in range(warm):
        sock.send_multipart(sock.recv_multipart())
    cpu0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    for _ in range(count):
        sock.send_multipart(sock.recv_multipart())
    print(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu0, flush=True)
    sock.close()
    ctx.term()
    return 0


def floor(count: int, traced: str | None = None) -> dict:
    """Plain pyzmq round trips over tcp loopback between this process and a child, one in flight; with ``traced``
    (a path) both run under ``strace -c -f`` writing there, and the result is their system calls per round trip."""
    import zmq
    warm = 200
    command = [sys.executable, os.path.abspath(__file__), "--echo", str(count), "--warm", str(warm)]
    if traced:
        # this process's side traced too: the whole exchange runs in a traced child of its own
        command = ["strace", "-c", "-f", "-o", traced, sys.executable, os.path.abspath(__file__), "--floor-child", str(count)]
        subprocess.run(command, check=True, timeout=600, stdout=subprocess.DEVNULL)
        return {"syscalls_per_round_trip": round(strace_calls(traced) / count, 1)}
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline())
        ctx = zmq.Context(1)
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://127.0.0.1:{port}")
        for _ in range(warm):
            sock.send(MESSAGE)
            sock.recv()
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        for _ in range(count):
            sock.send(MESSAGE)
            sock.recv()
        wall = time.perf_counter() - start
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        theirs = float(child.stdout.readline())
        sock.close()
        ctx.term()
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    own = usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime
    return {"count": count, "wall_us": round(wall / count * 1e6, 1), "cpu_us": round((own + theirs) / count * 1e6, 1)}


def strace_calls(path: str) -> int:
    """Total system calls in the ``strace -c`` summary at ``path``."""
    with open(path, encoding="utf-8") as summary:
        totals = [line.split() for line in summary if line.rstrip().endswith(" total")]
    return sum(int(fields[3]) for fields in totals)


@contextlib.contextmanager
def workers_under(prefix: str, directory: str):
    """Start scale.py's workers as ``prefix`` PATH python ... (a wrapper script standing in for sys.executable)."""
    wrapper = os.path.join(directory, f"python-{len(os.listdir(directory))}")
    with open(wrapper, "w", encoding="utf-8") as script:
        script.write(f'#!/bin/sh\nexec {prefix} "$@"\n')
    os.chmod(wrapper, os.stat(wrapper).st_mode | stat.S_IEXEC)
    real, sys.executable = sys.executable, wrapper
    try:
        yield
    finally:
        sys.executable = real


def build(n: int, workers: int, directory: str) -> dict:
    """tools/scale.py's build of ``n`` peers over ``workers``; its figures."""
    path = os.path.join(directory, f"scale-{n}-{workers}-{time.monotonic_ns()}.json")
    with contextlib.redirect_stdout(io.StringIO()):
        scale.main(["-n", str(n), "--workers", str(workers), "--window", "32", "--sequential", str(n // 4),
                    "--no-refresh", "--chunk", str(n), "--sample", "20", "--json", path])
    with open(path, encoding="utf-8") as figures:
        result = json.load(figures)
    result["cpu_s"] = sum(p["cpu_seconds"] - e["cpu_seconds"]
                          for p, e in zip(result["processes"], result["processes_at_start"]) if p["role"] == "worker")
    return result


def crossing(one: float, two: float, share: float) -> float:
    """Per crossing request, from per-request figures of a build with no crossing and one with ``share`` crossing."""
    return (two - (1 - share) * one) / share


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--count", type=int, default=20000, help="round trips of the floor")
    parser.add_argument("--top", type=int, default=25, help="functions of the profile to print")
    parser.add_argument("--floor-only", action="store_true")
    parser.add_argument("--echo", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--warm", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--floor-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo:
        return echo(args.echo, args.warm)
    if args.floor_child:
        floor(args.floor_child)
        return 0
    print(f"load average {load()} at the start")
    directory = tempfile.mkdtemp(prefix="crossing-")
    figures = {"floor": floor(args.count)}
    if shutil.which("strace"):
        figures["floor"].update(floor(args.count, os.path.join(directory, "floor.strace")))
    print(f"floor, plain pyzmq tcp round trip between two processes: {json.dumps(figures['floor'])}")
    if not args.floor_only:
        runs = {workers: build(args.n, workers, directory) for workers in (1, 2)}
        per = {workers: run["cpu_s"] / run["requests"] * 1e6 for workers, run in runs.items()}
        share = runs[2]["crossed_share"]
        figures["cpu"] = {"us_per_request_1_worker": round(per[1], 1), "us_per_request_2_workers": round(per[2], 1),
                          "crossed_share": share, "us_per_crossing_request": round(crossing(per[1], per[2], share), 1),
                          "requests": {workers: run["requests"] for workers, run in runs.items()}}
        print(f"CPU of the workers: {json.dumps(figures['cpu'])}")
        with workers_under(f"{sys.executable} -m cProfile -o {directory}/worker-$$.prof", directory):
            profiled = build(args.n, 2, directory)
        stats = pstats.Stats(*[os.path.join(directory, name) for name in os.listdir(directory)
                               if name.endswith(".prof")], stream=io.StringIO())
        rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:args.top]
        requests = profiled["requests"]
        figures["profile"] = [{"function": f"{os.path.basename(file)}:{line} {name}", "calls": calls,
                               "own_us_per_request": round(own / requests * 1e6, 2)}
                              for (file, line, name), (_, calls, own, _, _) in rows]
        print(f"profile of both workers (2-worker build, {requests} requests, {profiled['crossed_share']:.1%} "
              f"crossed; own µs per request, under cProfile):")
        for row in figures["profile"]:
            print(f"  {row['own_us_per_request']:8.2f}  {row['calls']:>10}  {row['function']}")
        if shutil.which("strace"):
            calls = {}
            for workers in (1, 2):
                with workers_under(f"strace -c -f -o {directory}/strace-{workers}-$$ {sys.executable}", directory):
                    traced = build(args.n, workers, directory)
                total = sum(strace_calls(os.path.join(directory, name)) for name in os.listdir(directory)
                            if name.startswith(f"strace-{workers}-"))
                calls[workers] = (total / traced["requests"], traced["crossed_share"])
            figures["syscalls"] = {"per_request_1_worker": round(calls[1][0], 1),
                                   "per_request_2_workers": round(calls[2][0], 1),
                                   "per_crossing_request": round(crossing(calls[1][0], calls[2][0], calls[2][1]), 1)}
            print(f"system calls of the workers: {json.dumps(figures['syscalls'])}")
    print(f"load average {load()} at the end")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
