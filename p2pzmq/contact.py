"""How to reach a peer, whatever protocol it speaks: :class:`Contact`, and what the supervisor reads of any
protocol's table: :class:`TableView` (pure; no I/O).

Every protocol's table holds contacts, every message that names a peer carries one, and the supervisor's records
are keyed by them, so the type lives here, below every protocol (docs/DESIGN.md §2). Routing, graph files and
pictures work on any table that answers :class:`TableView` (a protocol's descriptor reads one from its wire form).
"""
from __future__ import annotations

from typing import Iterator, NamedTuple, Protocol


class Contact(NamedTuple):
    """How to reach a peer: its id and the endpoints of its server and of its client (a peer of this package takes
    both roles at one endpoint, docs/DESIGN.md §7.1)."""

    id: int
    server: str
    client: str


class TableView(Protocol):
    """A peer's table as the supervisor reads it: its entries (the owner among them), the one nearest a target
    (one greedy-routing step; ``LookupError`` when empty), and its entries in descending id order (the order graph
    files list edges in)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Contact]: ...

    def closest(self, target: int) -> Contact: ...

    def descending(self) -> list[Contact]: ...
