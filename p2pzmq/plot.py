"""Pictures of the overlay and of a time-lapse, drawn with matplotlib (the ``plot`` extra). No sockets here.

The overlay: a small network (up to :data:`SMALL` peers) is drawn like the original's README picture, peers on a
circle in TGF order, labelled with their TGF number, arrows for "knows". A large one puts each peer on a ring at
its position in the id space (so an edge's length shows how far in ids a table reaches), draws the edges faintly and
colours peers by in-degree (how many tables hold them), the measure of who carries the routing load. Figures are
built with ``matplotlib.figure.Figure`` (no pyplot global state), so a long-running supervisor can draw safely.
"""
from __future__ import annotations

import glob
import json
import math
import os
import re

from .errors import P2PError, UsageError
from .graph import read_graph

#: Up to this many peers, the overlay is drawn with labels and arrows on a circle in TGF order.
SMALL = 64
INSTALL_HINT = "plotting needs matplotlib: pip install 'p2pzmq[plot]'"
_DPI = 100
_ID_SPACE = 2 ** 160


def require_matplotlib() -> None:
    """Raise :class:`P2PError` with a one-line install hint if matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise P2PError(INSTALL_HINT) from None


def _figure(width: int, height: int):
    for name, value in (("width", width), ("height", height)):
        if type(value) is not int or not 100 <= value <= 10000:
            raise UsageError(f"{name} must be an integer number of pixels from 100 to 10000, not {value!r}")
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)


def _save(figure, path: str) -> None:
    try:
        figure.savefig(path, dpi=_DPI)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def draw_overlay(graph, path: str, width: int = 1000, height: int = 1000) -> None:
    """Draw the networkx ``graph`` (nodes keyed by decimal id, attribute ``tgf``) to a PNG of exactly
    ``width`` x ``height`` pixels."""
    from matplotlib.collections import LineCollection
    from matplotlib.patheffects import withStroke

    figure = _figure(width, height)
    axes = figure.add_axes((0.02, 0.02, 0.84, 0.92))
    axes.set_axis_off()
    axes.set_aspect("equal")
    nodes = sorted(graph.nodes, key=lambda node: graph.nodes[node].get("tgf", 0))
    small = len(nodes) <= SMALL
    if small:  # the original's picture: a circle in TGF order, starting at the top, clockwise
        angles = {node: math.pi / 2 - 2 * math.pi * index / len(nodes) for index, node in enumerate(nodes)}
    else:  # position in the id space
        angles = {node: math.pi / 2 - 2 * math.pi * int(node) / _ID_SPACE for node in nodes}
    position = {node: (math.cos(angle), math.sin(angle)) for node, angle in angles.items()}
    edges = [(position[a], position[b]) for a, b in graph.edges() if a != b]
    if small:
        for start, end in edges:
            axes.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "-|>", "color": "0.55", "lw": 0.6,
                                                               "shrinkA": 9, "shrinkB": 9, "mutation_scale": 9})
    else:  # faint chords; the peers sit just outside the ring, busiest on top, so the edges hide none of them
        axes.add_collection(LineCollection(edges, colors="0.1", linewidths=0.4,
                                           alpha=min(0.3, max(0.008, 600 / max(len(edges), 1)))))
        nodes.sort(key=graph.in_degree)
        position = {node: (1.06 * math.cos(angles[node]), 1.06 * math.sin(angles[node])) for node in nodes}
    in_degree = [graph.in_degree(node) for node in nodes]
    xs, ys = zip(*(position[node] for node in nodes)) if nodes else ((), ())
    busiest = max(in_degree, default=1) or 1
    sizes = 260 if small else [8 + 70 * degree / busiest for degree in in_degree]
    dots = axes.scatter(xs, ys, c=in_degree, cmap="viridis", s=sizes, zorder=3, linewidths=0.5,
                        edgecolors="black" if small else "none")
    if small:
        for node, x, y in zip(nodes, xs, ys):
            axes.text(x, y, str(graph.nodes[node].get("tgf", "")), ha="center", va="center", fontsize=7,
                      zorder=4, path_effects=[withStroke(linewidth=2, foreground="white")])
    axes.set_xlim(-1.15, 1.15)
    axes.set_ylim(-1.15, 1.15)
    layout = "peers in TGF order" if small else "peers at their position in the id space"
    axes.set_title(f"{len(nodes)} peers, {graph.number_of_edges()} table entries ({layout})", fontsize=10)
    colorbar = figure.colorbar(dots, cax=figure.add_axes((0.88, 0.1, 0.025, 0.75)))
    colorbar.set_label("in-degree: tables that hold the peer")
    _save(figure, path)


def time_lapse_history(directory: str) -> tuple[str, list[dict]]:
    """A title and the per-step summary of a time-lapse in ``directory``: ``time-lapse.json`` if ``time_lapse``
    wrote one (with ``status``), else the mean table size of each ``time-lapse-<i>.*`` graph file."""
    summary = os.path.join(directory, "time-lapse.json")
    if os.path.exists(summary):
        try:
            with open(summary, encoding="utf-8") as source:
                recorded = json.load(source)
            return f"Time-lapse of {recorded['n']} peers ({recorded['metric']} metric)", recorded["steps"]
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"cannot read {summary}: {exc}") from exc
    history = []
    for path in glob.glob(os.path.join(glob.escape(directory), "time-lapse-*.*")):
        match = re.fullmatch(r"time-lapse-(\d+)\.(tgf|graphml|gexf|json)", os.path.basename(path))
        if match:
            graph = read_graph(path)
            sizes = [graph.nodes[node]["tree_size"] for node in graph]
            history.append({"step": int(match.group(1)), "file": path,
                            "mean_table_size": sum(sizes) / len(sizes) if sizes else 0.0})
    if not history:
        raise UsageError(f"no time-lapse files (time-lapse-<i>.tgf or time-lapse.json) in {directory}")
    return f"Time-lapse from {len(history)} graph files", sorted(history, key=lambda step: step["step"])


def draw_time_lapse(directory: str, path: str, width: int = 1000, height: int = 600) -> int:
    """Chart connectivity (when recorded) and mean table size against refresh step; returns the number of steps."""
    figure = _figure(width, height)
    title, history = time_lapse_history(directory)
    figure.suptitle(title)
    steps = [point["step"] for point in history]
    with_status = [point for point in history if point.get("connectivity") is not None]
    panels = 2 if with_status else 1
    size_axes = figure.add_subplot(1, panels, panels)
    size_axes.plot(steps, [point["mean_table_size"] for point in history], "o-", color="tab:orange")
    size_axes.set_xlabel("refresh step")
    size_axes.set_ylabel("mean table size (peers)")
    size_axes.set_title("Mean table size")
    if with_status:
        axes = figure.add_subplot(1, 2, 1)
        status_steps = [point["step"] for point in with_status]
        axes.plot(status_steps, [point["connectivity"] for point in with_status], "o-", label="connectivity %")
        axes.plot(status_steps, [100 * point["success_rate"] for point in with_status], "s--",
                  label="lookup success %")
        axes.set_xlabel("refresh step")
        axes.set_ylabel("percent")
        axes.set_title("Greedy routing (net_status)")
        axes.legend(loc="lower right")
    for each in figure.axes:
        each.set_xticks(steps)
        each.grid(alpha=0.3)
    figure.tight_layout()
    _save(figure, path)
    return len(history)
