"""The Peers table (docs/DESIGN.md §4.3, §4.5): pure data, no I/O.

A table maps peer ids to :class:`Contact` s and answers ``closest(target)``. Its shape is an exact emulation of
Erlang's ``gb_trees`` (OTP stdlib), because the original's ``tree`` metric returns the last node on a BST search
path, and that depends on the shape. The ``xor`` metric (Kademlia distance) ignores the shape.

gb_trees insert (p = 2): a plain BST insert carrying a depth budget that starts at ``size_after_insert ** 2`` and is
halved at every step down. Only when the new leaf lands where the budget is exactly 0 is the tree "too deep"; then,
walking back up, the lowest ancestor whose ``h = 2 * max(h_left, h_right)`` exceeds ``s * s`` (s = its subtree
size; h is gb_trees' count, 2**(levels - 1): a leaf and an empty subtree both count 1) is rebuilt perfectly
balanced, and nothing above it is examined. Overwriting a key never changes the shape. Tables travel in preorder,
from which plain BST insertion rebuilds the same shape.

Thousands of tables live in one process, so a node is four slots and a table adds only a list of its ids (for
``len`` and the ``xor`` scan); lookups by id walk the tree. A table has one owner and is not thread-safe.
"""
from __future__ import annotations

import bisect
from typing import Iterable, Iterator

from ...contact import Contact

CAPACITY = 160
METRICS = ("tree", "xor")


class _Node:
    __slots__ = ("key", "contact", "left", "right")

    def __init__(self, contact: Contact) -> None:
        self.key = contact.id
        self.contact = contact
        self.left: _Node | None = None
        self.right: _Node | None = None


class Table:
    """A peer's table with the original's add rule: at ``capacity`` entries an add does nothing at all."""

    __slots__ = ("metric", "capacity", "_root", "_ids")

    def __init__(self, metric: str = "tree", capacity: int = CAPACITY) -> None:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        self.metric = metric
        self.capacity = capacity
        self._root: _Node | None = None
        self._ids: list[int] = []  # every key, in no particular order

    @classmethod
    def from_preorder(cls, contacts: Iterable[Contact], metric: str = "tree", capacity: int = CAPACITY) -> Table:
        """Rebuild a table from its :meth:`preorder` by plain BST insertion (no rebalancing), reproducing the shape.

        Raises ``ValueError`` for more than ``capacity`` entries or a repeated id.
        """
        contacts = list(contacts)
        if len(contacts) > capacity:
            raise ValueError(f"{len(contacts)} entries exceed the capacity {capacity}")
        table = cls(metric, capacity)
        for contact in contacts:
            path, found = table._search(contact.id)
            if found is not None:
                raise ValueError(f"duplicate id {contact.id} in a table")
            table._attach(path, _Node(contact))
        return table

    def copy(self) -> Table:
        """An independent table with the same entries and shape."""
        return Table.from_preorder(self.preorder(), self.metric, self.capacity)

    # -- reading ----------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, peer_id: int) -> bool:
        return self._search(peer_id)[1] is not None

    def get(self, peer_id: int) -> Contact | None:
        node = self._search(peer_id)[1]
        return None if node is None else node.contact

    def __iter__(self) -> Iterator[Contact]:
        """Contacts in ascending id order."""
        for node in _in_order(self._root):
            yield node.contact

    def descending(self) -> list[Contact]:
        """Contacts in descending id order (the order the original re-adds an old table's entries, §4.7)."""
        return list(self)[::-1]

    def preorder(self) -> list[Contact]:
        """Root, left subtree, right subtree: the wire order that preserves the shape."""
        out: list[Contact] = []
        stack = [] if self._root is None else [self._root]
        while stack:
            node = stack.pop()
            out.append(node.contact)
            if node.right is not None:
                stack.append(node.right)
            if node.left is not None:
                stack.append(node.left)
        return out

    def height(self) -> int:
        """Levels of the tree: 0 when empty, 1 for a single entry."""
        return _height(self._root)

    def closest(self, target: int) -> Contact:
        """The entry the metric deems closest to ``target``. Raises ``LookupError`` on an empty table.

        ``tree``: the last node on the BST search path for ``target`` (the original's closest_peer): the exact key,
        else the in-order neighbour, smaller or larger, that lies deeper. ``xor``: the minimum of ``id ^ target``.
        """
        node = self._root
        if node is None:
            raise LookupError("closest() on an empty table")
        if self.metric == "xor":
            return self._search(min(self._ids, key=target.__xor__))[1].contact
        while True:
            key = node.key
            if target == key:
                return node.contact
            following = node.left if target < key else node.right
            if following is None:
                return node.contact
            node = following

    def closest_runs(self, targets: list[int]) -> list[tuple[int, int, Contact]]:
        """:meth:`closest` for every target of the ascending list ``targets`` at once, as runs ``(lo, hi, contact)``:
        ``contact`` answers every target in ``targets[lo:hi]``. For the ``tree`` metric the runs come from one
        descent that splits the sorted targets at each node's key (bisect), so a table answers thousands of
        targets in about as many steps as it has entries; ``xor`` answers target by target."""
        if self._root is None:
            raise LookupError("closest() on an empty table")
        if self.metric == "xor":
            return [(index, index + 1, self.closest(target)) for index, target in enumerate(targets)]
        runs: list[tuple[int, int, Contact]] = []
        stack = [(self._root, 0, len(targets))]
        while stack:
            node, low, high = stack.pop()
            while low < high:  # the targets in [low, high) all pass through ``node`` on their search path
                key, contact = node.key, node.contact
                at = bisect.bisect_left(targets, key, low, high)
                after = at + 1 if at < high and targets[at] == key else at
                if at < after:
                    runs.append((at, after, contact))
                if node.left is None:
                    if low < at:
                        runs.append((low, at, contact))
                else:
                    stack.append((node.left, low, at))
                if node.right is None:
                    if after < high:
                        runs.append((after, high, contact))
                    break
                node, low = node.right, after
        return runs

    # -- writing ----------------------------------------------------------------------------------------------

    def add(self, contact: Contact) -> None:
        """The original's add_peer: nothing at capacity; else overwrite in place or insert (gb_trees:enter)."""
        if len(self._ids) >= self.capacity:
            return
        key = contact.id
        parent, node, depth = None, self._root, 0
        while node is not None:  # _search without the path: the path is needed only when rebalancing (rarely)
            node_key = node.key
            if key == node_key:
                node.contact = contact
                return
            parent, node, depth = node, node.left if key < node_key else node.right, depth + 1
        leaf = _Node(contact)
        if parent is None:
            self._root = leaf
        elif key < parent.key:
            parent.left = leaf
        else:
            parent.right = leaf
        self._ids.append(key)
        size = len(self._ids)
        if (size * size) >> depth == 0:  # the budget, halved once per node passed, ran out: too deep
            self._rebalance(self._search(key)[0], leaf)

    def remove(self, peer_id: int) -> bool:
        """Delete ``peer_id`` if present (gb_trees:delete: no rebalancing); True if it was there.

        The removed node is replaced by its only child, or, when it has two, by the smallest node of its right
        subtree (gb_trees' merge/take_smallest). The original never removes entries; peers that leave or keep
        timing out do (``Leave``, ``Config.evict_after``).
        """
        path, target = self._search(peer_id)
        if target is None:
            return False
        if target.left is None:
            replacement = target.right
        elif target.right is None:
            replacement = target.left
        else:
            above, replacement = target, target.right
            while replacement.left is not None:
                above, replacement = replacement, replacement.left
            if above is not target:
                above.left = replacement.right
                replacement.right = target.right
            replacement.left = target.left
        if not path:
            self._root = replacement
        elif path[-1].left is target:
            path[-1].left = replacement
        else:
            path[-1].right = replacement
        self._ids.remove(peer_id)
        return True

    def _search(self, key: int) -> tuple[list[_Node], _Node | None]:
        """The nodes a BST search for ``key`` passes, and the node holding ``key`` (None: ``path[-1]`` is where
        a new leaf would hang)."""
        path: list[_Node] = []
        node = self._root
        while node is not None:
            node_key = node.key
            if key == node_key:
                return path, node
            path.append(node)
            node = node.left if key < node_key else node.right
        return path, None

    def _attach(self, path: list[_Node], leaf: _Node) -> None:
        if not path:
            self._root = leaf
        elif leaf.key < path[-1].key:
            path[-1].left = leaf
        else:
            path[-1].right = leaf
        self._ids.append(leaf.key)

    def _rebalance(self, path: list[_Node], leaf: _Node) -> None:
        """gb_trees' way back up from a too-deep insert: rebuild the lowest ancestor with ``h > s * s``.

        The root always qualifies (the leaf sits at a depth d with 2**d > size**2, and the root's h is at least
        2**d), so exactly one subtree is rebuilt.
        """
        h, s, child = 1, 1, leaf
        for depth in range(len(path) - 1, -1, -1):
            parent = path[depth]
            other_h, other_s = _count(parent.right if parent.left is child else parent.left)
            h, s = 2 * max(h, other_h), s + other_s + 1
            if h > s * s:
                rebuilt = _balanced(list(_in_order(parent)), 0, s)
                if depth == 0:
                    self._root = rebuilt
                elif path[depth - 1].left is parent:
                    path[depth - 1].left = rebuilt
                else:
                    path[depth - 1].right = rebuilt
                return
            child = parent


def _count(node: _Node | None) -> tuple[int, int]:
    """gb_trees' count/1: (h, size), where h is 1 for an empty subtree or a leaf and doubles per extra level."""
    if node is None:
        return 1, 0
    if node.left is None and node.right is None:
        return 1, 1
    left_h, left_s = _count(node.left)
    right_h, right_s = _count(node.right)
    return 2 * max(left_h, right_h), left_s + right_s + 1


def _height(node: _Node | None) -> int:
    return 0 if node is None else 1 + max(_height(node.left), _height(node.right))


def _in_order(node: _Node | None) -> Iterator[_Node]:
    stack: list[_Node] = []
    while stack or node is not None:
        while node is not None:
            stack.append(node)
            node = node.left
        node = stack.pop()
        yield node
        node = node.right


def _balanced(nodes: list[_Node], low: int, size: int) -> _Node | None:
    """gb_trees' balance_list over ``nodes[low:low + size]`` (sorted), relinking the nodes in place: the left part
    gets ``(size - 1) - (size - 1) // 2`` nodes, then the middle node, then the right part the rest."""
    if size == 0:
        return None
    right_size = (size - 1) // 2
    left_size = size - 1 - right_size
    middle = nodes[low + left_size]
    middle.left = _balanced(nodes, low, left_size)
    middle.right = _balanced(nodes, low + left_size + 1, right_size)
    return middle


def configured(config, preorder: Iterable[Contact] = ()) -> Table:
    """A table under the rules of ``config`` (a :class:`~p2pzmq.config.Config`: its ``metric`` and
    ``table_capacity``), rebuilt from ``preorder`` (its wire form; empty by default)."""
    return Table.from_preorder(preorder, metric=config.metric, capacity=config.table_capacity)
