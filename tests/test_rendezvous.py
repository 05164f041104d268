"""Launchers that start everything at once: ``serve --expect-workers K`` waits for K workers to register, then builds
the same network as one process, whatever K and whatever order the workers arrive in; ``worker --host auto``."""
import signal
import subprocess
import sys
import time

import gevent
import gevent.event
import pytest

from conftest import wait_until
from launchers import ENV, ctl, one_process_tgf
from p2pzmq import cli, rendezvous
from p2pzmq.config import Config
from p2pzmq.control import ControlClient, ControlServer
from p2pzmq.errors import RpcTimeout, UsageError
from p2pzmq.worker import READY, Worker

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("order", [(0,), (0, 1, 2), (2, 0, 1)], ids=["K=1", "K=3", "K=3-other-order"])
def test_the_network_over_registered_workers_is_the_one_process_network(make_network, tmp_path, order):
    net = make_network(seed=11, transport="tcp")
    server = ControlServer(net, "tcp://127.0.0.1:0").start()
    members = [Worker("127.0.0.1", Config(), spread_loopback=True).start() for _ in order]
    try:
        waiting = gevent.spawn(rendezvous.await_workers, net, server.stopped, len(order), 30)
        for position, index in enumerate(order):
            gevent.sleep(0)  # let the waiter run: it must still be waiting for the workers not yet registered
            assert not waiting.ready()
            with ControlClient(server.endpoint, timeout=30) as client:
                reply = client.call("attach", endpoint=members[index].endpoint)
            assert reply["index"] == position and reply["worker"]["host"] == f"127.0.1.{position + 1}"
        assert waiting.get(timeout=10) is True
        net.create(30)
        net.output_tgf(str(tmp_path / "workers.tgf"))
        assert (tmp_path / "workers.tgf").read_bytes() == one_process_tgf(tmp_path, 30, 11)
        assert [worker["peers"] for worker in net.ping()["workers"]] == [len(range(i, 30, len(order)))
                                                                         for i in range(len(order))]
    finally:
        server.stop()
        net.die()
        for member in members:
            member.stop()


def test_waiting_gives_up_after_its_timeout_and_ends_on_die(make_network):
    net = make_network(seed=1, transport="tcp")
    stopped = gevent.event.Event()
    with pytest.raises(RpcTimeout, match="only 0 of 2 workers registered within 0.2 s"):
        rendezvous.await_workers(net, stopped, 2, 0.2)
    gevent.spawn_later(0.05, stopped.set)
    assert rendezvous.await_workers(net, stopped, 2, 30) is False


def test_auto_host_is_the_address_that_reaches_the_supervisor():
    assert rendezvous.address_towards("tcp://127.0.0.1:9") == "127.0.0.1"
    assert rendezvous.address_towards("tcp://localhost:9") == "127.0.0.1"
    assert rendezvous.address_towards("tcp://127.0.1.7:9") == "127.0.0.1"  # the kernel's source for all of lo
    for bad in ("inproc://x", "tcp://127.0.0.1", "tcp://:5555"):
        with pytest.raises(UsageError):
            rendezvous.address_towards(bad)


def test_auto_host_needs_a_supervisor(capsys):
    assert cli.main(["worker", "--host", "auto"]) == 2
    assert "--host auto needs --supervisor" in capsys.readouterr().err


def test_expect_workers_and_workers_exclude_each_other(capsys):
    assert cli.main(["serve", "--workers", "2", "--expect-workers", "2", "--control", "tcp://127.0.0.1:0"]) == 2
    assert "either --workers" in capsys.readouterr().err


def p2p(*argv, **options):
    return subprocess.Popen([sys.executable, "-m", "p2pzmq", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, env=ENV, **options)


def read_line(stream) -> str:
    """The next line (the test's timeout bounds the wait: select would miss lines already in the reader's buffer)."""
    return stream.readline()


def waiting_supervisor(*argv):
    """``serve --expect-workers ...`` on a random port, with its endpoint read from its first stderr line."""
    proc = p2p("serve", "--control", "tcp://127.0.0.1:0", *argv)
    line = read_line(proc.stderr)
    assert line.startswith("Control socket listening on "), line + proc.stderr.read()
    assert read_line(proc.stderr).startswith("Waiting for workers: 0/")
    return proc, line.rsplit(" ", 1)[1].strip()


def finish(*procs):
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_serve_waits_for_workers_started_with_one_command_line(tmp_path):
    supervisor, endpoint = waiting_supervisor("-n", "24", "--seed", "4", "--expect-workers", "2")
    members = [p2p("worker", "--supervisor", endpoint, "--host", "auto") for _ in range(2)]
    late = None
    try:
        assert read_line(supervisor.stdout) == f"Network created and supervisor listening on {endpoint}\n"
        for member in members:
            assert read_line(member.stdout).startswith(READY)
            assert read_line(member.stdout).startswith(f"Attached to {endpoint} with 0 peers (0 in the network) as "
                                                       "worker ")
        ping = ctl(endpoint, "ping")
        assert ping["n"] == 24 and [(w["host"], w["peers"]) for w in ping["workers"]] == [("127.0.1.1", 12),
                                                                                          ("127.0.1.2", 12)]
        status = ctl(endpoint, "net_status")
        assert status["n"] == 24 and len(status["peers"]) == 24 and status["dead"] == []
        ctl(endpoint, "output_tgf", str(tmp_path / "workers.tgf"))
        assert (tmp_path / "workers.tgf").read_bytes() == one_process_tgf(tmp_path, 24, 4)
        # A worker that registers after the build gets peers only through add_peers.
        late = p2p("worker", "--supervisor", endpoint, "--host", "auto")
        read_line(late.stdout)
        assert read_line(late.stdout).endswith("with 0 peers (24 in the network) as worker 2\n")
        assert ctl(endpoint, "add_peers", "3")["n"] == 27
        assert [w["peers"] for w in ctl(endpoint, "ping")["workers"]] == [13, 13, 1]
        assert ctl(endpoint, "die") == {"stopping": True}
        assert [proc.wait(30) for proc in (supervisor, *members, late)] == [0, 0, 0, 0]
        err = supervisor.stderr.read()
        assert "Waiting for workers: 2/2 registered" in err and "Traceback" not in err
    finally:
        finish(supervisor, *members, *([late] if late else []))


@pytest.mark.parametrize("how", ["sigterm", "die", "timeout"])
def test_a_supervisor_left_waiting_ends_cleanly(how):
    # The worker must register before the timeout: a Python process takes most of a second to start on a loaded
    # machine, so 1 s failed there by chance.
    supervisor, endpoint = waiting_supervisor("-n", "8", "--expect-workers", "3", "--expect-timeout",
                                              "5" if how == "timeout" else "60")
    member = p2p("worker", "--supervisor", endpoint, "--host", "auto")
    try:
        assert read_line(supervisor.stderr) == "Waiting for workers: 1/3 registered\n"
        started = time.monotonic()
        if how == "sigterm":
            supervisor.send_signal(signal.SIGTERM)
        elif how == "die":
            assert ctl(endpoint, "die") == {"stopping": True}
        code = supervisor.wait(30)
        err = supervisor.stderr.read()
        assert (code, "Traceback" in err) == ((1, False) if how == "timeout" else (0, False)), err
        if how == "timeout":
            assert err.splitlines()[-1] == "p2p-network: only 1 of 3 workers registered within 5 s"
        assert time.monotonic() - started < 10
        assert member.wait(30) == 0  # told to stop by the supervisor on its way out
    finally:
        finish(supervisor, member)


def test_sigterm_stops_a_worker_still_registering():
    member = p2p("worker", "--supervisor", "tcp://127.0.0.1:9", "--host", "auto", "--timeout", "60")
    try:
        assert read_line(member.stdout).startswith(f"{READY}tcp://127.0.0.1:")
        member.send_signal(signal.SIGTERM)
        assert member.wait(15) == 0
        assert member.stderr.read() == ""
    finally:
        finish(member)


def test_sigterm_during_the_build_exits_0_and_stops_local_workers(tmp_path):
    supervisor = p2p("serve", "-n", "3000", "--workers", "2", "--control", "tcp://127.0.0.1:0", "--pace", "1ms")
    try:
        import psutil

        children = wait_until(lambda: len(psutil.Process(supervisor.pid).children()) == 2
                              and psutil.Process(supervisor.pid).children(), 30)
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(30) == 0
        assert "Traceback" not in supervisor.stderr.read()
        assert supervisor.stdout.read() == ""  # it never served
        wait_until(lambda: not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE
                                   for child in children), 10)
    finally:
        finish(supervisor)
