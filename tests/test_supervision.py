"""Every background greenlet has an owner that hears of its failure (:mod:`p2pzmq.supervision`).

The group alone (no sockets): a failure reaches the owner's one hook once and is recorded; a kill is none; killing
is idempotent and bounded. Then a bug injected into each greenlet ``serve`` and ``worker`` cannot do without (the
control server's serving greenlet, its worker, the worker's link serving) ends the command with exit code 4 and one
line on stderr, nothing left running. (Peers' runners, churn and the heartbeat watch: tests/test_background_failures.)
"""
import gevent
import gevent.event
import pytest
from conftest import live_greenlets, wait_until

from p2pzmq import cli, control, worker
from p2pzmq.control import ControlClient
from p2pzmq.errors import Crashed, RpcTimeout
from p2pzmq.supervision import Group

pytestmark = pytest.mark.timeout(60)


def broken(*args):
    raise RuntimeError("a bug")


def test_a_failure_reaches_the_hook_once_and_is_recorded():
    heard = []
    group = Group(lambda what, exc: heard.append((what, repr(exc))))
    failing, fine = group.spawn("failing part", broken), group.spawn("fine part", lambda: 7)
    gevent.joinall([failing, fine])
    gevent.sleep(0)  # links run from the loop once the greenlets are dead
    assert heard == [("failing part", "RuntimeError('a bug')")]
    assert group.failures == [{"what": "failing part", "error": "RuntimeError('a bug')"}]
    assert fine.value == 7 and len(group) == 0
    with pytest.raises(Crashed, match=r"the failing part broke: RuntimeError\('a bug'\)"):
        group.raise_failure()


def test_killing_is_no_failure_idempotent_bounded_and_skips_the_caller():
    heard = []
    group = Group(lambda what, exc: heard.append(what), kill_timeout=0.5)
    sleepers = [group.spawn(f"sleeper {i}", gevent.sleep, 60) for i in range(3)]

    released = []

    def stubborn():
        while not released:
            try:
                gevent.sleep(60)
            except gevent.GreenletExit:
                pass  # refuses to die: the kill must still return in its bound

    hold_out = group.spawn("stubborn", stubborn)
    killer = group.spawn("killer", lambda: group.kill())  # a member killing the group does not kill itself
    killer.join(5)
    assert killer.successful() and all(sleeper.dead for sleeper in sleepers) and not hold_out.dead
    group.kill()  # again: only the stubborn one is left, and the bound holds again
    gevent.sleep(0)
    assert heard == [] and group.failures == []
    released.append(True)
    group.kill()
    assert hold_out.dead and len(group) == 0
    group.raise_failure()  # no failure: nothing raised


def test_a_group_without_a_hook_logs_the_failure(caplog):
    group = Group()
    gevent.joinall([group.spawn("lonely part", broken)])
    gevent.sleep(0)
    assert [r.getMessage() for r in caplog.records] == ["the lonely part stopped: RuntimeError('a bug')"]


def run_cli(argv, capsys, ready: str):
    """``cli.main(argv)`` in a greenlet; returns it, its ready line (read from the captured stdout) and a list that
    collects its stderr."""
    main, err = gevent.spawn(cli.main, argv), []

    def ready_line():
        captured = capsys.readouterr()
        err.append(captured.err)
        lines = [line for line in captured.out.splitlines() if ready in line]
        assert lines or not main.dead, f"ended before {ready!r}: {main.value}"
        return lines

    return main, wait_until(ready_line, timeout=30)[0], err


def assert_crashed(main, capsys, err: list, what: str, before: int) -> None:
    assert main.get(timeout=30) == 4
    err = "".join(err) + capsys.readouterr().err
    assert err.splitlines() == [f"p2p-network: the {what} broke: RuntimeError('a bug')"], err
    assert len(live_greenlets()) <= before, "greenlets left running"


def test_serve_exits_4_when_its_control_server_greenlet_breaks(capsys, monkeypatch):
    before = len(live_greenlets())
    monkeypatch.setattr(control.ControlServer, "_answer", broken)
    main, line, err = run_cli(["serve", "-n", "2", "--control", "tcp://127.0.0.1:0"], capsys, "listening on")
    with ControlClient(line.rsplit(" ", 1)[1], timeout=2) as client, pytest.raises(RpcTimeout):
        client.call("ping")  # the request that meets the bug gets no answer: the server greenlet died of it
    assert_crashed(main, capsys, err, "control server", before)


def test_serve_exits_4_when_its_control_worker_breaks(capsys, monkeypatch):
    before = len(live_greenlets())
    monkeypatch.setattr(control.ControlServer, "_work", broken)
    main, line, err = run_cli(["serve", "-n", "2", "--control", "tcp://127.0.0.1:0"], capsys, "listening on")
    with ControlClient(line.rsplit(" ", 1)[1], timeout=20) as client:
        reply = client.request({"cmd": "net_status"})  # a long command: the worker runs it, and breaks
    assert reply == {"ok": False, "error": "net_status not run: the supervisor is stopping"}
    assert_crashed(main, capsys, err, "control worker", before)


def test_worker_exits_4_when_its_link_serving_breaks(capsys, monkeypatch):
    before = len(live_greenlets())
    monkeypatch.setattr(worker.Worker, "_serve", broken)
    main, _, err = run_cli(["worker", "--timeout", "30"], capsys, worker.READY)
    assert_crashed(main, capsys, err, "worker's link serving", before)
