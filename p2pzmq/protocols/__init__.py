"""The protocols a peer can speak (docs/DESIGN.md §10): ``original`` (§4, the default) and ``kademlia``.

A protocol instance is one peer's brain: its table, what its server answers and what its client does. The peer
(:mod:`p2pzmq.peer`) gives it sockets and requests and knows nothing of its rules; the supervisor reads tables
through :func:`table_from_wire`. Every instance has:

- ``REQUESTS``: the message kinds its server answers;
- ``QUERIES``: the client commands, besides the table and greedy steps, that it answers on the spot from its table
  (reads that change nothing), and ``query(msg)``, their answer;
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

from ..config import PROTOCOLS, Config
from ..contact import Contact

NAMES = PROTOCOLS


def start(config: Config, node, cookies: random.Random):
    """The protocol instance of ``node`` (a peer whose contact is set), as ``config.protocol`` says."""
    if config.protocol == "kademlia":
        from .kademlia import Kademlia

        return Kademlia(config, node)
    from .original import Original

    return Original(config, node, cookies)


def table_from_wire(config: Config, contacts: list[Contact]):
    """A peer's table as the supervisor reads it, from its wire form (:meth:`contacts`): it answers ``closest``,
    ``len`` and ``descending`` (the order graph files list edges in). Raises ``ValueError`` for a wire form that
    breaks the protocol's rules."""
    if config.protocol == "kademlia":
        from .kademlia import KademliaTable

        return KademliaTable.from_wire(contacts, config.k)
    return config.table(contacts)
