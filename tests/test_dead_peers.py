"""Dead peers, graceful leaves, eviction and churn, checked against the message-free oracle."""
import time

import pytest
from conftest import wait_until
from model import ModelNetwork

from p2pzmq import churn
from p2pzmq.clock import FakeClock
from p2pzmq.errors import UsageError
from p2pzmq.timeline import untimed as untimed_result


def untimed(result):
    """A result without its clock readings and without churn's timed series of intervals."""
    shown = untimed_result(result)
    if isinstance(shown, dict):
        shown.pop("intervals", None)
    return shown

pytestmark = pytest.mark.timeout(120)

# client_timeout: what a lookup through a dead peer costs per round. Generous enough that a loaded machine never takes
# a live peer for a dead one, which the exact comparisons with the oracle rely on.
TIMEOUT = 0.5


def preorders(net):
    return [[c.id for c in table.preorder()] for table in net.tables()]


def test_killing_a_quarter_of_64_peers_net_status_reports_them_and_matches_the_oracle(make_network):
    net = make_network(64, seed=7, client_timeout=TIMEOUT)
    killed = net.kill_peers(count=16, seed=3)["killed"]
    assert len(killed) == 16 and len(net.peers) == 48

    status = net.net_status()
    # The supervisor knows whom it killed and asks them nothing: no request waits for the dead (every command
    # that times out is counted in timeouts, checked below).
    assert status["n"] == status["alive"] == 48 and len(status["peers"]) == 48
    assert sorted(d["id"] for d in status["dead"]) == sorted(killed)
    assert {d["state"] for d in status["dead"]} == {"killed"}
    assert status["failed_hops"] > 0 and status["connectivity"] < 100

    model = ModelNetwork(7)
    model.create(64)
    model.kill({int(peer_id) for peer_id in killed})
    assert untimed(status) == model.net_status()
    assert net.ping() == {"n": 48}  # the supervisor is alive and answers
    assert net.stats()["timeouts"] == 0


def test_dead_peers_over_tcp_fail_their_lookups_the_same_way(make_network):
    net = make_network(16, seed=15, transport="tcp", client_timeout=TIMEOUT)
    killed = net.kill_peers(count=4, seed=2)["killed"]
    model = ModelNetwork(15)
    model.create(16)
    model.kill({int(peer_id) for peer_id in killed})
    assert untimed(net.net_status()) == model.net_status()


def test_a_dead_peer_over_tcp_is_refused_at_once_not_waited_for(make_network):
    """Nothing listens at a killed peer's ports any more: libzmq learns that at once, and so does the asker. The
    client_timeout is long, so that a single wait for a dead peer would show; the refresh itself took 10.3 s of wall
    time once on a machine loaded twenty-fold, so the timeout is set far above that."""
    net = make_network(24, seed=16, transport="tcp", client_timeout=60.0)
    killed = net.kill_peers(count=6, seed=4)["killed"]
    started = time.perf_counter()
    assert untimed(net.refresh_peers()) == {"refreshed": 18}
    assert time.perf_counter() - started < 60.0  # less than one client_timeout in all
    assert net.counters["timeouts"] == 0 and net.counters["undeliverable"] > 0  # refused, never timed out
    model = ModelNetwork(16)
    model.create(24)
    model.kill({int(peer_id) for peer_id in killed})
    model.refresh_peers()
    assert preorders(net) == model.preorders()  # a refusal is the same dead end as a timeout


def test_refresh_and_create_keep_matching_the_oracle_after_a_kill_without_eviction(make_network):
    net = make_network(16, seed=8, client_timeout=TIMEOUT)
    model = ModelNetwork(8)
    model.create(16)
    killed = net.kill_peers(ids=[str(net.peers[3].id), str(net.peers[10].id)])["killed"]
    model.kill({int(peer_id) for peer_id in killed})
    net.refresh_peers()
    model.refresh_peers()
    net.add_peers(3)
    model.create(3)
    assert preorders(net) == model.preorders()  # dead entries stay, as in the original
    assert untimed(net.net_status()) == model.net_status()


def test_leaving_peers_are_removed_by_everyone_they_knew(make_network):
    net = make_network(32, seed=9, client_timeout=TIMEOUT)
    model = ModelNetwork(9)
    model.create(32)
    knew = {peer.id: {c.id for c in table} for peer, table in zip(net.peers, net.tables())}
    left = net.leave_peers(count=8, seed=2)["left"]
    model.leave({int(peer_id) for peer_id in left})
    assert preorders(net) == model.preorders()
    gone = {int(peer_id) for peer_id in left}
    for peer, table in zip(net.peers, net.tables()):
        ids = {c.id for c in table}
        assert not ids & {leaver for leaver in gone if peer.id in knew[leaver]}
    status = net.net_status()
    assert untimed(status) == model.net_status()
    assert {d["state"] for d in status["dead"]} == {"left"} and net.counters["leaves"] > 0


def test_evict_after_drops_entries_that_keep_timing_out(make_network):
    def dead_entries(net, killed):
        return sum(len({c.id for c in table} & killed) for table in net.tables())

    for evict_after in (0, 1):
        net = make_network(16, seed=10, client_timeout=0.1, evict_after=evict_after)
        killed = {int(i) for i in net.kill_peers(count=4, seed=1)["killed"]}
        before = dead_entries(net, killed)
        net.refresh_peers()
        if evict_after:
            assert net.counters["evicted"] > 0 and dead_entries(net, killed) < before
        else:  # off: dead entries stay, as in the original
            assert net.counters["evicted"] == 0 and dead_entries(net, killed) >= before > 0


def test_peers_lists_endpoints_alive_flags_and_sizes(make_network):
    net = make_network(6, seed=11, client_timeout=TIMEOUT)
    victim = net.peers[2]
    net.kill_peers(ids=[str(victim.id)])
    listing = net.peer_list()
    assert listing["alive"] == 5 and len(listing["peers"]) == 6
    rows = {row["id"]: row for row in listing["peers"]}
    assert rows[str(victim.id)] == {"id": str(victim.id), "server": victim.contact.server,
                                    "client": victim.contact.client, "alive": False, "state": "killed",
                                    "tree_size": None}
    assert all(row["alive"] and row["tree_size"] >= 1 for key, row in rows.items() if key != str(victim.id))


@pytest.mark.parametrize("arguments", [{}, {"count": 1, "ids": []}, {"count": 7}, {"count": -1}, {"ids": ["1"]},
                                       {"ids": ["x", "x"]}])
def test_choosing_peers_rejects_bad_arguments(make_network, arguments):
    net = make_network(6, seed=12)
    with pytest.raises(UsageError):
        net.kill_peers(**arguments)
    assert len(net.peers) == 6


def test_churn_runs_in_the_background_while_status_and_snapshots_work(make_network, tmp_path):
    net = make_network(16, seed=13, client_timeout=TIMEOUT, evict_after=1)
    assert net.churn(join_rate=8.0, leave_rate=0.5, duration=1.0, crash_fraction=0.5, seed=4) == \
        {"started": True, "duration": 1.0}
    with pytest.raises(UsageError):
        net.churn(join_rate=1.0, leave_rate=1.0, duration=1.0)
    statuses = 0
    while net.churned["running"]:
        status = net.net_status()
        assert status["alive"] == len(status["peers"]) and status["n"] >= 1
        tgf = net.output_tgf(str(tmp_path / "snap.tgf"))  # churn may have moved on in between: check the file
        assert tgf["edges"] >= tgf["nodes"] >= 1
        assert (tmp_path / "snap.tgf").read_text().splitlines().index("#") == tgf["nodes"]
        statuses += 1
    churned = net.churned
    assert statuses >= 1 and churned["joined"] > 0 and churned["killed"] + churned["left"] > 0
    assert len(net.peers) == 16 + churned["joined"] - churned["killed"] - churned["left"]
    for peer, table in zip(net.peers, net.tables()):
        assert peer.id in table and len(table) <= 160
    assert untimed(net.churn(join_rate=0.0, leave_rate=0.0, duration=0.1, wait=True)) == \
        {"joined": 0, "killed": 0, "left": 0, "lookups": 0, "running": False}


def test_churn_on_a_fake_clock_happens_exactly_on_its_schedule(make_network):
    """Joins and departures at the times the pure schedule gives (joins take no time on a fake clock), with events
    stamped with the network's clock; hours of churn take no wall time."""
    clock = FakeClock(autojump=True)
    try:
        net = make_network(16, seed=13, clock=clock)
        seen = []
        net.events.subscribe(lambda event: seen.append((event["t"], event["type"])))
        ids = [peer.id for peer in net.peers]
        arguments = {"join_rate": 0.01, "leave_rate": 0.001, "duration": 3600.0, "crash_fraction": 0.5, "seed": 4}
        churned = net.churn(**arguments, wait=True)
        expected = [(round(when, 6), "joined" if kind == "join" else "crashed" if fate == "killed" else "left")
                    for when, kind, _, fate in churn.events(churn.ChurnPlan(**arguments), ids)]
        assert [item for item in seen if item[1] in ("joined", "crashed", "left")] == expected
        assert len(expected) > 20 and clock.now() == 3600.0
        assert untimed(churned) == {"joined": sum(kind == "joined" for _, kind in expected),
                                    "killed": sum(kind == "crashed" for _, kind in expected),
                                    "left": sum(kind == "left" for _, kind in expected), "lookups": 0,
                                    "running": False}
    finally:
        clock.close()


def test_die_stops_running_churn(make_network):
    net = make_network(4, seed=14)
    net.churn(join_rate=1.0, leave_rate=0.1, duration=60.0)
    wait_until(lambda: net.churned["running"])
    net.die()
    assert not net.churned["running"]


def test_run_takes_optional_arguments_as_key_value(capsys):
    from p2pzmq import cli

    code = cli.main(["run", "-n", "8", "--seed", "2", "kill_peers", "count=2", "seed=1", "add_peers", "1", "peers"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.splitlines()[0] == "Killed 2 peers, 6 alive" and out.splitlines()[1] == "Added 1 peers, 7 alive"
    assert out.splitlines()[-1] == "7/9 peers alive" and out.count(" killed - inproc://") == 2
    assert cli.main(["run", "-n", "2", "kill_peers", "count=5"]) == 1  # more peers than there are: found at run time
    assert cli.main(["run", "-n", "2", "kill_peers", "count=-1"]) == 2  # wrong whatever the network
    assert cli.main(["run", "-n", "2", "kill_peers", "bogus=1"]) == 2
