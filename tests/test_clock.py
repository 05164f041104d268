"""The one clock (p2pzmq/clock.py): the fake clock exactly (order, ties, cancellation, nested and reused timeouts,
waits with deadlines, autojump), checked against a model on seeded schedules; and the real clock's behaviour, never
its durations."""
import itertools
import random
import socket

import gevent
import gevent.event
import pytest
from gevent.hub import Waiter

from p2pzmq import link
from p2pzmq.clock import REAL, Clock, FakeClock, RealClock
from p2pzmq.config import Config
from p2pzmq.transport import Context

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def clock():
    fake = FakeClock()
    yield fake
    fake.close()


@pytest.fixture
def jumping():
    fake = FakeClock(autojump=True)
    yield fake
    fake.close()


def test_time_starts_at_zero_and_moves_only_by_advance(clock):
    assert clock.now() == 0.0
    gevent.sleep(0)
    assert clock.now() == 0.0
    clock.advance(1.5)
    clock.advance(0)
    assert clock.now() == 1.5
    with pytest.raises(ValueError):
        clock.advance(-1)
    with pytest.raises(ValueError):
        clock.advance(float("nan"))
    assert clock.now() == 1.5


def test_a_sleeper_wakes_exactly_at_its_time(clock):
    woke = []
    sleeper = gevent.spawn(lambda: (clock.sleep(2.5), woke.append(clock.now())))
    gevent.sleep(0)
    clock.advance(2.4)
    assert woke == []
    clock.advance(0.1)
    assert woke == [2.5]
    assert clock.now() == 2.5
    sleeper.join()


def test_sleep_zero_only_yields(clock):
    ran = []
    gevent.spawn(ran.append, 1)
    clock.sleep(0)
    clock.sleep(-1)
    assert ran == [1] and clock.now() == 0.0


def test_calls_run_in_order_of_time_and_ties_in_order_of_scheduling(clock):
    order = []
    for name, delay in [("c", 3), ("a1", 1), ("b", 2), ("a2", 1), ("z", 0), ("a3", 1)]:
        clock.call_later(delay, lambda n=name: order.append((n, clock.now())))
    clock.advance(10)
    assert order == [("z", 0), ("a1", 1), ("a2", 1), ("a3", 1), ("b", 2), ("c", 3)]
    assert clock.now() == 10


def test_advance_lets_what_a_timer_woke_run_before_the_next_one(clock):
    order = []

    def sleeper(name, seconds):
        clock.sleep(seconds)
        order.append(name)
        clock.sleep(seconds)  # starts after the other's first wake-up: the tie is in order of scheduling
        order.append(name + "'")

    greenlets = [gevent.spawn(sleeper, "a", 1), gevent.spawn(sleeper, "b", 1)]
    gevent.sleep(0)
    clock.advance(2)
    assert order == ["a", "b", "a'", "b'"]
    gevent.joinall(greenlets)


def test_a_call_started_by_a_call_at_the_same_instant_runs_in_that_advance(clock):
    order = []
    clock.call_later(1, lambda: clock.call_later(0, order.append, "second"))
    clock.call_later(1, order.append, "first")
    clock.advance(1)
    assert order == ["first", "second"]


def test_cancelled_calls_never_run(clock):
    ran = []
    keep = clock.call_later(1, ran.append, "keep")
    drop = clock.call_later(1, ran.append, "drop")
    assert drop.active
    drop.cancel()
    assert not drop.active
    clock.advance(2)
    assert ran == ["keep"] and not keep.active
    keep.cancel()  # harmless once it ran


def test_a_call_cancelled_at_its_own_instant_by_an_earlier_one_never_runs(clock):
    ran = []
    later = []
    clock.call_later(1, lambda: later[0].cancel())
    later.append(clock.call_later(1, ran.append, "cancelled"))
    clock.advance(1)
    assert ran == []


def test_a_repeating_timer_fires_every_interval_until_stopped(clock):
    times = []
    timer = clock.timer(2, 3)
    timer.start(lambda: times.append(clock.now()))
    clock.advance(11)
    assert times == [2, 5, 8, 11]
    timer.stop()
    clock.advance(10)
    assert times == [2, 5, 8, 11] and not timer.active


def test_a_restarted_timer_counts_from_its_restart(clock):
    times = []
    timer = clock.timer(2)
    timer.start(lambda: times.append(clock.now()))
    clock.advance(1)
    timer.start(lambda: times.append(clock.now()))
    clock.advance(5)
    assert times == [3]


def test_again_puts_a_repeating_timer_a_whole_interval_ahead_and_stops_a_single_one(clock):
    times = []
    timer = clock.timer(5, 5)
    timer.start(lambda: times.append(("start", clock.now())))
    clock.advance(3)
    timer.again(lambda: times.append(("again", clock.now())))  # as a peer does on each command
    clock.advance(7)
    assert times == [("again", 8)] and timer.active
    timer.close()
    once = clock.timer(1)
    once.start(times.append, "once")
    once.again(times.append, "once")
    clock.advance(5)
    assert times == [("again", 8)] and not once.active


def test_timers_put_off_again_and_again_leave_no_pile_of_stale_entries(clock):
    fired = []
    timers = [clock.timer(10, 10) for _ in range(3)]
    for index, timer in enumerate(timers):
        timer.start(fired.append, index)
    for _ in range(5000):  # as peers do on every command
        for timer in timers:
            timer.again(fired.append, timers.index(timer))
    assert len(clock._heap) < 200
    timers[1].stop()
    clock.advance(10)
    assert fired == [0, 2]


def test_next_due_names_the_next_live_timer(clock):
    assert clock.next_due() is None
    first = clock.call_later(2, lambda: None)
    clock.call_later(5, lambda: None)
    assert clock.next_due() == 2
    first.cancel()
    assert clock.next_due() == 5


def test_bad_durations_are_refused(clock):
    with pytest.raises(ValueError):
        clock.timer(float("nan"))
    with pytest.raises(ValueError):
        clock.timer(1, -1)


@pytest.mark.parametrize("seed", range(40))
def test_seeded_schedules_fire_as_the_model_says(clock, seed):
    """Random calls, cancellations and advances against the model: due time, then order of scheduling."""
    rng = random.Random(seed)
    fired, expected, handles = [], [], {}
    seq = itertools.count()
    for _ in range(rng.randrange(1, 60)):
        action = rng.random()
        if action < 0.6:
            delay = rng.choice([0, 0.5, 1, 1, 2, 3.25, rng.uniform(0, 5)])
            name = next(seq)
            handles[name] = (clock.now() + delay, name, clock.call_later(delay, fired.append, name))
        elif action < 0.8 and handles:
            name = rng.choice(sorted(handles))
            handles.pop(name)[2].cancel()
        else:
            end = clock.now() + rng.choice([0, 0.5, 1, rng.uniform(0, 3)])
            due = sorted(item for item in handles.values() if item[0] <= end)
            expected += [name for _, name, _ in due]
            for _, name, _ in due:
                del handles[name]
            clock.advance(end - clock.now())
            assert fired == expected
    clock.advance(10)
    assert fired == expected + [name for _, name, _ in sorted(handles.values())]


def test_a_timeout_raises_itself_at_its_time(clock):
    caught = []

    def wait():
        with clock.timeout(2) as timeout:
            try:
                gevent.event.Event().wait()
            except gevent.Timeout as exc:
                caught.append((exc is timeout, clock.now()))

    waiter = gevent.spawn(wait)
    gevent.sleep(0)
    clock.advance(1.9)
    assert caught == []
    clock.advance(0.1)
    waiter.join()
    assert caught == [(True, 2)]


def test_a_timeout_with_false_ends_its_block_quietly_and_one_with_an_exception_raises_it(jumping):
    with jumping.timeout(1, False):
        gevent.event.Event().wait()
    assert jumping.now() == 1
    with pytest.raises(KeyError):
        with jumping.timeout(1, KeyError("late")):
            gevent.event.Event().wait()
    assert jumping.now() == 2


def test_a_timeout_cancelled_in_time_never_fires_and_can_be_started_again(clock):
    timeout = clock.timeout(1)
    for _ in range(3):
        timeout.start()
        assert timeout.pending
        clock.advance(0.5)
        timeout.cancel()
        assert not timeout.pending
        clock.advance(1)
    timeout.start()
    gevent.spawn(clock.advance, 2)
    with pytest.raises(gevent.Timeout) as raised:
        clock.sleep(2)
    assert raised.value is timeout and clock.now() == 5.5
    timeout.close()


def test_sleep_on_a_fake_clock_without_autojump_waits_for_advance(clock):
    done = gevent.spawn(clock.sleep, 1)
    gevent.sleep(0)
    assert not done.ready()
    clock.advance(1)
    assert done.ready()


def test_nested_timeouts_the_shorter_one_fires(jumping):
    outer, inner = jumping.timeout(5), jumping.timeout(2)
    with pytest.raises(gevent.Timeout) as raised:
        with outer:
            with inner:
                jumping.sleep(10)
    assert raised.value is inner and jumping.now() == 2

    outer, inner = jumping.timeout(1), jumping.timeout(3)
    with pytest.raises(gevent.Timeout) as raised:
        with outer:
            try:
                with inner:
                    jumping.sleep(10)
            except gevent.Timeout as exc:
                assert exc is outer  # the inner one must not swallow the outer's expiry
                raise
    assert raised.value is outer and jumping.now() == 3


def test_an_inner_timeout_ended_in_time_leaves_the_outer_running(jumping):
    outer = jumping.timeout(4)
    with pytest.raises(gevent.Timeout) as raised:
        with outer:
            with jumping.timeout(1, False):
                jumping.sleep(10)
            assert jumping.now() == 1
            jumping.sleep(10)
    assert raised.value is outer and jumping.now() == 4


def test_a_timeout_of_none_never_fires(jumping):
    jumping.call_later(50, lambda: None)
    with jumping.timeout(None):
        jumping.sleep(100)
    assert jumping.now() == 100


def test_wait_reports_a_switch_before_the_deadline_or_the_deadline(clock):
    waiter = Waiter()
    clock.call_later(1, waiter.switch, "x")
    result = []
    greenlet = gevent.spawn(lambda: result.append(clock.wait(waiter, 2)))
    gevent.sleep(0)
    clock.advance(3)
    greenlet.join()
    assert result == [True]

    greenlet = gevent.spawn(lambda: result.append((clock.wait(Waiter(), 2), clock.now())))
    gevent.sleep(0)
    clock.advance(2)
    greenlet.join()
    assert result == [True, (False, 5)]
    assert clock.wait(Waiter(), 0) is False and clock.wait(Waiter(), -1) is False
    assert clock.next_due() is None  # no timer left behind


def test_a_late_expiry_never_reaches_the_next_wait(jumping):
    waiter = Waiter()
    jumping.call_later(1, waiter.switch, None)
    assert jumping.wait(waiter, 1) is True  # a tie: the switch was scheduled first
    assert jumping.wait(Waiter(), 3) is False
    assert jumping.now() == 4


def test_wait_any_returns_the_first_ready_or_none(jumping):
    first, second = gevent.event.Event(), gevent.event.Event()
    jumping.call_later(2, second.set)
    jumping.call_later(3, first.set)
    assert jumping.wait_any([first, second], 5) is second and jumping.now() == 2
    assert jumping.wait_any([first, second], 5) is second  # already ready: no wait
    third = gevent.event.Event()
    assert jumping.wait_any([third], 1.5) is None and jumping.now() == 3.5
    greenlet = gevent.spawn(jumping.sleep, 1)
    assert jumping.wait_any([third, greenlet], None) is greenlet and jumping.now() == 4.5
    assert jumping.wait_any([third], 0) is None
    assert third.linkcount() == 0  # nothing of the waits stays linked


def test_autojump_leaps_over_idle_time(jumping):
    woke = []
    greenlets = [gevent.spawn(lambda s=s: (jumping.sleep(s), woke.append((s, jumping.now())))) for s in (3600, 5, 60)]
    gevent.joinall(greenlets)
    assert woke == [(5, 5), (60, 60), (3600, 3600)]


def test_autojump_waits_while_anything_can_run(jumping):
    """A greenlet that keeps yielding (never idle) beats a timeout at time 0: time does not move meanwhile."""
    done = gevent.event.Event()

    def busy():
        for _ in range(500):
            gevent.sleep(0)
        done.set()

    gevent.spawn(busy)
    assert jumping.wait_any([done], 1) is done
    assert jumping.now() == 0


def test_autojump_waits_for_a_timer_to_be_started(jumping):
    gevent.idle()
    gevent.idle()
    assert jumping.now() == 0
    jumping.sleep(7)
    assert jumping.now() == 7


def test_advance_works_beside_autojump(jumping):
    jumping.advance(10)
    assert jumping.now() == 10
    jumping.sleep(1)
    assert jumping.now() == 11


def test_close_stops_the_driver():
    fake = FakeClock(autojump=True)
    driver = fake._driver
    fake.close()
    assert driver.dead
    fake.close()
    fake.call_later(1, lambda: None)
    gevent.idle()
    assert fake.now() == 0


def test_the_base_clock_leaves_its_two_primitives_to_subclasses():
    with pytest.raises(NotImplementedError):
        Clock().now()
    with pytest.raises(NotImplementedError):
        Clock().timer(1)


def test_the_real_clock_counts_from_its_start_and_never_goes_back():
    clock = RealClock()
    readings = [clock.now() for _ in range(100)]
    assert 0 <= readings[0] and readings == sorted(readings)
    assert REAL.now() >= 0


def test_the_real_clock_fires_timers_calls_and_timeouts():
    fired = gevent.event.Event()
    REAL.call_later(0.001, fired.set)
    assert REAL.wait_any([fired], 10) is fired
    cancelled = []
    REAL.call_later(0.001, cancelled.append, 1).cancel()
    REAL.sleep(0.005)
    assert cancelled == []
    with REAL.timeout(0.001, False):
        gevent.event.Event().wait()
    with pytest.raises(gevent.Timeout):
        with REAL.timeout(0.001):
            gevent.event.Event().wait()
    waiter = Waiter()
    REAL.call_later(0, waiter.switch, None)
    assert REAL.wait(waiter, 10) is True
    assert REAL.wait(Waiter(), 0.001) is False
    assert REAL.wait_any([gevent.event.Event()], 0.001) is None


def test_the_generic_timeout_on_the_real_clock_is_a_gevent_timeout():
    timeout = Clock.timeout(REAL, 0.001)
    assert isinstance(timeout, gevent.Timeout)
    with pytest.raises(gevent.Timeout) as raised:
        with timeout:
            gevent.event.Event().wait()
    assert raised.value is timeout



def test_a_networks_clock_is_no_setting_of_the_wire_and_no_part_of_its_identity():
    assert Config().clock is REAL
    assert Config(clock=FakeClock()) == Config() and "clock" not in link.WORKER_SETTINGS


def test_a_contexts_sockets_wait_on_its_clock():
    clock = FakeClock()
    ctx = Context(clock=clock)
    try:
        sock = ctx.router()
        assert sock.clock is clock and ctx.pub(10).clock is clock
        waiting = gevent.spawn(sock.recv, 2.5)
        gevent.idle()
        clock.advance(2.4)
        assert not waiting.ready()
        clock.advance(0.1)
        assert waiting.get(block=False) is None
    finally:
        assert ctx.term() == 2


def test_a_networks_events_are_stamped_with_its_clock(make_network):
    clock = FakeClock()
    net = make_network(seed=3, clock=clock)
    seen = []
    net.events.subscribe(seen.append)
    clock.advance(12.5)
    net.create(2)
    assert {event["t"] for event in seen} == {12.5}


def test_a_control_clients_patience_is_on_the_clock_it_is_handed():
    """Nobody listens at the endpoint: the request gives up exactly at its timeout, which on a fake clock that jumps
    takes no wall time, and the next request gets a fresh socket (Lazy Pirate)."""
    from p2pzmq.control import ControlClient
    from p2pzmq.errors import RpcTimeout

    clock = FakeClock(autojump=True)
    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    try:
        with ControlClient(endpoint, timeout=30.0, clock=clock) as client:
            for attempt in (1, 2):
                with pytest.raises(RpcTimeout, match="within 30 s"):
                    client.call("ping")
                assert clock.now() == 30.0 * attempt
    finally:
        clock.close()


def test_a_dead_autojump_driver_is_heard_once_and_close_still_works():
    heard = gevent.event.Event()
    failures = []
    fake = FakeClock(autojump=True, on_failure=lambda what, exc: (failures.append((what, repr(exc))), heard.set()))

    def broken():
        raise RuntimeError("a bug")

    fake.next_due = broken  # the driver's first look at its timers fails
    assert heard.wait(5)
    assert failures == [("fake clock's autojump driver", "RuntimeError('a bug')")]
    assert fake.failures == [{"what": "fake clock's autojump driver", "error": "RuntimeError('a bug')"}]
    fake.close()
    fake.close()


def test_close_kills_the_autojump_driver():
    fake = FakeClock(autojump=True)
    driver = fake._driver
    gevent.idle()
    fake.close()
    assert driver.dead and not fake.failures
