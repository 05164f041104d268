"""The protocols a peer can speak, one package each, found in one registry (docs/DESIGN.md §10, §11).

A protocol is described by a :class:`Descriptor`: its name, its settings, how to start one peer's instance of it,
how the supervisor reads a table from its wire form, the message kinds it answers, and what ``net_status`` and
``lookup`` add for it. The supervisor, the peer, the exports, the worker link and the command line ask the
descriptor (:func:`of` a config, or :func:`get` by name) and never compare a protocol's name.

Built in: ``original`` (§4, the default, :mod:`.original`) and ``kademlia`` (§10, :mod:`.kademlia`); each package
is imported the first time it is asked for. A protocol from elsewhere registers itself with :func:`register` when
its module is imported; ``Config.protocol_module`` names that module, so a worker process imports it too (it learns
the setting at ``hello``, like the protocol's name).

A protocol instance is one peer's brain: its table, what its server answers and what its client does. The peer
(:mod:`p2pzmq.peer`) gives it sockets and requests and knows nothing of its rules. Every instance has:

- ``table``: its table;
- ``serve(msg)``: the server's answer to a request of one of the descriptor's ``requests`` (None: no reply). It
  never blocks;
- ``query(msg)``: the answer to a client read of one of the descriptor's ``queries`` (only if it has some);
- ``join(contact)``, ``refresh()``, ``depart()``: client operations, run by the peer's runner (they may block);
- ``contacts()``: the table's wire form (what ``ClientPeers`` returns);
- ``closest(target)``: one greedy-routing step, the table's closest entry to ``target`` (the owner included);
- ``install(contacts)`` (optional): take a table in its wire form as the peer's own, as a restored snapshot does
  (``ValueError`` for one that breaks the protocol's rules); a protocol without it cannot be snapshot.

A protocol asks other peers through its node (:class:`~p2pzmq.peer.Peer`): ``node.call(endpoint, kind, args,
reply_kind, timeout)``, ``node.call_many(calls, window)``, ``node.forget(endpoint)``, ``node.contact``,
``node.counters``.

Nothing here imports a protocol's package, the configuration or the codec at import time: ``config.py`` imports
this registry to check a network's protocol.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping

from ..errors import UsageError

#: The protocol of a network that names none: the original's (§4).
DEFAULT = "original"
#: The built-in protocols' packages, imported when first asked for.
_BUILTIN = {"original": "p2pzmq.protocols.original", "kademlia": "p2pzmq.protocols.kademlia"}


@dataclasses.dataclass(frozen=True)
class Descriptor:
    """What the rest of p2pzmq knows of one protocol (docs/DESIGN.md §11).

    - ``name``: what ``Config.protocol`` and ``--protocol`` say;
    - ``settings``: the :class:`~p2pzmq.config.Config` fields that are this protocol's rules, with their defaults
      (any other protocol's setting must keep its default in a network of this one);
    - ``check(config)``: raises :class:`~p2pzmq.errors.UsageError` for a value of its settings it cannot run with
      (None: a protocol without settings);
    - ``start(config, node, cookies)``: the protocol instance of a peer (``cookies``: the peer's seeded stream);
    - ``table_from_wire(config, contacts)``: a table as the supervisor reads it, from its wire form; it answers
      ``closest``, ``len``, iteration and ``descending`` (the order graph files list edges in), and raises
      ``ValueError`` for a wire form that breaks the protocol's rules;
    - ``requests``: the message kinds its server answers; ``queries``: the client reads, besides the table and
      greedy steps, that its instance answers with ``query(msg)``;
    - ``status(offload, config, ids, wires, targets, sample, report)``: fields ``net_status`` adds, computed on
      the fetched tables (None: none);
    - ``lookup(channel, config, start, target)``: fields ``lookup FROM ID`` adds beside the greedy route, by
      reading peers without changing a table (None: none);
    - ``status_cost``: the work ``status`` adds for one (source, target) pair, in greedy routes (0: none), which
      ``Config.status_exact`` weighs to choose an exact or a sampled default ``net_status``;
    - ``capacity(config)``: the most entries one table may hold, the owner included (None: no bound), which a
      snapshot's tables are checked against.
    """

    name: str
    settings: Mapping[str, Any]
    start: Callable[..., Any]
    table_from_wire: Callable[[Any, list], Any]
    requests: tuple[type, ...]
    check: Callable[[Any], None] | None = None
    queries: tuple[type, ...] = ()
    status: Callable[..., dict] | None = None
    lookup: Callable[..., dict] | None = None
    capacity: Callable[[Any], int] | None = None
    status_cost: float = 0.0


_registry: dict[str, Descriptor] = {}


def register(descriptor: Descriptor) -> Descriptor:
    """Make ``descriptor`` known by its name (again: the same object is fine, another one of that name is not)."""
    known = _registry.get(descriptor.name)
    if known is not None and known is not descriptor:
        raise ValueError(f"a protocol named {descriptor.name!r} is already registered")
    _registry[descriptor.name] = descriptor
    return descriptor


def load(module: str) -> None:
    """Import ``module``, whose import registers a protocol; raises :class:`UsageError` if it cannot be imported
    (it is not there, or it is not Python)."""
    try:
        importlib.import_module(module)
    except (ImportError, SyntaxError) as exc:
        raise UsageError(f"cannot import protocol module {module!r}: {exc}") from exc


def get(name: str) -> Descriptor:
    """The descriptor of the protocol ``name``; raises :class:`UsageError` for a protocol nobody registered."""
    descriptor = _registry.get(name)
    if descriptor is None and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
        descriptor = _registry[name]
    if descriptor is None:
        raise UsageError(f"unknown protocol {name!r}; choose one of {', '.join(names())}")
    return descriptor


def of(config) -> Descriptor:
    """The descriptor of the protocol ``config`` (a :class:`~p2pzmq.config.Config`) speaks."""
    return get(config.protocol)


def names() -> list[str]:
    """Every protocol a network may speak: the built-in ones first, then those registered since."""
    return [*_BUILTIN, *(name for name in _registry if name not in _BUILTIN)]


def descriptors() -> list[Descriptor]:
    """The descriptor of every protocol of :func:`names`."""
    return [get(name) for name in names()]
