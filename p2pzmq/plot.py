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
import warnings

from .errors import OutputError, P2PError, UsageError
from .graph import output_file, read_graph

#: Up to this many peers, the overlay is drawn with labels and arrows on a circle in TGF order.
SMALL = 64
INSTALL_HINT = "plotting needs matplotlib: pip install 'p2pzmq[plot]'"
#: Smallest and largest picture side, in pixels.
MIN_PIXELS, MAX_PIXELS = 100, 10000
_DPI = 100
_ID_SPACE = 2 ** 160


def require_matplotlib() -> None:
    """Raise :class:`P2PError` with a one-line install hint if matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise P2PError(INSTALL_HINT) from None


def check_size(name: str, value) -> int:
    """``value`` if it is a picture side in pixels (an integer from :data:`MIN_PIXELS` to :data:`MAX_PIXELS`)."""
    if type(value) is not int or not MIN_PIXELS <= value <= MAX_PIXELS:
        raise UsageError(f"{name} must be an integer number of pixels from {MIN_PIXELS} to {MAX_PIXELS}, "
                         f"not {value!r:.40}")
    return value


def _font_size(width: int, height: int, columns: int = 1) -> float:
    """Points for the text of a ``width`` x ``height`` picture of ``columns`` panels side by side: 10 from about
    300 pixels per panel up, smaller below, so that titles, ticks and labels fit small pictures too (text of a
    fixed size would be cut there)."""
    return max(1.5, min(10.0, width / columns / 30, height / 30))


def _figure(width: int, height: int):
    """A figure of exactly ``width`` x ``height`` pixels on an Agg canvas (whose renderer measures text)."""
    check_size("width", width)
    check_size("height", height)
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str) -> None:
    try:
        figure.savefig(path, dpi=_DPI, format="png")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def draw_overlay(graph, path: str, width: int = 1000, height: int = 1000) -> None:
    """Draw the networkx ``graph`` (nodes keyed by decimal id, attribute ``tgf``) to a PNG of exactly
    ``width`` x ``height`` pixels at ``path`` (``.png`` added if it has no extension, see
    :func:`p2pzmq.graph.output_file`)."""
    path, _ = output_file(path, None, ("png",))
    figure = _figure(width, height)
    from matplotlib.collections import LineCollection
    from matplotlib.patheffects import withStroke

    points = _font_size(width, height)
    scale = points / 10  # markers, arrows and labels shrink with the text
    nodes = sorted(graph.nodes, key=lambda node: graph.nodes[node].get("tgf", 0))
    small = len(nodes) <= SMALL
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_axis_off()
    axes.set_aspect("equal")
    if small:  # the original's picture: a circle in TGF order, starting at the top, clockwise
        angles = {node: math.pi / 2 - 2 * math.pi * index / len(nodes) for index, node in enumerate(nodes)}
    else:  # position in the id space
        angles = {node: math.pi / 2 - 2 * math.pi * int(node) / _ID_SPACE for node in nodes}
    position = {node: (math.cos(angle), math.sin(angle)) for node, angle in angles.items()}
    edges = [(position[a], position[b]) for a, b in graph.edges() if a != b]
    if small:
        for start, end in edges:
            axes.annotate("", xy=end, xytext=start,
                          arrowprops={"arrowstyle": "-|>", "color": "0.55", "lw": 0.6 * scale, "shrinkA": 9 * scale,
                                      "shrinkB": 9 * scale, "mutation_scale": 9 * scale})
    else:  # faint chords; the peers sit just outside the ring, busiest on top, so the edges hide none of them
        axes.add_collection(LineCollection(edges, colors="0.1", linewidths=0.4 * scale,
                                           alpha=min(0.3, max(0.008, 600 / max(len(edges), 1)))))
        nodes.sort(key=graph.in_degree)
        position = {node: (1.06 * math.cos(angles[node]), 1.06 * math.sin(angles[node])) for node in nodes}
    in_degree = [graph.in_degree(node) for node in nodes]
    xs, ys = zip(*(position[node] for node in nodes)) if nodes else ((), ())
    busiest = max(in_degree, default=1) or 1
    sizes = 260 * scale ** 2 if small else [(8 + 70 * degree / busiest) * scale ** 2 for degree in in_degree]
    dots = axes.scatter(xs, ys, c=in_degree, cmap="viridis", s=sizes, zorder=3, linewidths=0.5 * scale,
                        edgecolors="black" if small else "none")
    if small:
        for node, x, y in zip(nodes, xs, ys):
            axes.text(x, y, str(graph.nodes[node].get("tgf", "")), ha="center", va="center", fontsize=7 * scale,
                      zorder=4, path_effects=[withStroke(linewidth=2 * scale, foreground="white")])
    axes.set_xlim(-1.15, 1.15)
    axes.set_ylim(-1.15, 1.15)
    layout = "peers in TGF order" if small else "peers at their position in the id space"
    title = figure.text(0.5, 1, f"{len(nodes)} peers, {graph.number_of_edges()} table entries ({layout})",
                        ha="center", va="top", fontsize=points)
    colorbar = figure.colorbar(dots, cax=figure.add_axes((0.9, 0.1, 0.025, 0.8)))
    colorbar.set_label("in-degree: tables that hold the peer", fontsize=points)
    colorbar.ax.tick_params(labelsize=points, width=0.8 * scale, length=3.5 * scale)
    _lay_out(figure, axes, colorbar.ax, title, points)
    _save(figure, path)


def _lay_out(figure, axes, bar_axes, title, points: float) -> None:
    """Place the title on top, the colour bar (ticks and label included) on the right and the overlay in what is
    left, measured in pixels with the figure's renderer so that no text is cut at any picture size."""
    renderer = figure.canvas.get_renderer()
    width, height = figure.bbox.width, figure.bbox.height
    pad = points * _DPI / 72 * 0.6
    for _ in range(3):  # text width is not quite proportional to font size (hinting): shrink until it fits
        fitting = (width - 2 * pad) / max(title.get_window_extent(renderer).width, 1)
        if fitting >= 1:
            break
        title.set_fontsize(title.get_fontsize() * fitting * 0.97)
    title.set_y(1 - pad / height)
    below_title = height - 2 * pad - title.get_window_extent(renderer).height
    bar = max(0.025 * width, pad)
    bar_axes.set_position(((width - bar) / width, 0.1, bar / width, 0.8))
    decorated = bar_axes.get_tightbbox(renderer)  # the bar with its tick labels and label
    bar_right = width - pad - (decorated.x1 - width)
    bar_left = bar_right - bar
    bar_axes.set_position((bar_left / width, 0.1 * below_title / height, bar / width, 0.8 * below_title / height))
    overlay_right = bar_left - ((width - bar) - decorated.x0) - pad
    axes.set_position((pad / width, pad / height, max(overlay_right - pad, 1) / width,
                       max(below_title - pad, 1) / height))


def time_lapse_history(directory: str) -> tuple[str, list[dict]]:
    """A title and the per-step summary of a time-lapse in ``directory``: ``time-lapse.json`` if ``time_lapse``
    wrote one (with ``status``), else the mean table size of each ``time-lapse-<i>.*`` graph file."""
    summary = os.path.join(directory, "time-lapse.json")
    if os.path.exists(summary):
        try:
            with open(summary, encoding="utf-8") as source:
                recorded = json.load(source)
            rules = recorded.get("protocol") or f"{recorded['metric']} metric"  # a network of the original: no key
            title = f"Time-lapse of {recorded['n']} peers ({rules})"
            return title, [_checked_step(point) for point in recorded["steps"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
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


def _checked_step(point) -> dict:
    """One step of ``time-lapse.json`` if it has the numbers a chart needs (raises ValueError otherwise)."""
    numbers = ("step", "mean_table_size", "connectivity", "success_rate")
    if not isinstance(point, dict) or any(not isinstance(point.get(key, 0), (int, float)) for key in numbers) \
            or "step" not in point or "mean_table_size" not in point \
            or ("connectivity" in point) != ("success_rate" in point):
        raise ValueError(f"not a time-lapse step: {point!r:.80}")
    return point


def draw_time_lapse(directory: str, path: str, width: int = 1000, height: int = 600) -> int:
    """Chart connectivity (when recorded) and mean table size against refresh step; returns the number of
    refresh steps (the status before the first refresh, step 0, is charted but is not one). ``path`` is a PNG
    file as for :func:`draw_overlay`."""
    path, _ = output_file(path, None, ("png",))
    figure = _figure(width, height)
    title, history = time_lapse_history(directory)
    import matplotlib

    with_status = [point for point in history if point.get("connectivity") is not None]
    points = _font_size(width, height, 2 if with_status else 1)
    for _ in range(5):  # smaller text until tight_layout fits every title, tick and label in the picture
        figure.clear()
        scale = points / 10
        with matplotlib.rc_context({"font.size": points, "lines.linewidth": 1.5 * scale,
                                    "lines.markersize": 6 * scale}), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _chart_time_lapse(figure, title, history, with_status)
            title_room = 1.8 * points * _DPI / 72 / height  # tight_layout leaves the suptitle out
            figure.tight_layout(pad=0.4, rect=(0, 0, 1, 1 - title_room))
        if not caught and _inside(figure):
            break
        points *= 0.8
    _save(figure, path)
    return sum(1 for point in history if point["step"] > 0)


def _inside(figure) -> bool:
    """Whether everything drawn on ``figure`` lies within it."""
    drawn = figure.get_tightbbox(figure.canvas.get_renderer())
    width, height = figure.get_size_inches()
    return drawn.x0 >= 0 and drawn.y0 >= 0 and drawn.x1 <= width and drawn.y1 <= height


def _chart_time_lapse(figure, title: str, history: list[dict], with_status: list[dict]) -> None:
    figure.suptitle(title)
    steps = [point["step"] for point in history]
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
