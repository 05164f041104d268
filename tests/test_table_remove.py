"""``Table.remove`` against a brute-force transcription of OTP's gb_trees (enter, delete) on seeded random work."""
import random

import pytest

from p2pzmq.contact import Contact
from p2pzmq.protocols.original.table import Table

pytestmark = pytest.mark.timeout(60)


# gb_trees as nested tuples (key, smaller, bigger), transcribed clause by clause from OTP stdlib gb_trees.erl.
def _count(tree):
    if tree is None:
        return 1, 0
    if tree[1] is None and tree[2] is None:
        return 1, 1
    h1, s1 = _count(tree[1])
    h2, s2 = _count(tree[2])
    return 2 * max(h1, h2), s1 + s2 + 1


def _keys(tree):
    return [] if tree is None else _keys(tree[1]) + [tree[0]] + _keys(tree[2])


def _balance_list(keys):
    if not keys:
        return None
    size = len(keys)
    left = size - 1 - (size - 1) // 2
    return keys[left], _balance_list(keys[:left]), _balance_list(keys[left + 1:])


def _insert_1(key, tree, budget):
    """A tree (no rebalance needed above) or a triple ('deep', tree, h, s) while the insert is too deep."""
    if tree is None:
        return ("deep", (key, None, None), 1, 1) if budget == 0 else (key, None, None)
    key1, smaller, bigger = tree
    went_left = key < key1
    result = _insert_1(key, smaller if went_left else bigger, budget >> 1)
    if result[0] != "deep":
        return (key1, result, bigger) if went_left else (key1, smaller, result)
    _, sub, h1, s1 = result
    new = (key1, sub, bigger) if went_left else (key1, smaller, sub)
    h2, s2 = _count(bigger if went_left else smaller)
    h, ss = 2 * max(h1, h2), s1 + s2 + 1
    if h > ss * ss:
        return _balance_list(_keys(new))
    return ("deep", new, h, ss)


def gb_enter(key, tree, size):
    if key in _keys(tree):
        return tree, size
    result = _insert_1(key, tree, (size + 1) ** 2)
    return (result[1] if result[0] == "deep" else result), size + 1


def _take_smallest(tree):
    key, smaller, bigger = tree
    if smaller is None:
        return key, bigger
    key1, smaller1 = _take_smallest(smaller)
    return key1, (key, smaller1, bigger)


def _delete_1(key, tree):
    key1, smaller, bigger = tree
    if key < key1:
        return key1, _delete_1(key, smaller), bigger
    if key > key1:
        return key1, smaller, _delete_1(key, bigger)
    if bigger is None:
        return smaller
    if smaller is None:
        return bigger
    key2, bigger1 = _take_smallest(bigger)
    return key2, smaller, bigger1


def gb_delete_any(key, tree, size):
    if key not in _keys(tree):
        return tree, size
    return _delete_1(key, tree), size - 1


def _preorder(tree):
    return [] if tree is None else [tree[0]] + _preorder(tree[1]) + _preorder(tree[2])


def contact(key):
    return Contact(key, f"inproc://s/{key}", f"inproc://c/{key}")


@pytest.mark.parametrize("seed", range(12))
def test_remove_matches_gb_trees_delete_under_random_inserts_and_deletes(seed):
    rng = random.Random(seed)
    table, tree, size = Table(capacity=10**6), None, 0
    keys = range(rng.choice([8, 40, 300]))
    for _ in range(600):
        key = rng.choice(keys)
        if rng.random() < 0.4:
            assert table.remove(key) == (key in _keys(tree))
            tree, size = gb_delete_any(key, tree, size)
        else:
            table.add(contact(key))
            tree, size = gb_enter(key, tree, size)
        assert [c.id for c in table.preorder()] == _preorder(tree)
        assert len(table) == size


def test_remove_keeps_closest_and_contents_consistent():
    table = Table()
    for key in (50, 10, 90, 30, 70, 20, 40):
        table.add(contact(key))
    assert table.remove(30) and not table.remove(30)
    assert 30 not in table and table.get(30) is None and len(table) == 6
    assert [c.id for c in table] == [10, 20, 40, 50, 70, 90]
    assert table.closest(30).id in (20, 40)
    table.remove(50)  # the root, with two children: its successor 70 takes its place
    assert table.preorder()[0].id == 70


def test_a_full_table_accepts_an_add_again_after_a_remove():
    table = Table(capacity=3)
    for key in (1, 2, 3, 4):
        table.add(contact(key))
    assert sorted(c.id for c in table) == [1, 2, 3]
    table.remove(2)
    table.add(contact(4))
    assert sorted(c.id for c in table) == [1, 3, 4]
