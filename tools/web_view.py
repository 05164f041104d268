"""The web view in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright, against a
``p2p-network serve --http`` it starts itself (docs/DESIGN.md §9).

    python tools/web_view.py screenshot [-n 300] [--seed 1] [-o docs/web-view.png]
    python tools/web_view.py voice [-n 5000] [--seed 1] [--tail 15]
    python tools/web_view.py draw [-n 20000] [--layout ring|force]
    python tools/web_view.py read [-n 5000] [--seed 1]

``screenshot`` takes the README's picture. ``draw`` times the page drawing a synthetic graph read of N peers (more
than a run here can build; made by the server's own code) and prints its legend. ``read`` measures, without a
browser, the control socket's ping latency while the server reads the graph. ``voice`` checks that the page never costs the network its voice: in one
run it builds the network and refreshes it with no page open, then again with the page open from the start, pinging
the control socket every 50 ms from the build's end through the refresh and a while after (when the page's
graph reads run); it prints the build and refresh times (wall and the supervisor's CPU seconds), their ratios, and
the pings' p50, p99 and slowest, page closed and open. ``tests/test_browser.py`` drives the page with the same
:class:`Served` and :func:`browser`.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time

import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Served:
    """``p2p-network serve -n N --http 127.0.0.1:0`` on free ports, its control endpoint and page address read from
    its own lines; ``ask`` sends one control request over a plain pyzmq REQ socket."""

    def __init__(self, n: int, seed: int = 1, *extra: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "p2pzmq", "serve", "-n", str(n), "--seed", str(seed),
                                      "--control", "tcp://127.0.0.1:0", "--http", "127.0.0.1:0", *extra],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL)
        self.url = self._line(self.proc.stderr, "Web view at ").split(" at ", 1)[1].strip()
        self.started = time.monotonic()
        self.endpoint: str | None = None
        self.ctx = zmq.Context()

    def _line(self, stream, start: str, timeout: float = 600.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve ended ({self.proc.returncode}): {self.proc.stderr.read()[-2000:]}")
            if select.select([stream], [], [], 0.5)[0]:
                line = stream.readline()
                if line.startswith(start):
                    return line
        raise TimeoutError(f"serve printed no {start!r} within {timeout} s")

    def ready(self) -> "Served":
        """Wait until the network is built and the control socket serves."""
        if self.endpoint is None:
            self.endpoint = self._line(self.proc.stdout, "Network created").rsplit(" ", 1)[1].strip()
        return self

    def ask(self, cmd: str, timeout: float = 600.0, **arguments) -> dict:
        sock = self.ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.ready().endpoint)
        try:
            sock.send(json.dumps({"cmd": cmd, **arguments}).encode())
            if not sock.poll(int(timeout * 1000)):
                raise TimeoutError(f"{cmd}: no reply within {timeout} s")
            return json.loads(sock.recv())
        finally:
            sock.close()

    def cpu(self) -> float:
        """CPU seconds the supervisor's process has used (user and system): what the page costs the network itself,
        whatever else the machine runs."""
        import psutil

        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError, TimeoutError, RuntimeError):
            if self.proc.poll() is None and self.endpoint is not None:
                self.ask("die", timeout=30)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.ctx.term()


@contextlib.contextmanager
def browser(width: int = 1280, height: int = 800):
    """A page of a fresh headless Chromium (its own profile directory), with ``page.problems``: the console errors
    and uncaught exceptions seen so far."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="p2pzmq-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": width, "height": height})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.problems = []
            page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
            page.on("pageerror", lambda error: page.problems.append(str(error)))
            yield page
        finally:
            context.close()


def graph_image(page):
    """(a screenshot of the graph area as an RGB image, its PNG bytes)."""
    from PIL import Image
    import io

    shot = page.locator("#graph").screenshot()
    return Image.open(io.BytesIO(shot)).convert("RGB"), shot


def drawn_pixels(page) -> tuple[int, bytes]:
    """(pixels of the graph area that differ from its background, the screenshot's bytes)."""
    image, shot = graph_image(page)
    background = image.getpixel((0, 0))
    return sum(1 for pixel in image.get_flattened_data() if pixel != background), shot


def _pixels(page, test) -> int:
    image, _ = graph_image(page)
    return sum(1 for pixel in image.get_flattened_data() if test(*pixel))


def amber_pixels(page) -> int:
    """Pixels of the graph area in the amber the page draws a lookup's path with (#ffb300, give or take blending)."""
    return _pixels(page, lambda r, g, b: r > 200 and 140 < g < 210 and b < 80)


def red_pixels(page) -> int:
    """Pixels of the graph area in the red the page draws a clicked peer's contacts with (#ef5350, give or take
    blending)."""
    return _pixels(page, lambda r, g, b: r > 200 and 60 < g < 110 and 60 < b < 110)


class _Overlay:
    """``n`` peers with random ids, each with itself and about ``entries`` random others in its table (half to one
    and a half times as many): the source of a synthetic
    graph read (what ``Network.entries`` answers), for drawing more peers than one test run can build."""

    def __init__(self, n: int, entries: int, seed: int) -> None:
        import random

        rng = random.Random(seed)
        self.ids = sorted({rng.getrandbits(160) for _ in range(n)}, reverse=True)
        self.tables = [sorted({peer_id, *rng.sample(self.ids, rng.randint(entries // 2, 3 * entries // 2))},
                              reverse=True) for peer_id in self.ids]

    def entries(self, slice_seconds: float):
        return self.ids, self.tables, [{"alive": True, "host": "inproc"} for _ in self.ids], 0.0


def synthetic_graph(n: int, entries: int = 20, seed: int = 1) -> bytes:
    """The body of ``/feed/graph`` for a synthetic overlay of ``n`` peers, made by the server's own code
    (:class:`p2pzmq.web.feed.Snapshots`: the same thinning, the same fields)."""
    from p2pzmq.web.feed import Snapshots

    return Snapshots(_Overlay(n, entries, seed)).graph()


def draw(page, served: "Served", n: int, layout: str = "ring") -> dict:
    """Load the page of ``served`` with its graph reads answered by :func:`synthetic_graph` of ``n`` peers; wait
    until it is drawn in ``layout``; return how long that took (seconds), the legend, and the pixels drawn."""
    body = synthetic_graph(n)
    page.route("**/feed/graph*", lambda route: route.fulfill(status=200, content_type="application/json", body=body))
    started = time.perf_counter()
    page.goto(served.url)
    page.wait_for_function(f"() => document.querySelector('#legend').textContent.includes('{n} peers')",
                           timeout=120_000)
    if layout != "ring":
        page.select_option("#layout", layout)
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    seconds = time.perf_counter() - started
    graph = json.loads(body)
    return {"seconds": seconds, "legend": page.inner_text("#legend"), "drawn": drawn_pixels(page)[0],
            "edges_shown": len(graph["edges"]) // 2, "edges_total": graph["edges_total"], "per_peer": graph["per_peer"]}


def screenshot(n: int, seed: int, output: str) -> None:
    served = Served(n, seed)
    try:
        served.ready()
        with browser() as page:
            page.goto(served.url)
            page.wait_for_function("() => document.querySelector('#legend').textContent.includes('peers')")
            page.click("button[data-cmd=net_status]")
            page.wait_for_function("() => document.querySelector('#reply').textContent.includes('connectivity')",
                                   timeout=120_000)
            page.wait_for_timeout(1500)  # a few seconds of charts
            page.screenshot(path=output)
    finally:
        served.close()
    print(f"wrote {output}")


def percentile(values: list[float], share: float) -> float:
    """The value ``share`` of the way up the sorted ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def voice(n: int, seed: int, tail: float = 15.0) -> None:
    """Build and refresh with the page closed, then open; print the figures of both and their ratios.

    Pings go every 50 ms from the end of the build through the refresh and ``tail`` seconds after it: with the
    page open, its graph reads run when the build and the refresh let go of the peers, so right after each."""
    rows = {}
    for mode in ("closed", "open"):
        served = Served(n, seed)
        try:
            with contextlib.ExitStack() as stack:
                if mode == "open":
                    page = stack.enter_context(browser())
                    page.goto(served.url)  # open during the build: it watches the peers join
                served.ready()
                build = served.ask("stats")["result"]["seconds"]["create"]
                build_cpu = served.cpu()
                pings: list[float] = []
                done = threading.Event()

                def pinger() -> None:
                    while not done.is_set():
                        started = time.perf_counter()
                        served.ask("ping", timeout=60)
                        pings.append(time.perf_counter() - started)
                        done.wait(0.05)
                thread = threading.Thread(target=pinger)
                thread.start()
                try:
                    started = time.perf_counter()
                    reply = served.ask("refresh_peers")
                    refresh = time.perf_counter() - started
                    refresh_cpu = served.cpu() - build_cpu
                    done.wait(tail)
                finally:
                    done.set()
                    thread.join()
                if mode == "open" and page.problems:
                    raise RuntimeError(f"the page reported errors: {page.problems[:3]}")
            assert reply["ok"], reply
            rows[mode] = {"build": build, "refresh": refresh, "build_cpu": build_cpu, "refresh_cpu": refresh_cpu,
                          "ping_p50": percentile(pings, 0.5), "ping_p99": percentile(pings, 0.99),
                          "ping_max": max(pings), "pings": len(pings)}
        finally:
            served.close()
    closed, opened = rows["closed"], rows["open"]
    print(f"{n} peers, seed {seed}: page closed vs open in the same run")
    for name in ("build", "refresh", "build_cpu", "refresh_cpu"):
        print(f"  {name:12} {closed[name]:8.2f} s  {opened[name]:8.2f} s  ratio {opened[name] / closed[name]:.3f}")
    for mode, row in rows.items():
        print(f"  ping, page {mode:6}: p50 {row['ping_p50'] * 1000:.0f} ms, p99 {row['ping_p99'] * 1000:.0f} ms, "
              f"max {row['ping_max'] * 1000:.0f} ms ({row['pings']} pings from the build's end through the refresh "
              f"and {tail:g} s after)")
    print(json.dumps(rows))


def read(n: int, seed: int, reads: int = 3) -> dict:
    """Ping the control socket every 20 ms while nothing else runs, then while ``/feed/graph`` is read ``reads``
    times in a row (as pages would; the first one reads the tables, the others get it until a new read is due);
    print the read times and each phase's ping p50, p99 and slowest. No browser: what a graph read costs the
    control socket's voice, alone."""
    import urllib.request

    served = Served(n, seed).ready()
    pings: dict[str, list[float]] = {"quiet": [], "reading": []}
    phase = ["quiet"]
    done = threading.Event()

    def pinger() -> None:
        while not done.is_set():
            started = time.perf_counter()
            served.ask("ping", timeout=120)
            pings[phase[0]].append(time.perf_counter() - started)
            done.wait(0.02)
    thread = threading.Thread(target=pinger)
    thread.start()
    try:
        time.sleep(2)
        phase[0] = "reading"
        answers = []
        for _ in range(reads):
            started = time.perf_counter()
            graph = json.loads(urllib.request.urlopen(served.url + "feed/graph", timeout=600).read())
            answers.append((time.perf_counter() - started, graph.get("version"), graph.get("read_seconds")))
        deadline = time.monotonic() + 10
        while len(pings["reading"]) < 5 and time.monotonic() < deadline:  # a small network reads in no time
            time.sleep(0.02)
    finally:
        done.set()
        thread.join()
        served.close()
    print(f"{n} peers, seed {seed}: /feed/graph read {reads} times in a row while pinging every 20 ms")
    for k, (seconds, version, cost) in enumerate(answers):
        print(f"  read {k}: {seconds:.2f} s (version {version}, its read cost {cost} s)")
    for name, values in pings.items():
        print(f"  ping {name:8}: p50 {percentile(values, 0.5) * 1000:.1f} ms, p99 {percentile(values, 0.99) * 1000:.1f} "
              f"ms, max {max(values) * 1000:.1f} ms ({len(values)} pings)")
    return {"reads": answers, "pings": pings}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    shot = sub.add_parser("screenshot")
    shot.add_argument("-n", type=int, default=300)
    shot.add_argument("--seed", type=int, default=1)
    shot.add_argument("-o", "--output", default=os.path.join(ROOT, "docs", "web-view.png"))
    loud = sub.add_parser("voice")
    loud.add_argument("-n", type=int, default=5000)
    loud.add_argument("--seed", type=int, default=1)
    loud.add_argument("--tail", type=float, default=15.0, help="seconds of pings after the refresh (default 15)")
    reading = sub.add_parser("read")
    reading.add_argument("-n", type=int, default=5000)
    reading.add_argument("--seed", type=int, default=1)
    big = sub.add_parser("draw")
    big.add_argument("-n", type=int, default=20_000)
    big.add_argument("--layout", choices=("ring", "force"), default="ring")
    args = parser.parse_args(argv)
    if args.what == "screenshot":
        screenshot(args.n, args.seed, args.output)
    elif args.what == "read":
        read(args.n, args.seed)
    elif args.what == "draw":
        served = Served(8, 1).ready()
        try:
            with browser() as page:
                drawn = draw(page, served, args.n, args.layout)
        finally:
            served.close()
        print(f"{args.n} peers drawn ({args.layout}) in {drawn['seconds']:.1f} s: {drawn['legend']}")
    else:
        voice(args.n, args.seed, args.tail)
    return 0


if __name__ == "__main__":
    sys.exit(main())
