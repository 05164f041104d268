#!/usr/bin/env python
"""The results of simulated time (docs/RESULTS.md): lookup latency and success measured on the virtual clock,
written by this tool, never typed.

Every figure comes from networks built here, one process, inproc, one join at a time, on the network's clock with
a latency model, and from lookups between seeded random pairs of peers through ``Network.lookup``: Kademlia's
iterative lookup (its ``seconds`` from start to end, ``first_seen``, rounds, requests, and whether it found the
target) and the original's greedy walk (the sum of its round trips). Each request of such a lookup costs the
model's round trip from the lookup's source (docs/DESIGN.md §12).

The work is cut into *points*: one network built, and what is measured on it. Each point runs in a child process
(its CPU seconds are the child's, its load average the box's when it started) and its figures go into a cache
(``docs/results.json`` by default) the moment it is done, so a run can be stopped, resumed and extended: a point
already in the cache is never run again (``--rerun`` forgets the points it names). ``--write`` runs the points
missing from the plan, within ``--budget`` CPU seconds, and writes docs/RESULTS.md from the cache; a point not
measured yet is shown as such.

    python tools/simresults.py --write                          # the default plan
    python tools/simresults.py --write --sizes 1000 2000        # a smaller plan, the same cache
    python tools/simresults.py --write --budget 600             # stop starting points after 600 CPU s
    python tools/simresults.py --quick --out - --cache /tmp/r.json   # a few seconds, for the test suite
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import datetime
import json
import math
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from p2pzmq import Network, netmodel, simtime  # noqa: E402
from p2pzmq.config import Config  # noqa: E402
from p2pzmq.errors import UsageError  # noqa: E402

MODELS = ("constant:50ms", "lognormal:50ms:0.5")
ALPHAS = (1, 2, 3, 5)
KS = (8, 20)
BUILD_ALPHA = Config.alpha
LOSSES = (0.01, 0.02, 0.05, 0.10)
LOSS_MODEL = "constant:50ms"
CHURN_MEDIANS = ("5m", "30m", "2h", "8h")
#: Published figures the section compares with: (who, year, title, the figure, its low and high in ms).
MAINLINE = (("Crosby and Wallach", 2007, "An Analysis of BitTorrent's Two Kademlia-Based DHTs",
             "median lookup times of over a minute", 60_000, None),
            ("Jimenez, Osmani and Knutsson", 2011, "Sub-second lookups on a large-scale Kademlia-based overlay",
             "median latencies between 100 and 200 ms after their fixes", 100, 200))


# -- the points ------------------------------------------------------------------------------------------------------


def network(point: dict, protocol: str, loss: float = 0.0, **settings) -> Network:
    config = Config(seed=point["seed"], protocol=protocol, latency=point["model"], loss=loss,
                    network_clock=point.get("clock", "virtual"), **settings)
    return Network(config)


def pairs(net: Network, count: int, seed: int) -> list[tuple[int, int]]:
    import random
    picker = random.Random(f"simresults-pairs:{seed}")
    ids = sorted(peer.id for peer in net.peers)
    return [tuple(picker.sample(ids, 2)) for _ in range(count)]


@contextlib.contextmanager
def lookup_alpha(net: Network, alpha: int):
    """Lookups driven with ``alpha`` requests a round on the tables as they are (built with the network's own α):
    only the driven lookups' setting changes, no table and no peer."""
    router = net._router  # the one unit whose config the driven lookup reads
    kept = router.config
    router.config = dataclasses.replace(kept, alpha=alpha)
    try:
        yield
    finally:
        router.config = kept


def brief(summary: dict) -> dict:
    return {key: summary[key] for key in ("count", "mean", "p50", "p90", "p99", "max")}


def kademlia_lookups(net: Network, count: int, seed: int) -> dict:
    latency, first_seen, rounds, requests = [], [], [], []
    found = 0
    for source, target in pairs(net, count, seed):
        lookup = net.lookup(source, target)["lookup"]
        rounds.append(len(lookup["rounds"]))
        requests.append(lookup["requests"])
        if lookup["found"]:
            found += 1
            latency.append(lookup["seconds"])
        if lookup["first_seen"] is not None:
            first_seen.append(lookup["first_seen"])
    return {"lookups": count, "found": found / count, "rounds": sum(rounds) / count,
            "requests": sum(requests) / count, "latency": brief(netmodel.summarize(latency)),
            "first_seen": brief(netmodel.summarize(first_seen))}


def walks(net: Network, count: int, seed: int) -> dict:
    seconds, hops = [], []
    for source, target in pairs(net, count, seed):
        route = net.lookup(source, target)["route"]
        if route["reached"]:
            seconds.append(route["seconds"])
            hops.append(route["hops"])
    return {"lookups": count, "found": len(seconds) / count, "hops": sum(hops) / len(hops) if hops else None,
            "latency": brief(netmodel.summarize(seconds))}


def run_kademlia(point: dict) -> dict:
    with network(point, "kademlia", k=point["k"], alpha=point["build_alpha"]) as net:
        built = net.create(point["n"])
        by_alpha = {}
        for alpha in point["alphas"]:
            with lookup_alpha(net, alpha):
                by_alpha[str(alpha)] = kademlia_lookups(net, point["lookups"], point["seed"])
    return {"build_seconds": built["seconds"], "alphas": by_alpha}


def run_original(point: dict) -> dict:
    with network(point, "original") as net:
        built = net.create(point["n"])
        return {"build_seconds": built["seconds"], "walk": walks(net, point["lookups"], point["seed"])}


def run_loss(point: dict) -> dict:
    protocol = point["protocol"]
    with network(point, protocol, point["loss"]) as net:
        built = net.create(point["n"])
        figures = (kademlia_lookups if protocol == "kademlia" else walks)(net, point["lookups"], point["seed"])
        return {"build_seconds": built["seconds"], **figures, "client_timeout": net.config.client_timeout}


def run_churn(point: dict) -> dict:
    mean = netmodel.parse_duration(point["median"], "session", netmodel.SESSION_UNITS) / math.log(2)
    with network(point, "kademlia") as net:
        built = net.create(point["n"])
        result = net.churn(duration=point["hours"] * 3600, session=f"exp:{mean:.3f}s",
                           arrival=f"poisson:{point['n'] / mean:.9f}", crash_fraction=point["crash_fraction"],
                           seed=point["seed"], lookups=point["rate"], interval=point["interval"], wait=True)
        return {"build_seconds": built["seconds"], "joined": result["joined"],
                "departed": result["left"] + result["killed"], "intervals": result["intervals"],
                "client_timeout": net.config.client_timeout}


RUNNERS = {"kademlia": run_kademlia, "original": run_original, "loss": run_loss, "churn": run_churn}


def key_of(point: dict) -> str:
    return json.dumps(point, sort_keys=True, separators=(",", ":"))


def loss_refusal(clock: str) -> str | None:
    """Why ``--loss`` cannot run on ``clock`` in this build (the package's own check), or None."""
    try:
        simtime.check_options(netmodel.parse_latency(LOSS_MODEL), 0.0, LOSSES[0], clock, False)
    except UsageError as refused:
        return str(refused)
    return None


def plan(args) -> list[dict]:
    """Every point of the section, smallest first, so that a run stopped early has a whole smaller section."""
    base = {"seed": args.seed, "lookups": args.lookups}
    points = []
    for n in args.sizes:
        for model in MODELS:
            for k in KS:
                if n > args.full_grid_up_to and k != Config.k:
                    continue
                points.append({"kind": "kademlia", **base, "model": model, "n": n, "k": k,
                               "build_alpha": BUILD_ALPHA, "alphas": list(ALPHAS)})
            points.append({"kind": "original", **base, "model": model, "n": n})
        if n == args.sizes[0]:  # does the build's α matter? one size, one model: builds with the lookup's α
            points += [{"kind": "kademlia", **base, "model": MODELS[0], "n": n, "k": Config.k, "build_alpha": alpha,
                        "alphas": [alpha]} for alpha in ALPHAS if alpha != BUILD_ALPHA]
        if n == args.sizes[0]:
            points += churn_points(args)
            points += loss_points(args)
    return points


def loss_points(args) -> list[dict]:
    clock = "virtual" if loss_refusal("virtual") is None else "real"
    if clock == "real" and not args.real_loss:
        return []
    n = args.sizes[0] if clock == "virtual" else args.real_loss_peers
    return [{"kind": "loss", "seed": args.seed, "lookups": args.lookups if clock == "virtual" else args.real_lookups,
             "model": LOSS_MODEL, "n": n, "protocol": protocol, "loss": loss, "clock": clock}
            for loss in (0.0, *LOSSES) for protocol in ("kademlia", "original")]


def churn_points(args) -> list[dict]:
    return [{"kind": "churn", "seed": args.seed, "model": LOSS_MODEL, "n": args.churn_peers, "median": median,
             "hours": args.churn_hours, "rate": args.churn_rate, "interval": args.churn_interval,
             "crash_fraction": 0.5} for median in args.churn_medians]


# -- running points, the cache ---------------------------------------------------------------------------------------


def load(path: str) -> dict:
    if os.path.exists(path):
        with open(path, encoding="utf-8") as cached:
            return json.load(cached)
    return {"points": {}}


def save(path: str, cache: dict) -> None:
    partial = path + ".part"
    with open(partial, "w", encoding="utf-8") as out:
        json.dump(cache, out, indent=1, sort_keys=True)
        out.write("\n")
    os.replace(partial, path)


def commit() -> str:
    done = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def run_point(point: dict, timeout: float) -> dict:
    """Run ``point`` in a child process at this process's priority; its figures with what it cost (the child's own
    CPU seconds, all its threads, user + system)."""
    load_before = os.getloadavg()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--point", key_of(point)],
                          capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"point {key_of(point)} failed: {done.stderr.strip().splitlines()[-1:]}")
    answer = json.loads(done.stdout)
    return {"figures": answer["figures"], "cpu_s": answer["cpu_s"], "wall_s": round(wall, 2),
            "load": [round(value, 2) for value in load_before],
            "at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit()}


def one_point(point: dict) -> dict:
    """The figures of ``point`` measured in this process, and the CPU seconds the process has used."""
    figures = RUNNERS[point["kind"]](point)
    used = resource.getrusage(resource.RUSAGE_SELF)
    return {"figures": figures, "cpu_s": round(used.ru_utime + used.ru_stime, 2)}


def measure(points: list[dict], cache: dict, cache_path: str, budget: float, timeout: float, jobs: int,
            log) -> float:
    """Run the points missing from ``cache``, in order, ``jobs`` at a time, starting none once ``budget`` CPU
    seconds are spent; each saved as soon as it is done. The CPU spent."""
    todo = [point for point in points if key_of(point) not in cache["points"]]
    spent = 0.0
    running: dict = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        while todo or running:
            while todo and len(running) < jobs and spent < budget:
                point = todo.pop(0)
                running[pool.submit(run_point, point, timeout)] = point
            if not running:
                break
            finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                point = running.pop(future)
                key = key_of(point)
                try:
                    measured = future.result()
                except (RuntimeError, subprocess.TimeoutExpired) as failed:
                    log(f"{key}: {failed}")
                    cache.setdefault("failed", {})[key] = str(failed)[-300:]
                    save(cache_path, cache)
                    continue
                spent += measured["cpu_s"]
                cache["points"][key] = measured
                cache.get("failed", {}).pop(key, None)
                save(cache_path, cache)
                log(f"{key}: {measured['cpu_s']:.1f} CPU s, {measured['wall_s']:.1f} s wall, load "
                    f"{measured['load']}")
    for point in todo:
        log(f"budget of {budget:g} CPU s spent: {key_of(point)} not run")
    return spent


# -- writing the section ---------------------------------------------------------------------------------------------


def ms(value) -> str:
    return "–" if value is None else f"{value:,.0f}"


def pct(share) -> str:
    return "–" if share is None else f"{100 * share:.0f}"


def fit(xs: list[float], ys: list[float]) -> tuple[float, float] | None:
    """Least squares ``y = a + b x``: (a, b); None below two distinct xs."""
    if len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


class Figures:
    """The cache seen through the plan: ``get(point)`` gives a point's figures or None."""

    def __init__(self, cache: dict) -> None:
        self.cache = cache

    def get(self, point: dict):
        measured = self.cache["points"].get(key_of(point))
        return None if measured is None else measured["figures"]

    def cost(self, point: dict):
        return self.cache["points"].get(key_of(point))

    def both(self, first, second) -> tuple[dict, dict] | None:
        """The figures of two points to compare, or None when either is not planned (None) or not measured yet."""
        a, b = (point and self.get(point) for point in (first, second))
        return (a, b) if a and b else None


def kademlia_point(points, model, n, k, build_alpha=BUILD_ALPHA):
    return next((p for p in points if p["kind"] == "kademlia" and p["model"] == model and p["n"] == n
                 and p["k"] == k and p["build_alpha"] == build_alpha), None)


def original_point(points, model, n):
    return next((p for p in points if p["kind"] == "original" and p["model"] == model and p["n"] == n), None)


def section_sizes(points, figures: Figures, sizes) -> list[str]:
    first = next(p for p in points if p["kind"] == "kademlia")
    lines = ["## Kademlia lookup latency against N, α and k", "",
             f"{first['lookups']} lookups between seeded random pairs per row, the same pairs for every α of one "
             f"network; every network built with α = {BUILD_ALPHA} (the default) and k as shown, then looked up "
             "with the α of the row (the tables stay the build's: only the lookup's α changes; the next section "
             "checks what building with that α would change). Latency in ms, from the lookup's start to its end "
             "(its k closest have answered), over the lookups that found the target; `first seen`: until a reply "
             "first named the target; rounds and requests: means per lookup. Beside each size, the original's "
             "greedy walk on a network of the same N and model: `rounds` is its mean hops (one peer asked at a time, "
             "the source first, whose own answer costs nothing), its latency the sum of its round trips over the "
             "walks that arrive.", ""]
    for model in MODELS:
        lines += [f"### `{model}`", "",
                  "| N | log₂ N | protocol | k | α | found % | rounds | requests | mean | p50 | p90 | p99 | "
                  "first seen p50 |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for n in sizes:
            for k in KS:
                point = kademlia_point(points, model, n, k)
                if point is None:
                    continue
                measured = figures.get(point)
                for alpha in ALPHAS:
                    row = None if measured is None else measured["alphas"][str(alpha)]
                    if row is None:
                        lines.append(f"| {n:,} | {math.log2(n):.1f} | kademlia | {k} | {alpha} | not measured yet "
                                     "| | | | | | | |")
                        continue
                    lat = row["latency"]
                    lines.append(f"| {n:,} | {math.log2(n):.1f} | kademlia | {k} | {alpha} | {pct(row['found'])} | "
                                 f"{row['rounds']:.2f} | {row['requests']:.1f} | {ms(lat['mean'])} | "
                                 f"{ms(lat['p50'])} | {ms(lat['p90'])} | {ms(lat['p99'])} | "
                                 f"{ms(row['first_seen']['p50'])} |")
            point = original_point(points, model, n)
            measured = point and figures.get(point)
            if measured:
                walk = measured["walk"]
                lat = walk["latency"]
                hops = "–" if walk["hops"] is None else f"{walk['hops']:.2f}"
                lines.append(f"| {n:,} | {math.log2(n):.1f} | original (greedy walk) | – | – | {pct(walk['found'])} | "
                             f"{hops} | – | {ms(lat['mean'])} | {ms(lat['p50'])} | {ms(lat['p90'])} | "
                             f"{ms(lat['p99'])} | – |")
            elif point:
                lines.append(f"| {n:,} | {math.log2(n):.1f} | original (greedy walk) | – | – | not measured yet | "
                             "| | | | | | | |")
        lines.append("")
    return lines


def series(points, figures: Figures, model, k, alpha):
    """[(n, figures of α)] over the sizes measured, for the default build α."""
    out = []
    for point in points:
        if (point["kind"] == "kademlia" and point["model"] == model and point["k"] == k
                and point["build_alpha"] == BUILD_ALPHA):
            measured = figures.get(point)
            if measured:
                out.append((point["n"], measured["alphas"][str(alpha)]))
    return sorted(out)


def section_slopes(points, figures: Figures) -> tuple[list[str], dict]:
    lines = ["## Rounds against log₂ N", "",
             "A least-squares line `rounds = a + b · log₂ N` through the mean rounds of each series above (the sizes "
             "measured), its slope b (rounds added per doubling of N), and the mean rounds at the largest N measured "
             "divided by its log₂ N.", "",
             "| model | k | α | sizes | a | b (per doubling) | rounds / log₂ N at the largest N |",
             "|---|---|---|---|---|---|---|"]
    fits = {}
    for model in MODELS:
        for k in KS:
            for alpha in ALPHAS:
                rows = series(points, figures, model, k, alpha)
                if not rows:
                    continue
                line = fit([math.log2(n) for n, _ in rows], [row["rounds"] for _, row in rows])
                largest, last = rows[-1]
                ratio = last["rounds"] / math.log2(largest)
                fits[(model, k, alpha)] = (line, largest, last, ratio)
                sizes = ", ".join(f"{n:,}" for n, _ in rows)
                a, b = ("–", "–") if line is None else (f"{line[0]:.2f}", f"{line[1]:.3f}")
                lines.append(f"| `{model}` | {k} | {alpha} | {sizes} | {a} | {b} | {ratio:.2f} |")
    slopes = [line[1] for line, *_ in fits.values() if line is not None]
    if slopes:
        lines += ["", f"Over {len(slopes)} series the slope runs from {min(slopes):.3f} to {max(slopes):.3f} rounds "
                  f"per doubling of N, and every series stays "
                  f"{'below' if max(r for *_, r in fits.values()) < 1 else 'at or above'} one round per bit of N "
                  f"(rounds / log₂ N from {min(r for *_, r in fits.values()):.2f} to "
                  f"{max(r for *_, r in fits.values()):.2f}): an answer carries k contacts, so a round gains "
                  "several bits of the target's id at once."]
    return lines + [""], fits


def section_tradeoffs(points, figures: Figures, sizes) -> list[str]:
    """What α, k, the build's α and the model change, computed from the rows above."""
    lines = ["## What α, k and the model trade", ""]
    default_k = Config.k
    n = max((p["n"] for p in points if p["kind"] == "kademlia" and figures.get(p)), default=None)
    if n is None:
        return lines + ["Nothing measured yet.", ""]
    for model in MODELS:
        point = kademlia_point(points, model, n, default_k)
        measured = point and figures.get(point)
        if not measured:
            continue
        by = measured["alphas"]
        low, high = by[str(min(ALPHAS))], by[str(max(ALPHAS))]
        if low["latency"]["p50"] and high["latency"]["p50"]:
            lines.append(f"- `{model}`, N = {n:,}, k = {default_k}: α = {max(ALPHAS)} against α = {min(ALPHAS)} sends "
                         f"{high['requests'] / low['requests']:.2f}× the requests ({low['requests']:.1f} → "
                         f"{high['requests']:.1f}) for {high['latency']['p50'] / low['latency']['p50']:.2f}× the "
                         f"median latency ({ms(low['latency']['p50'])} → {ms(high['latency']['p50'])} ms) and "
                         f"{high['latency']['p99'] / low['latency']['p99']:.2f}× the p99 "
                         f"({ms(low['latency']['p99'])} → {ms(high['latency']['p99'])} ms).")
    for model in MODELS:
        small, large = (kademlia_point(points, model, n, k) for k in KS)
        if (compared := figures.both(small, large)):
            a, b = compared
            x, y = a["alphas"][str(BUILD_ALPHA)], b["alphas"][str(BUILD_ALPHA)]
            lines.append(f"- `{model}`, N = {n:,}, α = {BUILD_ALPHA}: k = {KS[0]} against k = {KS[1]}: "
                         f"{x['rounds']:.2f} against {y['rounds']:.2f} rounds, {x['requests']:.1f} against "
                         f"{y['requests']:.1f} requests, median {ms(x['latency']['p50'])} against "
                         f"{ms(y['latency']['p50'])} ms, found {pct(x['found'])} against {pct(y['found'])} %.")
    first = sizes[0]
    for alpha in ALPHAS:
        if alpha == BUILD_ALPHA:
            continue
        own = kademlia_point(points, MODELS[0], first, default_k, alpha)
        shared = kademlia_point(points, MODELS[0], first, default_k)
        if (compared := figures.both(own, shared)):
            a, b = compared
            x, y = a["alphas"][str(alpha)], b["alphas"][str(alpha)]
            lines.append(f"- The build's α (`{MODELS[0]}`, N = {first:,}, k = {default_k}, lookups with α = {alpha}): "
                         f"tables built with α = {alpha} give {x['rounds']:.2f} rounds, median "
                         f"{ms(x['latency']['p50'])} ms, found {pct(x['found'])} %; tables built with α = "
                         f"{BUILD_ALPHA} give {y['rounds']:.2f} rounds, median {ms(y['latency']['p50'])} ms, found "
                         f"{pct(y['found'])} % (build: {a['build_seconds']:,.0f} against {b['build_seconds']:,.0f} "
                         "simulated s).")
    const, logn = (kademlia_point(points, model, n, default_k) for model in MODELS)
    if (compared := figures.both(const, logn)):
        a, b = compared
        x, y = a["alphas"][str(BUILD_ALPHA)], b["alphas"][str(BUILD_ALPHA)]
        lines.append(f"- The model (N = {n:,}, k = {default_k}, α = {BUILD_ALPHA}): `{MODELS[1]}` against "
                     f"`{MODELS[0]}`: median {ms(y['latency']['p50'])} against {ms(x['latency']['p50'])} ms "
                     f"({y['latency']['p50'] / x['latency']['p50']:.2f}×), p99 {ms(y['latency']['p99'])} against "
                     f"{ms(x['latency']['p99'])} ms ({y['latency']['p99'] / x['latency']['p99']:.2f}×), for "
                     f"{y['rounds']:.2f} against {x['rounds']:.2f} rounds: a round waits for the slowest of its "
                     "requests, so a spread of delays stretches every round, most in the tail.")
    for model in MODELS:
        kad, orig = kademlia_point(points, model, n, default_k), original_point(points, model, n)
        if (compared := figures.both(kad, orig)) and compared[1]["walk"]["latency"]["p50"]:
            a, b = compared
            x, walk = a["alphas"][str(BUILD_ALPHA)], b["walk"]
            lines.append(f"- The original beside Kademlia (`{model}`, N = {n:,}): its greedy walk's median "
                         f"{ms(walk['latency']['p50'])} ms ({walk['hops']:.2f} hops, arriving in "
                         f"{pct(walk['found'])} % of the walks) is "
                         f"{walk['latency']['p50'] / x['latency']['p50']:.2f}× Kademlia's "
                         f"{ms(x['latency']['p50'])} ms at α = {BUILD_ALPHA}, k = {default_k} (found "
                         f"{pct(x['found'])} %).")
    return lines + [""]


def section_loss(points, figures: Figures) -> list[str]:
    mine = [p for p in points if p["kind"] == "loss"]
    if not mine:
        return ["## Loss", "", f"Not measured: this build refuses `--loss` on the virtual clock (“{loss_refusal('virtual')}”), "
                "and this run was not asked to measure it on the real clock (`--real-loss`).", ""]
    clock, n = mine[0]["clock"], mine[0]["n"]
    lines = ["## Loss", ""]
    refused = loss_refusal("virtual")
    if clock == "real":
        lines += [f"On the **real clock** (wall seconds), N = {n}: this build refuses `--loss` on the virtual clock "
                  f"(“{refused}”), so the lossy networks are built and looked up in real time at a small N, and "
                  "their figures are wall seconds of a shared machine, not reproducible.", ""]
    measured = [figures.get(p) for p in mine]
    timeout = next((m["client_timeout"] for m in measured if m), Config.client_timeout)
    lines += [f"N = {n}, `{LOSS_MODEL}`, every peer message of the build and every request of the lookups lost with "
              f"probability P; a lost request costs the client timeout ({timeout:g} s) and fails: Kademlia asks "
              f"others, a greedy walk stops. {mine[0]['lookups']} lookups per row; Kademlia with k = {Config.k}, "
              f"α = {Config.alpha}; ms, over the lookups that found the target.", "",
              "| loss | protocol | build s | found % | rounds | requests | mean | p50 | p90 | p99 |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for point, row in zip(mine, measured):
        head = f"| {100 * point['loss']:g} % | {point['protocol']} |"
        if row is None:
            lines.append(f"{head} not measured yet | | | | | | | |")
            continue
        lat = row["latency"]
        rounds = row.get("rounds", row.get("hops"))
        rounds = "–" if rounds is None else f"{rounds:.2f}"
        requests = f"{row['requests']:.1f}" if "requests" in row else rounds
        lines.append(f"{head} {row['build_seconds']:,.0f} | {pct(row['found'])} | {rounds} | {requests} | "
                     f"{ms(lat['mean'])} | {ms(lat['p50'])} | {ms(lat['p90'])} | {ms(lat['p99'])} |")
    lossless = {p["protocol"]: m for p, m in zip(mine, measured) if m and p["loss"] == 0}
    worst = {p["protocol"]: m for p, m in zip(mine, measured) if m and p["loss"] == max(LOSSES)}
    for protocol in ("kademlia", "original"):
        a, b = lossless.get(protocol), worst.get(protocol)
        if a and b and a["latency"]["p50"] and b["latency"]["p50"]:
            lines += ["", f"- {protocol}: at {100 * max(LOSSES):g} % loss {pct(b['found'])} % found against "
                      f"{pct(a['found'])} % without; median {ms(b['latency']['p50'])} against "
                      f"{ms(a['latency']['p50'])} ms, p99 {ms(b['latency']['p99'])} against "
                      f"{ms(a['latency']['p99'])} ms."]
    return lines + [""]


def section_churn(points, figures: Figures) -> list[str]:
    mine = [p for p in points if p["kind"] == "churn"]
    if not mine:
        return []
    first = mine[0]
    measured = [figures.get(p) for p in mine]
    timeout = next((m["client_timeout"] for m in measured if m), Config.client_timeout)
    lines = ["## Churn", "",
             f"Kademlia (k = {Config.k}, α = {Config.alpha}), N = {first['n']} at the start, `{first['model']}`; "
             f"exponential sessions of the median shown (`session=exp:MEAN`, MEAN = median / ln 2), Poisson "
             f"arrivals at N / MEAN a second (`arrival=poisson:RATE`: the population stays near N), "
             f"{100 * first['crash_fraction']:.0f} % of departures crashes, the rest graceful; "
             f"{first['hours']:g} h of simulated time, lookups at {first['rate']:g} a second (`lookups=`) between "
             f"two peers alive when each starts, reported every {first['interval'] / 60:g} minutes. A contact that "
             f"is gone costs the client timeout ({timeout:g} s) in the round that asks it. p50 and p99: ms, of the "
             "interval's lookups that found their target.", ""]
    for point, row in zip(mine, measured):
        lines += [f"### Median session {point['median']}", ""]
        if row is None:
            lines += ["Not measured yet.", ""]
            continue
        late = [r for r in row["intervals"] if r["to"] - r["from"] > point["interval"] + 1e-6]
        lag = (f" The driver fell behind its schedule: the last interval reported runs {late[-1]['from'] / 60:g}–"
               f"{late[-1]['to'] / 60:g} min, so the events it had not reached by the end were not run and its "
               "figures are not those of the plan." if late else "")
        lines += [f"{row['joined']:,} joins and {row['departed']:,} departures over the run.{lag}", "",
                  "| interval (min) | alive | joins | departures | lookups | found % | p50 | p99 |",
                  "|---|---|---|---|---|---|---|---|"]
        for report in row["intervals"]:
            lat = report["latency"]
            lines.append(f"| {report['from'] / 60:g}–{report['to'] / 60:g} | {report['alive']} | {report['joins']} | "
                         f"{report['departures']} | {report['lookups']} | {pct(report['success'])} | "
                         f"{ms(lat['p50'])} | {ms(lat['p99'])} |")
        lines.append("")
    done = [(p, m) for p, m in zip(mine, measured) if m]
    if len(done) >= 2:
        summary = []
        for point, row in done:
            looked = sum(r["lookups"] for r in row["intervals"])
            found = sum(round(r["success"] * r["lookups"]) for r in row["intervals"] if r["lookups"])
            worst = [r["latency"]["p99"] for r in row["intervals"] if r["latency"]["p99"] is not None]
            summary.append(f"{point['median']}: {pct(found / looked if looked else None)} % of {looked} lookups "
                           f"found, worst interval p99 {ms(max(worst) if worst else None)} ms")
        lines += ["Over the whole run, by median session: " + "; ".join(summary) + ".", ""]
    return lines


def section_published(points, figures: Figures, fits: dict, sizes) -> list[str]:
    lines = ["## Against published figures, and why ours differ", ""]
    default = (MODELS[0], Config.k, BUILD_ALPHA)
    if default in fits:
        line, largest, last, ratio = fits[default]
        extrapolated = ""
        if line is not None:
            at = line[0] + line[1] * math.log2(10_000_000)
            extrapolated = (f"; the line through our sizes, carried to the ten million peers of the live DHTs "
                            f"(log₂ N = {math.log2(10_000_000):.1f}), gives {at:.1f} rounds, "
                            f"{at * 100:,.0f} ms at one 100 ms round trip a round")
        lines.append(f"- **Rounds grow with log N** (Maymounkov and Mazières 2002, “Kademlia: A Peer-to-peer "
                     f"Information System Based on the XOR Metric”: a lookup takes O(log N) steps). Ours (`{default[0]}`, "
                     f"k = {default[1]}, α = {default[2]}): {last['rounds']:.2f} rounds at N = {largest:,}, "
                     f"{ratio:.2f} per bit of N"
                     + ("" if line is None else f", {line[1]:.3f} more per doubling") + extrapolated + ".")
    n = max((p["n"] for p in points if p["kind"] == "kademlia" and figures.get(p)), default=None)
    point = n and kademlia_point(points, MODELS[1], n, Config.k)
    measured = point and figures.get(point)
    if measured:
        ours = measured["alphas"][str(BUILD_ALPHA)]["latency"]
        for who, year, title, figure, low, high in MAINLINE:
            p50 = ours["p50"]
            if high is None:
                where = f"{low / p50:,.0f}× below their {low / 1000:g} s"
            elif p50 < low:
                where = f"below their {low}–{high} ms"
            elif p50 <= high:
                where = f"inside their {low}–{high} ms"
            else:
                where = f"{p50 / high:.1f}× above their {high} ms"
            lines.append(f"- **Mainline DHT**, {who} {year} (“{title}”): {figure}, measured on the live network of "
                         f"millions. Our median under `{MODELS[1]}` at N = {n:,} (α = {BUILD_ALPHA}, k = {Config.k}) "
                         f"is {ms(p50)} ms, {where}.")
    timeout = Config.client_timeout
    lines += [f"- **Why ours differ.** Our round trip is the model's (a 100 ms median here) and every contact in a "
              "table is a live peer unless churn or a kill says otherwise: no NAT or firewall drops a reply, no "
              "contact is stale, the only losses are the model's. A request that goes unanswered costs the "
              f"configured `client_timeout` ({timeout:g} s). Crosby and Wallach trace the live network's slow "
              "lookups to Kademlia's iterative routing, the lack of a preferential refresh of a peer's own "
              "neighbourhood, and implementation bugs; Jimenez et al. brought the median down with backwards-"
              "compatible changes to the clients. Our lookup also runs in lockstep rounds (a round starts when every "
              "request of the one before has settled) and ends only when its k closest have answered, so its "
              "latency is at least rounds × round trip; `first seen` is the nearer figure for a lookup that stops at "
              "the target. Our networks are also far smaller than the live ones, which costs a few rounds (the line "
              "above). Under loss and churn our tails grow: each lost request or "
              "dead contact costs a timeout in the round that asked it (the Loss and Churn sections).",
              "- **The original's greedy walk** asks one peer at a time through whatever its table holds; it is no "
              "DHT lookup (some walks never arrive: its `found %`), and its latency compares with Kademlia's only for "
              "the walks that arrive.", ""]
    return lines


def section_cost(points, figures: Figures) -> list[str]:
    lines = ["## What each point cost", "",
             "Each point ran in a child process at normal priority on a shared 2-core machine; CPU seconds are the "
             "child's (user + system), the load average (1, 5, 15 min) the machine's when it started.", "",
             "| point | CPU s | wall s | load average | simulated build s | measured | commit |",
             "|---|---|---|---|---|---|---|"]
    total = 0.0
    for point in points:
        measured = figures.cost(point)
        if measured is None:
            continue
        total += measured["cpu_s"]
        name = {key: value for key, value in point.items() if key not in ("seed", "alphas")}
        label = ", ".join(f"{key}={value}" for key, value in name.items() if key != "kind")
        lines.append(f"| {point['kind']}: {label} | {measured['cpu_s']:,.1f} | {measured['wall_s']:,.1f} | "
                     f"{' '.join(f'{v:.2f}' for v in measured['load'])} | "
                     f"{measured['figures']['build_seconds']:,.0f} | {measured['at']} | {measured['commit']} |")
    missing = sum(1 for point in points if figures.cost(point) is None)
    lines += ["", f"{total:,.0f} CPU s over the points measured"
              + (f"; {missing} points of the plan not measured yet." if missing else "."), ""]
    return lines


def write(args, points, cache) -> str:
    figures = Figures(cache)
    command = (f"python tools/simresults.py --write --sizes {' '.join(map(str, args.sizes))} --lookups {args.lookups} "
               f"--full-grid-up-to {args.full_grid_up_to} --churn-peers {args.churn_peers} --churn-hours "
               f"{args.churn_hours:g}")
    lines = ["# Results in simulated time", "",
             "<!-- generated by `python tools/simresults.py --write`: edit the tool, not this file -->",
             f"Written by `{command}` (seed {args.seed}) from the points cached in `docs/results.json`. Every "
             "network is built inproc in one process, one join at a time, on the virtual clock unless a section "
             f"says otherwise; Kademlia's defaults are k = {Config.k}, α = {Config.alpha}. k = {KS[0]} is built up "
             f"to N = {args.full_grid_up_to:,}; beyond it only k = {Config.k}.", ""]
    lines += section_sizes(points, figures, args.sizes)
    slopes, fits = section_slopes(points, figures)
    lines += slopes
    lines += section_tradeoffs(points, figures, args.sizes)
    lines += section_loss(points, figures)
    lines += section_churn(points, figures)
    lines += section_published(points, figures, fits, args.sizes)
    lines += section_cost(points, figures)
    return "\n".join(lines)


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="run the points missing, then write --out")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000])
    parser.add_argument("--full-grid-up-to", type=int, default=2000, help="largest N also built with k = 8")
    parser.add_argument("--lookups", type=int, default=200, help="lookups per row")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--churn-peers", type=int, default=200)
    parser.add_argument("--churn-hours", type=float, default=2.0)
    parser.add_argument("--churn-rate", type=float, default=0.1, help="churn's lookups a second")
    parser.add_argument("--churn-interval", type=float, default=600.0)
    parser.add_argument("--churn-medians", nargs="+", default=list(CHURN_MEDIANS))
    parser.add_argument("--real-loss-peers", type=int, default=32, help="N of the loss rows on the real clock")
    parser.add_argument("--real-lookups", type=int, default=50)
    parser.add_argument("--budget", type=float, default=2700.0, help="CPU seconds of new points in this run")
    parser.add_argument("--jobs", type=int, default=1, help="points run at once (each a child process)")
    parser.add_argument("--real-loss", action="store_true",
                        help="if the virtual clock refuses loss, measure the loss rows on the real clock")
    parser.add_argument("--timeout", type=float, default=3600.0, help="wall seconds one point may take")
    parser.add_argument("--cache", default=os.path.join(ROOT, "docs", "results.json"))
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "RESULTS.md"), help="a file, or - for stdout")
    parser.add_argument("--rerun", nargs="*", default=[], metavar="KIND", help="forget the cached points of KIND")
    parser.add_argument("--quick", action="store_true", help="tiny networks, a few lookups: for the test suite")
    parser.add_argument("--point", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.lookups, args.full_grid_up_to = [12, 16], 4, 12
        args.churn_peers, args.churn_hours, args.churn_interval, args.churn_medians = 8, 0.05, 60.0, ["2m", "10m"]
        args.write = True
    return args


def main(argv=None) -> int:
    args = parse(argv)
    if args.point:
        point = json.loads(args.point)
        json.dump(one_point(point), sys.stdout)
        return 0

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    points = plan(args)
    cache = load(args.cache)
    for kind in args.rerun:
        cache["points"] = {key: value for key, value in cache["points"].items() if json.loads(key)["kind"] != kind}
    if args.write:
        log(f"load average {os.getloadavg()}")
        spent = measure(points, cache, args.cache, args.budget, args.timeout, args.jobs, log)
        log(f"{spent:.0f} CPU s in new points")
    text = write(args, points, cache)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(text)
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
