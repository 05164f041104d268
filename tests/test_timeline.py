"""Timelines and latency (docs/DESIGN.md §12): what each request of a lookup did on the network's clock, the
latency summaries net_status makes of them, and the seconds create, refresh and add_peers took."""
import itertools
import math

import pytest

from p2pzmq.network import supervisor
from p2pzmq.timeline import Timeline
from p2pzmq.timeline import untimed

pytestmark = pytest.mark.timeout(120)


def test_a_walk_is_the_sum_of_its_round_trips_and_a_lookup_its_span():
    timeline = Timeline(10.0)
    first = timeline.sent(1, 10.0)
    second = timeline.sent(2, 10.0)
    timeline.settled(second, 10.25, True, names=[5, 7], target=9)
    assert timeline.first_seen is None  # a reply that does not name the target
    timeline.settled(first, 10.5, False, names=[9], target=9)
    assert timeline.first_seen is None  # an unanswered request names nobody
    third = timeline.sent(3, 10.5)
    timeline.settled(third, 11.0, True, names=[9], target=9)
    assert timeline.busy == pytest.approx(0.25 + 0.5 + 0.5)
    assert timeline.span == pytest.approx(1.0)
    described = timeline.describe()
    assert described["seconds"] == 1.0 and described["first_seen"] == 1.0
    assert described["timeline"] == [
        {"to": "1", "sent": 10.0, "replied": 10.5, "answered": False},
        {"to": "2", "sent": 10.0, "replied": 10.25, "answered": True},
        {"to": "3", "sent": 10.5, "replied": 11.0, "answered": True}]
    assert timeline.describe(timeline.busy)["seconds"] == 1.25


def test_a_target_known_at_the_start_is_seen_at_once_and_never_later():
    timeline = Timeline(3.0)
    timeline.seen_at_start()
    number = timeline.sent(4, 3.0)
    timeline.settled(number, 3.5, True, names=[4], target=4)
    assert timeline.describe()["first_seen"] == 0.0
    empty = Timeline(2.0).describe()
    assert (empty["seconds"], empty["first_seen"], empty["timeline"]) == (0.0, None, [])


def test_a_request_cannot_settle_before_it_was_sent():
    timeline = Timeline(0.0)
    number = timeline.sent(1, 1.0)
    with pytest.raises(ValueError):
        timeline.settled(number, 0.5, True)


@pytest.fixture
def stepping_clock(monkeypatch):
    """Networks made after this read a clock that moves 1 ms at every reading: the times of their timelines are
    then a pure function of what the supervisor does, run to run."""
    class Stepping:
        def __init__(self):
            self.readings = itertools.count()

        def now(self):
            return next(self.readings) / 1000

    def clock_of(config, engine):
        return Stepping()
    monkeypatch.setattr(supervisor, "_clock_of", clock_of)


def assert_consistent(described: dict) -> None:
    """Each request settles after it was sent, within the timeline's start and end."""
    for request in described["timeline"]:
        assert described["started"] <= request["sent"] <= request["replied"] <= described["ended"]


@pytest.mark.parametrize("protocol", ["original", "kademlia"])
def test_lookup_lists_every_request_with_its_times(make_network, stepping_clock, protocol):
    results = []
    for _ in range(2):
        net = make_network(12, seed=4, protocol=protocol)
        source, target = net.peers[-1].id, net.peers[0].id
        results.append(net.lookup(source, target))
    # replies to a round's parallel requests come back in libzmq's order, so only their times may differ
    assert untimed(results[0]) == untimed(results[1])
    result = results[0]
    route = result["route"]
    assert_consistent(route)
    assert [request["to"] for request in route["timeline"]] == route["path"][:len(route["timeline"])]
    assert route["seconds"] == round(sum(r["replied"] - r["sent"] for r in route["timeline"]), 9) > 0
    if protocol == "kademlia":
        lookup = result["lookup"]
        assert_consistent(lookup)
        assert len(lookup["timeline"]) == lookup["requests"] + 1  # the start's own closest contacts first
        assert lookup["seconds"] == round(lookup["ended"] - lookup["started"], 9)
        assert lookup["found"] and 0 <= lookup["first_seen"] <= lookup["seconds"]
        asked = [contact["id"] for batch in lookup["rounds"] for contact in batch]
        assert [request["to"] for request in lookup["timeline"][1:]] == asked
    else:
        walk = result["walk"]
        assert_consistent(walk)
        assert len(walk["timeline"]) >= walk["queried"]  # one table read for each peer the walk visits
        assert walk["seconds"] == round(sum(r["replied"] - r["sent"] for r in walk["timeline"]), 9)


def test_net_status_latency_summarises_the_routes_that_arrived(make_network, stepping_clock):
    net = make_network(10, seed=2)
    status = net.net_status(routing="messages")
    latency = status["latency"]
    assert latency["unit"] == "ms"
    assert latency["count"] == sum(status["hops"]["histogram"].values())
    assert sum(bucket["count"] for bucket in latency["histogram"]) == latency["count"]
    assert 0 <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert latency["histogram"][0]["from"] == 0.0  # a route from a peer to itself asks nobody: 0 s
    assert net.net_status(routing="local")["latency"] is None  # no message was timed


def test_create_refresh_and_add_peers_report_the_seconds_they_took(make_network, stepping_clock):
    net = make_network(seed=3)
    created = net.create(6)
    refreshed = net.refresh_peers()
    added = net.add_peers(2)
    for result in (created, refreshed, added):
        assert result["seconds"] > 0 and math.isfinite(result["seconds"])
    assert refreshed["refreshed"] == 6 and added["n"] == 8



def test_under_a_model_a_driven_lookup_takes_the_model_s_round_trips(make_network):
    net = make_network(30, seed=1, protocol="kademlia", latency="constant:50ms", network_clock="virtual")
    source, target = net.peers[-1].id, net.peers[0].id
    lookup = net.lookup(source, target)["lookup"]
    rounds = len(lookup["rounds"])
    # the start's own contacts are local; every round then waits for its requests, each 2 x 50 ms
    assert lookup["seconds"] == pytest.approx(0.1 * rounds) and rounds >= 1
    assert all(request["replied"] - request["sent"] == pytest.approx(0.1) for request in lookup["timeline"][1:])
    assert lookup["first_seen"] in [pytest.approx(0.1 * r) for r in range(rounds + 1)]
    again = make_network(30, seed=1, protocol="kademlia", latency="constant:50ms", network_clock="virtual")
    assert again.lookup(source, target)["lookup"] == lookup  # one seed, one timeline


def test_under_a_model_a_greedy_route_costs_a_round_trip_from_its_source_per_peer_it_asks(make_network):
    net = make_network(24, seed=2, latency="uniform:5ms:15ms", network_clock="virtual")
    status = net.net_status(routing="messages")
    latency = status["latency"]
    assert latency["count"] == sum(status["hops"]["histogram"].values())
    # a route of h hops asks its source (locally) and h - 1 other peers, each 10 to 30 ms there and back
    assert latency["max"] <= 30 * (max(map(int, status["hops"]["histogram"])) - 1) + 1e-6
    assert latency["max"] > 0  # routes of one hop ask only their source: 0 s; longer ones take time
    again = make_network(24, seed=2, latency="uniform:5ms:15ms", network_clock="virtual")
    assert again.net_status(routing="messages")["latency"] == latency


def test_trips_are_the_model_s_and_lose_what_it_loses():
    from p2pzmq import netmodel
    from p2pzmq.timeline import Trips

    model = netmodel.Model(netmodel.parse_latency("uniform:10ms:30ms"), jitter=0.0, loss=0.0, seed=3)
    trips = Trips(model, 3)
    drawn = [trips.trip(1, 2) for _ in range(200)]
    assert all(0.02 <= trip <= 0.06 for trip in drawn) and len(set(drawn)) > 100
    assert trips.trip(5, 5) == 0.0
    assert Trips(model, 3).trip(1, 2) == drawn[0]  # its own seeded stream
    lossy = Trips(netmodel.Model(netmodel.parse_latency("constant:10ms"), loss=0.5, seed=3), 3)
    outcomes = [lossy.trip(1, 2) for _ in range(400)]
    assert 0.6 < outcomes.count(None) / 400 < 0.9  # a trip is lost if either message is: 1 - 0.5 ** 2
    assert all(trip == pytest.approx(0.02) for trip in outcomes if trip is not None)
    parted = Trips(model, 3, blocked=lambda a, b: True)
    assert parted.trip(1, 2) is None
