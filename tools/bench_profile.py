"""Where a build's CPU goes, for ``tools/bench.py --profile``: py-spy samples and ``strace -c`` syscall counts.

py-spy samples the running interpreter from outside, so it adds no cost to each Python call (cProfile does, and so
inflates small functions) and it charges time spent in C (libzmq, syscalls, gevent's loop) to the Python line that
called it. A profiled process does only this: import, make a network, build it; the samples of the import and of
the set-up (marked by the function :func:`setup`) are left out, and the process ends with ``os._exit`` right after
the build, so nothing after it is sampled. (Native stacks, py-spy's ``--native``, are not used: its unwinder fails
on most samples taken inside greenlets, which would bias what is left.)

``strace -c -f`` counts the syscalls of every thread (libzmq's I/O thread too). It is attached to a process that
has made its network and waits (see :func:`serve_traced`), so the count covers the build and nothing else.
"""
from __future__ import annotations

import collections
import linecache
import os
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: How long a traced process waits for strace to attach, and strace for the process to finish its work.
ATTACH_DEADLINE = 30.0
#: Samples per second for py-spy (its default is 100).
SAMPLE_RATE = 250

#: What a sampled line of code is doing, by the file it is in; first match wins (see :func:`category`).
CATEGORIES = (
    ("libzmq receive (C, with its syscalls)", r"p2pzmq/transport\.py", r"_recv\("),
    ("libzmq send (C, with its syscalls)", r"p2pzmq/transport\.py", r"_send\("),
    ("libzmq poll (C, with its syscalls)", r"p2pzmq/transport\.py", r"_poll\("),
    ("connecting and disconnecting (libzmq)", r"p2pzmq/transport\.py|zmq/sugar/socket\.py",
     r"connect|disconnect|CONNECT_ROUTING_ID|def connect"),
    ("p2pzmq transport and served sockets (Python)", r"p2pzmq/(transport|serving)\.py", ""),
    ("codec: encode and decode", r"p2pzmq/(wire|messages)\.py|<p2pzmq\.wire ", ""),
    ("request/reply layer (rpc.py)", r"p2pzmq/rpc\.py", ""),
    ("peer dispatch (peer.py)", r"p2pzmq/peer\.py", ""),
    ("protocol, table, discovery, ids", r"p2pzmq/(protocols/|ids)", ""),
    ("supervisor (network/, hosting)", r"p2pzmq/(network/|hosting)", ""),
    ("gevent: hub, greenlets, timers", r"gevent/", ""),
    ("zmq.Again raised by a receive that found nothing", r"zmq/error\.py", ""),
    ("pyzmq's Python layer (errors, sockets)", r"zmq/", ""),
    ("Python's own (contextlib, random, ...)", r"", ""),
)


def category(location: str) -> str:
    """The category of a sampled frame ``function (file:line)``, from its file and the text of its line."""
    path, line = _split(location)
    text = source_line(path, line)
    for name, file_pattern, line_pattern in CATEGORIES:
        if re.search(file_pattern, path) and (not line_pattern or re.search(line_pattern, text)):
            return name
    return CATEGORIES[-1][0]


def _split(location: str) -> tuple[str, int]:
    match = re.search(r"\((.*):(\d+)\)$", location)
    return (match.group(1), int(match.group(2))) if match else (location, 0)


def source_line(path: str, line: int) -> str:
    """The text of ``path``:``line`` (a path as py-spy prints it: relative to an entry of sys.path)."""
    for base in [ROOT, *sys.path]:
        candidate = os.path.join(base, path)
        if os.path.exists(candidate):
            return linecache.getline(candidate, line).strip()
    return ""


# -- py-spy -------------------------------------------------------------------------------------------------------


def py_spy() -> str | None:
    """py-spy's command: on the PATH, or beside this Python (a virtual environment not activated)."""
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return shutil.which("py-spy") or (beside if os.access(beside, os.X_OK) else None)


def missing_tools() -> list[str]:
    """What the profile needs and this machine lacks."""
    return ([] if py_spy() else ["py-spy (pip install -e '.[test]', or pip install py-spy)"]) + \
        ([] if shutil.which("strace") else ["strace (apt-get install strace)"])


def sample(argv: list[str], output: str) -> dict:
    """Run ``argv`` under ``py-spy record`` and summarise the samples of its build (see the module docstring)."""
    subprocess.run([py_spy(), "record", "--rate", str(SAMPLE_RATE), "--format", "raw", "--output", output, "--", *argv],
                   check=True, capture_output=True, text=True)
    return summarise(output)


def summarise(path: str, top: int = 15) -> dict:
    """Shares of the build's samples by category and by line of code (innermost frame: self time, C included)."""
    by_category: collections.Counter = collections.Counter()
    by_line: collections.Counter = collections.Counter()
    total = left_out = 0
    with open(path, encoding="utf-8") as stacks:
        for entry in stacks:
            stack, _, count = entry.rstrip("\n").rpartition(" ")
            frames = [frame for frame in stack.split(";") if frame.strip()]
            if not frames or any(_is_setup(frame) for frame in frames):
                left_out += int(count)
                continue
            total += int(count)
            by_category[category(frames[-1])] += int(count)
            by_line[frames[-1]] += int(count)
    lines = [{"where": where, "code": source_line(*_split(where)), "share": count / total}
             for where, count in by_line.most_common(top)]
    return {"samples": total, "left_out": left_out,
            "categories": [{"what": what, "share": count / total} for what, count in by_category.most_common()],
            "lines": lines}


def _is_setup(frame: str) -> bool:
    return frame.startswith("setup (") or "<frozen importlib" in frame


# -- strace -------------------------------------------------------------------------------------------------------


def serve_traced(work, setup_work=None) -> None:
    """In the process to be traced: set up, tell the parent our pid is ready (a line on stdout), wait until a tracer
    is attached, run ``work()``, print its result as the next line, and wait for stdin to close."""
    state = setup_work() if setup_work is not None else None
    print(os.getpid(), flush=True)
    deadline = time.monotonic() + ATTACH_DEADLINE
    while not _traced():
        if time.monotonic() > deadline:
            raise RuntimeError("no tracer attached")
        time.sleep(0.01)  # strace attaches within milliseconds; polled with a deadline
    result = work(state)
    print(result, flush=True)
    sys.stdin.read()
    os._exit(0)  # skip tearing the network down: nothing after the build is traced or needed


def _traced() -> bool:
    with open("/proc/self/status", encoding="ascii") as status:
        return any(line.startswith("TracerPid:") and line.split()[1] != "0" for line in status)


def count_syscalls(argv: list[str]) -> dict:
    """Run ``argv`` (a process using :func:`serve_traced`), attach ``strace -c -f`` to it for its work, and return
    the work's result (an integer: how many requests or round trips it made) and the syscalls counted."""
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    output = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"p2pzmq-strace-{child.pid}.txt")
    try:
        pid = int(child.stdout.readline())
        tracer = subprocess.Popen(["strace", "-c", "-f", "-o", output, "-p", str(pid)], stderr=subprocess.DEVNULL)
        work = int(child.stdout.readline())
        tracer.send_signal(signal.SIGINT)  # detach: strace writes its summary
        tracer.wait(timeout=ATTACH_DEADLINE)
        child.stdin.close()
        child.wait(timeout=ATTACH_DEADLINE)
        calls = parse_strace(output)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if os.path.exists(output):
            os.remove(output)
    return {"work": work, "syscalls": calls}


def parse_strace(path: str) -> dict:
    """``{syscall: calls}`` from an ``strace -c`` summary."""
    calls = {}
    with open(path, encoding="utf-8") as summary:
        for line in summary:
            fields = line.split()
            # a row: % time, seconds, usecs/call, calls, [errors,] syscall
            if len(fields) >= 5 and fields[3].isdigit() and fields[-1] != "total" and not fields[0].startswith("-"):
                calls[fields[-1]] = int(fields[3])
    return calls


# -- the profiled processes ---------------------------------------------------------------------------------------


def setup(transport: str):
    """A new empty network (seed 1) over ``transport``; its samples are left out of the profile by this name."""
    from p2pzmq.config import Config
    from p2pzmq.network import Network

    return Network(Config(seed=1, transport=transport))


def build(network, n: int) -> int:
    """Create ``n`` peers one join at a time; how many requests that took."""
    before = network.counters["requests"]
    network.create(n)
    return network.counters["requests"] - before


def sampled_build(transport: str, n: int) -> None:
    """The whole of a process sampled by py-spy: set up, build, and end at once."""
    network = setup(transport)
    build(network, n)
    sys.stdout.flush()
    os._exit(0)


def traced_build(transport: str, n: int) -> None:
    serve_traced(lambda network: build(network, n), lambda: setup(transport))


def traced_raw(name: str, round_trips: int) -> None:
    from bench_raw import MEASURES

    def work(_) -> int:
        MEASURES[name](round_trips)
        return round_trips

    serve_traced(work, lambda: MEASURES[name](10))  # the set-up imports what the measurement uses


# -- the profile run and its report -------------------------------------------------------------------------------


def profile(child, sampled: dict, traced: dict, round_trips: int, scratch: str) -> dict:
    """Sample the builds in ``sampled`` (``{transport: N}``) with py-spy and count the syscalls of the builds in
    ``traced`` (``{transport: N}``) and of the raw round trips, per request or round trip. ``child(spec)`` is the
    command line of a process doing ``spec``; ``scratch`` a directory for py-spy's output."""
    figures = {"sampled": {}, "syscalls": {}}
    for transport, n in sampled.items():
        output = os.path.join(scratch, f"stacks-{transport}.txt")
        figures["sampled"][transport] = {"n": n, **sample(child({"kind": "sampled-build", "transport": transport,
                                                                  "n": n}), output)}
    work = {f"{transport} build, N = {n:,} (per request)": {"kind": "traced-build", "transport": transport, "n": n}
            for transport, n in traced.items()}
    work.update({f"raw {name.replace('_', ' ')} (per round trip)": {"kind": "traced-raw", "name": name,
                                                                    "round_trips": round_trips}
                 for name in ("green", "plain", "plain_tcp")})
    for label, spec in work.items():
        counted = count_syscalls(child(spec))
        figures["syscalls"][label] = {name: calls / counted["work"] for name, calls in counted["syscalls"].items()}
    return figures


def profile_lines(figures: dict) -> list[str]:
    """The profile's tables: CPU shares by category and by line, and syscalls per request."""
    sampled = figures["sampled"]
    columns = list(sampled)
    lines = ["| where the build's CPU goes (py-spy, self time) | " + " | ".join(
        f"{transport}, N = {sampled[transport]['n']:,}" for transport in columns) + " |",
        "|---|" + "---|" * len(columns)]
    shares = {transport: {item["what"]: item["share"] for item in sampled[transport]["categories"]}
              for transport in columns}
    for what, *_ in CATEGORIES:
        if any(what in shares[transport] for transport in columns):
            lines.append(f"| {what} | " + " | ".join(f"{shares[transport].get(what, 0) * 100:.1f} %"
                                                      for transport in columns) + " |")
    lines.append("| samples | " + " | ".join(f"{sampled[transport]['samples']:,}" for transport in columns) + " |")
    for transport in columns:
        lines += ["", f"| {transport}: hottest lines (self time) | share | code |", "|---|---|---|"]
        lines += [f"| `{item['where']}` | {item['share'] * 100:.1f} % | `{item['code'].replace('|', '/')}` |"
                  for item in sampled[transport]["lines"]]
    counted = figures["syscalls"]
    names = sorted({name for calls in counted.values() for name in sorted(calls, key=calls.get)[-6:]},
                   key=lambda name: -max(calls.get(name, 0) for calls in counted.values()))
    lines += ["", "| syscalls (`strace -c -f`) | " + " | ".join(counted) + " |", "|---|" + "---|" * len(counted),
              "| all | " + " | ".join(f"{sum(calls.values()):.2f}" for calls in counted.values()) + " |"]
    lines += [f"| {name} | " + " | ".join(f"{calls.get(name, 0):.2f}" for calls in counted.values()) + " |"
              for name in names]
    return lines


PROFILE_TEMPLATE = """## Profile of the build

Recorded by `python tools/bench.py --profile --write` on {date} (load average {loads}). Machine: {machine}.

py-spy samples the process {rate} times a second from outside, so it adds nothing to each Python call (cProfile
does, and inflates small functions); time spent in C (libzmq, the kernel, gevent's loop) is charged to the Python
line that called into it, so "libzmq receive" below includes the syscalls libzmq makes inside a receive. Each
sampled process only imports, makes a network and builds it one join at a time; the imports and the set-up are left
out. Over tcp, libzmq's I/O thread (which does the socket work) has no Python stack and is not sampled: its share
of the CPU is in the "I/O thread" column of the builds table above, and its syscalls are in the last table, which
counts every thread of a process attached for the build (or the round trips) alone.

{tables}
"""


def profile_block(figures: dict) -> str:
    return PROFILE_TEMPLATE.format(date=figures["date"], loads=figures["loads"], machine=figures["machine"],
                                   rate=SAMPLE_RATE, tables="\n".join(profile_lines(figures)))
