"""Background greenlets are linked: when a peer loop, churn or the heartbeat watch dies of an error, it is logged
once, the peer is marked dead, and ``stats``/``ping`` show it; nothing else stops."""
import logging

import pytest

from conftest import wait_until
from p2pzmq import messages as m, worker
from p2pzmq.timeline import untimed

pytestmark = pytest.mark.timeout(60)


def test_a_peer_whose_loop_dies_is_logged_once_marked_dead_and_shown(make_network, caplog):
    net = make_network(8, client_timeout=0.3)
    victim = net.peers[3]

    def broken(msg):
        raise RuntimeError("a bug in find_peers")

    victim._quick[m.FindPeers] = broken  # the next FindPeers command kills the victim's client loop
    with caplog.at_level(logging.ERROR, logger="p2pzmq"):
        first = net.net_status(routing="messages")
        wait_until(lambda: not victim.alive)
    assert [record.getMessage() for record in caplog.records if "crashed" in record.getMessage()] == \
        [f"peer {victim.id} crashed: RuntimeError('a bug in find_peers')"]
    assert first["n"] == 8 and first["connectivity"] < 100  # its routes failed
    assert net.stats()["crashed"] == 1 and net.ping() == {"n": 8, "crashed": 1}
    status = net.net_status()  # no command goes to it any more: it is listed as crashed at once
    assert status["n"] == 7 and status["dead"] == [{"id": str(victim.id), "state": "crashed"}]
    assert [row["state"] for row in net.peer_list()["peers"]].count("crashed") == 1
    assert untimed(net.refresh_peers()) == {"refreshed": 7}  # the others carry on


def test_a_churn_that_dies_of_an_error_shows_in_stats_and_ping(make_network, caplog):
    net = make_network(4)

    def broken(n):
        raise RuntimeError("cannot add")

    net._churn._add = broken
    with caplog.at_level(logging.ERROR, logger="p2pzmq"):
        net.churn(join_rate=50.0, leave_rate=0.0, duration=5.0, seed=1)
        # the churn's greenlet ends before its link records the failure: wait for the record, not the end
        wait_until(lambda: not net.churned["running"] and net.ping().get("failures"))
    failure = {"what": "churn", "error": "RuntimeError('cannot add')"}
    assert net.stats()["failures"] == [failure] and net.ping()["failures"] == [failure]
    assert sum("churn stopped by an error" in record.getMessage() for record in caplog.records) == 1
    assert net.net_status()["n"] == 4  # the network itself is unharmed


def test_a_heartbeat_watch_that_dies_shows_in_stats_and_ping(make_network, caplog):
    net = make_network(seed=2, transport="tcp")
    launched = worker.launch(["127.0.0.1"], net.config)
    try:
        net.attach(launched.endpoints[0], peers=4)
        watch = net._workforce._watch

        def broken(sock, until):
            raise RuntimeError("heartbeats broke")

        with caplog.at_level(logging.ERROR, logger="p2pzmq"):
            watch._receive = broken
            wait_until(lambda: net.stats()["failures"])
        failure = {"what": "heartbeat watch", "error": "RuntimeError('heartbeats broke')"}
        assert net.stats()["failures"] == [failure] and net.ping()["failures"] == [failure]
        assert sum("heartbeat watch stopped" in record.getMessage() for record in caplog.records) == 1
    finally:
        net.die()
        launched.reap(5)
