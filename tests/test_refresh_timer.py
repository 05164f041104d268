"""Peers refresh by themselves after ``refresh_interval`` without client commands (docs/DESIGN.md §4.4)."""
import pytest

from conftest import wait_until

pytestmark = pytest.mark.timeout(60)


def test_idle_peers_refresh_by_themselves_and_commands_still_get_answers(make_network):
    net = make_network(12, seed=8, refresh_interval=0.05)
    sent = net.counters["requests"]
    # Nobody sends commands: only the peers' own timers can issue find_closest requests now.
    wait_until(lambda: net.counters["requests"] > sent + 12 * 10, timeout=20)
    assert net.counters["timeouts"] == 0
    status = net.net_status()  # commands arriving mid-refresh are queued, never mistaken for replies
    assert status["n"] == 12 and len(status["peers"]) == 12


def test_the_default_interval_is_the_original_day(make_network):
    net = make_network(4, seed=8)
    assert net.config.refresh_interval == 24 * 60 * 60
    sent = net.counters["requests"]
    net.ping()
    assert net.counters["requests"] == sent
