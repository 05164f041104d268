"""What the network looks like, read from the peers and written out: tables, snapshots, the peer list, graph files,
pictures and time-lapses (docs/DESIGN.md §4.8, §8).

Reading a snapshot holds the command channel, so ids, tables and attributes always belong together even while churn
runs. Turning a snapshot into files is pure work on data (:mod:`p2pzmq.graph`, :mod:`p2pzmq.plot`), done in the
offload thread; the supervisor's core never imports those.
"""
from __future__ import annotations

import json
import os
from typing import Callable

from .. import graph, protocols, snapshot
from ..addresses import host_of
from .. import messages as m
from ..config import Config
from ..errors import OutputError, UsageError
from ..contact import Contact, TableView
from .channel import CommandChannel
from .members import Members


class Exporter:
    def __init__(self, config: Config, members: Members, channel: CommandChannel, offload: Callable,
                 report: Callable[[str, int, int], None]) -> None:
        self.config = config
        self._members = members
        self._channel = channel
        self._offload = offload
        self._report = report

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
            extras = [{"alive": peer.alive, "host": host_of(peer.contact.server),
                       "process": peer.host.pid if hasattr(peer, "host") else os.getpid()} for peer in listed]
            return [peer.id for peer in listed], self.tables(listed), extras

    def output_snapshot(self, path: str, streams: Callable[[], dict]) -> dict:
        """Write the whole network to ``path`` as a snapshot (docs/DESIGN.md §17): every peer's id and table in list
        order, the protocol and its settings, the seed, and ``streams()`` (the random streams' states, read in the
        same hold of the command channel as the tables). Refused when a table names a peer that is no longer in the
        network (killed, departed) or a peer did not answer: the file could not restore that network."""
        path = os.path.abspath(path)
        with self._channel.exclusive():
            listed = list(self._members.listed)
            states = streams()  # before the reads below draw their cookies
            results = self._channel.ask([(peer.contact, m.ClientPeers, ()) for peer in listed], strict=True)
        position = {peer.id: index for index, peer in enumerate(listed)}
        tables = []
        for peer, result in zip(listed, results):
            if not result.replied:
                raise UsageError(f"cannot snapshot the network: peer {peer.id} did not answer")
            try:
                tables.append([position[contact.id] for contact in result.reply.table])
            except KeyError as exc:
                raise UsageError(f"cannot snapshot the network: peer {peer.id}'s table names {exc.args[0]}, which "
                                 f"is no longer in it") from None
        descriptor = protocols.of(self.config)
        saved = snapshot.Snapshot(protocol=self.config.protocol,
                                  settings={name: getattr(self.config, name) for name in descriptor.settings},
                                  metric=self.config.metric, seed=self.config.seed, ids=list(position),
                                  tables=tables, streams=states)
        try:
            size = self._offload(snapshot.write, path, saved)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
        return {"path": path, "peers": len(listed), "entries": sum(map(len, tables)), "bytes": size}

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
        that), and over them ``peer``'s contacts and the ``route`` (a list of ids: a lookup's greedy route). The
        result says what was drawn and left out (``edges_drawn``, ``edges_left_out``, the picture's ``caption``)."""
        from .. import plot

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

    def time_lapse(self, steps: int, directory: str, format: str, status: bool, refresh: Callable[[], dict],
                   net_status: Callable[[], dict]) -> dict:
        """``steps`` times: ``refresh()`` every peer, then write ``time-lapse-<i>.<format>`` in ``directory``.

        With ``status``, it also runs ``net_status()`` before the first refresh and after each one, and records
        per step the connectivity, lookup success rate, mean hops and mean table size under ``steps`` in the
        result and in ``time-lapse.json`` in ``directory`` (what ``p2p-network plot --time-lapse`` charts).
        """
        directory = os.path.abspath(directory)
        with self._channel.exclusive():
            history = [_step_status(0, None, net_status())] if status else []
            files = []
            for step in range(1, steps + 1):
                self._report("time_lapse", step - 1, steps)
                refresh()
                path = os.path.join(directory, f"time-lapse-{step}.{graph.FORMATS[format]}")
                self.output_graph(path, format)
                files.append(path)
                if status:
                    history.append(_step_status(step, path, net_status()))
            self._report("time_lapse", steps, steps)
            if not status:
                return {"files": files}
            summary = {"n": len(self._members), "metric": self.config.metric, "steps": history}
            if self.config.protocol != protocols.DEFAULT:  # the original's file stays as it was
                summary["protocol"] = self.config.protocol
        graph.write_text(os.path.join(directory, "time-lapse.json"), json.dumps(summary) + "\n")
        return {"files": files, "steps": history}


def _step_status(step: int, path: str | None, result: dict) -> dict:
    sizes = [peer["tree_size"] for peer in result["peers"]]
    return {"step": step, "file": path, "connectivity": result["connectivity"],
            "success_rate": result["hops"]["success_rate"], "mean_hops": result["hops"]["mean"],
            "mean_table_size": round(sum(sizes) / len(sizes), 4)}


def _peer_row(contact: Contact, state: str, tree_size: int | None) -> dict:
    return {"id": str(contact.id), "server": contact.server, "client": contact.client, "alive": state == "alive",
            "state": state, "tree_size": tree_size}

