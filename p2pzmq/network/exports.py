"""What the network looks like, read from the peers and written out: tables, snapshots, the peer list, graph files,
pictures and time-lapses (docs/DESIGN.md §4.8, §8).

Reading a snapshot holds the command channel, so ids, tables and attributes always belong together even while churn
runs. Turning a snapshot into files is pure work on data (:mod:`p2pzmq.graph`, :mod:`p2pzmq.plot`), done in the
offload thread; the supervisor's core never imports those.
"""
from __future__ import annotations

import os
import time
from typing import Callable, NamedTuple

import gevent

from .. import graph, protocols, snapshot
from ..addresses import host_of
from .. import messages as m
from ..contact import Contact, TableView
from ..errors import OutputError, UsageError
from ..ids import parse_id
from .channel import COMMAND_WINDOW
from .kit import Kit


class Entries(NamedTuple):
    """A live picture's read of the network (:meth:`Exporter.entries`): ``ids`` (newest first); per peer the ids
    its client sends as its table, descending (as ``TableView.descending`` lists them: every protocol's wire form
    is its table's entries), and the attributes of :meth:`Exporter.snapshot`; ``seconds`` the read spent asking
    (not waiting for the channel)."""

    ids: list[int]
    entries: list[list[int]]
    extras: list[dict]
    seconds: float


class Exporter:
    """Reads and writes of the whole network. ``lookup(from, id)``: the network's ``lookup`` (a picture's route is
    its greedy route); ``streams()``: the states of the network's random streams, which a snapshot saves (it raises
    :class:`UsageError` for a network that cannot be saved)."""

    def __init__(self, kit: Kit, lookup: Callable[[str, str], dict], streams: Callable[[], dict]) -> None:
        self.config = kit.config
        self._members, self._channel, self._offload = kit.members, kit.channel, kit.offload
        self._lookup, self._streams = lookup, streams

    def tables(self, peers: list | None = None) -> list[TableView]:
        """The current table of each of ``peers`` (default: every listed peer, newest first), fetched from their
        clients; a peer whose worker is gone has an empty table."""
        with self._channel.exclusive():
            peers = self._members.listed if peers is None else peers
            results = self._channel.ask([(peer.contact, m.ClientPeers, ()) for peer in peers], strict=True)
        return self._offload(self._tables_from, [result.reply.table if result.replied else [] for result in results])

    def _tables_from(self, wires: list[list[Contact]]) -> list[TableView]:
        table_from_wire = protocols.of(self.config).table_from_wire
        return [table_from_wire(self.config, wire) for wire in wires]

    def snapshot(self) -> tuple[list[int], list[TableView], list[dict]]:
        """Peer ids (newest first), their tables, and per peer the node attributes ``alive``, ``host`` (the tcp
        host, or ``inproc``) and ``process`` (the pid of the process holding it), consistent with each other even
        while churn runs."""
        with self._channel.exclusive():
            listed = list(self._members.listed)
            extras = _attributes(listed)
            return [peer.id for peer in listed], self.tables(listed), extras

    def output_snapshot(self, path: str) -> dict:
        """Write the whole network to ``path`` as a snapshot (docs/DESIGN.md §17): every peer's id and table in list
        order, the protocol and its settings, the seed, and the random streams' states, read in the same hold of the
        command channel as the tables. A network of simulated time is refused (its clock and messages in flight
        are not saved yet). Refused when a table names a peer that is no longer in the
        network (killed, departed) or a peer did not answer: the file could not restore that network."""
        path = os.path.abspath(path)
        with self._channel.exclusive():
            listed = list(self._members.listed)
            states = self._streams()  # before the reads below draw their cookies
            results = self._channel.ask([(peer.contact, m.ClientPeers, ()) for peer in listed], strict=True)
        ids = [peer.id for peer in listed]
        # Pure work on every entry (millions for a big network): in the offload thread, so heartbeats go on.
        tables = self._offload(_indexed, ids, [result.reply.table if result.replied else None for result in results])
        descriptor = protocols.of(self.config)
        saved = snapshot.Snapshot(protocol=self.config.protocol,
                                  settings={name: getattr(self.config, name) for name in descriptor.settings},
                                  metric=self.config.metric, seed=self.config.seed, ids=ids,
                                  tables=tables, streams=states)
        try:
            size = self._offload(snapshot.write, path, saved)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        return {"path": path, "peers": len(listed), "entries": sum(map(len, tables)), "bytes": size}

    def entries(self, slice_seconds: float) -> "Entries":
        """What a live picture needs, without building a table object a peer (:class:`Entries`).

        The clients are asked a chunk at a time, each chunk sized to take about ``slice_seconds``, and the event
        loop and the channel are free between chunks: the supervisor's own peers answer inline, so one batch of
        thousands would hold the loop for seconds (the control socket would not answer meanwhile), and holding the
        channel throughout would stall a build or refresh asked meanwhile for as long. So a read that a command
        interleaves with shows tables from both sides of it, and a peer gone since the read began has no
        entries."""
        listed = list(self._members.listed)
        extras = _attributes(listed)
        entries: list[list[int]] = []
        busy = 0.0
        chunk = 1
        while len(entries) < len(listed):
            began = time.monotonic()
            part = listed[len(entries):len(entries) + chunk]
            results = self._channel.ask([(peer.contact, m.ClientPeers, ()) for peer in part])
            entries += [sorted({contact.id for contact in result.reply.table}, reverse=True) if result.replied
                        else [] for result in results]
            took = time.monotonic() - began
            busy += took
            chunk = max(1, min(2 * chunk, COMMAND_WINDOW, int(chunk * slice_seconds / took) if took > 0 else 2 * chunk))
            gevent.sleep(0)
        return Entries([peer.id for peer in listed], entries, extras, busy)

    def peer_counts(self, peer_id: str) -> dict:
        """What the listed peer ``peer_id`` (decimal) has counted since it started (:class:`~p2pzmq.messages.PeerCounts`):
        ``served``, ``sent``, ``failed``, ``joins``, ``refreshes``, ``departs``. A usage error for an id no listed
        peer has; a :class:`~p2pzmq.errors.TransportError` when the peer does not answer."""
        try:
            wanted = peer_id if type(peer_id) is int else parse_id(peer_id)
        except ValueError:
            raise UsageError(f"{peer_id!r:.80} is not a peer id") from None
        peer = self._members.by_id(wanted)
        reply = self._channel.ask_one(peer.contact, m.ClientCounts)
        return {name: getattr(reply, name) for name in m.PeerCounts._fields[2:]}

    def peer_list(self) -> dict:
        """Every peer with its endpoints, whether it is alive (answers its client within ``client_timeout``), its
        state (``alive``, ``unresponsive``, ``unreachable``, ``crashed``, ``killed``, ``left``) and its table size
        (None when not alive)."""
        with self._channel.exclusive():
            listed = list(self._members.listed)
            results = self._channel.ask([(peer.contact, m.ClientPeers, ()) for peer in listed])
            rows = [_peer_row(peer.contact, self._members.state(peer, result),
                              len(result.reply.table) if result.replied else None)
                    for peer, result in zip(listed, results)]
            rows += [_peer_row(contact, state, None) for contact, state in self._members.departed]
        return {"alive": sum(row["alive"] for row in rows), "peers": rows}

    def output_tgf(self, path: str) -> dict:
        """Write the network as TGF (§4.8) to ``path`` (a .tgf path: see :func:`p2pzmq.graph.output_file`; the
        result has the absolute path written)."""
        path = os.path.abspath(path)
        with self._channel.exclusive():
            ids = [peer.id for peer in self._members.listed]
            tables = self.tables()
        return {"path": path, "nodes": len(ids), "edges": self._offload(graph.write_tgf, path, ids, tables)}

    def output_graph(self, path: str, format: str) -> dict:
        """Write the network to ``path`` as ``format`` (tgf, graphml, gexf, dot or json; the path's extension and
        the format agree: see :func:`p2pzmq.graph.output_file`)."""
        path = os.path.abspath(path)
        ids, tables, extras = self.snapshot()
        edges = self._offload(graph.write_graph, path, format, ids, tables, extras)
        return {"path": path, "format": format, "nodes": len(ids), "edges": edges}

    def output_png(self, path: str, width: int = 1000, height: int = 1000, edges: int | None = None, seed: int = 0,
                   peer: str | None = None, route: list[str] | None = None) -> dict:
        """Draw the overlay to a ``width`` x ``height`` pixel PNG (needs matplotlib: the ``plot`` extra): every peer,
        at most ``edges`` edges (:data:`p2pzmq.plot.EDGE_BUDGET` if None; a sample drawn with ``seed`` above
        that), and over them ``peer``'s contacts and ``route``'s (FROM, TO) greedy route, as ``lookup FROM TO``
        shows it (asked before the picture's read). The result says what was drawn and left out (``edges_drawn``,
        ``edges_left_out``, the picture's ``caption``) and the ``route`` drawn (its ids)."""
        from .. import plot

        if route is not None:
            route = self._lookup(*route)["route"]["path"]
        path = os.path.abspath(path)
        plot.require_matplotlib()
        ids, tables, extras = self.snapshot()
        drawn = self._offload(graph.to_networkx, ids, tables, extras)
        shown = self._offload(plot.draw_overlay, drawn, path, width, height, edges, seed, peer, route)
        result = {"path": path, "width": width, "height": height, "nodes": drawn.number_of_nodes(),
                  "edges": drawn.number_of_edges(), **shown, "seed": seed}
        if peer is not None:
            result["peer"] = peer
        if route is not None:
            result["route"] = route
        return result

def _indexed(ids: list[int], wires: list[list[Contact] | None]) -> list[list[int]]:
    """Each table's wire form (None: its peer did not answer) as indexes into ``ids``; raises :class:`UsageError`
    for a peer that did not answer or a table naming a peer that is not in ``ids``."""
    position = {peer_id: index for index, peer_id in enumerate(ids)}
    tables = []
    for peer_id, wire in zip(ids, wires):
        if wire is None:
            raise UsageError(f"cannot snapshot the network: peer {peer_id} did not answer")
        try:
            tables.append([position[contact.id] for contact in wire])
        except KeyError as exc:
            raise UsageError(f"cannot snapshot the network: peer {peer_id}'s table names {exc.args[0]}, which is "
                             f"no longer in it") from None
    return tables



def _peer_row(contact: Contact, state: str, tree_size: int | None) -> dict:
    return {"id": str(contact.id), "server": contact.server, "client": contact.client, "alive": state == "alive",
            "state": state, "tree_size": tree_size}


def _attributes(listed: list) -> list[dict]:
    """Each listed peer's node attributes: ``alive``, ``host`` (the tcp host, or ``inproc``) and ``process`` (the
    pid of the process holding it)."""
    return [{"alive": peer.alive, "host": host_of(peer.contact.server),
             "process": peer.host.pid if hasattr(peer, "host") else os.getpid()} for peer in listed]

