"""The original's side of the supervisor (docs/DESIGN.md §4.7, §4.8): the discovery walk ``lookup FROM ID`` shows.

A real walk sends ``find_closest`` to servers, which then add the walker to their tables; this one asks each visited
peer's client for its table instead (``ClientPeers``, a read that adds nobody) and applies the same rule
(:func:`.discovery.walk`), so it shows the path a refresh would take now and changes no table.
"""
from __future__ import annotations

from ... import messages as m
from ...contact import Contact
from ...errors import TransportError
from ...timeline import Timeline
from . import discovery
from .table import Table, configured


def walk(channel, config, start: Contact, target: int) -> dict:
    """``{"walk": ...}``: the path of the discovery walk from ``start`` towards ``target`` (decimal ids from
    ``start``), how many servers it would ask (``queried``), what it finds and whether that is ``target``
    (``exact``), and its timeline on the channel's clock (:meth:`~p2pzmq.timeline.Timeline.describe`): each
    visited peer's table read, the request a walk sends it, with its send and reply times; ``seconds``, the sum
    of their round trips. ``channel`` is the supervisor's command channel (``ask_one``, ``now``)."""
    tables: dict[int, Table] = {}
    asked: list[Contact] = []
    timeline = Timeline(channel.now())

    def table_of(contact: Contact) -> Table:
        if contact.id not in tables:
            sent = channel.sent_at(timeline.ended)
            number = timeline.sent(contact.id, sent)
            result = channel.ask([(contact, m.ClientPeers, ())], strict=True)[0]
            if not result.replied:
                raise TransportError(f"peer {contact.id} is gone")
            timeline.settled(number, *channel.settled(start.id, contact, sent, result))
            tables[contact.id] = configured(config, result.reply.table)
        return tables[contact.id]

    def find_closest(contact: Contact, wanted: int) -> Contact:
        asked.append(contact)
        return table_of(contact).closest(wanted)

    found = discovery.walk(start, table_of(start), target, find_closest, config.max_hops)
    path = [start.id]
    for contact_id in [contact.id for contact in asked] + [found.id]:
        if contact_id != path[-1]:
            path.append(contact_id)
    return {"walk": {"path": [str(peer_id) for peer_id in path], "queried": len(asked), "found": str(found.id),
                     "exact": found.id == target, **timeline.describe(timeline.busy)}}
