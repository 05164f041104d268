"""How to reach a peer, whatever protocol it speaks: :class:`Contact` (pure; no I/O).

Every protocol's table holds contacts, every message that names a peer carries one, and the supervisor's records
are keyed by them, so the type lives here, below every protocol (docs/DESIGN.md §2).
"""
from __future__ import annotations

from typing import NamedTuple


class Contact(NamedTuple):
    """How to reach a peer: its id and the endpoints of its server and client sockets."""

    id: int
    server: str
    client: str
