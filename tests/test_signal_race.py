"""A signal at any moment stops the main greenlet at once (:func:`p2pzmq.interrupts.stopping_on`), and so a signal
at any moment after the ready line stops ``serve`` and ``worker`` with their documented code.

With Python's ``signal.signal`` handlers a signal that arrived just as gevent's hub went to sleep in its poll was
only noticed at the next timer: a ``worker --timeout 30`` told SIGTERM just after its ready line did not stop in
20 s, 4 runs in 11 of four such cases in a row. In one process the race is cheap to hit: a signal sent from a thread
0-0.3 ms after the main greenlet starts waiting was missed about once in 1,000 before the fix (3 in 3,000 here).
"""
import contextlib
import os
import random
import signal
import subprocess
import threading

import gevent.event
import pytest
from test_bad_inputs import finish, ready_line, start

from p2pzmq.interrupts import Signalled, stopping_on

pytestmark = pytest.mark.timeout(900)


def missed_signals(runs: int, seed: int) -> int:
    """How many of ``runs`` signals, each sent from another thread a moment after the main greenlet began to wait,
    did not stop that wait within a second."""
    chance, missed = random.Random(seed), 0
    for _ in range(runs):
        sender = threading.Timer(chance.uniform(0, 0.0003), os.kill, (os.getpid(), signal.SIGUSR1))
        try:
            with stopping_on((signal.SIGUSR1,)):
                sender.start()
                gevent.event.Event().wait(1.0)
                missed += 1
        except Signalled as exc:
            assert exc.signum == signal.SIGUSR1
        finally:
            sender.join()
    return missed


@pytest.mark.timeout(120)
def test_a_signal_as_the_main_greenlet_starts_waiting_stops_it():
    assert missed_signals(1000, seed=1) == 0


@pytest.mark.slow
def test_ten_thousand_signals_as_the_main_greenlet_starts_waiting_stop_it():
    assert missed_signals(10000, seed=2) == 0

CASES = [
    (["serve", "-n", "4", "--control", "tcp://127.0.0.1:0"], "listening on", signal.SIGINT, 130),
    (["serve", "-n", "4", "--control", "tcp://127.0.0.1:0"], "listening on", signal.SIGTERM, 0),
    (["worker", "--timeout", "30"], "Worker listening on", signal.SIGINT, 130),
    (["worker", "--timeout", "30"], "Worker listening on", signal.SIGTERM, 0),
]


def signal_at_random_moments(directory, runs: int, seed: int) -> None:
    """Start each case of ``test_serve_and_worker_stop_on_signals`` in turn, ``runs`` in all, and signal it 0-50 ms
    after its ready line."""
    chance = random.Random(seed)
    for run in range(runs):
        argv, ready, signum, code = CASES[run % len(CASES)]
        proc = start(argv, directory)
        ready_line(proc, ready)
        with contextlib.suppress(subprocess.TimeoutExpired):  # it should still be running: this is the delay
            proc.wait(chance.uniform(0, 0.05))
        proc.send_signal(signum)
        err = finish(proc, code)  # exits with ``code`` within 20 s, else fails
        assert err == ("p2p-network: Aborted!\n" if code else ""), (run, argv, signum, err)


def test_signals_right_after_the_ready_line(tmp_path):
    signal_at_random_moments(tmp_path, runs=len(CASES), seed=1)


@pytest.mark.slow
def test_many_signals_at_random_moments_after_the_ready_line(tmp_path):
    signal_at_random_moments(tmp_path, runs=40, seed=2)
