"""The original's protocol (docs/DESIGN.md §4), the default: everything that is its own.

- :mod:`.table`: the peers table (pure: the capacity rule, ``closest`` by the tree or xor metric, preorder);
- :mod:`.discovery`: the target walk and building a new table from it (pure);
- :mod:`.peer`: one peer's side, what its server answers and how its client discovers;
- :mod:`.supervisor`: what ``lookup FROM ID`` shows of it (the walk a refresh would take now).

Its settings are ``metric``, ``table_capacity`` and ``evict_after``.
"""
from __future__ import annotations

from ... import messages as m
from ...errors import UsageError
from . import supervisor
from .peer import Original
from .table import CAPACITY, METRICS, configured
from .. import Descriptor, register


def check(config) -> None:
    if config.metric not in METRICS:
        raise UsageError(f"unknown metric {config.metric!r}; choose one of {', '.join(METRICS)}")
    if not 1 <= config.table_capacity <= CAPACITY:
        raise UsageError(f"table_capacity must be between 1 and {CAPACITY}")
    if config.evict_after < 0:
        raise UsageError("evict_after must not be negative (0 turns eviction off)")


DESCRIPTOR = register(Descriptor(
    name="original",
    settings={"metric": "tree", "table_capacity": CAPACITY, "evict_after": 0},
    check=check,
    start=Original,
    table_from_wire=configured,
    requests=(m.GetPeers, m.FindClosest, m.UpdatePeers, m.Leave),
    lookup=supervisor.walk,
    capacity=lambda config: config.table_capacity,
))
