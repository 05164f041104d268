"""Pictures of the overlay and of a time-lapse, drawn with matplotlib (the ``plot`` extra). No sockets here.

The overlay: a small network (up to :data:`SMALL` peers) is drawn like the original's README picture, peers on a
circle in TGF order, labelled with their TGF number, arrows for "knows". A large one puts each peer on a ring at
its position in the id space (so an edge's length shows how far in ids a table reaches), draws the edges faintly and
colours peers by in-degree (how many tables hold them), the measure of who carries the routing load. Figures are
built with ``matplotlib.figure.Figure`` (no pyplot global state), so a long-running supervisor can draw safely.

Pictures stay readable as N grows: above :data:`EDGE_BUDGET` edges (2,000 Kademlia peers hold 300,000), a seeded
sample of that many is drawn, every peer always is, and the edges' opacity falls as their number grows; a caption
says how many of how many were drawn. One peer's contacts (``peer``) and one lookup's route (``route``) can be
drawn over the rest, whole, in colour.
"""
from __future__ import annotations

import glob
import json
import math
import os
import random
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
#: Most edges a picture draws by default: above it, a seeded sample of this many. Measured on 2,000 Kademlia
#: peers (docs/DESIGN.md §13): at this budget and opacity the ring's chords stay apart, and every peer shows.
EDGE_BUDGET = 20_000
#: The edges' opacity is about this many edges' worth of ink divided by the number drawn, within the bounds.
_INK_EDGES, _MIN_ALPHA, _MAX_ALPHA = 600, 0.008, 0.3
_CONTACTS_COLOUR, _ROUTE_COLOUR = "tab:red", "tab:orange"


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


def choose_edges(edges, budget: int, seed: int = 0) -> list[tuple[str, str]]:
    """The edges to draw of ``edges`` (pairs of decimal ids): all of them if there are at most ``budget``, else a
    sample of ``budget`` drawn with ``seed``. Sorted by id first, so the choice depends on the set of edges and the
    seed, never on the order the graph lists them in; returned in that sorted order."""
    ordered = sorted(edges, key=lambda edge: (int(edge[0]), int(edge[1])))
    if len(ordered) <= budget:
        return ordered
    chosen = random.Random(f"p2pzmq-plot:{seed}").sample(range(len(ordered)), budget)
    return [ordered[index] for index in sorted(chosen)]


def _short(peer_id: str) -> str:
    return peer_id if len(peer_id) <= 12 else peer_id[:10] + "…"


def caption(total: int, drawn: int, seed: int, contacts: tuple[str, int] | None = None,
            route: list[str] | None = None) -> str:
    """What a picture shows and leaves out: how many of the ``total`` edges between two peers it draws (a sample
    drawn with ``seed`` when not all), and the peer whose ``contacts`` (its id and their number) or the ``route``
    (a list of ids) it draws over them."""
    if drawn == total:
        words = [f"all {total:,} links between peers drawn"]
    else:
        words = [f"showing {drawn:,} of {total:,} links between peers "
                 f"(a sample, seed {seed}, {total - drawn:,} left out)"]
    if contacts is not None:
        words.append(f"red: the {contacts[1]:,} contacts of peer {_short(contacts[0])}")
    if route is not None:
        words.append(f"orange: the route from {_short(route[0])} to {_short(route[-1])}, {len(route) - 1} "
                     + ("hop" if len(route) == 2 else "hops"))
    return "; ".join(words)


def draw_overlay(graph, path: str, width: int = 1000, height: int = 1000, edges: int | None = None,
                 seed: int = 0, peer: str | None = None, route: list[str] | None = None) -> dict:
    """Draw the networkx ``graph`` (nodes keyed by decimal id, attribute ``tgf``) to a PNG of exactly
    ``width`` x ``height`` pixels at ``path`` (``.png`` added if it has no extension, see
    :func:`p2pzmq.graph.output_file`): every peer, at most ``edges`` (None: :data:`EDGE_BUDGET`) of the edges
    between two peers (a sample drawn with ``seed`` above that, see :func:`choose_edges`), and over them, whole, the table of ``peer`` and the
    ``route`` (a list of ids, e.g. ``lookup``'s ``route.path``). Returns what was drawn: ``edges_drawn``,
    ``edges_left_out`` and the picture's ``caption``."""
    path, _ = output_file(path, None, ("png",))
    for named in ([peer] if peer is not None else []) + list(route or []):
        if named not in graph:
            raise UsageError(f"no peer has id {named:.60}")
    if edges is None:
        edges = EDGE_BUDGET
    if type(edges) is not int or edges < 0:
        raise UsageError(f"edges must be a non-negative integer, not {edges!r:.40}")
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
    between = [(a, b) for a, b in graph.edges() if a != b]
    chosen = choose_edges(between, edges, seed)
    edges = [(position[a], position[b]) for a, b in chosen]
    if small:
        for start, end in edges:
            axes.annotate("", xy=end, xytext=start,
                          arrowprops={"arrowstyle": "-|>", "color": "0.55", "lw": 0.6 * scale, "shrinkA": 9 * scale,
                                      "shrinkB": 9 * scale, "mutation_scale": 9 * scale})
    else:  # faint chords; the peers sit just outside the ring, busiest on top, so the edges hide none of them
        axes.add_collection(LineCollection(edges, colors="0.1", linewidths=0.4 * scale,
                                           alpha=min(_MAX_ALPHA, max(_MIN_ALPHA, _INK_EDGES / max(len(edges), 1)))))
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
    contacts = None
    if peer is not None:  # its table, from the ring's points: the chords are what it can reach in one hop
        table = [b for a, b in graph.out_edges(peer) if a != b]
        contacts = (peer, len(table))
        centre = {node: (math.cos(angle), math.sin(angle)) for node, angle in angles.items()}
        axes.add_collection(LineCollection([(centre[peer], centre[b]) for b in table], colors=_CONTACTS_COLOUR,
                                           linewidths=0.8 * scale, alpha=0.8, zorder=4))
        axes.scatter(*zip(*(position[b] for b in table)) if table else ((), ()), s=30 * scale ** 2, zorder=5,
                     facecolors="none", edgecolors=_CONTACTS_COLOUR, linewidths=0.8 * scale)
        axes.scatter(*position[peer], s=120 * scale ** 2, zorder=6, c=_CONTACTS_COLOUR, marker="*")
    if route:
        hops = [position[node] for node in route]
        for start, end in zip(hops, hops[1:]):
            axes.annotate("", xy=end, xytext=start, zorder=7,
                          arrowprops={"arrowstyle": "-|>", "color": _ROUTE_COLOUR, "lw": 1.6 * scale,
                                      "mutation_scale": 10 * scale, "shrinkA": 0, "shrinkB": 3 * scale})
        axes.scatter(*zip(*hops), s=50 * scale ** 2, zorder=8, c=_ROUTE_COLOUR, edgecolors="black",
                     linewidths=0.5 * scale)
    axes.set_xlim(-1.15, 1.15)
    axes.set_ylim(-1.15, 1.15)
    layout = "peers in TGF order" if small else "peers at their position in the id space"
    title = figure.text(0.5, 1, f"{len(nodes)} peers, {graph.number_of_edges()} table entries ({layout})",
                        ha="center", va="top", fontsize=points)
    said = caption(len(between), len(chosen), seed, contacts, route)
    footer = figure.text(0.5, 0, "\n".join(said.split("; ")), ha="center", va="bottom", fontsize=points * 0.9,
                         linespacing=1.3)
    colorbar = figure.colorbar(dots, cax=figure.add_axes((0.9, 0.1, 0.025, 0.8)))
    colorbar.set_label("in-degree: tables that hold the peer", fontsize=points)
    colorbar.ax.tick_params(labelsize=points, width=0.8 * scale, length=3.5 * scale)
    _lay_out(figure, axes, colorbar.ax, title, points, footer)
    _save(figure, path)
    return {"edges_drawn": len(chosen), "edges_left_out": len(between) - len(chosen), "caption": said}


def _fit(text, width: float, renderer) -> None:
    """Shrink ``text`` until it is at most ``width`` pixels wide."""
    for _ in range(3):  # text width is not quite proportional to font size (hinting): shrink until it fits
        fitting = width / max(text.get_window_extent(renderer).width, 1)
        if fitting >= 1:
            break
        text.set_fontsize(text.get_fontsize() * fitting * 0.97)


def _lay_out(figure, axes, bar_axes, title, points: float, footer) -> None:
    """Place the title on top, the caption (``footer``) at the bottom, the colour bar (ticks and label included) on
    the right and the overlay in what is left, measured in pixels with the figure's renderer so that no text is
    cut at any picture size."""
    renderer = figure.canvas.get_renderer()
    width, height = figure.bbox.width, figure.bbox.height
    pad = points * _DPI / 72 * 0.6
    _fit(title, width - 2 * pad, renderer)
    _fit(footer, width - 2 * pad, renderer)
    title.set_y(1 - pad / height)
    footer.set_y(pad / 2 / height)
    bottom = pad / 2 + footer.get_window_extent(renderer).height
    below_title = height - 2 * pad - title.get_window_extent(renderer).height - bottom
    bar = max(0.025 * width, pad)
    bar_axes.set_position(((width - bar) / width, 0.1, bar / width, 0.8))
    decorated = bar_axes.get_tightbbox(renderer)  # the bar with its tick labels and label
    bar_right = width - pad - (decorated.x1 - width)
    bar_left = bar_right - bar
    bar_axes.set_position((bar_left / width, (bottom + 0.1 * below_title) / height, bar / width,
                           0.8 * below_title / height))
    overlay_right = bar_left - ((width - bar) - decorated.x0) - pad
    axes.set_position((pad / width, (bottom + pad) / height, max(overlay_right - pad, 1) / width,
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


def draw_churn(path: str, reports: list[dict], width: int = 1000, height: int = 900) -> str:
    """Chart churn's series against time, one point per interval (:class:`p2pzmq.churn.Intervals`' reports):
    peers alive with the joins and departures (graceful, crashed) of each interval; the share of lookups that found
    their target; their latency p50 and p99. Returns the PNG's path (``.png`` added if missing)."""
    path, _ = output_file(path, None, ("png",))
    figure = _figure(width, height)
    ends = [report["to"] for report in reports]
    alive, success, latency = (figure.add_subplot(3, 1, panel) for panel in (1, 2, 3))
    alive.plot(ends, [report["alive"] for report in reports], "o-", label="peers alive")
    counts = alive.twinx()
    for key, colour, style, label in (("joins", "tab:green", "-", "joins"), ("graceful", "tab:blue", "--",
                                                                              "graceful leaves"),
                                      ("crashed", "tab:red", ":", "crashes")):
        counts.step(ends, [report[key] for report in reports], where="pre", color=colour, linestyle=style,
                    label=label)
    counts.set_ylabel("per interval")
    alive.set_ylabel("peers")
    alive.set_title("Peers alive, joins and departures")
    handles, labels = (a + b for a, b in zip(alive.get_legend_handles_labels(), counts.get_legend_handles_labels()))
    alive.legend(handles, labels, loc="best", fontsize="small")
    looked = [report for report in reports if report["lookups"]]
    success.plot([report["to"] for report in looked], [100 * report["success"] for report in looked], "s-",
                 color="tab:purple")
    done = success.twinx()
    done.step([report["to"] for report in looked], [report["lookups"] for report in looked], where="pre",
              color="tab:gray", linestyle="--")
    done.set_ylabel("lookups per interval")
    for key, style in (("p50", "o-"), ("p99", "^--")):
        timed = [report for report in looked if report["latency"][key] is not None]
        latency.plot([report["to"] for report in timed], [report["latency"][key] for report in timed], style,
                     label=f"latency {key}")
    success.set_ylabel("percent")
    success.set_ylim(0, 105)
    success.set_title("Lookup success (dashed: lookups)")
    latency.set_ylabel("ms")
    latency.set_xlabel("seconds since churn began")
    latency.set_title("Lookup latency")
    latency.legend(loc="best", fontsize="small")
    for axes in figure.axes:
        axes.grid(alpha=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a panel without points has no legend entries: nothing to warn about
        figure.tight_layout(pad=0.4)
    _save(figure, path)
    return path
