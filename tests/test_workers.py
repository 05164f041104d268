"""Peers spread over worker processes: the same network as one process, and a supervisor that outlives a worker."""
import collections
import json
import os
import signal
import subprocess
import sys
import time

import gevent
import pytest

from conftest import wait_until
from hangs import end_process
from kademlia_model import KademliaModel
from model import ModelNetwork
from p2pzmq import cli, status, worker
from p2pzmq.config import Config
from p2pzmq.errors import TransportError, UsageError
from p2pzmq.resources import peer_room
from p2pzmq.timeline import untimed

pytestmark = pytest.mark.timeout(120)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def without_workers(status: dict) -> dict:
    return {key: value for key, value in status.items() if key not in ("workers", "unreachable")}


@pytest.fixture
def over_two_workers(make_network):
    """Factory ``(seed, **config) -> Network`` with two local workers attached; the workers are reaped after the
    test."""
    launches = []

    def make(seed: int, **config):
        net = make_network(seed=seed, transport="tcp", **config)
        launches.append(worker.launch(["127.0.0.1"] * 2, net.config))
        for endpoint in launches[-1].endpoints:
            net.attach(endpoint)
        return net

    yield make
    for launched in launches:
        launched.reap(5)
        assert [process.returncode for process in launched.processes] in ([0, 0], [-9, 0])


def test_a_network_over_two_workers_equals_the_oracle(over_two_workers):
    net = over_two_workers(3)
    try:
        net.create(30)
        model = ModelNetwork(3)
        model.create(30)
        assert [p.id for p in net.peers] == [p.id for p in model.peers]
        assert [[c.id for c in t.preorder()] for t in net.tables()] == model.preorders()
        net.refresh_peers()
        model.refresh_peers()
        status = net.net_status()
        assert untimed(without_workers(status)) == model.net_status()
        assert [w["peers"] for w in status["workers"]] == [15, 15] and status["unreachable"] == 0
        assert {p.contact.server.rsplit(":", 1)[0] for p in net.peers} == {"tcp://127.0.0.1"}
        assert len({w["pid"] for w in status["workers"]} | {os.getpid()}) == 3
        stats = net.stats()
        assert [w["requests"] > 0 and w["fds"] > 0 for w in stats["workers"]] == [True, True]
        # a worker's peers talk over inproc among themselves: about half of the requests cross processes
        crossed = sum(w["crossed"] for w in stats["workers"]) / sum(w["requests"] for w in stats["workers"])
        assert 0.3 < crossed < 0.7, crossed
    finally:
        net.die()


def test_a_kademlia_network_over_two_workers_equals_the_model(over_two_workers):
    net = over_two_workers(4, protocol="kademlia", k=3, client_timeout=0.5)  # the workers learn all three
    try:
        net.create(24)
        model = KademliaModel(4, k=3)
        model.create(24)
        assert [[c.id for c in table.contacts()] for table in net.tables()] == model.wires()
        net.refresh_peers()
        model.refresh_peers()
        killed = net.kill_peers(count=4, seed=1)["killed"]
        model.kill({int(peer_id) for peer_id in killed})
        assert [[c.id for c in table.contacts()] for table in net.tables()] == model.wires()
        assert untimed(without_workers(net.net_status())) == model.net_status()
    finally:
        net.die()


def test_local_workers_on_loopback_get_an_address_each():
    assert worker.local_hosts("127.0.0.1", 3) == ["127.0.1.1", "127.0.1.2", "127.0.1.3"]
    assert worker.local_hosts("127.0.0.1", 300)[-1] == "127.0.2.44"
    assert worker.local_hosts("198.18.0.1", 2) == ["198.18.0.1"] * 2
    assert worker.local_hosts("::1", 2) == ["::1"] * 2 and worker.local_hosts("localhost", 1) == ["localhost"]


def test_workers_need_tcp(make_network):
    with pytest.raises(UsageError):
        make_network(seed=1).attach("tcp://127.0.0.1:1")


def ctl(capsys, endpoint, *argv):
    code = cli.main(["ctl", "--control", endpoint, "--timeout", "20", "--json", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)["result"]


def test_serve_with_two_workers_survives_a_killed_worker(capsys, tmp_path):
    serve = subprocess.Popen([sys.executable, "-m", "p2pzmq", "serve", "-n", "100", "--seed", "5", "--workers", "2",
                              "--control", "tcp://127.0.0.1:0"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = serve.stdout.readline()
        assert line.startswith("Network created and supervisor listening on "), line
        endpoint = line.rsplit(" ", 1)[1].strip()
        ping = ctl(capsys, endpoint, "ping")
        assert ping["n"] == 100 and ping["unreachable"] == 0
        assert [(w["peers"], w["alive"]) for w in ping["workers"]] == [(50, True), (50, True)]
        assert [w["host"] for w in ping["workers"]] == ["127.0.1.1", "127.0.1.2"]  # one loopback address each
        status = ctl(capsys, endpoint, "net_status")
        assert status["n"] == 100 and status["connectivity"] > 50
        victim, survivor = (w["pid"] for w in ping["workers"])
        os.kill(victim, signal.SIGKILL)
        gone = wait_until(lambda: [w for w in ctl(capsys, endpoint, "ping")["workers"] if not w["alive"]], 15, 0.2)
        assert [w["pid"] for w in gone] == [victim]
        status = ctl(capsys, endpoint, "net_status")
        assert status["unreachable"] == 50
        dead = {w["endpoint"] for w in gone}  # (a refresh would now wait client_timeout per dead peer asked)
        # the gone worker's peers are listed as dead (unreachable); status is over the 50 that remain
        assert [row["state"] for row in status["dead"]] == ["unreachable"] * 50
        assert status["n"] == status["alive"] == 50 and len(status["peers"]) == 50
        assert ctl(capsys, endpoint, "output_tgf", str(tmp_path / "half.tgf"))["nodes"] == 100
        assert dead and ctl(capsys, endpoint, "die") == {"stopping": True}
        assert serve.wait(timeout=30) == 0
        wait_until(lambda: not os.path.exists(f"/proc/{survivor}") or _zombie(survivor), 10)
    finally:
        end_process(serve)  # and its workers, which would otherwise run on until their heartbeat timeout
        serve.stdout.close()


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def test_a_worker_refuses_peers_beyond_its_fd_budget(make_network):
    net = make_network(seed=1, transport="tcp")
    launched = worker.launch(["127.0.0.1"], Config())
    try:
        net.attach(launched.endpoints[0])
        room = net.workers[0].room()
        assert 0 < room < 20_000
        with pytest.raises(UsageError, match="room for"):
            net.create(room + 1)
        assert net.ping()["n"] == 0 and net.workers[0].stats()["fds"] < 100
    finally:
        net.die()
        launched.reap(5)


def test_a_worker_without_a_supervisor_exits_3(capsys):
    code = cli.main(["worker", "--supervisor", "tcp://127.0.0.1:9", "-n", "3", "--timeout", "0.5"])
    out, err = capsys.readouterr()
    assert code == 3 and "no supervisor answered" in err and out.startswith(worker.READY)


def test_run_over_workers_prints_what_one_process_prints(capsys, tmp_path, monkeypatch):
    outputs = []
    for extra in ([], ["--workers", "2"]):
        monkeypatch.chdir(tmp_path)
        assert cli.main(["run", "-n", "16", "--seed", "1", *extra]) == 0
        outputs.append((capsys.readouterr().out, (tmp_path / "network.tgf").read_bytes()))
    assert outputs[0] == outputs[1]


def test_one_process_refuses_peers_beyond_its_fd_budget(make_network):
    net = make_network(seed=1)
    room = net.local.room()
    with pytest.raises(UsageError, match="room for"):
        net.create(room + 1)
    assert net.peers == [] and not net.local.peers


@pytest.mark.slow  # 10 s a protocol; test_the_scale_tool_can_stop_after_the_build runs the tool by default
@pytest.mark.parametrize("protocol", ["original", "kademlia"])
def test_the_scale_tool_runs_quick(tmp_path, protocol):
    figures_path = tmp_path / "scale.json"
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "scale.py"), "--quick", "--json",
                           str(figures_path), "--protocol", protocol], capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    figures = json.loads(figures_path.read_text())
    assert figures["n"] == 60 and figures["create_seconds"] > 0 and figures["refresh_seconds"] > 0
    assert [p["peers"] for p in figures["processes"]] == [0, 30, 30]
    assert all(p["fds"] > 0 and p["peak_rss_mb"] > 0 for p in figures["processes"])
    assert figures["status_after_refresh"]["hops"]["success_rate"] > 0.5
    assert figures["worker_exit_codes"] == [0, 0] and figures["cores_used"] > 0
    assert 0.3 < figures["crossed_share"] < 0.7 and "crossed processes" in done.stdout
    if protocol == "kademlia":
        assert figures["lookups_after_refresh"]["success_rate"] > 0.9
        assert figures["lookups_after_create"]["lookups"] > 60 * 10
    else:
        assert "lookups_after_create" not in figures
    phases = {phase["phase"]: phase for phase in figures["phases"]}
    lookups = ["sampled lookups after create", "sampled lookups after refresh"] if protocol == "kademlia" else []
    assert list(phases) == ["create", "sampled status after create", *lookups[:1], "refresh once",
                            "sampled status after refresh", *lookups[1:]]
    assert all(phases[name]["cpu_s"] > 0 and phases[name]["cores"] > 0 for name in ("create", "refresh once"))
    assert [p["peers"] for p in figures["processes_after_create"]] == [0, 30, 30]
    assert all(p["rss_mb"] > 0 for p in figures["processes_at_start"] + figures["processes_after_create"])
    # the time and core goals are for 20,000 peers; the CPU of a crossing request has a goal at any size
    assert [goal["met"] for goal in figures["goals"]][:3] == [None, None, None]
    assert "| phase | wall s | CPU s (all processes) | cores used |" in done.stdout
    assert "| goal | this run | verdict |" in done.stdout


def test_the_scale_tool_can_stop_after_the_build(tmp_path):
    figures_path = tmp_path / "scale.json"
    done = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "scale.py"), "--quick", "--no-refresh",
                           "--json", str(figures_path)], capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    figures = json.loads(figures_path.read_text())
    assert [phase["phase"] for phase in figures["phases"]] == ["create", "sampled status after create"]
    assert "refresh_seconds" not in figures and figures["worker_exit_codes"] == [0, 0]
    assert [goal["goal"] for goal in figures["goals"]] == ["20,000 peers built in at most 300 s",
                                                           "at least 1.7 cores busy while building",
                                                           "CPU per request between processes at most 60 µs"]
    # the Erlang original's figure of the size when it is known (not at 60 peers), the crossing requests' CPU always
    assert figures["erlang"]["build_s"] is None
    assert figures["cpu_per_request"]["crossing_us"] > 0 and figures["inproc_probe"]["us_per_request"] > 0


# goals: the build's time (at 20,000 and 50,000), the whole run's (at 20,000), the ratio to the Erlang original's
# build, the cores kept busy (from 20,000 up), the CPU per crossing request
@pytest.mark.parametrize("n, verdicts", [(20000, [True, False, True, True, True]),
                                         (50000, [True, None, False, True, True]),
                                         (2000, [None, None, True, None, True])])
def test_the_scale_goals_judge_build_times_at_20000_and_50000_peers_and_busy_cores_from_20000_up(n, verdicts):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import scale

    figures = {"n": n, "create_seconds": 200.0, "total_work_seconds": 500.0,
               "phases": [{"phase": "create", "cores": 1.8}], "erlang": {"build_s": {20000: 25.0, 50000: 10.0,
                                                                                    2000: 50.0}[n], "source": "test"},
               "cpu_per_request": {"crossing_us": 50.0}}
    found = scale.goals(figures)
    assert [goal["met"] for goal in found] == verdicts
    assert [goal["value"] for goal in found] == ["200 s", "500 s", f"{200 / figures['erlang']['build_s']:.1f}x",
                                                 "1.80", "50 µs"]


def test_the_scale_tool_starts_workers_enough_for_the_fd_budget_and_refuses_too_few():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import scale

    room = peer_room("tcp")
    assert scale.workers_for(room * 3, "auto") == max(4, os.cpu_count())  # a tenth of each one's room kept free
    assert scale.workers_for(10, "auto") == os.cpu_count()
    assert scale.workers_for(room * 3, "3") == 3
    with pytest.raises(SystemExit, match="use --workers 4 or more"):
        scale.workers_for(room * 3 + 1, "3")


def test_a_command_in_flight_when_a_worker_dies_still_ends(over_two_workers):
    # The status waits for the heartbeats to tell the worker is gone: 1.5 s of silence here rather than 5.
    net = over_two_workers(2, heartbeat_interval=0.2, heartbeat_timeout=1.5)
    try:
        net.create(20)
        os.kill(net.workers[0].pid, signal.SIGKILL)
        status = net.net_status()  # sent before the heartbeats tell: must not wait for the dead clients forever
        assert status["unreachable"] == 10 and [w["alive"] for w in status["workers"]] == [False, True]
        assert [row["state"] for row in status["dead"]] == ["unreachable"] * 10 and status["n"] == 10
        assert net.ping()["unreachable"] == 10
    finally:
        net.die()


def preorders(net):
    return [[c.id for c in table.preorder()] for table in net.tables()]


def test_peers_held_by_workers_leave_and_are_killed_as_in_one_process(over_two_workers):
    # client_timeout: generous, so that a loaded machine never takes a live peer for a dead one (exact comparisons)
    net = over_two_workers(9, client_timeout=0.5)
    try:
        net.create(32)
        model = ModelNetwork(9)
        model.create(32)
        before = net.stats()["workers"]
        left = net.leave_peers(count=6, seed=2)["left"]
        model.leave({int(peer_id) for peer_id in left})
        killed = net.kill_peers(count=6, seed=3)["killed"]
        model.kill({int(peer_id) for peer_id in killed})
        assert preorders(net) == model.preorders()
        status = net.net_status()
        assert untimed(without_workers(status)) == model.net_status() and status["failed_hops"] > 0
        assert untimed(without_workers(net.net_status(routing="local"))) == untimed(without_workers(status))
        assert {row["state"] for row in status["dead"]} == {"left", "killed"} and status["unreachable"] == 0
        after = net.stats()["workers"]
        assert sum(w["peers"] for w in after) == 20 and all(0 < w["peers"] < 16 for w in after)
        # the departed peers' sockets are closed in their workers: fewer fds, more room
        assert [a["fds"] < b["fds"] for a, b in zip(after, before)] == [True, True]
        with pytest.raises(TransportError, match="no peer with id 12345"):  # a worker refuses ids it does not hold
            net.workers[0].request("kill", ids=["12345", str(next(p.id for p in net.peers if p.host is net.workers[0]))])
        assert net.workers[0].stats()["peers"] == after[0]["peers"]  # ...and then kills none of them
    finally:
        net.die()


def test_churn_over_workers_joins_kills_and_leaves(over_two_workers):
    net = over_two_workers(4, client_timeout=0.5)
    try:
        net.create(16)
        churned = net.churn(join_rate=4.0, leave_rate=1.0, duration=3.0, crash_fraction=0.5, seed=4, wait=True)
        assert churned["joined"] > 0 and churned["killed"] + churned["left"] > 0
        assert len(net.peers) == 16 + churned["joined"] - churned["killed"] - churned["left"]
        assert sum(w["peers"] for w in net.ping()["workers"]) == len(net.peers)
        status = net.net_status()
        assert status["alive"] == len(net.peers) and len(status["dead"]) == churned["killed"] + churned["left"]
    finally:
        net.die()


def test_a_long_computation_in_the_supervisor_keeps_its_workers(over_two_workers, monkeypatch):
    """A sampled status of 20,000 peers routes for minutes in the supervisor; meanwhile its heartbeats must go on,
    or every worker stops by itself after heartbeat_timeout of silence (as a 20,000-peer `net_status` once did)."""
    net = over_two_workers(4, heartbeat_interval=0.2, heartbeat_timeout=1.0)
    route_steps = status.route_steps

    def slow_route_steps(*args):
        busy_until = time.monotonic() + 3.0  # CPU-bound for three heartbeat timeouts, as at scale
        while time.monotonic() < busy_until:
            pass
        return route_steps(*args)

    try:
        net.create(20)
        monkeypatch.setattr(status, "route_steps", slow_route_steps)
        assert net.net_status(routing="local")["n"] == 20
        monkeypatch.undo()
        after = net.net_status(routing="messages")  # every peer must still answer, from live workers
        assert [described["alive"] for described in after["workers"]] == [True, True]
        assert after["unreachable"] == 0 and after["n"] == 20 and after["dead"] == []
    finally:
        net.die()


def test_commands_from_several_greenlets_during_churn_over_two_workers_never_collide(over_two_workers):
    """stats, peers, ping, attach and a sampled net_status, all at once while churn joins, kills and makes peers
    leave over the worker link: every call must succeed (the link and the command channel each serialize their
    socket, so no greenlet ever reads another's reply)."""
    net = over_two_workers(6, client_timeout=0.5)
    extra = worker.launch(["127.0.0.1"], net.config)
    calls = collections.Counter()
    try:
        net.create(12)
        net.churn(join_rate=8.0, leave_rate=1.0, duration=4.0, crash_fraction=0.5, seed=3)

        def keep_calling(name, call):
            while net.churned["running"]:
                call()
                calls[name] += 1
                gevent.sleep(0)

        callers = [gevent.spawn(keep_calling, "stats", net.stats), gevent.spawn(keep_calling, "stats", net.stats),
                   gevent.spawn(keep_calling, "peers", net.peer_list), gevent.spawn(keep_calling, "ping", net.ping),
                   gevent.spawn(keep_calling, "net_status", lambda: net.net_status(sample=4))]
        net.attach(extra.endpoints[0], peers=2)
        gevent.joinall(callers, raise_error=True, timeout=60)
        assert all(caller.successful() for caller in callers)
        assert calls["stats"] > 20 and calls["peers"] > 0 and calls["ping"] > 0 and calls["net_status"] > 0
        churned = net.churned
        assert churned["joined"] > 0 and "error" not in churned
        assert net.stats()["failures"] == [] and len(net.ping()["workers"]) == 3
    finally:
        net.die()
        extra.reap(5)


def test_workers_follow_the_timeout_and_eviction_of_their_network(make_network):
    net = make_network(seed=1, transport="tcp", client_timeout=0.25, evict_after=3)
    member = worker.Worker("127.0.0.1", Config()).start()
    try:
        net.attach(member.endpoint)
        assert (member.config.client_timeout, member.config.evict_after) == (0.25, 3)
    finally:
        net.die()
        member.stop()
