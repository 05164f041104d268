"""The protocols a peer can speak (docs/DESIGN.md §10): ``original`` (§4, the default) and ``kademlia``.

A protocol instance is one peer's brain: its table, what its server answers and what its client does. The peer
(:mod:`p2pzmq.peer`) gives it sockets and requests and knows nothing of its rules; the supervisor reads tables
through :func:`table_from_wire`. Every instance has:

- ``REQUESTS``: the message kinds its server answers;
- ``table``: its table;
- ``serve(msg)``: the server's answer to a request (None: no reply). It never blocks;
- ``join(contact)``, ``refresh()``, ``depart()``: client operations, run by the peer's runner (they may block);
- ``contacts()``: the table's wire form (what ``ClientPeers`` returns);
- ``closest(target)``: one greedy-routing step, the table's closest entry to ``target`` (the owner included).

A protocol asks other peers through its node (:class:`~p2pzmq.peer.Peer`): ``node.call(endpoint, kind, args,
reply_kind, timeout)``, ``node.call_many(calls, window)``, ``node.forget(endpoint)``, ``node.contact``,
``node.counters``.
"""
from __future__ import annotations

import random

from ..config import Config
from ..table import Contact

NAMES = ("original", "kademlia")


def start(config: Config, node, cookies: random.Random):
    """The protocol instance of ``node`` (a peer whose contact is set), as ``config.protocol`` says."""
    from .original import Original

    return Original(config, node, cookies)


def table_from_wire(config: Config, contacts: list[Contact]):
    """A peer's table as the supervisor reads it, from its wire form (:meth:`contacts`): it answers ``closest``,
    ``len`` and ``descending`` (the order graph files list edges in)."""
    return config.table(contacts)
