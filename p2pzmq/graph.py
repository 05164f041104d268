"""Graph outputs of a network snapshot (docs/DESIGN.md §4.8): the original's TGF, and GraphML, GEXF, DOT and JSON.

Pure apart from reading and writing files. A snapshot is the list of peer ids newest first (TGF node numbers 1..N in
that order), each peer's table and, per peer, extra node attributes (alive, host, process). Edges are directed: an
edge A -> B means B is in A's table (self-loops included, as in the original).

TGF is written by hand, byte-compatible with the original. The other formats go through a :mod:`networkx` ``DiGraph``
whose node keys are the decimal ids (so every format keeps ids exactly; 160-bit integers survive no XML or JSON
number type) with attributes ``label`` (the decimal id again, shown by yEd and Gephi), ``tgf``, ``tree_size`` and
the given extras. networkx writes GraphML, GEXF and node-link JSON; DOT is written here, because networkx's DOT
writer needs pydot or pygraphviz and DOT for a plain attributed digraph is a few lines. networkx is imported only
when one of those formats is used, so the TGF-only paths stay quick to start.

Every command that writes a file (these formats, and pictures) names it through :func:`output_file`: one rule for
extensions and formats. A file that cannot be written raises :class:`OutputError`; a malformed path or format,
:class:`UsageError`.
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Iterator

from .errors import OutputError, UsageError
from .contact import TableView
from .ids import parse_id
from .paths import check_path

#: Output formats, and the file extension each is written with.
FORMATS = {"tgf": "tgf", "graphml": "graphml", "gexf": "gexf", "dot": "dot", "json": "json"}


def output_file(path, fmt: str | None, formats: Iterable[str]) -> tuple[str, str]:
    """The one rule for every file a command writes: ``(path, format) -> (checked path, format)``.

    The file name's extension names the format (case-insensitive); ``fmt``, if given, must agree with it. A name
    without an extension gets one: ``fmt``'s, else the first of ``formats`` (the command's default). A format or
    extension outside ``formats`` (what this command writes) is a :class:`UsageError`, as is a path that names a
    directory. Pure: no file is touched, and a relative path stays relative (the writer resolves it).
    """
    check_path(path)
    formats = list(formats)
    if fmt is not None and fmt not in formats:
        raise UsageError(f"unknown format {fmt!r:.80}; choose one of {', '.join(formats)}")
    name = os.path.basename(path)
    if name in ("", ".", ".."):
        raise UsageError(f"{path!r:.80} names a directory, not a file")
    stem, extension = os.path.splitext(name)
    extension = extension[1:].lower()
    if not extension:
        fmt = fmt or formats[0]
        return f"{path}.{FORMATS.get(fmt, fmt)}", fmt
    if extension not in formats:
        raise UsageError(f"{path!r:.80}: this command writes {' or '.join('.' + f for f in formats)} files, "
                         f"not .{extension}")
    if fmt is not None and fmt != extension:
        raise UsageError(f"{path!r:.80} has the extension .{extension} but format={fmt} was asked for")
    return path, extension


def tgf_lines(ids: list[int], tables: Iterable[TableView]) -> Iterator[str]:
    """The TGF text, line by line: ``i <id>`` for each peer, ``#``, then one ``from to`` edge per table entry
    (entries in descending id order, self-loops included). An entry naming a peer outside ``ids`` is skipped."""
    number = {peer_id: index for index, peer_id in enumerate(ids, start=1)}
    for index, peer_id in enumerate(ids, start=1):
        yield f"{index} {peer_id}"
    yield "#"
    for peer_id, table in zip(ids, tables):
        source = number[peer_id]
        for contact in table.descending():
            target = number.get(contact.id)
            if target is not None:
                yield f"{source} {target}"


def write_tgf(path: str, ids: list[int], tables: Iterable[TableView]) -> int:
    """Write TGF to ``path``; returns the number of edges. Raises :class:`OutputError` if it cannot be written."""
    lines = list(tgf_lines(ids, tables))
    write_text(path, "\n".join(lines) + "\n")
    return len(lines) - len(ids) - 1


def read_tgf(text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Parse TGF written by :func:`write_tgf`: (ids in node order, edges as 1-based node number pairs)."""
    nodes, _, edges = text.partition("\n#\n")
    ids = []
    for expected, line in enumerate(nodes.splitlines(), start=1):
        number, _, peer_id = line.partition(" ")
        if int(number) != expected:
            raise ValueError(f"TGF node {number} is out of order")
        ids.append(parse_id(peer_id))
    pairs = [tuple(int(part) for part in line.split()) for line in edges.splitlines() if line]
    return ids, pairs


def to_networkx(ids: list[int], tables: Iterable[TableView], extras: Iterable[dict] | None = None):
    """A networkx ``DiGraph`` of the snapshot: nodes keyed by decimal id in list order, with attributes ``label``,
    ``tgf``, ``tree_size`` and the per-peer ``extras``; an edge A -> B for every entry B of A's table that is a peer
    of the snapshot, in the order TGF lists them."""
    import networkx as nx

    tables = list(tables)
    extras = list(extras) if extras is not None else [{} for _ in ids]
    known = set(ids)
    graph = nx.DiGraph()
    for index, (peer_id, table, extra) in enumerate(zip(ids, tables, extras), start=1):
        graph.add_node(str(peer_id), label=str(peer_id), tgf=index, tree_size=len(table), **extra)
    for peer_id, table in zip(ids, tables):
        graph.add_edges_from((str(peer_id), str(contact.id)) for contact in table.descending() if contact.id in known)
    return graph


def write_graph(path: str, fmt: str, ids: list[int], tables: Iterable[TableView],
                extras: Iterable[dict] | None = None) -> int:
    """Write the snapshot to ``path`` in format ``fmt`` (one of :data:`FORMATS`); returns the number of edges."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown graph format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "tgf":
        return write_tgf(path, ids, tables)
    import networkx as nx

    graph = to_networkx(ids, tables, extras)
    if fmt == "dot":
        write_text(path, "".join(dot_lines(graph)))
    elif fmt == "json":
        write_text(path, json.dumps(nx.node_link_data(graph, edges="edges")) + "\n")
    else:
        writer = nx.write_graphml if fmt == "graphml" else nx.write_gexf
        try:
            writer(graph, path)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return graph.number_of_edges()


def dot_lines(graph) -> Iterator[str]:
    """Graphviz DOT of a directed graph: every node with its attributes, then every edge (one per line)."""
    yield "digraph p2pzmq {\n"
    for node, data in graph.nodes(data=True):
        attributes = ", ".join(f"{key}={_dot_value(value)}" for key, value in data.items())
        yield f"  {_dot_value(node)} [{attributes}];\n"
    for source, target in graph.edges():
        yield f"  {_dot_value(source)} -> {_dot_value(target)};\n"
    yield "}\n"


def _dot_value(value) -> str:
    """A DOT ID: integers as numerals, anything else (booleans included) as a quoted string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_graph(path: str):
    """Read a graph file written by :func:`write_graph` (chosen by its extension: tgf, graphml, gexf or json) as
    a networkx ``DiGraph`` keyed by decimal id. TGF carries no attributes but the node number: ``label``, ``tgf``
    and ``tree_size`` (the out-degree, self-loop included) are filled in."""
    import networkx as nx

    extension = path.rsplit(".", 1)[-1].lower()
    try:
        if extension == "tgf":
            with open(path, encoding="ascii") as source:
                ids, pairs = read_tgf(source.read())
            graph = nx.DiGraph()
            for index, peer_id in enumerate(ids, start=1):
                graph.add_node(str(peer_id), label=str(peer_id), tgf=index)
            graph.add_edges_from((str(ids[a - 1]), str(ids[b - 1])) for a, b in pairs)
            for node in graph:
                graph.nodes[node]["tree_size"] = graph.out_degree(node)
            return graph
        if extension == "graphml":
            return nx.read_graphml(path)
        if extension == "gexf":
            return nx.read_gexf(path)
        if extension == "json":
            with open(path, encoding="utf-8") as source:
                return nx.node_link_graph(json.load(source), edges="edges")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (ValueError, IndexError, KeyError, SyntaxError, nx.NetworkXError) as exc:  # SyntaxError: bad XML
        raise UsageError(f"{path} is not a graph this program wrote: {exc}") from exc
    raise UsageError(f"cannot read {path}: use a .tgf, .graphml, .gexf or .json file")


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8); raises :class:`OutputError` if it cannot be written."""
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
