"""Tables, goals and BENCHMARKS.md for tools/bench.py, from one run's figures (docs/bench.json).

Every verdict ("met", "not met") is computed from the figures of the run it reports, never written by hand; a goal
whose figure the run did not measure says so. BENCHMARKS.md keeps hand-written sections: this module rewrites only
the blocks between its markers (see :func:`replace_block`).
"""
from __future__ import annotations

import os
from typing import NamedTuple

#: The code before the "four times cheaper messages" work, as measured then: 194,301 requests to build 1,000 peers
#: (inproc, sequential, seed 1) in 7.8 CPU seconds, 1.33x the stock zmq.green round trips per CPU second of the same
#: run; a tcp build in one process at 0.33x the zmq.green inproc rate.
OLD_US_PER_REQUEST = 7.8 / 194_301 * 1e6
OLD_GREEN_RATIO = 1.33
OLD_TCP_RATIO = 0.33

RAW_LABELS = {
    "green": "stock `zmq.green` inproc, two greenlets, `send_multipart`/`recv_multipart`",
    "plain": "plain pyzmq inproc, one thread, frame by frame, plain-int flags",
    "lean": "p2pzmq's own green transport inproc, two greenlets",
    "plain_tcp": "plain pyzmq tcp loopback, one thread, frame by frame, plain-int flags",
    "green_tcp": "stock `zmq.green` tcp loopback, two greenlets, multipart helpers",
}
RAW_SHORT = {"green": "zmq.green inproc", "plain": "plain pyzmq inproc", "lean": "p2pzmq transport",
             "plain_tcp": "plain pyzmq tcp", "green_tcp": "zmq.green tcp"}


class Goal(NamedTuple):
    what: str
    target: str
    value: str
    met: bool | None  # None: this run did not measure it

    @property
    def verdict(self) -> str:
        return "not measured" if self.met is None else "met" if self.met else "**not met**"


def rate(requests: int, seconds: float) -> float:
    return requests / seconds if seconds else 0.0


def build_rate(build: dict) -> float:
    """Requests per CPU second of a build (its best round)."""
    return rate(build["requests"], build["cpu_s"])


def ratio(build: dict, raw: str) -> float:
    """A build's requests per CPU second over the raw ``raw`` round trips per CPU second of the same process."""
    return build_rate(build) / build["raw"][raw][1]


def _build(figures: dict, transport: str, n: int | None = None) -> dict | None:
    found = [build for build in figures["builds"] if build["transport"] == transport and n in (None, build["n"])]
    return found[-1] if found else None


def _row(figures: dict, n: int) -> dict | None:
    return next((row for row in figures["rows"] if row["n"] == n), None)


def goals(figures: dict) -> list[Goal]:
    """The issue's goals for one process, each with this run's figure and whether it meets the target."""
    found = []
    inproc = _build(figures, "inproc", 1000) or _build(figures, "inproc")
    if inproc is not None:
        at = f"{inproc['n']:,} peers inproc, J = 1"
        old = ratio(inproc, "green") / OLD_GREEN_RATIO
        us = inproc["cpu_s"] / inproc["requests"] * 1e6
        floor = inproc.get("floor")
        lean_us = f" (the lean build: {floor['lean_cpu_s'] / floor['lean_requests'] * 1e6:.1f} µs)" if floor else ""
        found += [
            Goal(f"{at}: requests per CPU s against the old code (same-run ratio to stock zmq.green / "
                 f"{OLD_GREEN_RATIO})", ">= 4x", f"{old:.2f}x", old >= 4),
            Goal(f"{at}: CPU per request (the old code: {OLD_US_PER_REQUEST:.0f} µs)", "<= 10 µs",
                 f"{us:.1f} µs{lean_us}", us <= 10),
            Goal(f"{at}: its tables equal the message-free oracle's", "equal",
                 "equal" if inproc["oracle"] else "different", inproc["oracle"]),
        ]
    created = _build(figures, "inproc", 1000)
    floor = created.get("floor") if created else None
    lean = f" (the lean build: {floor['lean_cpu_s']:.2f})" if floor else ""
    found.append(Goal("1,000 peers created inproc, J = 1", "<= 2 CPU s",
                      f"{created['cpu_s']:.2f} CPU s{lean}" if created else "no 1,000-peer build in this run",
                      created["cpu_s"] <= 2 if created else None))
    for tcp in [build for build in figures["builds"] if build["transport"] == "tcp"]:
        value = ratio(tcp, "green")
        found.append(Goal(f"{tcp['n']:,} peers over tcp in one process, J = 1: requests per CPU s / raw zmq.green "
                          f"inproc round trips per CPU s (the old code: {OLD_TCP_RATIO})", ">= 1.0x",
                          f"{value:.2f}x", value >= 1.0))
    row = _row(figures, 4000)
    found.append(Goal("Resident memory per peer, 4,000 peers in one process, after create and one refresh",
                      "<= 50 KB", f"{row['rss_per_peer'] / 1024:.1f} KB" if row else "no 4,000-peer row in this run",
                      row["rss_per_peer"] / 1024 <= 50 if row else None))
    row = _row(figures, 1000)
    exact = row is not None and row["status_sample"] == 0
    found.append(Goal("Exact net_status (all pairs) on 1,000 peers", "<= 1 CPU s",
                      f"{row['status_s'][1]:.2f} CPU s ({row['status_s'][0]:.2f} s wall)" if exact
                      else "no exact 1,000-peer status in this run", row["status_s"][1] <= 1 if exact else None))
    return found


def goal_lines(figures: dict) -> list[str]:
    lines = ["| goal | target | this run | verdict |", "|---|---|---|---|"]
    lines += [f"| {goal.what} | {goal.target} | {goal.value} | {goal.verdict} |" for goal in goals(figures)]
    return lines


def raw_lines(raw: dict) -> list[str]:
    lines = ["| raw round trip, ROUTER<->ROUTER, one process | per wall s | per CPU s | CPU µs each |",
             "|---|---|---|---|"]
    lines += [f"| {RAW_LABELS[name]} | {wall:,.0f} | {cpu:,.0f} | {1e6 / cpu:.1f} |"
              for name, (wall, cpu) in raw.items()]
    return lines


def build_lines(builds: list[dict]) -> list[str]:
    """One table per transport: each build's best round, its rate and its ratio to each raw of the same process."""
    lines = []
    for transport in ("inproc", "tcp"):
        mine = [build for build in builds if build["transport"] == transport]
        if not mine:
            continue
        raws = list(mine[0]["raw"])
        head = "".join(f" raw {RAW_SHORT[name]} rt/CPU s | ratio |" for name in raws)
        lines += [f"| N | {transport} rounds | create s wall / CPU | I/O thread CPU s | requests | CPU µs/request "
                  f"| requests/CPU s |{head} against the old code | tables = oracle |",
                  "|---|---|---|---|---|---|---|" + "---|---|" * len(raws) + "---|---|"]
        old = OLD_GREEN_RATIO if transport == "inproc" else OLD_TCP_RATIO
        for build in mine:
            cells = "".join(f" {build['raw'][name][1]:,.0f} | {ratio(build, name):.2f}x |" for name in raws)
            lines.append(f"| {build['n']:,} | {build['rounds']} | {build['wall_s']:.2f} / {build['cpu_s']:.2f} "
                         f"| {build['io_thread_cpu_s']:.2f} | {build['requests']:,} "
                         f"| {build['cpu_s'] / build['requests'] * 1e6:.1f} "
                         f"| {build_rate(build):,.0f} |{cells} {ratio(build, 'green') / old:.2f}x "
                         f"| {'yes' if build['oracle'] else 'NO'} |")
        lines.append("")
    return lines


def floor_lines(builds: list[dict]) -> list[str]:
    """Where the CPU of each inproc build goes: the protocol alone, the lean build of the same network (protocol and
    messages, nothing of p2pzmq around them) and p2pzmq's own build, each the best of the same process's rounds."""
    measured = [build for build in builds if build["transport"] == "inproc" and "floor" in build]
    if not measured:
        return []
    lines = ["| N | protocol alone CPU s | lean build CPU s | p2pzmq CPU s | protocol | messages (lean − protocol) "
             "| p2pzmq's layers (p2pzmq − lean) | p2pzmq / lean | lean CPU µs/request | lean tables = oracle |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for build in measured:
        floor, ours = build["floor"], build["cpu_s"]
        protocol, lean = floor["protocol_cpu_s"], floor["lean_cpu_s"]
        lines.append(f"| {build['n']:,} | {protocol:.2f} | {lean:.2f} | {ours:.2f} | {protocol / ours:.0%} "
                     f"| {(lean - protocol) / ours:.0%} | {(ours - lean) / ours:.0%} | {ours / lean:.2f}x "
                     f"| {lean / floor['lean_requests'] * 1e6:.1f} | {'yes' if floor['oracle'] else 'NO'} |")
    return lines + [""]


def row_lines(rows: list[dict], joins: list[dict]) -> list[str]:
    """The simulator against N, and the parallel joins."""
    lines = [
        "| N | create s wall / CPU | CPU ms/peer | create req/CPU s | raw zmq.green rt/CPU s | ratio "
        "| raw plain pyzmq rt/CPU s | ratio | refresh s wall / CPU | refresh req/CPU s | ratio "
        "| net_status s wall / CPU | status | connectivity % | KB/peer | peak KB/peer | fds | timeouts |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        green, plain = row["raw"]["green"][1], row["raw"]["plain"][1]
        create_rate = rate(row["create_requests"], row["create_s"][1])
        refresh_rate = rate(row["refresh_requests"], row["refresh_s"][1])
        mode = f"sample {row['status_sample']}" if row["status_sample"] else "exact"
        lines.append(
            f"| {row['n']:,} | {row['create_s'][0]:.2f} / {row['create_s'][1]:.2f} "
            f"| {row['create_s'][1] / row['n'] * 1000:.1f} | {create_rate:,.0f} | {green:,.0f} "
            f"| {create_rate / green:.2f}x | {plain:,.0f} | {create_rate / plain:.3f}x "
            f"| {row['refresh_s'][0]:.2f} / {row['refresh_s'][1]:.2f} | {refresh_rate:,.0f} "
            f"| {refresh_rate / green:.2f}x | {row['status_s'][0]:.2f} / {row['status_s'][1]:.2f} | {mode} "
            f"| {row['connectivity']} | {row['rss_per_peer'] / 1024:.1f} | {row['rss_peak_per_peer'] / 1024:.1f} "
            f"| {row['fds']:,} | {row['timeouts']} |")
    if joins:
        lines += ["", "| N | join concurrency J | create s wall / CPU | create req/CPU s | CPU speed-up vs J = 1 "
                      "| connectivity % (after create) |",
                  "|---|---|---|---|---|---|"]
        sequential = {row["n"]: row["create_s"][1] for row in rows}
        sequential.update({row["n"]: row["create_s"][1] for row in joins if row["join_concurrency"] == 1})
        for row in joins:
            lines.append(f"| {row['n']:,} | {row['join_concurrency']} "
                         f"| {row['create_s'][0]:.2f} / {row['create_s'][1]:.2f} "
                         f"| {rate(row['create_requests'], row['create_s'][1]):,.0f} "
                         f"| {sequential[row['n']] / row['create_s'][1]:.2f}x | {row['connectivity']} |")
    return lines


def loads(figures: dict) -> str:
    start, end = figures["load_average"]
    return f"{', '.join(f'{x:.1f}' for x in start)} at the start, {', '.join(f'{x:.1f}' for x in end)} at the end"


def report_block(figures: dict) -> str:
    """The part of BENCHMARKS.md that ``--write`` rewrites."""
    return BENCH_TEMPLATE.format(
        date=figures["date"], seconds=figures["seconds"], loads=loads(figures), machine=figures["machine"],
        round_trips=figures["round_trips"], goals="\n".join(goal_lines(figures)),
        raw="\n".join(raw_lines(figures["raw"])), builds="\n".join(build_lines(figures["builds"])).rstrip(),
        floor="\n".join(floor_lines(figures["builds"])).rstrip() or "Not measured in this run.",
        rows="\n".join(row_lines(figures["rows"], figures["joins"])), old_ratio=OLD_GREEN_RATIO,
        old_tcp=OLD_TCP_RATIO, old_us=OLD_US_PER_REQUEST)


def print_lines(figures: dict) -> list[str]:
    """What a run prints: the goals and every table."""
    return (goal_lines(figures) + [""] + raw_lines(figures["raw"]) + [""] + build_lines(figures["builds"])
            + floor_lines(figures["builds"]) + row_lines(figures["rows"], figures["joins"]))


def write_chart(rows: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [row["n"] for row in rows]
    fig, (times, memory) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in (("create_s", "create"), ("refresh_s", "refresh (1 pass)"), ("status_s", "net_status")):
        times.plot(sizes, [max(row[key][1], 1e-3) for row in rows], marker="o", label=label)
    times.set(xscale="log", yscale="log", xlabel="peers (N)", ylabel="CPU seconds", title="Time against N")
    times.legend()
    memory.plot(sizes, [row["rss_per_peer"] / 1024 for row in rows], marker="o", label="after create + refresh")
    memory.plot(sizes, [row["rss_peak_per_peer"] / 1024 for row in rows], marker="s", label="after net_status")
    memory.axhline(50, color="grey", linestyle="--", label="goal 50 KB (at 4,000 peers)")
    memory.set(xscale="log", xlabel="peers (N)", ylabel="resident KB per peer", title="Memory per peer")
    memory.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- BENCHMARKS.md ------------------------------------------------------------------------------------------------

#: The generated blocks of BENCHMARKS.md, by name: (first line, last line). Whatever lies outside them is written by
#: hand (or by other tools) and kept.
BLOCKS = {
    "bench": ("<!-- generated by `python tools/bench.py --write`: edit the tool, not this block -->",
              "<!-- end of the block generated by `python tools/bench.py --write` -->"),
    "profile": ("<!-- generated by `python tools/bench.py --profile --write`: edit the tool, not this block -->",
                "<!-- end of the block generated by `python tools/bench.py --profile --write` -->"),
}
#: A file written before the markers existed: its generated part ran up to the first of these hand-written sections.
LEGACY_END = "\n## Multi-process"
TITLE = "# Benchmarks\n\n"


def replace_block(text: str, name: str, content: str) -> str:
    """``text`` with the block ``name`` holding ``content``; everything outside the block is kept. A missing block
    goes after the generated blocks before it (the first one after the title)."""
    begin, end = BLOCKS[name]
    block = f"{begin}\n{content.strip()}\n{end}\n"
    start = text.find(begin)
    if start >= 0:
        stop = text.index(end, start) + len(end)
        return text[:start] + block + text[stop + 1 if text[stop:stop + 1] == "\n" else stop:]
    if not text.strip():
        return TITLE + block
    if BLOCKS["bench"][0] not in text and name == "bench":  # the layout before the markers: replace its top part
        cut = text.find(LEGACY_END)
        return TITLE + block + ("\n" + text[cut + 1:] if cut >= 0 else "")
    previous = [BLOCKS[other][1] for other in BLOCKS if other != name and BLOCKS[other][1] in text]
    at = max(text.index(marker) + len(marker) + 1 for marker in previous) if previous else len(TITLE)
    return text[:at] + "\n" + block + text[at:]


def write_block(directory: str, name: str, content: str) -> str:
    """Rewrite the block ``name`` of ``directory``/BENCHMARKS.md; returns the file's path."""
    path = os.path.join(directory, "BENCHMARKS.md")
    try:
        with open(path, encoding="utf-8") as existing:
            text = existing.read()
    except FileNotFoundError:
        text = ""
    with open(path, "w", encoding="utf-8") as out:
        out.write(replace_block(text, name, content))
    return path


BENCH_TEMPLATE = """Written by `python tools/bench.py --write` on {date} (the run took {seconds:.0f} s; load average
{loads}). Machine: {machine}.

The machine is shared: other jobs ran during the benchmark and inflate wall-clock seconds by an amount that varies
from minute to minute. Rates are therefore given **per CPU second of the measuring process** (all its threads; other
processes cannot inflate it), with wall seconds beside them, and every ratio divides a simulator rate by a raw
round-trip rate **measured in the same process, seconds before or after it**: a build is measured in rounds, each
round a raw measurement ({round_trips:,} round trips of each) and then the build, with one more raw measurement at
the end, and the ratio takes the best (least CPU) build and the best raw rate of that process.

"Requests" counts every protocol request (get_peers, find_closest) and supervisor command sent, as the network's
own `stats` does: 194,301 for a sequential build of 1,000 peers with seed 1. The old code did them at
{old_us:.0f} µs of CPU each, {old_ratio}x the stock zmq.green inproc round trips per CPU second of its run, and
{old_tcp}x over tcp; "against the old code" divides this run's same-run ratio by that one, so both are measured
against the same baseline on their own machine state.

## Goals

{goals}

Goals for builds over workers (20,000 and 50,000 peers) are measured by `tools/scale.py` (see "Multi-process").

## Raw round trips

Measured in the benchmark's main process, best of 3 (each process below measures its own again).

{raw}

## Sequential builds in one process

Each row is a fresh process building a new network one join at a time (J = 1, seed 1), in rounds as described
above; "tables = oracle" checks the last round's tables against the message-free oracle (tests/model.py), which
the sequential build must equal exactly. Over tcp every request crosses libzmq's I/O thread and the loopback.

{builds}

## Where a sequential build's CPU goes

Each inproc round above also builds the same network twice more in the same process (`tools/bench_floor.py`): the
*protocol alone* is the message-free oracle (ids, tables and walks, a function call per request); the *lean build*
sends every request and every reply as a ZeroMQ message between the two peers' own ROUTER sockets, encoded, decoded
and checked as the simulator does, each server run to completion by its sender, but with plain pyzmq calls in one
greenlet and nothing else of p2pzmq (no green transport, served sockets, Caller, Peer or supervisor). All three end
with the oracle's tables, so they do the same protocol work; shares are of p2pzmq's own build, best round of each.
The lean build is the floor of this design with these pure pieces: a goal below it needs a cheaper protocol, codec
or libzmq path, not thinner layers.

{floor}

## The simulator against N

Each N runs in a fresh process, inproc, seed 1, tree metric: create, one refresh of every peer, then net_status
(exact, all N² routes, up to 2,000 peers; above that 100 sampled targets per peer, connectivity being then the
estimate). KB/peer is the growth of resident memory after create and one refresh, divided by N (peak: after
net_status too, which fetches every table). The last table builds with up to J joins at once (create only): in one
process a build is bound by one core, so parallel joins cannot make it cheaper; they pay off where requests wait on
the network instead of the CPU, over tcp between processes.

{rows}

![time and memory against N](docs/bench.png)
"""
