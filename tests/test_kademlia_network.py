"""Kademlia on real peers, driven by the supervisor: the network's tables, status and lookups equal the message-free
model's (tests/kademlia_model.py) for sequential builds over inproc and tcp, the lookups net_status computes equal
those driven by messages, and every command works with the protocol (workers: tests/test_workers.py)."""
import json
import random

import pytest

from kademlia_model import KademliaModel
from p2pzmq import cli, graph, plot
from p2pzmq import messages as m
from p2pzmq.config import Config
from p2pzmq.errors import UsageError
from p2pzmq.protocols.kademlia.peer import KademliaTable
from p2pzmq.protocols.kademlia.lookup import Simulator
from p2pzmq.contact import Contact
from test_protocol import Harness
from p2pzmq.timeline import untimed

pytestmark = pytest.mark.timeout(120)


def wires(net) -> list[list[int]]:
    return [[contact.id for contact in table.contacts()] for table in net.tables()]


def kademlia(make_network, n, seed, **config):
    """A sequentially built Kademlia network and the model of the same seed and settings."""
    net = make_network(n, seed=seed, protocol="kademlia", **config)
    model = KademliaModel(seed, k=config.get("k", 20), alpha=config.get("alpha", 3))
    model.create(n)
    return net, model


def test_builds_refreshes_and_crashes_give_the_model_tables_status_and_requests(make_network):
    # k = 3: buckets overflow, so suspects, pings and replacement caches are all at work
    net, model = kademlia(make_network, 48, seed=5, k=3, alpha=2)
    assert [peer.id for peer in net.peers] == [peer.id for peer in model.peers]
    assert net.counters["requests"] - 47 == model.requests  # every FindNode and Ping; the 47 Join commands aside
    assert wires(net) == model.wires()
    assert untimed(net.net_status()) == model.net_status()
    net.refresh_peers()
    model.refresh_peers()
    assert wires(net) == model.wires()
    killed = net.kill_peers(count=10, seed=1)["killed"]
    model.kill({int(peer_id) for peer_id in killed})
    status = untimed(net.net_status())
    assert status == model.net_status() and status["failed_hops"] > 0
    assert untimed(net.net_status(routing="local")) == status

    def dead_entries():
        return sum(peer_id in dead for wire in wires(net) for peer_id in wire)

    dead, before = {int(peer_id) for peer_id in killed}, None
    before = dead_entries()
    net.refresh_peers()
    model.refresh_peers()
    assert wires(net) == model.wires() and dead_entries() < before  # forgotten by those that failed to reach them


def test_over_tcp_the_network_is_the_model_and_the_inproc_network(make_network, tmp_path):
    tgfs = []
    for transport in ("inproc", "tcp"):
        net, model = kademlia(make_network, 20, seed=8, k=4, transport=transport)
        assert wires(net) == model.wires()
        tgfs.append(net.output_tgf(str(tmp_path / f"{transport}.tgf"))["path"])
        net.die()
    assert open(tgfs[0], "rb").read() == open(tgfs[1], "rb").read()


def test_the_same_seed_builds_byte_identical_tables_and_tgf(make_network, tmp_path):
    files = []
    for run in range(2):
        net = make_network(30, seed=3, protocol="kademlia", k=5)
        written = net.output_tgf(str(tmp_path / f"run{run}.tgf"))
        files.append(open(written["path"], "rb").read())
        sizes = [len(table) for table in net.tables()]
        assert written["nodes"] == 30 and written["edges"] == sum(sizes)
        ids, edges = graph.read_tgf(files[-1].decode())
        assert sum(1 for a, b in edges if a == b) == 30  # a table counts its owner: one self-loop per peer
    assert files[0] == files[1]
    other = make_network(30, seed=4, protocol="kademlia", k=5)
    assert open(other.output_tgf(str(tmp_path / "other.tgf"))["path"], "rb").read() != files[0]


def simulated(net, source: int, target: int):
    """The lookup net_status computes, on tables fetched now."""
    tables = {table.owner.id: table.buckets for table in net.tables()}
    return Simulator(tables, net.config.k, net.config.alpha).lookup(source, target)


def test_lookups_driven_by_messages_agree_with_the_computed_ones_and_change_no_table(make_network):
    net, _ = kademlia(make_network, 40, seed=6, k=4)
    net.kill_peers(count=8, seed=2)  # some rounds then ask dead contacts
    before = wires(net)
    rng = random.Random(1)
    ids = [peer.id for peer in net.peers]
    silent = 0
    for _ in range(30):
        source, target = rng.sample(ids, 2)
        driven = net.lookup(source, target)
        expected = simulated(net, source, target)
        lookup = driven["lookup"]
        assert (len(lookup["rounds"]), lookup["requests"], lookup["found"]) == \
            (expected.rounds, expected.requests, expected.found(target))
        assert lookup["result"] == [str(contact.id) for contact in expected.contacts]
        assert [row[0]["id"] for row in lookup["rounds"]] and driven["route"]["path"][0] == str(source)
        silent += sum(not asked["answered"] for row in lookup["rounds"] for asked in row)
    assert silent > 0 and wires(net) == before


def test_leaving_peers_say_nothing_and_are_forgotten_when_they_fail_to_answer(make_network):
    net, model = kademlia(make_network, 24, seed=2, k=4)
    requests = net.counters["requests"]
    left = net.leave_peers(count=4, seed=5)["left"]
    assert net.counters["requests"] - requests == 4  # the Depart commands, and no message from the leavers
    model.leave({int(peer_id) for peer_id in left})
    assert wires(net) == model.wires()
    net.refresh_peers()
    model.refresh_peers()
    assert wires(net) == model.wires() and untimed(net.net_status()) == model.net_status()


def test_exports_time_lapse_and_churn_work_under_kademlia(make_network, tmp_path):
    net = make_network(16, seed=9, protocol="kademlia", k=4)
    written = net.output_graph(str(tmp_path / "net.graphml"))
    drawn = graph.read_graph(written["path"])
    assert drawn.number_of_nodes() == 16 and drawn.number_of_edges() == written["edges"] == sum(map(len, net.tables()))
    assert net.output_png(str(tmp_path / "net.png"), 200, 200)["nodes"] == 16
    lapse = net.time_lapse(1, str(tmp_path), status=True)
    assert len(lapse["files"]) == 1 and [step["success_rate"] for step in lapse["steps"]] == [1.0, 1.0]
    assert plot.time_lapse_history(str(tmp_path))[0] == "Time-lapse of 16 peers (kademlia)"
    churned = net.churn(join_rate=20.0, leave_rate=2.0, duration=0.5, seed=1, wait=True)
    assert churned["joined"] > 0
    status = net.net_status()
    assert status["alive"] == len(net.peers) and status["lookups"]["lookups"] == status["n"] * (status["n"] - 1)


def test_net_status_samples_lookups_with_the_routes(make_network):
    messages, local = (make_network(30, seed=4, protocol="kademlia", k=4) for _ in range(2))
    status = messages.net_status(sample=10, routing="messages")
    lookups = status["lookups"]
    assert lookups["sample"] == 10 and 0 < lookups["lookups"] <= 300 and lookups["success_rate"] == 1.0
    assert sum(lookups["rounds"]["histogram"].values()) == lookups["lookups"]
    assert untimed(local.net_status(sample=10, routing="local")) == untimed(status)  # one seed: the same network and targets


def test_the_command_line_speaks_kademlia(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "-n", "12", "--seed", "1", "--protocol", "kademlia", "--k", "4", "--alpha", "2",
                     "--json", "net_status"]) == 0
    status = json.loads(capsys.readouterr().out)["result"]
    model = KademliaModel(1, k=4, alpha=2)
    model.create(12)
    assert untimed(status) == model.net_status()
    source, target = status["peers"][-1]["id"], status["peers"][0]["id"]
    assert cli.main(["run", "-n", "12", "--seed", "1", "--protocol", "kademlia", "--k", "4", "--alpha", "2",
                     "net_status", "lookup", source, target]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("Round ")
    assert "Iterative lookups found 100% of 132 targets, in " in "\n".join(lines)
    assert any(line.startswith(f"Lookup from {source} finds the target in ") for line in lines)
    assert cli.main(["run", "--protocol", "kademlia", "--k", "0"]) == 2
    assert cli.main(["run", "--protocol", "kademlia", "--k", str(m.MAX_K + 1)]) == 2
    assert cli.main(["run", "--protocol", "chord"]) == 2
    assert "usage error" in capsys.readouterr().err


def test_config_checks_the_protocol_settings():
    assert Config(protocol="kademlia", k=m.MAX_K, alpha=1).k == m.MAX_K
    for wrong in ({"protocol": "chord"}, {"k": 0}, {"k": m.MAX_K + 1}, {"alpha": 0}):
        with pytest.raises(UsageError):
            Config(**wrong)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_1000_peers_find_each_other_also_after_a_fifth_crashed(make_network):
    """The goals: on all pairs, iterative lookups find >= 99.5 % and greedy routing reaches >= 99 %; after a
    crash of 20 % of the peers, before any refresh, lookups between the alive ones still find >= 99 %."""
    net, model = kademlia(make_network, 1000, seed=1)
    assert wires(net) == model.wires()
    status = net.net_status(sample=0)  # all pairs: by its cost, net_status would sample 1,000 Kademlia peers
    assert status["lookups"]["lookups"] == 999_000 and status["lookups"]["success_rate"] >= 0.995
    assert status["hops"]["success_rate"] >= 0.99
    net.kill_peers(count=200, seed=1)
    assert net.net_status(sample=0)["lookups"]["success_rate"] >= 0.99


# -- one peer, message by message -------------------------------------------------------------------------------

@pytest.fixture
def peer():
    harness = Harness(protocol="kademlia", k=2)
    yield harness
    harness.close()


def test_find_node_answers_before_learning_the_sender_and_a_read_learns_nobody(peer):
    server, client, table = peer.peer.contact.server, peer.peer.contact.client, peer.peer.table
    first = peer.ask(server, m.FindNode(1, 7, peer.contact(5), 5))
    assert isinstance(first, m.NodesReply) and (first.req_id, first.cookie, first.contacts) == (1, 7, [])
    assert peer.ask(server, m.FindNode(2, 8, peer.contact(6), 5)).contacts == [peer.contact(5)]
    assert peer.ask(server, m.FindNode(3, 9, peer.contact(5), 5)).contacts == [peer.contact(6)]  # not the asker
    assert [c.id for c in table.contacts()] == [6, 5]  # least recently seen first
    assert peer.ask(client, m.ClientNodes(4, 4, 5, 6)).contacts == [peer.contact(5)]
    assert peer.ask(client, m.ClientNodes(5, 5, 5, 99)).contacts == [peer.contact(5), peer.contact(6)]
    assert [c.id for c in table.contacts()] == [6, 5]  # reads learn nobody
    # k = 2 and one bucket holds them all: a newcomer waits in the cache, the least recently seen is suspect
    assert isinstance(peer.ask(server, m.Ping(6, 6, peer.contact(9))), m.Done)
    bucket = (peer.peer.id ^ 9).bit_length() - 1
    assert table.cache(bucket) == [peer.contact(9)] and table.suspects() == [peer.contact(6)]
    wire = peer.ask(client, m.ClientPeers(7, 7)).table
    assert wire == [peer.peer.contact, peer.contact(6), peer.contact(5)]


def test_a_kademlia_peer_drops_the_original_s_requests_and_the_original_drops_kademlia_s(peer):
    peer.tell(peer.peer.contact.server, m.encode(m.GetPeers(1, 1, peer.contact(4))))
    assert peer.ask(peer.peer.contact.server, m.Ping(2, 2, peer.contact(4))).req_id == 2
    assert peer.counters["dropped_reason.unexpected"] == 1 and peer.peer.table.contacts() == [peer.contact(4)]
    original = Harness()
    try:
        original.tell(original.peer.contact.client, m.encode(m.ClientNodes(1, 1, 5, 6)))
        original.tell(original.peer.contact.server, m.encode(m.FindNode(1, 1, original.contact(4), 4)))
        assert original.ask(original.peer.contact.client, m.ClientPeers(2, 2)).req_id == 2
        assert original.counters["dropped_reason.unexpected"] == 2
    finally:
        original.close()


def test_the_supervisor_reads_a_kademlia_table_with_its_owner():
    owner = Contact(0b1000, "inproc://s/8", "inproc://c/8")
    near, far = Contact(0b1001, "inproc://s/9", "inproc://c/9"), Contact(0b0001, "inproc://s/1", "inproc://c/1")
    table = KademliaTable.from_wire([owner, near, far], k=2)
    assert len(table) == 3 and table.contacts() == [owner, near, far] and table.descending() == [near, owner, far]
    assert table.closest(0b1001) == near and table.closest(0b1000) == owner and table.closest(0b0011) == far
    assert table.closest(0b1100) == owner  # nobody nearer: a greedy route stops here
    empty = KademliaTable.from_wire([], k=2)
    assert len(empty) == 0 and empty.descending() == []
    with pytest.raises(ValueError):
        KademliaTable.from_wire([owner, near, Contact(0b1001, "inproc://x", "inproc://y")], k=2)
