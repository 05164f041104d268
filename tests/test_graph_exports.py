"""Graph exports: every format round-trips through networkx with the same nodes, edges and attributes; TGF keeps
the original's layout byte for byte."""
import json
import os
import re

import networkx as nx
import pytest

from p2pzmq import control, graph
from p2pzmq.errors import OutputError, UsageError

pytestmark = pytest.mark.timeout(60)

READERS = {
    "graphml": nx.read_graphml,
    "gexf": nx.read_gexf,
    "json": lambda path: nx.node_link_graph(json.load(open(path, encoding="utf-8")), edges="edges"),
}


def read_dot(path):
    """A parser of the DOT subset written by graph.dot_lines, independent of it (pydot is not installed here)."""
    text = open(path, encoding="utf-8").read().splitlines()
    assert text[0] == "digraph p2pzmq {" and text[-1] == "}"
    value = r'(-?\d+|"(?:[^"\\]|\\.)*")'
    out = nx.DiGraph()
    for line in text[1:-1]:
        edge = re.fullmatch(rf"  {value} -> {value};", line)
        if edge:
            out.add_edge(*(unquote(part) for part in edge.groups()))
            continue
        node = re.fullmatch(rf"  {value} \[(.*)\];", line)
        assert node, line
        items = re.findall(rf"(\w+)={value}", node.group(2))
        out.add_node(unquote(node.group(1)), **{key: dot_value(text) for key, text in items})
    return out


def unquote(text):
    return text[1:-1].replace('\\"', '"').replace("\\\\", "\\") if text.startswith('"') else text


def dot_value(text):
    """Numerals are ints; quoted "true"/"false" are booleans (how graph.dot_lines writes them); else strings."""
    if not text.startswith('"'):
        return int(text)
    return {"true": True, "false": False}.get(unquote(text), unquote(text))


def expected_graph(net):
    ids, tables, extras = net.snapshot()
    return graph.to_networkx(ids, tables, extras), ids, tables


def same_graph(got, want):
    assert list(got.nodes) == list(want.nodes)  # list order: newest first, as TGF numbers them
    assert sorted(got.edges) == sorted(want.edges)
    for node in want:
        assert got.nodes[node] == want.nodes[node], node


@pytest.mark.parametrize("fmt", ["graphml", "gexf", "json", "dot"])
def test_every_format_round_trips_through_networkx(make_network, tmp_path, fmt):
    net = make_network(12, seed=5)
    path = str(tmp_path / f"net.{fmt}")
    result = net.output_graph(path, fmt)
    want, ids, tables = expected_graph(net)
    assert result == {"path": path, "format": fmt, "nodes": 12, "edges": sum(len(t) for t in tables)}
    got = read_dot(path) if fmt == "dot" else READERS[fmt](path)
    assert got.is_directed()
    same_graph(got, want)
    sample = want.nodes[str(ids[0])]
    assert sample == {"label": str(ids[0]), "tgf": 1, "tree_size": len(tables[0]), "alive": True, "host": "inproc",
                      "process": os.getpid()}
    assert all(got.has_edge(str(ids[0]), str(contact.id)) for contact in tables[0])  # A -> B: A knows B
    if fmt != "dot":
        assert nx.utils.graphs_equal(graph.read_graph(path), got)


def test_tgf_is_the_original_layout_and_reads_back(make_network, tmp_path):
    net = make_network(10, seed=8)
    net.output_tgf(str(tmp_path / "a.tgf"))
    result = net.output_graph(str(tmp_path / "b.tgf"), "tgf")
    original = (tmp_path / "a.tgf").read_bytes()
    assert (tmp_path / "b.tgf").read_bytes() == original
    ids, tables = [peer.id for peer in net.peers], net.tables()
    number = {peer_id: index for index, peer_id in enumerate(ids, start=1)}
    layout = [f"{i} {peer_id}" for i, peer_id in enumerate(ids, start=1)] + ["#"]
    layout += [f"{number[peer_id]} {number[c.id]}" for peer_id, table in zip(ids, tables)
               for c in sorted(table, key=lambda c: -c.id)]
    assert original == ("\n".join(layout) + "\n").encode("ascii")
    assert result["edges"] == len(layout) - 11
    want, _, _ = expected_graph(net)
    got = graph.read_graph(str(tmp_path / "b.tgf"))
    assert list(got.nodes) == list(want.nodes) and sorted(got.edges) == sorted(want.edges)
    assert all(got.nodes[n]["tgf"] == want.nodes[n]["tgf"] and got.nodes[n]["tree_size"] == want.nodes[n]["tree_size"]
               for n in want)


def test_tcp_peers_name_their_host(make_network, tmp_path):
    net = make_network(3, seed=2, transport="tcp")
    net.output_graph(str(tmp_path / "n.graphml"), "graphml")
    assert {data["host"] for _, data in nx.read_graphml(str(tmp_path / "n.graphml")).nodes(data=True)} == {"127.0.0.1"}


def test_time_lapse_in_another_format_keeps_the_file_names(make_network, tmp_path):
    net = make_network(6, seed=4)
    result = net.time_lapse(2, str(tmp_path), format="graphml")
    assert result == {"files": [str(tmp_path / f"time-lapse-{i}.graphml") for i in (1, 2)]}
    same_graph(nx.read_graphml(result["files"][-1]), expected_graph(net)[0])


def test_bad_formats_and_paths_are_usage_errors(make_network, tmp_path):
    net = make_network(2)
    with pytest.raises(UsageError):
        net.output_graph(str(tmp_path / "x"), "svg")
    with pytest.raises(UsageError):
        net.time_lapse(1, str(tmp_path), format="svg")
    assert list(tmp_path.iterdir()) == []  # a bad format is refused before any refresh or write
    with pytest.raises(OutputError):
        net.output_graph(str(tmp_path / "no" / "dir.graphml"), "graphml")
    reply, _ = control.handle(net, json.dumps({"cmd": "output_graph", "path": "x", "format": 3}).encode())
    assert reply["ok"] is False and "format must be a string" in reply["error"]
    with pytest.raises(UsageError):
        graph.read_graph(str(tmp_path / "missing.graphml"))
    (tmp_path / "junk.graphml").write_text("<not graphml")
    with pytest.raises(UsageError):
        graph.read_graph(str(tmp_path / "junk.graphml"))


def test_dot_quotes_what_needs_quoting(tmp_path):
    drawn = nx.DiGraph()
    drawn.add_node("7", host='odd "host" \\ name', alive=False, tgf=1)
    drawn.add_edge("7", "7")
    (tmp_path / "q.dot").write_text("".join(graph.dot_lines(drawn)))
    same_graph(read_dot(str(tmp_path / "q.dot")), drawn)
