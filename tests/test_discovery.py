"""The target walk of docs/DESIGN.md §4.7 on hand-built tables: which servers it asks, how many, and what it returns.

The oracle (tests/model.py) walks with discovery.py itself, so comparing the network with it cannot show a wrong
budget or stop rule: both would share the mistake. Here every expected list is written out from the rule.
"""
import pytest

from p2pzmq.protocols.original.discovery import build_table, walk
from p2pzmq.errors import RpcTimeout
from p2pzmq.ids import discovery_targets
from p2pzmq.contact import Contact
from p2pzmq.protocols.original.table import Table

pytestmark = pytest.mark.timeout(30)

TARGET = 2**159 + 10**6


def contact(peer_id: int) -> Contact:
    return Contact(peer_id, f"inproc://server/{peer_id}", f"inproc://client/{peer_id}")


def same(peer: Contact) -> Contact:
    """An equal contact made of new objects, as one decoded from a message is: ids are compared by value."""
    return Contact(int(str(peer.id)), peer.server, peer.client)


ME = contact(1)
CHAIN = [contact(2**159 + 100 + step) for step in range(20)]  # each server names the next one, never reaching TARGET


def table_of(*contacts: Contact) -> Table:
    table = Table()
    for entry in contacts:
        table.add(entry)
    return table


class Servers:
    """``find_closest`` that records whom it asks; ``answers`` maps a server id to the contact it replies with."""

    def __init__(self, answers: dict[int, Contact], silent: frozenset = frozenset()) -> None:
        self.answers = answers
        self.silent = silent
        self.asked: list[int] = []

    def __call__(self, server: Contact, target: int) -> Contact:
        assert target == TARGET
        self.asked.append(server.id)
        if server.id in self.silent:
            raise RpcTimeout("no reply")
        return self.answers[server.id]


def chain_servers(**options) -> Servers:
    return Servers({here.id: there for here, there in zip(CHAIN, CHAIN[1:])}, **options)


@pytest.mark.parametrize("max_hops", [0, 1, 3, 8])
def test_a_walk_asks_exactly_max_hops_servers_and_returns_the_last_answer(max_hops):
    servers = chain_servers()
    found = walk(ME, table_of(ME, CHAIN[0]), TARGET, servers, max_hops)
    assert servers.asked == [c.id for c in CHAIN[:max_hops]]
    assert found == CHAIN[max_hops]  # the local best guess when the budget is 0


def test_the_default_budget_asks_eight_servers():
    servers = chain_servers()
    walk(ME, table_of(ME, CHAIN[0]), TARGET, servers, max_hops=8)
    assert len(servers.asked) == 8


def test_a_server_that_names_itself_ends_the_walk():
    servers = chain_servers()
    servers.answers[CHAIN[2].id] = same(CHAIN[2])
    assert walk(ME, table_of(ME, CHAIN[0]), TARGET, servers, 8) == CHAIN[2]
    assert servers.asked == [CHAIN[0].id, CHAIN[1].id, CHAIN[2].id]


def test_an_answer_leading_back_to_the_walker_ends_the_walk_without_asking_it():
    servers = chain_servers()
    servers.answers[CHAIN[1].id] = ME
    assert walk(ME, table_of(ME, CHAIN[0]), TARGET, servers, 8) == ME
    assert servers.asked == [CHAIN[0].id, CHAIN[1].id]


def test_nobody_is_asked_for_the_walker_itself_or_for_a_target_in_the_table():
    servers = chain_servers()
    big = contact(2**159 + 7)  # ids are large integers: equal ones are often different objects
    assert walk(big, table_of(big, CHAIN[0]), int(str(big.id)), servers, 8) == big
    # A joining peer walks from its bootstrap peer's table, which does not hold the walker yet.
    assert walk(big, table_of(CHAIN[0]), int(str(big.id)), servers, 8) == big
    held = contact(2**159 + 1000)
    assert walk(ME, table_of(ME, CHAIN[0], held), int(str(held.id)), servers, 8) == held
    assert servers.asked == []


def test_a_table_whose_closest_entry_is_the_walker_asks_nobody():
    servers = chain_servers()
    assert walk(ME, table_of(ME), TARGET, servers, 8) == ME
    assert servers.asked == []


def test_a_silent_server_is_a_dead_end_the_walk_returns_the_last_that_answered():
    servers = chain_servers(silent=frozenset({CHAIN[3].id}))
    assert walk(ME, table_of(ME, CHAIN[0]), TARGET, servers, 8) == CHAIN[2]
    assert servers.asked == [c.id for c in CHAIN[:4]]
    first_silent = chain_servers(silent=frozenset({CHAIN[0].id}))
    assert walk(ME, table_of(ME, CHAIN[0]), TARGET, first_silent, 8) == CHAIN[0]  # the local best guess


def test_a_new_table_holds_the_walk_results_in_target_order_then_the_old_entries():
    """With a capacity of 3, only the first adds count: the walker itself (found for every target nobody is asked
    about, here all of them) and then the old table's entries in descending id order."""
    start = table_of(ME, contact(50), contact(70), contact(60))
    asked = []

    def find_closest(server, target):
        asked.append(server.id)
        return ME  # every server says the walker is the closest it knows: each walk ends after one question

    fresh = build_table(ME, start, find_closest, max_hops=8, capacity=3)
    assert sorted(c.id for c in fresh) == [1, 60, 70]
    targets = discovery_targets(ME.id)
    assert len(asked) == sum(start.closest(t).id not in (ME.id, t) for t in targets if t != ME.id)
