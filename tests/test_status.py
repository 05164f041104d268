"""net_status at scale: local routing equals message-driven routing, sampling with a confidence interval, parallel
joins, and their command-line and control forms."""
import random

import pytest

from model import ModelNetwork
from p2pzmq import cli, commands
from p2pzmq.config import Config
from p2pzmq.control import handle
from p2pzmq.errors import UsageError
from p2pzmq.status import DEAD, all_pairs, estimate, route_counts, route_steps
from p2pzmq.contact import Contact
from p2pzmq.protocols.original.table import Table
from p2pzmq.timeline import untimed

pytestmark = pytest.mark.timeout(120)


def contact(peer_id):
    return Contact(peer_id, f"s{peer_id}", f"c{peer_id}")


def table_of(*ids):
    table = Table()
    for peer_id in ids:
        table.add(contact(peer_id))
    return table


def test_route_steps_arrive_stop_at_dead_ends_loops_unknown_peers_and_the_budget():
    # 10 -> 20 -> 30 (target 30). 40 knows only itself (dead end). 50 and 60 point at each other for target 99.
    tables = {10: table_of(10, 20), 20: table_of(20, 30), 30: table_of(30), 40: table_of(40),
              50: table_of(50, 60), 60: table_of(60, 50), 70: table_of(70, 80)}  # 80 has no table
    pairs = [(10, 30), (20, 30), (30, 30), (40, 30), (50, 99), (70, 80), (70, 90), (10, 10)]
    assert route_steps(tables, pairs, max_hops=8) == [2, 1, 0, None, None, 1, DEAD, 0]
    assert route_steps(tables, [(10, 30)], max_hops=1) == [None]
    assert route_steps(tables, [(70, 90)], max_hops=1) == [None]  # reaches the dead 80 with no budget left to ask


@pytest.mark.parametrize("order", [1, -1])
def test_a_dead_peer_fails_a_route_only_if_it_is_reached_with_budget_left(order):
    """10 -> 20 -> 30 -> 40 towards 99, and 40 is dead: a route meets it 3, 2 or 1 steps from its source. As driven
    by messages, it fails at the dead peer (DEAD) only if fewer than max_hops steps were spent getting there (the
    dead peer must still be asked); otherwise the budget ran out first (None). Both orders of the pairs, because
    routes that meet an already walked path reuse what it found."""
    tables = {10: table_of(10, 20), 20: table_of(20, 30), 30: table_of(30, 40)}
    pairs = [(10, 99), (20, 99), (30, 99)][::order]
    for max_hops, expected in ((0, [None, None, None]), (1, [None, None, None]), (2, [None, None, DEAD]),
                               (3, [None, DEAD, DEAD]), (4, [DEAD, DEAD, DEAD])):
        assert route_steps(tables, pairs, max_hops) == expected[::order], max_hops
    assert route_steps(tables, [(40, 99)], max_hops=1) == [DEAD]  # from the dead peer itself: it must be asked


def test_estimate_is_the_mean_reach_with_a_binomial_interval():
    # By hand: reach 1/3, 2/3, 2/3 -> mean 5/9; variance (3 * 2/9) / ((3 - 1) * 3 * 3) = 1/27; half width
    # 1.959964 * sqrt(1/27) = 0.377195; in percent, rounded to 3 decimals.
    assert estimate([1, 2, 2], 3) == {"estimate": 55.556, "ci95": [17.836, 93.275]}
    # The same formula at its edges: 2 draws (k - 1 = 1), the low end clamped at 0; 1 draw (k - 1 = 0: divide by 1);
    # the high end clamped at 100; an even k; the fourth decimal of both ends dropped.
    assert estimate([1, 0], 2) == {"estimate": 25.0, "ci95": [0.0, 73.999]}
    assert estimate([1], 1) == {"estimate": 100.0, "ci95": [100.0, 100.0]}
    assert estimate([3, 3, 2], 3) == {"estimate": 88.889, "ci95": [67.112, 100.0]}
    assert estimate([1, 3], 4) == {"estimate": 50.0, "ci95": [15.352, 84.648]}
    assert estimate([10, 10], 10) == {"estimate": 100.0, "ci95": [100.0, 100.0]}
    result = estimate([5, 7, 9, 3], 10)
    low, high = result["ci95"]
    assert result["estimate"] == 60.0 and low < 60 < high and high - low < 40


@pytest.mark.parametrize("metric", ["tree", "xor"])
def test_local_routing_gives_exactly_the_message_driven_result_on_the_same_network(make_network, metric):
    net = make_network(48, seed=7, metric=metric)
    assert untimed(net.net_status(routing="local")) == untimed(net.net_status(routing="messages"))
    net.refresh_peers()
    assert untimed(net.net_status(routing="local")) == untimed(net.net_status(routing="messages"))
    model = ModelNetwork(7, metric)
    model.create(48)
    model.refresh_peers()
    assert untimed(net.net_status(routing="local")) == model.net_status()


def test_sampled_status_is_the_same_by_messages_and_locally_and_brackets_the_exact_value(make_network):
    messages, local = make_network(60, seed=3), make_network(60, seed=3)  # same seed: same network, same samples
    sampled = messages.net_status(sample=40, routing="messages")
    assert untimed(local.net_status(sample=40, routing="local")) == untimed(sampled)
    exact = messages.net_status()
    assert sampled["sample"] == 40 and sampled["n"] == 60
    assert all(0 <= row["reachable"] <= 40 for row in sampled["peers"])
    assert [row["tree_size"] for row in sampled["peers"]] == [row["tree_size"] for row in exact["peers"]]
    true_reach = sum(row["reachable"] for row in exact["peers"]) / 60 ** 2 * 100
    low, high = sampled["ci95"]
    # Seeded, so deterministic; the margin of two half-widths (about 4 sigma) would hold for any seed but 1 in 10^4.
    assert abs(sampled["estimate"] - true_reach) <= high - low < 10, (true_reach, sampled["ci95"])


def test_large_networks_sample_by_default_and_sample_zero_forces_all_pairs(make_network):
    net = make_network(12, seed=2, status_budget=100, status_sample=5, status_local_above=4)
    result = net.net_status()
    assert result["sample"] == 5 and set(result) >= {"n", "connectivity", "peers", "hops", "estimate", "ci95"}
    assert set(net.net_status(sample=0)) == {"n", "connectivity", "peers", "hops", "alive", "dead", "failed_hops"}
    with pytest.raises(UsageError):
        net.net_status(sample=-1)
    with pytest.raises(UsageError):
        net.net_status(routing="telepathy")


def test_exact_or_sampled_follows_the_work_it_costs():
    original, kademlia = Config(), Config(protocol="kademlia")
    assert original.status_exact(2000) and not original.status_exact(2001)
    assert kademlia.status_exact(312) and not kademlia.status_exact(313)  # 313² x 41 > 2,000²
    assert not kademlia.status_exact(2000)
    assert Config(status_budget=41 * 500 * 500, protocol="kademlia").status_exact(500)
    assert not Config(status_budget=41 * 500 * 500 - 1, protocol="kademlia").status_exact(500)
    assert Config(status_budget=100).status_exact(10) and not Config(status_budget=99).status_exact(10)


def test_a_kademlia_status_over_its_budget_is_sampled_with_its_interval(make_network):
    net = make_network(12, seed=2, protocol="kademlia", status_budget=41 * 11 * 11, status_sample=5)
    result = net.net_status()
    assert result["sample"] == 5 and result["lookups"]["sample"] == 5 and len(result["ci95"]) == 2
    exact = make_network(12, seed=2, protocol="kademlia", status_budget=41 * 12 * 12).net_status()
    assert "sample" not in exact and exact["lookups"]["lookups"] == 12 * 11


def test_join_concurrency_one_is_the_sequential_build_and_more_builds_a_working_network(make_network):
    sequential = make_network(30, seed=5, join_concurrency=1)
    model = ModelNetwork(5)
    model.create(30)
    assert [[c.id for c in t.preorder()] for t in sequential.tables()] == model.preorders()
    sequential.refresh_peers(concurrency=1)
    model.refresh_peers()
    assert [[c.id for c in t.preorder()] for t in sequential.tables()] == model.preorders()
    parallel = make_network(30, seed=5, join_concurrency=8)
    status = parallel.net_status()
    assert status["n"] == 30 and status["connectivity"] >= 50
    assert all(row["tree_size"] >= 2 for row in status["peers"])
    assert untimed(parallel.refresh_peers()) == {"refreshed": 30} and parallel.net_status()["connectivity"] >= 50
    assert parallel.stats()["timeouts"] == 0
    with pytest.raises(UsageError):
        parallel.refresh_peers(concurrency=0)


def test_control_and_cli_take_sample_and_routing(make_network, capsys):
    net = make_network(6, seed=1)
    reply, _ = handle(net, b'{"cmd": "net_status", "sample": 3, "routing": "local"}')
    assert reply["ok"] and reply["result"]["sample"] == 3
    reply, _ = handle(net, b'{"cmd": "net_status", "sample": "3"}')
    assert not reply["ok"]
    assert commands.parse_session(["net_status", "sample=4", "routing=local", "ping"]) == [
        ("net_status", {"sample": 4, "routing": "local"}), ("ping", {})]
    assert cli.main(["run", "-n", "5", "--seed", "1", "--sample", "4", "--join-concurrency", "2",
                     "net_status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 11 and all("/4 sampled peers " in line for line in lines[1:10:2])
    assert lines[-1].startswith("Connectivity percentage ") and "95% CI" in lines[-1]
    assert cli.main(["run", "-n", "5", "--join-concurrency", "0"]) == cli.EXIT_USAGE


def test_local_routing_matches_messages_when_routes_run_into_dead_peers(make_network):
    net = make_network(40, seed=5, client_timeout=0.2)
    net.kill_peers(count=10, seed=1)
    local, messages = net.net_status(routing="local"), net.net_status(routing="messages")
    assert untimed(local) == untimed(messages)
    assert local["failed_hops"] > 0 and len(local["dead"]) == 10 and local["n"] == 30


@pytest.mark.parametrize("metric", ["tree", "xor"])
@pytest.mark.parametrize("seed", range(8))
def test_all_pairs_is_route_steps_for_every_pair_with_dead_peers_loops_and_budgets(metric, seed):
    """Random small tables (many loops and dead ends, some entries naming peers that have no table: dead) and a
    small budget: the exact all-pairs computation must give exactly what route_steps gives pair by pair."""
    rng = random.Random(seed)
    alive = rng.sample(range(1, 400), 60)
    dead = rng.sample([peer for peer in range(1, 400) if peer not in alive], 8)
    tables = {}
    for peer_id in alive:
        table = Table(metric)
        table.add(contact(peer_id))
        for other in rng.sample(alive + dead, rng.randrange(0, 12)):
            table.add(contact(other))
        tables[peer_id] = table
    for max_hops in (0, 1, 3, 8):
        steps = route_steps(tables, [(source, target) for source in alive for target in alive], max_hops)
        reached = [sum(1 for s in steps[i * 60:(i + 1) * 60] if s is not None and s >= 0) for i in range(60)]
        arrived = [s for s in steps if s is not None and s >= 0]
        expected = (reached, {h: arrived.count(h) for h in set(arrived)}, steps.count(DEAD))
        got = all_pairs(tables, alive, max_hops)
        assert (got[0], dict(got[1]), got[2]) == expected
        assert route_counts(tables, alive, [alive] * 60, max_hops) == got  # the exact status takes this path
