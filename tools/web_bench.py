"""Does the web view cost the network its voice? (docs/DESIGN.md §9, goal: with the page open on 5,000 peers, ``ping``
answers within 200 ms and the build or refresh slows by at most 10 %.)

    python tools/web_bench.py [-n 5000] [--seed 1] [--client browser|poll] [--rounds 1] [--tail 10]

One run, ``rounds`` times each way, alternating: ``serve -n 1 --http``, then over its control socket
``add_peers N-1`` (the build: the control socket is up throughout, the page sees every join) and ``refresh_peers``,
then ``tail`` quiet seconds, once with no page and once with the page open from the start. The page is a real
headless Chromium (Debian's ``/usr/bin/chromium``, Playwright) or, with ``--client poll``, a client that reads the
page's own feeds at the page's own rate (the event stream held open, ``/feed/graph?have=V`` when a read is due and at
most once a second, ``stats`` once a second). A separate process pings the control socket every 50 ms throughout.

Printed: per phase (idle, build, refresh, tail) the pings' p50, p99 and max with the page closed and open, and the
build and refresh wall and CPU seconds (the supervisor's process) with their open/closed ratios. The page-closed
pings are the floor: what one supervisor event loop running the build answers anyway, the page or not.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from web_view import Served, browser, percentile  # noqa: E402

PING_EVERY = 0.05
PHASES = ("idle", "build", "refresh", "tail")
IDLE = 2.0  # seconds of pings before the build


def pinger(endpoint: str, every: float, output: str) -> int:
    """The pinging process: one ``ping`` every ``every`` seconds until stdin closes, a line ``start latency`` (both
    seconds; ``start`` on the system's monotonic clock, which every process shares) per ping to the file ``output``
    (not a pipe: one nobody reads until the end fills and would stop the pings)."""
    import zmq

    ctx = zmq.Context()
    with open(output, "w") as out:
        _ping(ctx, endpoint, every, out)
    return 0


def _ping(ctx, endpoint: str, every: float, out) -> None:
    import zmq

    try:
        while not select.select([sys.stdin], [], [], every)[0]:
            sock = ctx.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
            try:
                start = time.monotonic()
                sock.send(b'{"cmd": "ping"}')
                if not sock.poll(60_000):
                    print(f"{start} 60.0", file=out, flush=True)
                    continue
                sock.recv()
                print(f"{start} {time.monotonic() - start}", file=out, flush=True)
            finally:
                sock.close()
    finally:
        ctx.term()


class Pings:
    """The pinging process for ``endpoint``; :meth:`stop` returns its (start, latency) pairs."""

    def __init__(self, endpoint: str) -> None:
        self.output = tempfile.NamedTemporaryFile("r", prefix="p2pzmq-pings-", suffix=".txt")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "pinger", endpoint,
                                      self.output.name], text=True, stdin=subprocess.PIPE)

    def stop(self) -> list[tuple[float, float]]:
        self.proc.communicate("stop\n", timeout=120)
        with self.output:
            return [tuple(map(float, line.split())) for line in self.output.read().splitlines() if line.strip()]


class Poller:
    """What the page asks of the server, without a browser, at the page's own rate (static/app.js): the event feed
    held open and read, ``/feed/graph?have=V`` when the server says a new read is due and at most once a second,
    ``POST /api/stats`` once a second."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.done = threading.Event()
        self.reads = 0
        self.threads = [threading.Thread(target=target, daemon=True) for target in (self._events, self._graph,
                                                                                     self._stats)]
        for thread in self.threads:
            thread.start()

    def _events(self) -> None:
        with contextlib.suppress(OSError), urllib.request.urlopen(self.url + "feed/events", timeout=30) as feed:
            while not self.done.is_set() and feed.readline():  # ends with the server, as the page's does
                pass

    def _graph(self) -> None:
        version = None
        while not self.done.is_set():
            have = "" if version is None else f"?have={version}"
            with urllib.request.urlopen(self.url + "feed/graph" + have, timeout=600) as answer:
                graph = json.loads(answer.read())
            if not graph.get("unchanged"):
                self.reads += 1
            version = graph["version"]
            self.done.wait(max(1.0, graph["fresh_in"]))

    def _stats(self) -> None:
        while not self.done.wait(1.0):
            request = urllib.request.Request(self.url + "api/stats", b"{}", {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=600) as answer:
                answer.read()

    def close(self) -> None:
        self.done.set()
        for thread in self.threads[1:]:
            thread.join(timeout=60)


@contextlib.contextmanager
def page_open(client: str, served: Served):
    """The page open on ``served``'s network (or nothing for ``client`` None), until the block ends."""
    if client is None:
        yield
    elif client == "poll":
        poller = Poller(served.url)
        try:
            yield
        finally:
            poller.close()
    else:
        with browser() as page:
            page.goto(served.url)
            page.wait_for_function("() => document.querySelector('#legend').textContent.includes('1 peers')")
            yield
            if page.problems:
                raise RuntimeError(f"the page reported errors: {page.problems[:3]}")


def one_round(n: int, seed: int, client: str | None, tail: float) -> dict:
    """Build ``n`` peers with ``add_peers`` and refresh them, ``client``'s page open or not; the figures."""
    served = Served(1, seed).ready()
    try:
        pings = Pings(served.endpoint)
        with page_open(client, served):
            marks = {"idle": time.monotonic()}  # the page loaded: what its loading cost is not counted
            time.sleep(IDLE)
            cpu = served.cpu()
            marks["build"] = time.monotonic()
            reply = served.ask("add_peers", n=n - 1)
            marks["refresh"] = time.monotonic()
            build_cpu = served.cpu() - cpu
            refreshed = served.ask("refresh_peers")
            marks["tail"] = time.monotonic()
            refresh_cpu = served.cpu() - cpu - build_cpu
            time.sleep(tail)
            marks["end"] = time.monotonic()
        samples = pings.stop()
        if not (reply["ok"] and refreshed["ok"]):
            raise RuntimeError(f"a command failed: {reply if not reply['ok'] else refreshed}")
    finally:
        served.close()
    row = {"build": marks["refresh"] - marks["build"], "refresh": marks["tail"] - marks["refresh"],
           "build_cpu": build_cpu, "refresh_cpu": refresh_cpu}
    bounds = [marks[phase] for phase in PHASES] + [marks["end"]]
    for k, phase in enumerate(PHASES):  # a ping belongs to the phase it was sent in
        row["pings_" + phase] = [latency for start, latency in samples if bounds[k] <= start < bounds[k + 1]]
    return row


def summary(latencies: list[float]) -> str:
    if not latencies:
        return "no pings"
    return (f"p50 {percentile(latencies, 0.5) * 1000:5.0f}  p99 {percentile(latencies, 0.99) * 1000:5.0f}  "
            f"max {max(latencies) * 1000:5.0f} ms ({len(latencies)})")


def bench(n: int, seed: int, client: str, rounds: int, tail: float) -> dict:
    rows: dict[str, list[dict]] = {"closed": [], "open": []}
    for k in range(rounds):
        for mode in (("closed", "open") if k % 2 == 0 else ("open", "closed")):  # alternate: drift hits both
            rows[mode].append(one_round(n, seed, client if mode == "open" else None, tail))
            print(f"  round {k + 1} page {mode}: build {rows[mode][-1]['build']:.1f} s, "
                  f"refresh {rows[mode][-1]['refresh']:.1f} s", flush=True)
    print(f"{n} peers (add_peers {n - 1} on serve -n 1, then refresh_peers), seed {seed}, page: {client}, "
          f"{rounds} round(s) each way; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    figures = {}
    for name in ("build", "refresh", "build_cpu", "refresh_cpu"):
        closed = statistics.median(row[name] for row in rows["closed"])
        opened = statistics.median(row[name] for row in rows["open"])
        figures[name] = {"closed": closed, "open": opened, "ratio": opened / closed}
        print(f"  {name:12} closed {closed:8.2f} s  open {opened:8.2f} s  ratio {opened / closed:.3f}"
              f"{'  (goal <= 1.10)' if name in ('build', 'refresh') else ''}")
    for phase in PHASES:
        for mode in ("closed", "open"):
            latencies = [latency for row in rows[mode] for latency in row["pings_" + phase]]
            figures[f"ping_{phase}_{mode}"] = latencies
            floor = "  (floor: no page)" if mode == "closed" else "  (goal: max <= 200 ms)"
            print(f"  ping {phase:8} page {mode:6} {summary(latencies)}{floor if phase != 'idle' else ''}")
    every = {mode: [lat for row in rows[mode] for phase in PHASES for lat in row["pings_" + phase]] for mode in rows}
    print(f"  ping throughout: page closed {summary(every['closed'])}; page open {summary(every['open'])}")
    return figures


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["pinger"]:
        return pinger(argv[1], PING_EVERY, argv[2])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--client", choices=("browser", "poll"), default="browser")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--tail", type=float, default=10.0, help="quiet seconds of pings after the refresh")
    args = parser.parse_args(argv)
    if args.n < 2 or args.rounds < 1:
        parser.error("-n is at least 2 and --rounds at least 1")
    bench(args.n, args.seed, args.client, args.rounds, args.tail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
