"""The message-free Kademlia model (tests/kademlia_model.py): the same draws as the original's model, exact small
cases, and the statistics a healthy Kademlia network must reach, also after crashes."""
from __future__ import annotations

import random

import pytest

from kademlia_model import KademliaModel
from model import ModelNetwork
from p2pzmq.ids import ID_BITS, new_id
from p2pzmq.protocols.kademlia.kbuckets import bucket_index

pytestmark = pytest.mark.timeout(120)


class Recording(KademliaModel):
    """The model, noting every join's bootstrap and every lookup's target."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.joins: list[tuple[int, int]] = []
        self.lookups: list[tuple[int, int]] = []

    def join(self, me, bootstrap):
        self.joins.append((me.id, bootstrap.id))
        super().join(me, bootstrap)

    def lookup(self, me, target):
        self.lookups.append((me.id, target))
        return super().lookup(me, target)


def test_ids_and_bootstrap_choices_are_drawn_as_the_original_model_draws_them():
    model = Recording(seed=11)
    model.create(40)
    original = ModelNetwork(seed=11)
    original.create(40)
    assert [peer.id for peer in model.peers] == [peer.id for peer in original.peers]
    rng, newest_first, expected = random.Random(11), [], []
    for _ in range(40):
        peer_id = new_id(rng)
        if newest_first:
            expected.append((peer_id, newest_first[rng.randrange(len(newest_first))]))
        newest_first.insert(0, peer_id)
    assert model.joins == expected


def test_two_peers_by_hand():
    model = KademliaModel(seed=3)
    model.create(2)
    new, old = model.peers
    index = bucket_index(new.id, old.id)
    # The own-id lookup asks the bootstrap, which knows nobody else; then one lookup per bucket farther than it,
    # each asking the bootstrap again. Every request teaches the bootstrap the newcomer.
    assert model.join_requests == [1 + (ID_BITS - 1 - index)] and model.requests == model.join_requests[0]
    assert model.tables[new.id].contacts() == [old] and model.tables[old.id].contacts() == [new]
    stats = model.stats()
    assert stats["lookup"]["success"] == stats["greedy"]["reach"] == 1.0
    assert stats["lookup"]["mean_rounds"] == 1 and stats["greedy"]["mean_hops"] == 1


def test_a_join_looks_up_its_own_id_then_refreshes_with_its_own_random_stream():
    model = Recording(seed=5)
    model.create(60)
    joined = [peer_id for peer_id, _ in model.joins]
    for peer_id in joined:
        targets = [target for who, target in model.lookups if who == peer_id]
        assert targets[0] == peer_id
        indexes = [bucket_index(peer_id, target) for target in targets[1:]]
        if indexes:  # one bucket each, from the first farther than the closest neighbour's to the last
            assert indexes == list(range(indexes[0], ID_BITS))
        rng = random.Random(f"5:{peer_id}")
        assert targets[1:] == [peer_id ^ (1 << i | rng.getrandbits(i)) for i in indexes]
    assert sum(model.join_requests) == model.requests
    assert len(model.join_requests) == 59 and min(model.join_requests) >= 1


def test_the_same_seed_builds_the_same_tables_in_the_same_order():
    def wire(seed):
        model = KademliaModel(seed, k=4)
        model.create(80)
        model.refresh_peers()
        return [model.tables[peer.id].contacts() for peer in model.peers], model.requests

    assert wire(8) == wire(8)
    assert wire(8) != wire(9)


def test_peers_ping_their_suspects_and_drop_those_that_are_dead():
    model = KademliaModel(seed=4, k=2)
    model.create(50)
    suspects = {peer.id: model.tables[peer.id].suspects() for peer in model.peers}
    assert sum(map(len, suspects.values())) > 20  # with k = 2 buckets overflow all the time
    candidates = sorted({suspect.id for listed in suspects.values() for suspect in listed})
    victims = set(random.Random(1).sample(candidates, min(10, len(candidates))))
    model.kill(victims)
    before = model.requests
    model.refresh_peers()
    assert model.requests > before
    for peer in model.peers:
        for suspect in suspects[peer.id]:
            if suspect.id in victims:
                assert suspect.id not in model.tables[peer.id]


def test_leavers_are_forgotten_by_those_that_fail_to_reach_them():
    model = KademliaModel(seed=6)
    model.create(30)
    leaver = model.peers[7]
    model.leave({leaver.id})
    assert leaver not in model.peers and model.departed == [(leaver, "left")] and leaver.id not in model.tables
    knowing = [peer for peer in model.peers if leaver.id in model.tables[peer.id]]
    assert knowing
    for peer in knowing:  # the leaver is the closest contact to its own id: the lookup asks it first
        lookup = model.lookup(peer, leaver.id)
        assert leaver.id not in model.tables[peer.id] and not lookup.found(leaver.id)


def test_200_peers_find_each_other():
    model = KademliaModel(seed=1)
    model.create(200)
    stats = model.stats(sample=8000, seed=1)  # of the 39,800 ordered pairs
    assert stats["lookup"]["success"] >= 0.995 and stats["greedy"]["reach"] >= 0.99
    assert stats["lookup"]["mean_rounds"] < 4 and stats["table_size"]["min"] >= 20


def test_after_20_percent_crash_before_any_refresh_alive_peers_still_find_each_other():
    model = KademliaModel(seed=2)
    model.create(200)
    model.kill(set(random.Random(2).sample([peer.id for peer in model.peers], 40)))
    stats = model.stats(sample=5000, seed=3)
    assert stats["n"] == 160 and stats["lookup"]["success"] >= 0.99


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_1000_peers_find_each_other_also_after_20_percent_crash():
    model = KademliaModel(seed=1)
    model.create(1000)
    stats = model.stats(sample=20_000, seed=1)
    assert stats["lookup"]["success"] >= 0.995 and stats["greedy"]["reach"] >= 0.99
    model.kill(set(random.Random(1).sample([peer.id for peer in model.peers], 200)))
    assert model.stats(sample=20_000, seed=2)["lookup"]["success"] >= 0.99
