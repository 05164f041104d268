"""The Peers table (DESIGN.md §4.3, §4.5): pure data, no I/O.

A table maps peer ids to :class:`Contact` s and always answers ``closest(target)``. Its shape is an exact emulation of
Erlang's ``gb_trees`` (OTP stdlib), because the original's ``tree`` metric returns the last node on a BST search
path, which depends on the tree's shape. The ``xor`` metric (Kademlia distance) ignores the shape.

gb_trees insert (p = 2): a plain BST insert carrying a depth budget that starts at ``size_after_insert ** 2`` and is
halved at every step down. Only when the new leaf lands where the budget is exactly 0 is the tree "too deep"; then,
walking back up, the lowest ancestor whose ``h = 2 * max(h_left, h_right)`` (h = 2**height; leaf and empty = 1)
exceeds ``s * s`` (s = its subtree size) is rebuilt perfectly balanced, and nothing above it is examined.
Overwriting a key never changes the shape. Tables travel in preorder, so plain BST insertion rebuilds the shape.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple

CAPACITY = 160
METRICS = ("tree", "xor")


class Contact(NamedTuple):
    """How to reach a peer: its id and the endpoints of its server and client sockets."""

    id: int
    server: str
    client: str


class _Node:
    __slots__ = ("key", "contact", "left", "right")

    def __init__(self, contact: Contact) -> None:
        self.key = contact.id
        self.contact = contact
        self.left: _Node | None = None
        self.right: _Node | None = None


class Table:
    """A peer's table with the original's add rule: at ``capacity`` entries an add does nothing at all."""

    __slots__ = ("metric", "capacity", "_root", "_nodes")

    def __init__(self, metric: str = "tree", capacity: int = CAPACITY) -> None:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        self.metric = metric
        self.capacity = capacity
        self._root: _Node | None = None
        self._nodes: dict[int, _Node] = {}

    # -- reading ----------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, peer_id: int) -> bool:
        return peer_id in self._nodes

    def get(self, peer_id: int) -> Contact | None:
        node = self._nodes.get(peer_id)
        return None if node is None else node.contact

    def __iter__(self) -> Iterator[Contact]:
        """Contacts in ascending id order."""
        stack, node = [], self._root
        while stack or node is not None:
            while node is not None:
                stack.append(node)
                node = node.left
            node = stack.pop()
            yield node.contact
            node = node.right

    def descending(self) -> list[Contact]:
        return list(self)[::-1]

    def preorder(self) -> list[Contact]:
        """Root, left subtree, right subtree: the wire order that preserves the shape."""
        out, stack = [], [self._root] if self._root is not None else []
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
        def depth(node):
            return 0 if node is None else 1 + max(depth(node.left), depth(node.right))
        return depth(self._root)

    def closest(self, target: int) -> Contact:
        """The entry the metric deems closest to ``target``. Raises ``LookupError`` on an empty table."""
        if self._root is None:
            raise LookupError("closest() on an empty table")
        if self.metric == "xor":
            return self._nodes[min(self._nodes, key=target.__xor__)].contact
        node = self._root
        while True:  # the last node on the BST search path (the original's closest_peer)
            key = node.key
            if target == key:
                return node.contact
            following = node.left if target < key else node.right
            if following is None:
                return node.contact
            node = following

    # -- writing ----------------------------------------------------------------------------------------------

    def add(self, contact: Contact) -> None:
        """The original's add: nothing at capacity; otherwise overwrite in place or insert (gb_trees:enter)."""
        if len(self._nodes) >= self.capacity:
            return
        node = self._nodes.get(contact.id)
        if node is not None:
            node.contact = contact
            return
        self._insert(_Node(contact))

    def remove(self, peer_id: int) -> bool:
        """Delete ``peer_id`` if present (gb_trees:delete: no rebalancing); True if it was there.

        The removed node is replaced by its only child, or, when it has two, by the smallest node of its right
        subtree (gb_trees' merge/take_smallest). The original never removes entries; peers that leave or keep
        timing out do (``Leave``, ``Config.evict_after``).
        """
        target = self._nodes.pop(peer_id, None)
        if target is None:
            return False
        parent, node = None, self._root
        while node is not target:
            parent, node = node, node.left if peer_id < node.key else node.right
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
        self._replace(parent, target, replacement)
        return True

    def _insert(self, leaf: _Node) -> None:
        key = leaf.key
        size = len(self._nodes) + 1
        budget = size * size
        path: list[_Node] = []
        node = self._root
        while node is not None:
            path.append(node)
            node = node.left if key < node.key else node.right
            budget >>= 1
        self._attach(path[-1] if path else None, leaf)
        self._nodes[key] = leaf
        if budget != 0:
            return
        # Too deep: find the lowest ancestor that is out of balance and rebuild it (gb_trees insert_1/balance).
        h, s, child = 1, 1, leaf
        for depth in range(len(path) - 1, -1, -1):
            parent = path[depth]
            other = parent.right if parent.left is child else parent.left
            other_h, other_s = _count(other)
            h, s = 2 * max(h, other_h), s + other_s + 1
            if h > s * s:
                rebuilt = _balanced(list(_in_order(parent)), 0, s)
                self._replace(path[depth - 1] if depth else None, parent, rebuilt)
                return
            child = parent

    def _attach(self, parent: _Node | None, leaf: _Node) -> None:
        if parent is None:
            self._root = leaf
        elif leaf.key < parent.key:
            parent.left = leaf
        else:
            parent.right = leaf

    def _replace(self, parent: _Node | None, old: _Node, new: _Node) -> None:
        if parent is None:
            self._root = new
        elif parent.left is old:
            parent.left = new
        else:
            parent.right = new

    @classmethod
    def from_preorder(cls, contacts: list[Contact], metric: str = "tree", capacity: int = CAPACITY) -> "Table":
        """Rebuild a table from its preorder by plain BST insertion (no rebalancing), reproducing the shape."""
        if len(contacts) > capacity:
            raise ValueError(f"{len(contacts)} entries exceed the capacity {capacity}")
        table = cls(metric, capacity)
        nodes = table._nodes
        for contact in contacts:
            if contact.id in nodes:
                raise ValueError(f"duplicate id {contact.id} in a table")
            leaf = _Node(contact)
            parent, node = None, table._root
            while node is not None:
                parent = node
                node = node.left if leaf.key < node.key else node.right
            table._attach(parent, leaf)
            nodes[leaf.key] = leaf
        return table

    def copy(self) -> "Table":
        return Table.from_preorder(self.preorder(), self.metric, self.capacity)


def _count(node: _Node | None) -> tuple[int, int]:
    """gb_trees' count/1: (2**height with a leaf = 1 and empty = 1, size)."""
    if node is None:
        return 1, 0
    if node.left is None and node.right is None:
        return 1, 1
    left_h, left_s = _count(node.left)
    right_h, right_s = _count(node.right)
    return 2 * max(left_h, right_h), left_s + right_s + 1


def _in_order(node: _Node | None) -> Iterator[_Node]:
    stack = []
    while stack or node is not None:
        while node is not None:
            stack.append(node)
            node = node.left
        node = stack.pop()
        yield node
        node = node.right


def _balanced(nodes: list[_Node], low: int, size: int) -> _Node | None:
    """gb_trees' balance_list: left part of ``(size-1) - (size-1)//2`` nodes, the middle node, then the rest."""
    if size == 0:
        return None
    right_size = (size - 1) // 2
    left_size = size - 1 - right_size
    middle = nodes[low + left_size]
    middle.left = _balanced(nodes, low, left_size)
    middle.right = _balanced(nodes, low + left_size + 1, right_size)
    return middle
