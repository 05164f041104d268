"""``lookup``: the greedy route agrees with net_status pair by pair, the walk follows the discovery rule, and
looking up changes no table."""
import collections
import json

import pytest

from p2pzmq import control
from p2pzmq.protocols.original import discovery
from p2pzmq.errors import UsageError
from p2pzmq.timeline import untimed

pytestmark = pytest.mark.timeout(90)


def table_state(net):
    return [[contact.id for contact in table.preorder()] for table in net.tables()]


@pytest.mark.parametrize("metric", ["tree", "xor"])
def test_routes_agree_with_net_status_and_change_no_table(make_network, metric):
    net = make_network(16, seed=3, metric=metric)
    status = net.net_status()
    before = table_state(net)
    tables = {peer.id: table for peer, table in zip(net.peers, net.tables())}
    hops = collections.Counter()
    for peer, row in zip(net.peers, status["peers"]):
        reached = 0
        for other in net.peers:
            result = net.lookup(str(peer.id), str(other.id))
            route, walk = result["route"], result["walk"]
            assert route["path"][0] == walk["path"][0] == str(peer.id)
            assert route["hops"] == len(route["path"]) - 1 <= net.config.max_hops
            if route["reached"]:
                assert route["path"][-1] == str(other.id)
                reached += 1
                hops[route["hops"]] += 1
            # The walk applies the discovery rule to the tables as they are.
            found = discovery.walk(peer.contact, tables[peer.id], other.id,
                                   lambda contact, target: tables[contact.id].closest(target), net.config.max_hops)
            assert walk["found"] == walk["path"][-1] == str(found.id)
            assert walk["exact"] == (found.id == other.id)
        assert reached == row["reachable"]
    assert {str(k): v for k, v in sorted(hops.items())} == status["hops"]["histogram"]
    assert table_state(net) == before


def test_a_walk_to_a_key_nobody_holds_ends_at_the_closest_peer(make_network):
    net = make_network(12, seed=9, metric="xor")
    source = net.peers[-1]
    target = net.peers[0].id ^ 1  # not a peer: the route cannot arrive, the walk ends next to it
    result = net.lookup(source.id, target)
    assert result["route"]["reached"] is False
    assert result["walk"]["exact"] is False and result["walk"]["queried"] >= 1
    assert int(result["walk"]["found"]) == net.peers[0].id  # under xor, the peer one bit away is the closest


def test_lookup_over_the_control_socket_and_bad_ids(make_network):
    net = make_network(4, seed=1)
    a, b = str(net.peers[0].id), str(net.peers[3].id)
    reply, _ = control.handle(net, json.dumps({"cmd": "lookup", "from": a, "id": b}).encode())
    assert untimed(reply) == {"ok": True, "result": untimed(net.lookup(a, b))}
    for bad in ({"from": "12x", "id": b}, {"from": "5", "id": b}, {"from": a, "id": "-3"}, {"from": a}):
        reply, _ = control.handle(net, json.dumps({"cmd": "lookup", **bad}).encode())
        assert reply["ok"] is False and reply["error"]
    with pytest.raises(UsageError):
        net.lookup(a, 1.5)
