"""Long operations of the Python API: ``progress`` while they run, ``cancel`` stopping them at a safe point with
every table whole (checked against the message-free oracle), and ``die`` from another greenlet ending them."""
import gevent
import gevent.event
import pytest
from model import ModelNetwork

from p2pzmq.errors import Cancelled, ClosedError, UsageError
from p2pzmq.timeline import untimed

pytestmark = pytest.mark.timeout(60)


def cancel_at(net, phase: str, done: int) -> None:
    """Make ``net`` cancel its operation when ``phase`` reports ``done``: that report is the safe point it stops at."""
    def report(reported: str, count: int, total: int) -> None:
        if (reported, count) == (phase, done):
            net.cancel()
    net.on_progress = report


def preorders(net) -> list[list[int]]:
    return [[contact.id for contact in table.preorder()] for table in net.tables()]


def assert_whole(net) -> None:
    """Every table holds its owner and no more than its capacity."""
    for peer, table in zip(net.peers, net.tables()):
        assert peer.id in table and len(table) <= net.config.table_capacity


def test_a_cancelled_refresh_stops_between_peers_with_every_table_whole(make_network):
    net = make_network(16, seed=5)
    cancel_at(net, "refresh", 6)
    with pytest.raises(Cancelled) as stopped:
        net.refresh_peers()
    assert str(stopped.value) == "refresh_peers cancelled after 6 of 16 peers refreshed"
    assert stopped.value.phases == [{"phase": "refresh", "done": 6, "total": 16}]
    assert_whole(net)
    model = ModelNetwork(5)
    model.create(16)
    model.refresh_peers(6)  # the first six peers in list order refreshed, the others untouched
    assert preorders(net) == model.preorders()
    with pytest.raises(UsageError, match="no long operation is running"):
        net.progress()
    with pytest.raises(UsageError, match="no long operation is running"):
        net.cancel()
    net.on_progress = None
    assert untimed(net.refresh_peers()) == {"refreshed": 16}  # the cancel is spent: the next operation runs to its end


def test_a_cancelled_add_peers_keeps_the_peers_that_joined_and_stops_those_started_ahead(make_network):
    net = make_network(8, seed=6)
    cancel_at(net, "create", 3)
    with pytest.raises(Cancelled, match=r"^add_peers cancelled after 3 of 100 peers created$"):
        net.add_peers(100)  # peers are started 64 at a time, ahead of their joins
    assert len(net.peers) == 11 and len(net.local.peers) == 11  # none of the 61 started ahead lingers
    assert_whole(net)
    model = ModelNetwork(6)
    model.create(8)
    model.create(3)
    assert preorders(net) == model.preorders()


def test_a_cancelled_status_stops_between_routing_rounds(make_network):
    net = make_network(12, seed=7)
    cancel_at(net, "net_status", 2)
    with pytest.raises(Cancelled, match=r"^net_status cancelled after 2 of 9 routing rounds$"):
        net.net_status(routing="messages")
    net.on_progress = None
    model = ModelNetwork(7)
    model.create(12)
    assert untimed(net.net_status()) == model.net_status()  # a status changes no table, cancelled or not


def test_a_cancelled_time_lapse_stops_between_steps(make_network, tmp_path):
    net = make_network(8, seed=8)
    cancel_at(net, "time_lapse", 1)
    with pytest.raises(Cancelled, match=r"^time_lapse cancelled after 1 of 3 steps$"):
        net.time_lapse(3, str(tmp_path))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["time-lapse-1.tgf"]
    model = ModelNetwork(8)
    model.create(8)
    model.refresh_peers()
    assert preorders(net) == model.preorders()


def test_progress_from_another_greenlet_and_die_ending_the_operation(make_network):
    net = make_network(10, seed=9)
    held, release = gevent.event.Event(), gevent.event.Event()

    def report(phase: str, done: int, total: int) -> None:
        if (phase, done) == ("refresh", 4):
            held.set()
            release.wait()

    net.on_progress = report
    runner = gevent.spawn(net.refresh_peers)
    assert held.wait(timeout=30)
    progress = net.progress()
    assert progress["running"] == "refresh_peers" and progress["phases"] == [
        {"phase": "refresh", "done": 4, "total": 10}]
    assert (progress["phase"], progress["done"], progress["total"], progress["cancelling"]) == ("refresh", 4, 10,
                                                                                                False)
    assert net.die() == {"stopping": True}
    with pytest.raises(ClosedError, match="stopped"):
        runner.get(timeout=10)  # the operation's greenlet is told at once, not left waiting on closed sockets
    assert net.closed
