"""Peers refresh by themselves after ``refresh_interval`` without client commands (docs/DESIGN.md §4.4): on a fake
clock, exactly then."""
import pytest

from p2pzmq.clock import FakeClock

pytestmark = pytest.mark.timeout(60)


def test_idle_peers_refresh_by_themselves_exactly_each_interval_and_commands_still_get_answers(make_network):
    clock = FakeClock()
    net = make_network(12, seed=8, refresh_interval=100.0, clock=clock)
    sent = net.counters["requests"]
    clock.advance(99.5)  # every peer's last command came at 0: nobody is due yet
    assert net.counters["requests"] == sent
    for interval in range(1, 4):
        clock.advance(100.0 if interval > 1 else 0.5)
        assert clock.now() == 100.0 * interval
        refreshed = net.counters["requests"]
        assert refreshed >= sent + 12  # every peer asked at least one server: only the timers can have done it
        sent = refreshed
    assert net.counters["timeouts"] == 0
    status = net.net_status()  # commands arriving mid-refresh are queued, never mistaken for replies
    assert status["n"] == 12 and len(status["peers"]) == 12


def test_a_command_puts_a_peers_own_refresh_a_whole_interval_off(make_network):
    clock = FakeClock()
    net = make_network(6, seed=8, refresh_interval=100.0, clock=clock)
    clock.advance(60)
    net.refresh_peers()  # a command to every peer at 60: none refreshes by itself before 160
    sent = net.counters["requests"]
    clock.advance(99.5)
    assert net.counters["requests"] == sent
    clock.advance(0.5)
    assert net.counters["requests"] >= sent + 6


def test_the_default_interval_is_the_original_day(make_network):
    net = make_network(4, seed=8)
    assert net.config.refresh_interval == 24 * 60 * 60
    sent = net.counters["requests"]
    net.ping()
    assert net.counters["requests"] == sent
