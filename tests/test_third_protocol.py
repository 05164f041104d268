"""A protocol is one folder (docs/DESIGN.md §11): a third one that lives in the tests folder
(:mod:`random_graph_protocol`) is built, measured, refreshed, exported and drawn by the supervisor, over inproc, tcp
and workers, without a line of p2pzmq knowing it; and the registry's rules."""
import os
from typing import NamedTuple

import pytest

import random_graph_protocol as random_graph
from p2pzmq import cli, protocols, wire, worker
from p2pzmq import messages as m
from p2pzmq.config import Config
from p2pzmq.contact import Contact
from p2pzmq.errors import ProtocolError, UsageError
from p2pzmq.protocols.original.table import CAPACITY
from p2pzmq.timeline import untimed

pytestmark = pytest.mark.timeout(120)
MODULE = "random_graph_protocol"
TESTS = os.path.dirname(os.path.abspath(__file__))
N = 20


def status(net, routing: str = "auto") -> dict:
    """net_status without what only a network over workers reports (they are the same network)."""
    result = net.net_status(routing=routing)
    return {key: value for key, value in untimed(result).items() if key not in ("workers", "unreachable")}


def session(net, directory) -> dict:
    """net_status (by messages and on fetched tables), a refresh, TGF, GraphML, a picture and a lookup of ``net``'s
    random graph; what a run of the same seed must repeat on any transport."""
    by_messages = status(net, "messages")
    assert status(net, "local") == by_messages
    assert by_messages["n"] == N and "lookups" not in by_messages
    assert all(2 <= row["tree_size"] <= 1 + random_graph.SAMPLE for row in by_messages["peers"])
    refreshed = net.refresh_peers()
    after = status(net)
    tables = net.tables()
    assert all(isinstance(table, random_graph.SampleTable) and table.owner.id == peer.id
               for table, peer in zip(tables, net.peers))
    tgf = net.output_tgf(str(directory / "network.tgf"))
    assert tgf["nodes"] == N and tgf["edges"] == sum(len(table) for table in tables)
    graphml = net.output_graph(str(directory / "network.graphml"))
    assert graphml["format"] == "graphml" and graphml["edges"] == tgf["edges"]
    png = net.output_png(str(directory / "network.png"), 200, 200)
    with open(png["path"], "rb") as picture:
        assert picture.read(8) == b"\x89PNG\r\n\x1a\n"
    source, target = net.peers[0].id, net.peers[-1].id
    lookup = net.lookup(source, target)
    assert set(lookup) == {"from", "id", "route"}  # the protocol adds nothing to a lookup
    with open(tgf["path"], "rb") as written:
        return {"before": by_messages, "refreshed": refreshed.get("refreshed"), "after": after,
                "tgf": written.read(), "route": untimed(lookup["route"])}


@pytest.fixture(scope="module")
def inproc_run(tmp_path_factory):
    """The one-process inproc run every other transport must equal."""
    from p2pzmq.network import Network

    net = Network(Config(seed=5, protocol=random_graph.NAME, protocol_module=MODULE))
    try:
        net.create(N)
        return session(net, tmp_path_factory.mktemp("inproc"))
    finally:
        net.die()


def test_a_third_protocol_runs_inproc_and_tcp_alike(make_network, tmp_path, inproc_run):
    net = make_network(N, seed=5, protocol=random_graph.NAME, protocol_module=MODULE, transport="tcp")
    assert session(net, tmp_path) == inproc_run
    assert inproc_run["after"]["connectivity"] > 0 and inproc_run["tgf"].count(b"\n") > N


def test_the_worker_link_carries_a_third_protocol(make_network, tmp_path, inproc_run, monkeypatch):
    """Workers learn ``protocol_module`` at hello and import it: the same network as one process."""
    monkeypatch.setenv("PYTHONPATH", TESTS)
    net = make_network(seed=5, protocol=random_graph.NAME, protocol_module=MODULE, transport="tcp")
    launched = worker.launch(["127.0.0.1"] * 2, net.config)
    try:
        for endpoint in launched.endpoints:
            net.attach(endpoint)
        net.create(N)
        assert {peer.host.pid for peer in net.peers} == {process.pid for process in launched.processes}
        assert session(net, tmp_path) == inproc_run
    finally:
        net.die()
        launched.reap(5)


@pytest.mark.slow  # about 5 s of a worker waiting out its start-up: the slow run (.ci/run) keeps it
def test_a_worker_refuses_a_protocol_module_it_cannot_import(make_network):
    net = make_network(seed=5, protocol=random_graph.NAME, protocol_module=MODULE, transport="tcp")
    launched = worker.launch(["127.0.0.1"], net.config)  # PYTHONPATH without the tests folder
    try:
        with pytest.raises(Exception, match="cannot import protocol module 'random_graph_protocol'"):
            net.attach(launched.endpoints[0])
    finally:
        net.die()
        launched.reap(5)


def test_descriptors_say_which_settings_are_whose():
    for descriptor in protocols.descriptors():
        assert {name: getattr(Config(), name) for name in descriptor.settings} == dict(descriptor.settings)
    assert protocols.names()[:2] == ["original", "kademlia"] and random_graph.NAME in protocols.names()
    assert Config(protocol="kademlia", k=5, alpha=2).k == 5
    assert Config(metric="xor", table_capacity=10, evict_after=2).metric == "xor"
    for wrong, message in [({"k": 5}, "k is a setting of the kademlia protocol, not of original"),
                           ({"protocol": "kademlia", "metric": "xor"},
                            "metric is a setting of the original protocol, not of kademlia"),
                           ({"protocol": random_graph.NAME, "evict_after": 1},
                            "evict_after is a setting of the original protocol, not of random_graph"),
                           ({"protocol": "kademlia", "k": 257}, "k must be between 1 and 256"),
                           ({"table_capacity": 161}, "table_capacity must be between 1 and 160"),
                           ({"protocol": "flood"}, "unknown protocol 'flood'; choose one of original, kademlia"),
                           ({"protocol_module": "no_such_module"}, "cannot import protocol module 'no_such_module'")]:
        with pytest.raises(UsageError, match=message):
            Config(**wrong)


def test_a_name_is_registered_once():
    assert protocols.register(random_graph.DESCRIPTOR) is random_graph.DESCRIPTOR  # the same one again: fine
    other = protocols.Descriptor(name=random_graph.NAME, settings={}, start=random_graph.RandomGraph,
                                 table_from_wire=random_graph.table_from_wire, requests=(random_graph.Gossip,))
    with pytest.raises(ValueError, match="already registered"):
        protocols.register(other)
    assert protocols.get(random_graph.NAME) is random_graph.DESCRIPTOR


def test_the_codec_bounds_an_update_by_the_original_table():
    assert m.MAX_UPDATE == CAPACITY


def test_a_protocol_defines_kinds_of_its_own():
    sender = Contact(7, "inproc://s", "inproc://c")
    request, reply = random_graph.Gossip(1, 2, sender), random_graph.GossipReply(1, 2, [sender])
    codec = m.Codec()
    assert [codec.decode(m.encode(msg)) for msg in (request, reply)] == [request, reply]
    assert m.encode(request)[0][0] == 250 and m.tag(reply) == (1, 2) and m.tag(request) is None
    with pytest.raises(ProtocolError, match="Gossip ends before its fields do"):
        codec.decode([m.encode(request)[0][:10]])
    with pytest.raises(ProtocolError, match="8 contacts exceed the limit of 7"):  # the decoder checks the count
        codec.decode(m.encode(random_graph.GossipReply(1, 2, [sender] * (2 + random_graph.SAMPLE))))
    for kind, cls in [(250, NamedTuple("Other", [("req_id", int)])), (len(m.SCHEMA) - 1, NamedTuple("Low", [])),
                      (256, NamedTuple("High", [])), (252, random_graph.Gossip)]:
        with pytest.raises(ValueError):
            m.define(kind, cls, (wire.REQUEST_ID,))


@pytest.mark.parametrize("argv, error", [
    (["--k", "5"], "k is a setting of the kademlia protocol, not of original"),
    (["--protocol", "kademlia", "--evict-after", "2"], "evict_after is a setting of the original protocol"),
    (["--protocol", "flood"], "unknown protocol 'flood'"),
])
def test_the_command_line_refuses_another_protocols_setting(argv, error, capsys):
    assert cli.main(["run", "-n", "2", *argv]) == 2
    assert error in capsys.readouterr().err


def test_the_command_line_runs_a_protocol_from_a_module(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "-n", "8", "--seed", "2", "--protocol", random_graph.NAME, "--protocol-module", MODULE,
                     "net_status"]) == 0
    assert "Connectivity percentage" in capsys.readouterr().out


def test_nothing_outside_the_protocols_names_one():
    """The supervisor, peer, exports, worker link and command line ask a descriptor: no string constant outside
    ``protocols/`` (docstrings aside) is a protocol's name."""
    import ast
    import pathlib

    package = pathlib.Path(protocols.__file__).parent.parent
    named = []
    for path in sorted(package.rglob("*.py")):
        if path.is_relative_to(package / "protocols"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        named += [f"{path.name}:{node.lineno}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and node.value in ("original", "kademlia")
                  and id(node) not in docstrings]
    assert named == []
