"""Nothing a test does can hang the run: per-test timeouts that end a test whatever the code under test does, and
child processes that never outlive their test (:func:`end_process`, :func:`kill_tree`).

pytest-timeout's ``signal`` method raises its failure in whatever runs when SIGALRM arrives. Under gevent that is
often not the test but a peer's greenlet or the hub: the greenlet dies of it, the test never hears of it, and the
alarm never fires again. A test then waits as long as what it waits for allows: the supervisor waits up to
``Config.command_timeout`` (an hour) for a client's ``done``, so a client loop that spins forever, or a peer
greenlet killed by the misplaced failure, hangs the run until somebody kills it. pytest-timeout's ``thread`` method
ends the whole process instead, skipping every ``finally`` and leaving child processes (``serve``, workers) running.

Worse, pytest-timeout stops the timer as soon as any phase of a test fails (its ``pytest_exception_interact``
hook, meant for ``--pdb``, runs on every failure, debugger or not): the teardown of a failed test, which stops the
peers the failure left in a bad state, runs with no timeout at all. A failing test whose teardown hangs hangs the
run.

This plugin implements pytest-timeout's two timer hooks for the default ``signal`` method (an explicit ``thread``
still gets pytest-timeout's own), and keeps the timer running until the test's teardown has ended (unless ``--pdb``
is about to start a debugger):

1. At the test's timeout it prints the stack of the greenlet that was running and of the test's own, and raises the
   timeout failure in the test's greenlet, wherever the signal landed. A greenlet interrupted while spinning stays
   suspended in the handler; the test's teardown kills it like any other (``Network.die``, ``Peer.stop``).
2. The alarm then repeats every ``REPEAT`` seconds until the teardown ends. If a greenlet other than the hub is
   running then (one more spinning greenlet, or a loop in the teardown itself), it raises the failure there, so the
   teardown can go on; a teardown that waits (the hub runs) is left to wait.
3. A watchdog thread ``HARD_GRACE`` seconds after the timeout covers what a signal handler cannot reach (the main
   thread stuck in C, a failure swallowed, a teardown that waits forever): it prints every thread's stack, kills
   every child process of this run and ends pytest with exit status 1.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import traceback

import greenlet
import psutil
import pytest
from pytest_timeout import is_debugging

#: Seconds between repeated alarms once a test has timed out.
REPEAT = 2.0
#: Seconds after a test's timeout before the watchdog ends the run.
HARD_GRACE = 60.0


def _write(item, title: str, text: str) -> None:
    terminal = item.config.get_terminal_writer()
    terminal.sep("+", title=title)
    terminal.write(text)
    terminal.flush()


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item, settings):
    if settings.method != "signal" or threading.current_thread() is not threading.main_thread():
        return None  # pytest-timeout's own implementation
    test_greenlet = greenlet.getcurrent()
    message = f"Timeout (>{settings.timeout}s) from pytest-timeout."
    expired = []

    def expire(signum, frame):
        if not settings.disable_debugger_detection and is_debugging():
            return
        running = greenlet.getcurrent()
        hub_running = type(running).__name__ == "Hub"
        if expired and hub_running:
            return  # after the timeout, a teardown that waits may wait (the watchdog bounds it)
        stacks = "running greenlet:\n" + "".join(traceback.format_stack(frame))
        if running is not test_greenlet and test_greenlet.gr_frame is not None:
            stacks += "\ntest greenlet:\n" + "".join(traceback.format_stack(test_greenlet.gr_frame))
        _write(item, f"{'Still running after the timeout' if expired else 'Timeout'}: {item.nodeid}", stacks)
        failure = pytest.fail.Exception(message, pytrace=True)
        if running is test_greenlet or expired:
            expired.append(True)
            raise failure
        expired.append(True)
        test_greenlet.throw(failure)  # the running greenlet stays parked here until its owner kills it

    watchdog = threading.Timer(settings.timeout + HARD_GRACE, _end_the_run, (item, settings))
    watchdog.daemon = True

    def cancel():
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        watchdog.cancel()

    item.cancel_timeout = cancel
    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout, REPEAT)
    watchdog.start()
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_cancel_timer(item):
    """pytest-timeout calls this at the end of a test and also whenever a phase fails; only a debugger about to
    start (``--pdb``) needs the timer stopped then. Otherwise the teardown that follows stays under the timer, which
    :func:`pytest_runtest_protocol` stops once the teardown is over."""
    if item.config.getoption("usepdb", False):
        _cancel(item)
    return True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item):
    yield
    _cancel(item)  # setup, call and teardown are over


def _cancel(item) -> None:
    cancel = getattr(item, "cancel_timeout", None)
    if cancel is not None:
        del item.cancel_timeout
        cancel()


def _end_the_run(item, settings) -> None:
    """The last resort: print every thread's stack, kill this run's child processes, exit with status 1."""
    if not settings.disable_debugger_detection and is_debugging():
        return
    try:
        capture = item.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.suspend_global_capture(item)
        stacks = [f"thread {ident}:\n" + "".join(traceback.format_stack(frame))
                  for ident, frame in sys._current_frames().items() if ident != threading.get_ident()]
        killed = kill_tree(psutil.Process(), include_root=False)
        _write(item, f"{item.nodeid} still running {HARD_GRACE:.0f} s after its timeout: ending the run",
               "\n".join(stacks) + f"\nkilled {killed} child process(es)\n")
    except (psutil.Error, OSError) as exc:
        print(f"while ending the run: {exc!r}", file=sys.stderr)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


def kill_tree(process: psutil.Process, include_root: bool = True) -> int:
    """SIGKILL ``process``'s descendants (and ``process`` itself with ``include_root``); returns how many were
    killed. Descendants are listed first: once their parent is gone they are re-parented and out of reach."""
    victims = process.children(recursive=True) + ([process] if include_root else [])
    killed = 0
    for victim in victims:
        try:
            victim.kill()
            killed += 1
        except psutil.NoSuchProcess:
            pass
    return killed


def end_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """For a test's ``finally``: unless ``process`` has exited, SIGKILL it and every process it started (a ``serve``
    and its workers), then reap it. Killing only ``process`` would leave its workers running for seconds."""
    if process.poll() is None:
        try:
            kill_tree(psutil.Process(process.pid))
        except psutil.NoSuchProcess:
            pass
    process.wait(timeout)
