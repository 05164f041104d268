#!/usr/bin/env python
"""Benchmark p2pzmq against the limits of its own stack, every ratio measured in one process within seconds.

One run measures, each part in a fresh process of its own (tools/bench_runs.py):

* the raw limits (tools/bench_raw.py): round trips between two ROUTERs over stock ``zmq.green``, plain pyzmq frame
  by frame, p2pzmq's own transport, and over tcp with plain pyzmq and stock ``zmq.green``;
* sequential builds (J = 1) in one process, inproc (1,000 peers) and tcp (300 and 1,000 peers), in rounds that
  alternate with raw measurements: CPU per request, requests per CPU second and their ratio to each raw rate of the
  same process, the tables checked against the message-free oracle;
* the simulator against N (16, 128, 1,000, 4,000, 9,000): create, one refresh, net_status, memory and fds per peer;
  and create with J joins at once.

It prints the goals with this run's figures and verdicts, and every table; ``--write`` rewrites the generated block
of BENCHMARKS.md (hand-written sections stay), ``docs/bench.json`` and ``docs/bench.png``. ``--profile`` profiles
the build instead (py-spy and ``strace -c``, tools/bench_profile.py); with ``--write`` it rewrites the profile
block of BENCHMARKS.md and ``docs/profile.json``.

    python tools/bench.py --quick            # up to 1,000 peers, a few minutes
    python tools/bench.py --write            # the full run (needs .[plot]); the lead's figures for BENCHMARKS.md
    python tools/bench.py --profile --write  # where the build's CPU goes (needs py-spy and strace)
    python tools/bench.py --smoke            # seconds, for the test suite
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT]

import bench_profile  # noqa: E402
import bench_report  # noqa: E402
from bench_raw import RAW_NAMES, raw_limits  # noqa: E402

#: Per mode: sizes of the rows, the inproc and tcp builds, N of the joins table, round trips per raw measurement,
#: rounds per build, runs of the main process's raw measurements, and the profile's sampled and traced builds.
MODES = {
    "full": {"sizes": [16, 128, 1000, 4000, 9000], "inproc": [1000], "tcp": [300, 1000], "joins": 1000,
             "round_trips": 20000, "rounds": 3, "repeats": 3,
             "sampled": {"inproc": 1000, "tcp": 300}, "traced": {"inproc": 300, "tcp": 300}},
    "quick": {"sizes": [16, 128, 1000], "inproc": [1000], "tcp": [300], "joins": 1000, "round_trips": 10000,
              "rounds": 2, "repeats": 3,
              "sampled": {"inproc": 1000, "tcp": 300}, "traced": {"inproc": 300, "tcp": 100}},
    "smoke": {"sizes": [16], "inproc": [16], "tcp": [16], "joins": 16, "round_trips": 500, "rounds": 1,
              "repeats": 1, "sampled": {"inproc": 64, "tcp": 16}, "traced": {"inproc": 16, "tcp": 16}},
}
JOIN_CONCURRENCIES = (1, 4, 16)


def child(spec: dict) -> list[str]:
    """The command line of a process of this tool doing ``spec`` (see :func:`run_one`)."""
    return [sys.executable, os.path.abspath(__file__), "--one", json.dumps(spec)]


def in_subprocess(spec: dict) -> dict:
    done = subprocess.run(child(spec), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{spec} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_one(spec: dict) -> None:
    """In a process of its own: measure what ``spec`` says and print it as JSON (or, for the profile, serve the
    profiler)."""
    import bench_runs

    kind = spec["kind"]
    if kind == "rows":  # one after the other, each with a network of its own
        print(json.dumps([bench_runs.measure_row(spec["n"], j, spec["refresh"], spec["round_trips"])
                          for j in spec["j"]]))
    elif kind == "build":
        print(json.dumps(bench_runs.measure_build(spec["n"], spec["transport"], spec["rounds"],
                                                  spec["round_trips"])))
    elif kind == "sampled-build":
        bench_profile.sampled_build(spec["transport"], spec["n"])
    elif kind == "traced-build":
        bench_profile.traced_build(spec["transport"], spec["n"])
    elif kind == "traced-raw":
        bench_profile.traced_raw(spec["name"], spec["round_trips"])
    else:
        raise ValueError(f"unknown kind {kind!r}")


def measure(mode: dict) -> dict:
    """Every figure of the main report, each part in a fresh process."""
    started, load_start = time.perf_counter(), os.getloadavg()
    say(f"load average {_loads(load_start)}; raw limits in this process")
    round_trips, rounds = mode["round_trips"], mode["rounds"]
    figures = {"raw": raw_limits(round_trips, RAW_NAMES, repeats=mode["repeats"]), "builds": [], "rows": [],
               "joins": []}
    for transport in ("inproc", "tcp"):
        for n in mode[transport]:
            figures["builds"].append(in_subprocess({"kind": "build", "n": n, "transport": transport,
                                                    "rounds": rounds, "round_trips": round_trips}))
            say(f"{transport} build of {n:,} peers measured ({time.perf_counter() - started:.0f} s so far)")
    for n in mode["sizes"]:
        figures["rows"] += in_subprocess({"kind": "rows", "n": n, "j": [1], "refresh": True,
                                          "round_trips": round_trips})
        say(f"N = {n:,} measured ({time.perf_counter() - started:.0f} s so far)")
    # memory is not reported for these, so they can share a process
    figures["joins"] = in_subprocess({"kind": "rows", "n": mode["joins"], "j": JOIN_CONCURRENCIES, "refresh": False,
                                      "round_trips": round_trips})
    figures.update(machine=machine(), round_trips=round_trips, seconds=time.perf_counter() - started,
                   load_average=[load_start, os.getloadavg()], date=_now())
    return figures


def profile(mode: dict) -> dict:
    load_start = os.getloadavg()
    say(f"load average {_loads(load_start)}; profiling {mode['sampled']} with py-spy, {mode['traced']} with strace")
    with tempfile.TemporaryDirectory(prefix="p2pzmq-profile-") as scratch:
        figures = bench_profile.profile(child, mode["sampled"], mode["traced"], mode["round_trips"] // 5, scratch)
    figures.update(machine=machine(), date=_now(),
                   loads=f"{_loads(load_start)} at the start, {_loads(os.getloadavg())} at the end")
    return figures


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _loads(loads) -> str:
    return ", ".join(f"{load:.1f}" for load in loads)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


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


def write(directory: str, figures: dict) -> None:
    """BENCHMARKS.md's block for ``figures`` (a main run's or a profile's) and the files beside it in docs/."""
    docs = os.path.join(directory, "docs")
    os.makedirs(docs, exist_ok=True)
    is_profile = "sampled" in figures
    with open(os.path.join(docs, "profile.json" if is_profile else "bench.json"), "w", encoding="utf-8") as out:
        json.dump(figures, out, indent=1)
    if is_profile:
        bench_report.write_block(directory, "profile", bench_profile.profile_block(figures))
    else:
        bench_report.write_chart(figures["rows"], os.path.join(docs, "bench.png"))
        bench_report.write_block(directory, "bench", bench_report.report_block(figures))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="N up to 1,000, tcp 300 peers, 2 rounds")
    size.add_argument("--smoke", action="store_true", help="a tiny run for the test suite")
    parser.add_argument("--profile", action="store_true",
                        help="profile the build instead (py-spy samples, strace -c syscalls)")
    parser.add_argument("--write", action="store_true",
                        help="rewrite BENCHMARKS.md's generated block and docs/bench.json, docs/bench.png "
                             "(with --profile: the profile block and docs/profile.json)")
    parser.add_argument("--output", default=ROOT, help="directory of BENCHMARKS.md and docs/ (default: the repo)")
    parser.add_argument("--from-json", metavar="PATH", help="rewrite the report from a run's bench.json or "
                                                            "profile.json instead of measuring")
    parser.add_argument("--one", metavar="JSON", help=argparse.SUPPRESS)  # a process of this tool (run_one)
    args = parser.parse_args(argv)

    if args.one is not None:
        run_one(json.loads(args.one))
        return 0
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as stored:
            figures = json.load(stored)
        if "builds" not in figures and "sampled" not in figures:
            parser.error(f"{args.from_json} was written by an older version of this tool: measure again")
        write(args.output, figures)
        return 0
    mode = MODES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.profile:
        missing = bench_profile.missing_tools()
        if missing:
            parser.error(f"--profile needs {' and '.join(missing)}")
        figures = profile(mode)
        print("\n".join(bench_profile.profile_lines(figures)))
    else:
        figures = measure(mode)
        print("\n".join(bench_report.print_lines(figures)))
        say(f"done in {figures['seconds']:.0f} s; load average {_loads(figures['load_average'][1])}")
    if args.write:
        write(args.output, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
