"""The Peers table (docs/DESIGN.md §4.3, §4.5) against an independent, literal re-implementation of Erlang's gb_trees.

The reference below works on immutable tuples ``(key, value, smaller, bigger)`` / ``None``, recursively, as
gb_trees.erl and the original's closest_peer do; :mod:`p2pzmq.protocols.original.table` is mutable and iterative.
Agreement on the preorder after every insert of thousands of seeded sequences means the shapes are identical.
"""
from __future__ import annotations

import bisect
import random

import pytest

from p2pzmq.contact import Contact
from p2pzmq.protocols.original.table import CAPACITY, METRICS, Table

pytestmark = pytest.mark.timeout(30)

TOP = 2**160 - 1


# -- reference gb_trees (p = 2) on tuples ----------------------------------------------------------------------

def ref_count(tree):
    """(h, size) with a leaf and nil both h = 1, as gb_trees' count/1."""
    if tree is None:
        return 1, 0
    _, _, smaller, bigger = tree
    if smaller is None and bigger is None:
        return 1, 1
    h1, s1 = ref_count(smaller)
    h2, s2 = ref_count(bigger)
    return 2 * max(h1, h2), s1 + s2 + 1


def ref_to_list(tree):
    if tree is None:
        return []
    key, value, smaller, bigger = tree
    return ref_to_list(smaller) + [(key, value)] + ref_to_list(bigger)


def ref_balance_list(items, size):
    """gb_trees' balance_list_1: returns (tree, remaining items)."""
    if size == 0:
        return None, items
    if size == 1:
        return (items[0][0], items[0][1], None, None), items[1:]
    right = (size - 1) // 2
    smaller, rest = ref_balance_list(items, size - 1 - right)
    (key, value), rest = rest[0], rest[1:]
    bigger, rest = ref_balance_list(rest, right)
    return (key, value, smaller, bigger), rest


def ref_insert_1(key, value, tree, budget, rebuilds):
    """Returns ``("done", tree)`` or ``("deep", tree, h, size)``; appends each rebuilt subtree's size to rebuilds."""
    if tree is None:
        leaf = (key, value, None, None)
        return ("deep", leaf, 1, 1) if budget == 0 else ("done", leaf)
    k, v, smaller, bigger = tree
    if key < k:
        result = ref_insert_1(key, value, smaller, budget >> 1, rebuilds)
        if result[0] == "done":
            return "done", (k, v, result[1], bigger)
        _, new_side, h1, s1 = result
        node, (h2, s2) = (k, v, new_side, bigger), ref_count(bigger)
    elif key > k:
        result = ref_insert_1(key, value, bigger, budget >> 1, rebuilds)
        if result[0] == "done":
            return "done", (k, v, smaller, result[1])
        _, new_side, h1, s1 = result
        node, (h2, s2) = (k, v, smaller, new_side), ref_count(smaller)
    else:
        raise KeyError(key)
    h, size = 2 * max(h1, h2), s1 + s2 + 1
    if h > size * size:
        rebuilds.append(size)
        balanced, rest = ref_balance_list(ref_to_list(node), size)
        assert rest == []
        return "done", balanced
    return "deep", node, h, size


def ref_lookup(key, tree):
    while tree is not None:
        if key < tree[0]:
            tree = tree[2]
        elif key > tree[0]:
            tree = tree[3]
        else:
            return tree
    return None


def ref_update(key, value, tree):
    k, v, smaller, bigger = tree
    if key < k:
        return k, v, ref_update(key, value, smaller), bigger
    if key > k:
        return k, v, smaller, ref_update(key, value, bigger)
    return k, value, smaller, bigger


def ref_add(state, key, value, rebuilds, capacity=CAPACITY):
    """The original's add_peer on ``(size, tree)``: nothing at capacity, else gb_trees:enter."""
    size, tree = state
    if size >= capacity:
        return state
    if ref_lookup(key, tree) is not None:
        return size, ref_update(key, value, tree)
    result = ref_insert_1(key, value, tree, (size + 1) ** 2, rebuilds)
    assert result[0] == "done", "a too-deep insert must rebuild some ancestor"
    return size + 1, result[1]


def ref_preorder(tree, out=None):
    out = [] if out is None else out
    if tree is not None:
        out.append((tree[0], tree[1]))
        ref_preorder(tree[2], out)
        ref_preorder(tree[3], out)
    return out


def ref_height(tree):
    return 0 if tree is None else 1 + max(ref_height(tree[2]), ref_height(tree[3]))


def ref_closest(target, tree):
    """The original's closest_peer, clause by clause."""
    key, value, smaller, bigger = tree
    if target == key:
        return key
    if target < key and smaller is None:
        return key
    if target > key and bigger is None:
        return key
    return ref_closest(target, smaller if target < key else bigger)


def ref_search_path(target, tree):
    path = []
    while tree is not None:
        path.append(tree[0])
        if target == tree[0]:
            break
        tree = tree[2] if target < tree[0] else tree[3]
    return path


def ref_depths(tree, depth=0, out=None):
    out = {} if out is None else out
    if tree is not None:
        out[tree[0]] = depth
        ref_depths(tree[2], depth + 1, out)
        ref_depths(tree[3], depth + 1, out)
    return out


def brute_tree_closest(target, sorted_keys, depths):
    """Closest by definition: the key itself, else the in-order neighbour (predecessor or successor) that lies
    deeper — the other one, if any, is its ancestor, so the search path ends at the deeper one."""
    i = bisect.bisect_left(sorted_keys, target)
    if i < len(sorted_keys) and sorted_keys[i] == target:
        return target
    neighbours = [k for k in (sorted_keys[i - 1] if i else None, sorted_keys[i] if i < len(sorted_keys) else None)
                  if k is not None]
    return max(neighbours, key=depths.__getitem__)


# -- helpers ---------------------------------------------------------------------------------------------------

def contact(key: int, tag: str = "") -> Contact:
    return Contact(key, f"inproc://server/{key}{tag}", f"inproc://client/{key}{tag}")


def table_of(keys, metric="tree", capacity=CAPACITY) -> Table:
    table = Table(metric, capacity)
    for key in keys:
        table.add(contact(key))
    return table


def ids(contacts) -> list[int]:
    return [c.id for c in contacts]


def random_ids(rng: random.Random, n: int) -> list[int]:
    """``n`` distinct random 160-bit ids, in random order."""
    drawn: dict[int, None] = {}
    while len(drawn) < n:
        drawn[rng.getrandbits(160)] = None
    return list(drawn)


def insert_sequences(seed: int):
    """Seeded key sequences of many kinds, some with repeats (overwrites) and some past the capacity."""
    rng = random.Random(seed)
    n = 160
    yield list(range(1, n + 1))
    yield list(range(n, 0, -1))
    yield [k for pair in zip(range(1, 81), range(200, 120, -1)) for k in pair]  # zigzag inwards
    yield list(range(1, 201))  # past the capacity
    for _ in range(2000):
        kind = rng.randrange(6)
        length = rng.randint(1, 40) if rng.random() < 0.96 else rng.randint(41, 175)
        if kind == 0:
            yield random_ids(rng, length)
        elif kind == 1:
            yield [rng.randrange(length + 5) for _ in range(length)]  # many repeats
        elif kind == 2:
            start = rng.randrange(1000)
            yield list(range(start, start + length))
        elif kind == 3:
            start = rng.randrange(1000, 2000)
            yield list(range(start, start - length, -1))
        elif kind == 4:  # nearly sorted: ascending with a few swaps
            keys = list(range(length))
            for _ in range(max(1, length // 10)):
                i, j = rng.randrange(length), rng.randrange(length)
                keys[i], keys[j] = keys[j], keys[i]
            yield keys
        else:  # ascending runs separated by jumps
            keys, base = [], 0
            while len(keys) < length:
                base += rng.randrange(1, 10_000)
                keys.extend(range(base, base + rng.randint(1, 12)))
            yield keys[:length]


# -- the original's examples -----------------------------------------------------------------------------------

def test_constants_and_contact():
    assert CAPACITY == 160
    assert METRICS == ("tree", "xor")
    c = Contact(5, "tcp://a:1", "tcp://a:2")
    assert (c.id, c.server, c.client) == (5, "tcp://a:1", "tcp://a:2")
    assert Contact._fields == ("id", "server", "client")


def test_inserting_1_to_7_in_order_gives_a_balanced_tree():
    table = table_of(range(1, 8))
    assert ids(table.preorder()) == [4, 2, 1, 3, 6, 5, 7]
    assert table.height() == 3


def test_inserting_1_to_6_in_order_is_still_a_chain():
    """gb_trees tolerates a chain of 6 (2**5 <= 6**2); the 7th key is the first too-deep insert."""
    table = table_of(range(1, 7))
    assert ids(table.preorder()) == [1, 2, 3, 4, 5, 6]
    assert table.height() == 6


CLOSEST_EXAMPLES = [
    ((10, 20, 30), 11, 20), ((10, 20, 30), 14, 20), ((10, 20, 30), 19, 20), ((10, 20, 30), 21, 30),
    ((10, 20, 30), 29, 30), ((10, 20, 30), 5, 10), ((10, 20, 30), 100, 30),
    ((50, 10, 90, 30, 70), 11, 30), ((50, 10, 90, 30, 70), 49, 30), ((50, 10, 90, 30, 70), 51, 70),
    ((50, 10, 90, 30, 70), 89, 70),
]


@pytest.mark.parametrize("keys, target, expected", CLOSEST_EXAMPLES)
def test_closest_examples_of_the_original(keys, target, expected):
    table = table_of(keys)
    assert table.closest(target) == contact(expected)
    assert Table.from_preorder(table.preorder()).closest(target) == contact(expected)
    state, rebuilds = (0, None), []
    for key in keys:
        state = ref_add(state, key, None, rebuilds)
    assert ref_closest(target, state[1]) == expected  # the reference agrees with the original too


def test_closest_of_a_member_is_that_member():
    table = table_of([50, 10, 90, 30, 70])
    for key in (50, 10, 90, 30, 70):
        assert table.closest(key).id == key


# -- shape: identical to gb_trees after every insert -----------------------------------------------------------

def test_shape_matches_reference_gb_trees_after_every_insert():
    sequences = rebuilt_roots = rebuilt_inner = 0
    for keys in insert_sequences(seed=20240601):
        sequences += 1
        table, state, rebuilds = Table(), (0, None), []
        for step, key in enumerate(keys):
            value = contact(key, f"#{step}")  # a repeated key carries a new value: an overwrite
            before = len(rebuilds)
            table.add(value)
            state = ref_add(state, key, value, rebuilds)
            size, tree = state
            assert [(c.id, c) for c in table.preorder()] == ref_preorder(tree)  # same preorder: same shape
            assert len(table) == size
            assert 2 ** (table.height() - 1) <= size * size  # gb_trees' invariant: count h never exceeds size**2
            if len(rebuilds) > before:
                rebuilt_roots += rebuilds[-1] == size
                rebuilt_inner += rebuilds[-1] < size
        assert table.height() == ref_height(state[1])
    assert sequences >= 2000
    assert rebuilt_roots > 100 and rebuilt_inner > 100  # both kinds of rebalancing were exercised


def test_ascending_and_descending_160_stay_logarithmic():
    for keys in (range(160), range(160, 0, -1)):
        table = Table()
        for size, key in enumerate(keys, start=1):
            table.add(contact(key))
            assert 2 ** (table.height() - 1) <= size * size
        assert table.height() <= 2 * 8  # 2 * log2(160) + 1 < 16


# -- closest -----------------------------------------------------------------------------------------------------

def targets_for(rng: random.Random, keys: list[int], count: int) -> list[int]:
    """``count`` random targets, the extremes, and some members and their neighbours."""
    some = keys[:20]
    edges = [0, TOP] + some + [k + 1 for k in some] + [k - 1 for k in some if k > 0]
    return edges + [rng.getrandbits(160) for _ in range(count)]


def test_tree_closest_matches_brute_force_and_reference_on_random_tables():
    rng = random.Random(77)
    for size in range(1, CAPACITY + 1):
        keys = random_ids(rng, size)
        table, state, rebuilds = Table(), (0, None), []
        for key in keys:
            table.add(contact(key))
            state = ref_add(state, key, None, rebuilds)
        tree = state[1]
        sorted_keys, depths = sorted(keys), ref_depths(tree)
        for target in targets_for(rng, keys, 100):
            found = table.closest(target).id
            assert found == brute_tree_closest(target, sorted_keys, depths) == ref_closest(target, tree)
            assert ref_search_path(target, tree)[-1] == found  # the last node on the search path


def test_tree_closest_on_small_key_space_exhaustively():
    """Every target from below the smallest to above the largest key, on many small shaped tables."""
    rng = random.Random(5)
    for _ in range(300):
        keys = rng.sample(range(0, 200, 2), rng.randint(1, 30))
        table = table_of(keys)
        state, rebuilds = (0, None), []
        for key in keys:
            state = ref_add(state, key, None, rebuilds)
        sorted_keys, depths = sorted(keys), ref_depths(state[1])
        for target in range(-1, 202):
            assert table.closest(target).id == brute_tree_closest(target, sorted_keys, depths)


def test_xor_closest_matches_brute_force():
    rng = random.Random(99)
    for size in range(1, CAPACITY + 1):
        keys = random_ids(rng, size)
        table = table_of(keys, metric="xor")
        for target in targets_for(rng, keys, 100):
            assert table.closest(target).id ^ target == min(k ^ target for k in keys)  # xor ties are impossible
        for key in keys:
            assert table.closest(key).id == key


def test_xor_and_tree_can_disagree_on_the_same_entries():
    tree = table_of([10, 20, 30])
    xor = Table.from_preorder(tree.preorder(), metric="xor")
    assert tree.closest(21).id == 30  # the search path 20 -> 30 ends at 30
    assert xor.closest(21).id == 20  # 21 ^ 20 == 1


def test_a_metric_name_read_at_run_time_works_as_the_literal():
    """Names parsed from a command line or JSON are equal to the literals but other string objects."""
    parsed = "".join(["x", "or"])
    assert parsed == METRICS[1] and parsed is not METRICS[1]  # equal, but not the same object
    table = Table.from_preorder(table_of([10, 20, 30]).preorder(), metric=parsed)
    assert table.closest(21).id == 20


@pytest.mark.parametrize("metric", METRICS)
def test_empty_table(metric):
    table = Table(metric)
    for empty in (table, Table.from_preorder([], metric=metric), table.copy()):
        assert len(empty) == 0 and list(empty) == [] and empty.preorder() == [] and empty.descending() == []
        assert empty.height() == 0 and empty.get(1) is None and 1 not in empty
        with pytest.raises(LookupError):
            empty.closest(0)


@pytest.mark.parametrize("metric", ["manhattan", "TREE", "", "Xor"])
def test_unknown_metric_is_rejected(metric):
    with pytest.raises(ValueError):
        Table(metric)
    with pytest.raises(ValueError):
        Table.from_preorder([contact(1)], metric=metric)


# -- the add rule: capacity and overwrites -----------------------------------------------------------------------

def test_at_capacity_add_neither_inserts_nor_overwrites():
    rng = random.Random(8)
    keys = random_ids(rng, CAPACITY)
    table = table_of(keys)
    assert len(table) == CAPACITY
    shape = table.preorder()
    outsider = contact(rng.randrange(2**160))
    table.add(outsider)
    assert outsider.id not in table and table.get(outsider.id) is None
    for key in keys[:20]:
        table.add(contact(key, "-new"))
        assert table.get(key) == contact(key)
    assert table.preorder() == shape and len(table) == CAPACITY


def test_custom_capacity():
    table = table_of(range(10), capacity=5)
    assert ids(table) == [0, 1, 2, 3, 4]
    table.add(contact(3, "-new"))
    assert table.get(3) == contact(3)
    assert table.capacity == 5 and table.copy().capacity == 5


def test_below_capacity_overwrite_replaces_the_value_in_place():
    rng = random.Random(12)
    for size in (1, 2, 7, 50, CAPACITY - 1):
        keys = random_ids(rng, size)
        table = table_of(keys)
        shape = ids(table.preorder())
        for key in rng.sample(keys, min(size, 10)):
            table.add(contact(key, "-new"))
            assert table.get(key) == contact(key, "-new")
        assert ids(table.preorder()) == shape and len(table) == size
        table.add(contact(keys[0], "-newer"))
        assert table.get(keys[0]) == contact(keys[0], "-newer")


def test_the_160th_entry_is_accepted_and_the_161st_is_not():
    table = table_of(range(CAPACITY - 1))
    table.add(contact(10**6))
    assert len(table) == CAPACITY and 10**6 in table
    table.add(contact(10**7))
    assert len(table) == CAPACITY and 10**7 not in table


# -- reading ------------------------------------------------------------------------------------------------------

def test_iteration_lookup_and_orders():
    rng = random.Random(21)
    keys = random_ids(rng, 120)
    table = table_of(keys)
    assert ids(table) == sorted(keys)
    assert table.descending() == list(table)[::-1] == [contact(k) for k in sorted(keys, reverse=True)]
    assert sorted(ids(table.preorder())) == sorted(keys)
    for key in keys:
        assert key in table and table.get(key) == contact(key)
    for key in random_ids(rng, 50):
        assert (key in table) == (key in keys)
        assert table.get(key) == (contact(key) if key in keys else None)


def test_preorder_is_root_then_left_then_right():
    table = table_of([50, 10, 90, 30, 70])
    assert ids(table.preorder()) == [50, 10, 30, 90, 70]
    assert table.height() == 3
    assert len(table_of([42])) == 1 and table_of([42]).height() == 1


# -- travelling in preorder ----------------------------------------------------------------------------------------

def test_from_preorder_reproduces_shape_and_answers():
    rng = random.Random(31)
    for size in list(range(1, 40)) + [80, 120, 159, 160]:
        keys = random_ids(rng, size) if size % 2 else sorted(random_ids(rng, size))
        for metric in METRICS:
            table = table_of(keys, metric=metric)
            rebuilt = Table.from_preorder(table.preorder(), metric=metric)
            assert rebuilt.preorder() == table.preorder()
            assert rebuilt.height() == table.height() and len(rebuilt) == len(table)
            assert list(rebuilt) == list(table) and rebuilt.metric == metric
            for target in targets_for(rng, keys[:10], 30):
                assert rebuilt.closest(target) == table.closest(target)


def test_a_rebuilt_table_keeps_growing_like_the_original():
    """Tables are rebuilt from the wire and then added to; the rebuilt one must evolve exactly as the original."""
    rng = random.Random(41)
    for _ in range(100):
        keys = [rng.randrange(500) for _ in range(rng.randint(1, 60))]
        split = rng.randrange(len(keys) + 1)
        original = table_of(keys[:split])
        rebuilt = Table.from_preorder(original.preorder())
        for key in keys[split:]:
            original.add(contact(key))
            rebuilt.add(contact(key))
            assert rebuilt.preorder() == original.preorder()


def ref_plain_insert(key, value, tree):
    if tree is None:
        return key, value, None, None
    k, v, smaller, bigger = tree
    if key < k:
        return k, v, ref_plain_insert(key, value, smaller), bigger
    return k, v, smaller, ref_plain_insert(key, value, bigger)


def test_adding_to_any_shape_from_the_wire_follows_gb_trees():
    """A preorder from the wire may hold a shape gb_trees would never build (a chain, say), where a too-deep
    insert meets an other side taller than its own; adds must still follow gb_trees exactly."""
    rng = random.Random(51)
    for trial in range(300):
        start = list(range(0, 4 * rng.randint(1, 40), 4))
        if trial % 3:
            rng.shuffle(start)
        elif trial % 2:
            start.reverse()
        tree = None
        for key in start:
            tree = ref_plain_insert(key, contact(key), tree)
        table = Table.from_preorder(contact(key) for key, _ in ref_preorder(tree))
        state, rebuilds = (len(start), tree), []
        for key in [rng.randrange(-5, 4 * len(start) + 5) for _ in range(rng.randint(1, 30))]:
            table.add(contact(key, "+"))
            state = ref_add(state, key, contact(key, "+"), rebuilds)
            assert [(c.id, c) for c in table.preorder()] == ref_preorder(state[1])


def test_from_preorder_does_not_rebalance():
    chain = [contact(k) for k in range(CAPACITY)]
    table = Table.from_preorder(chain)
    assert table.height() == CAPACITY and table.preorder() == chain
    assert table.closest(10**9).id == CAPACITY - 1


def test_from_preorder_rejects_too_many_and_duplicates():
    with pytest.raises(ValueError):
        Table.from_preorder([contact(k) for k in range(CAPACITY + 1)])
    with pytest.raises(ValueError):
        Table.from_preorder([contact(k) for k in range(4)], capacity=3)
    with pytest.raises(ValueError):
        Table.from_preorder([contact(1), contact(2), contact(1, "-again")])
    assert len(Table.from_preorder([contact(k) for k in range(3)], capacity=3)) == 3


def test_copy_is_independent():
    table = table_of([5, 3, 8])
    twin = table.copy()
    twin.add(contact(4))
    twin.add(contact(5, "-new"))
    assert ids(table) == [3, 5, 8] and table.get(5) == contact(5)
    assert ids(twin) == [3, 4, 5, 8] and twin.get(5) == contact(5, "-new")
    assert table_of([1], metric="xor").copy().metric == "xor"


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("seed", range(6))
def test_closest_runs_answer_every_sorted_target_as_closest_does(metric, seed):
    rng = random.Random(seed)
    keys = random_ids(rng, rng.randrange(1, CAPACITY + 1))
    table = table_of(keys, metric)
    targets = sorted(set(random_ids(rng, 500) + rng.sample(keys, min(len(keys), 40))
                         + [0, (1 << 160) - 1, min(keys) - 1 if min(keys) else 0, max(keys) + 1]))
    answers = [None] * len(targets)
    for low, high, found in table.closest_runs(targets):
        assert 0 <= low < high <= len(targets)
        for index in range(low, high):
            assert answers[index] is None  # runs never overlap
            answers[index] = found
    assert answers == [table.closest(target) for target in targets]
    with pytest.raises(LookupError):
        Table(metric).closest_runs(targets)
