"""Simulated time (docs/DESIGN.md §12): the delivery engine on the virtual clock (exact, no sleeps) and on the real
clock (a tolerance derived from the model), its order of deliveries and timers, and the command line's choices."""
import gevent
import gevent.event
import pytest

from p2pzmq import cli, netmodel, simtime
from p2pzmq.errors import ProtocolError, UsageError

pytestmark = pytest.mark.timeout(120)


class FakeSocket:
    """What the engine hands messages back to: records them, in order."""

    closed = False

    def __init__(self, log: list, name: str) -> None:
        self.log, self.name = log, name

    def _arrive(self, frames):
        self.log.append((self.name, frames[1]))


def engine(latency="constant:10ms", **options):
    return simtime.VirtualEngine(netmodel.Model(netmodel.parse_latency(latency), seed=1, **options))


def settle(until=lambda: False, rounds=50):
    """Let the driver run (it takes one idle moment an event) until ``until()`` holds or ``rounds`` moments pass."""
    for _ in range(rounds):
        if until():
            return
        gevent.idle()


def receive(clock, sock, sender, receiver, body):
    clock.sent(receiver)
    clock.received(sock, receiver, [b"route", clock.stamp(sender), body])


def test_headers_round_trip_and_bad_ones_are_refused():
    assert simtime.parse_header(simtime.header(2 ** 160 - 1, 7)) == (2 ** 160 - 1, 7)
    for bad in (b"", b"12", b"a:1", b"1:-2", b"1:2:3", b"9" * 70 + b":1"):
        with pytest.raises(ProtocolError):
            simtime.parse_header(bad)


def test_deliveries_follow_time_then_sender_then_sequence_whatever_the_order_of_receipt():
    clock = engine()
    log = []
    sock = FakeSocket(log, "s")
    # received in an order libzmq might choose; all due at 10 ms: sender 5's two, then sender 9's
    receive(clock, sock, 9, 1, b"nine")
    receive(clock, sock, 5, 1, b"five-a")
    receive(clock, sock, 5, 1, b"five-b")
    settle(lambda: len(log) == 3)
    assert log == [("s", b"five-a"), ("s", b"five-b"), ("s", b"nine")]
    assert clock.now() == 0.01 and clock.counts["delivered"] == 3
    clock.stop()


def test_time_stands_still_while_a_message_is_in_flight():
    clock = engine()
    log = []
    clock.sent(3)  # sent, never received: the clock must not move past it
    receive(clock, FakeSocket(log, "s"), 1, 2, b"held")
    settle()
    assert log == [] and clock.now() == 0
    clock.closed(3)  # the receiver closed: what was on its way to it is released
    settle(lambda: log)
    assert log == [("s", b"held")] and clock.now() == 0.01
    clock.stop()


def test_timers_run_on_the_virtual_clock_only_while_a_command_runs_or_advance_lets_them():
    clock = engine()
    fired = []
    clock.call_later(5, fired.append, "five")
    clock.call_later(1, fired.append, "one")
    settle()
    assert fired == [] and clock.now() == 0  # nobody asked for time to pass
    assert clock.advance(2) == 2.0 and fired == ["one"]
    with clock.busy():
        clock.sleep(10)  # a command sleeping: time jumps over the timer due at 5
    assert fired == ["one", "five"] and clock.now() == 12.0
    with pytest.raises(UsageError):
        clock.advance(-1)
    clock.stop()


def test_a_timer_runs_before_a_delivery_due_at_the_same_tick():
    clock = engine()
    order = []
    clock.call_later(0.01, order.append, "timer")
    receive(clock, FakeSocket(order, "delivery"), 1, 2, b"x")
    with clock.busy():
        clock.sleep(0.02)
    assert order == ["timer", ("delivery", b"x")]
    clock.stop()


def test_loss_and_partitions_drop_and_count_taking_three_draws_each():
    clock = simtime.RealEngine(netmodel.Model(netmodel.parse_latency("constant:1ms"), loss=0.5, seed=2))
    reference = netmodel.Model(netmodel.parse_latency("constant:1ms"), loss=0.5, seed=2)
    expected = [reference.draw(1, 2) for _ in range(40)]
    log = []
    done = gevent.event.Event()
    sock = FakeSocket(log, "s")
    sock._arrive = lambda frames: (log.append(frames[1]), len(log) == expected.count(0.001) and done.set())
    for number in range(40):
        receive(clock, sock, 1, 2, b"%d" % number)
    assert done.wait(5)
    # the real clock keeps no order between messages due at once: the set is the model's
    assert sorted(log, key=int) == [b"%d" % n for n, delay in enumerate(expected) if delay is not None]
    assert clock.counts["lost"] == expected.count(None) > 0
    clock.partition = netmodel.partition_ids([1, 2, 3], [1])
    receive(clock, sock, 1, 2, b"cut")
    assert clock.counts["partitioned"] == 1


def test_the_clock_chosen_and_the_combinations_refused():
    none, model = netmodel.NONE, netmodel.parse_latency("constant:5ms")
    assert simtime.check_options(none, 0, 0, None, False) == "real"
    assert simtime.check_options(model, 0, 0, None, False) == "virtual"
    assert simtime.check_options(model, 0, 0, None, True) == "real"
    assert simtime.check_options(model, 0, 0.1, "real", False) == "real"
    with pytest.raises(UsageError, match="not available over workers"):
        simtime.check_options(model, 0, 0, "virtual", True)
    with pytest.raises(UsageError, match="--loss 0.1: needs --clock real"):
        simtime.check_options(model, 0, 0.1, None, False)


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
def test_the_same_seed_gives_the_same_bytes_on_the_virtual_clock(capsys, tmp_path, monkeypatch, transport):
    monkeypatch.chdir(tmp_path)
    runs = []
    for _ in range(2):
        out = _run(capsys, "run", "-n", "12", "--seed", "4", "--transport", transport, "--protocol", "kademlia",
                   "--latency", "lognormal:20ms:0.8", "--jitter", "0.3", "net_status", "refresh_peers", "ping",
                   "output_tgf", "network.tgf")
        runs.append((out, (tmp_path / "network.tgf").read_bytes()))
    assert runs[0] == runs[1]
    assert "12 peers at " in runs[0][0] and " s of simulated time" in runs[0][0]


def test_a_sequential_build_takes_its_round_trips_in_simulated_time_and_keeps_its_tables(make_network):
    plain = make_network(25)
    timed = make_network(25, latency="constant:50ms", network_clock="virtual")
    peer_requests = timed.stats()["requests"] - 24  # the supervisor's 24 join commands are not peer messages
    network = timed.stats()["network"]
    assert network["delivered"] == 2 * peer_requests and network["lost"] == 0
    assert timed.ping()["now"] == pytest.approx(peer_requests * 0.1, abs=1e-9)  # each request a 100 ms round trip
    assert [[c.id for c in view.descending()] for view in timed.tables()] == \
        [[c.id for c in view.descending()] for view in plain.tables()]
    assert "now" not in plain.ping() and "network" not in plain.stats()  # today's network: today's results


def test_the_real_clock_holds_each_message_for_its_delay(make_network):
    network = make_network(3, latency="constant:5ms", network_clock="real")
    peer_requests = network.stats()["requests"] - 2
    # each round trip waits 10 ms on the wall clock; the build's other work only adds to it
    assert network.seconds["create"] >= peer_requests * 0.01 * 0.99
    assert network.stats()["network"]["delivered"] == 2 * peer_requests


def test_partition_cuts_heal_restores_and_advance_lets_time_pass(make_network):
    # a cut request is found out by its client's timeout, which runs on the wall clock for now: keep it short, but
    # far above any stall of a loaded machine
    network = make_network(4, latency="constant:1ms", network_clock="virtual", client_timeout=0.5)
    events = []
    network.events.subscribe(events.append)
    before = network.ping()["now"]
    with pytest.raises(UsageError, match="no peer has id 12345"):
        network.partition(ids=["12345"])
    assert network.engine.partition is None  # refused: the network unchanged
    assert network.partition(groups=2, seed=7) == {"groups": [2, 2], "now": before}
    alone = str(network.peers[0].id)
    assert network.partition(ids=[alone])["groups"] == [3, 1]
    cut = [event for event in events if event["type"] == "partition"]
    assert [event["phase"] for event in cut] == ["cut", "cut"] and cut[1]["groups"][1] == [alone]
    assert sorted(map(len, cut[0]["groups"])) == [2, 2]
    assert cut[0]["t"] == round(before, 6)  # events carry simulated seconds
    network.refresh_peers()
    stats = network.stats()
    assert stats["network"]["partitioned"] > 0 and stats["timeouts"] == stats["network"]["partitioned"]
    assert network.heal() == {"healed": True, "now": network.ping()["now"]}
    partitioned = network.stats()["network"]["partitioned"]
    network.refresh_peers()
    assert network.stats()["network"]["partitioned"] == partitioned
    now = network.ping()["now"]
    assert network.advance(90.5) == {"now": round(now + 90.5, 9)}
    assert [event["phase"] for event in events if event["type"] == "partition"] == ["cut", "cut", "healed"]


def test_partition_commands_need_a_model_and_one_choice(make_network):
    plain = make_network(3)
    with pytest.raises(UsageError, match="no network model"):
        plain.partition(groups=2)
    timed = make_network(3, latency="constant:1ms", network_clock="virtual")
    for arguments, says in (({}, "either groups=K"), ({"groups": 2, "ids": ["1"]}, "either groups=K"),
                            ({"groups": 1}, "at least 2"), ({"groups": 4}, "from 2 to the 3 peers")):
        with pytest.raises(UsageError, match=says):
            timed.partition(**arguments)
    with pytest.raises(UsageError, match="at least 0"):
        timed.advance(-1.0)


def test_a_dead_virtual_clock_driver_is_reported_not_silent(make_network):
    network = make_network(2, latency="constant:1ms", network_clock="virtual")
    died = gevent.event.Event()
    engine = network.engine

    def broken():
        died.set()
        raise RuntimeError("a bug in the driver")

    engine._next = broken  # the driver's next look at its queue fails
    with engine.busy():
        receive(engine, FakeSocket([], "s"), 1, 2, b"wake")
        assert died.wait(5)
        settle(lambda: network.failures)
    assert network.failures == [{"what": "virtual clock's driver", "error": "RuntimeError('a bug in the driver')"}]
    assert network.ping()["failures"] == network.failures and engine.failures == network.failures
    network.die()  # stopping a network whose driver is dead is quiet
    assert engine._driver is None
