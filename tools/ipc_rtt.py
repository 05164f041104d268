"""CPU per request between two processes of one host: tcp loopback against ipc://, one in flight and pipelined.

    python tools/ipc_rtt.py [--count 20000] [--window 16]

A child process binds a ROUTER (the project's transport, as a worker's peer does) and answers every message; this
process sends ``--count`` requests of a typical size (a find_closest and its reply, ~100 bytes) and waits for each
reply (one in flight), then the same with ``--window`` in flight. Both processes' CPU seconds are summed and divided
by the requests: the figure the goal of 60 µs per request between processes is about. Every figure comes from the
same run, on the same machine load, so read the ratios; the machine's load average is printed beside them.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from p2pzmq.transport import Context  # noqa: E402

REQUEST = [b"\x05" + b"r" * 100]
REPLY = [b"\x06" + b"a" * 100]


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def serve(endpoint: str, count: int) -> int:
    """The child: bind ``endpoint``, print it, answer ``count`` messages, then print its CPU seconds."""
    ctx = Context()
    sock = ctx.router()
    try:
        print(sock.bind(endpoint), flush=True)
        started = cpu()
        for _ in range(count):
            route, *_ = sock.recv()
            sock.reply(route, REPLY)
        print(cpu() - started, flush=True)
    finally:
        sock.close()
        ctx.term()
    return 0


def measure(endpoint: str, count: int, window: int) -> dict:
    """Round trips to a child bound at ``endpoint``: wall and CPU (both processes) per request."""
    warm = 200
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", endpoint,
                              "--count", str(count + warm)], stdout=subprocess.PIPE, text=True)
    ctx = Context()
    sock = ctx.router()
    try:
        bound = child.stdout.readline().strip()
        route = sock.route(bound)
        for _ in range(warm):  # the connection comes up, both sides warm
            sock.send_to(route, REQUEST)
            sock.recv(10)
        started, cpu0 = time.perf_counter(), cpu()
        left = count
        while left:
            batch = min(window, left)
            for _ in range(batch):
                sock.send_to(route, REQUEST)
            for _ in range(batch):
                if sock.recv(10) is None:
                    raise SystemExit(f"ipc_rtt.py: no reply from {bound}")
            left -= batch
        wall, own = time.perf_counter() - started, cpu() - cpu0
        theirs = float(child.stdout.readline())
        child.wait(10)
    finally:
        sock.close()
        ctx.term()
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    return {"wall_us": wall / count * 1e6, "cpu_us": (own + theirs) / count * 1e6}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--serve", metavar="ENDPOINT", help=argparse.SUPPRESS)  # the child's part
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.serve, args.count)
    with tempfile.TemporaryDirectory() as folder:
        ipc = f"ipc://{folder}/rtt"
        runs = [(f"{transport}, {window} in flight", endpoint, window)
                for window in (1, args.window) for transport, endpoint in (("tcp", "tcp://127.0.0.1:0"), ("ipc", ipc))]
        results = {label: measure(endpoint, args.count, window) for label, endpoint, window in runs}
    print(f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}; {args.count} requests each")
    base = results["tcp, 1 in flight"]["cpu_us"]
    for label, figures in results.items():
        print(f"{label:22s} {figures['cpu_us']:7.1f} CPU us per request (both processes)  "
              f"{figures['wall_us']:7.1f} wall us  {base / figures['cpu_us']:.2f}x cheaper than tcp, 1 in flight")
    return 0


if __name__ == "__main__":
    sys.exit(main())
