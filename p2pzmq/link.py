"""The link between a supervisor and its workers (docs/DESIGN.md §9): schema, op names and codec, used by
both sides (:mod:`p2pzmq.hosting` on the supervisor's, :mod:`p2pzmq.worker` on the worker's). No sockets here.

One JSON object per message over a ROUTER pair, so a link can be read in a packet capture: the supervisor sends
``{"op": <op>, "req": <n>, "cookie": <c>, ...fields}`` and the worker answers ``{"req": <n>, "cookie": <c>,
"ok": true, ...fields}`` or ``{"req": <n>, "cookie": <c>, "ok": false, "error": "<one line>"}``. Ids are decimal
strings (160-bit integers do not survive JSON numbers in most languages); a contact is ``[id, server, client]``.
Heartbeats (:data:`BEAT`) carry request id and cookie 0 and are answered the same way.
"""
from __future__ import annotations

import json
from typing import NamedTuple

from .errors import ProtocolError
from .addresses import check_peer_endpoint
from .ids import MAX_COOKIE, parse_id
from .contact import Contact

#: Hand the worker the network's settings (``config``); it answers with ``pid``, ``host`` and ``room``.
HELLO = "hello"
#: Start peers with the given ``ids``; answered with their ``contacts`` and the ``room`` left.
SPAWN = "spawn"
#: Stop the peers with the given ``ids`` (all of them or, if one is not held there, none); answered with ``room``.
KILL = "kill"
#: Restore peers' tables from a snapshot (docs/DESIGN.md §17): ``contacts`` (optional) extends the worker's directory
#: of every peer's contact from position ``start`` (0 starts a new one); ``tables`` is ``[[id, index, ...], ...]``,
#: each table as indexes into that directory; answered with how many tables were ``installed``.
INSTALL = "install"
#: Are you there? (sent every ``heartbeat_interval``).
BEAT = "beat"
#: The worker's counters, memory, fds and CPU seconds.
STATS = "stats"
#: Stop every peer and end.
STOP = "stop"
OPS = (HELLO, SPAWN, KILL, INSTALL, BEAT, STATS, STOP)

#: Settings the supervisor hands to its workers, so every peer in the network follows the same rules (the seed too:
#: a Kademlia peer draws its refresh targets from a stream of the seed and its id; the protocol's module too: a
#: worker imports it, so a protocol registered outside the package is known there, docs/DESIGN.md §11; the network
#: model too: a worker holds its peers' messages for their delays, docs/DESIGN.md §12).
WORKER_SETTINGS = ("seed", "protocol", "protocol_module", "metric", "table_capacity", "k", "alpha", "max_hops",
                   "client_timeout", "refresh_interval", "max_connections", "shutdown_timeout", "max_message_bytes",
                   "tcp_backlog", "heartbeat_interval", "heartbeat_timeout", "evict_after", "latency", "jitter",
                   "loss", "network_clock")
MAX_REQUEST_ID = 2**63 - 1


class LinkRequest(NamedTuple):
    req_id: int
    cookie: int
    op: str
    fields: dict


class LinkReply(NamedTuple):
    req_id: int
    cookie: int
    ok: bool
    fields: dict

    @property
    def error(self) -> str:
        return str(self.fields.get("error", "unknown error"))


def request(req_id: int, cookie: int, op: str, fields: dict) -> LinkRequest:
    """A request as :class:`p2pzmq.rpc.Caller` builds one: ``request(req_id, cookie, *args)``."""
    return LinkRequest(req_id, cookie, op, fields)


def beat() -> LinkRequest:
    return LinkRequest(0, 0, BEAT, {})


def ok(answered: LinkRequest, **fields) -> LinkReply:
    return LinkReply(answered.req_id, answered.cookie, True, fields)


def failed(answered: LinkRequest, error: str) -> LinkReply:
    return LinkReply(answered.req_id, answered.cookie, False, {"error": " ".join(error.split())})


class LinkCodec:
    """JSON for the link; ``decode`` validates the envelope and raises :class:`ProtocolError`."""

    def pack(self, kind, values: tuple) -> list[bytes]:
        """The frames of ``kind(*values)`` (see rpc.Caller)."""
        return self.encode(kind(*values))

    def encode(self, msg: LinkRequest | LinkReply) -> list[bytes]:
        if type(msg) is LinkRequest:
            body = {**msg.fields, "op": msg.op, "req": msg.req_id, "cookie": msg.cookie}
        else:
            body = {**msg.fields, "ok": msg.ok, "req": msg.req_id, "cookie": msg.cookie}
        return [json.dumps(body).encode()]

    def decode(self, frames: list[bytes]) -> LinkRequest | LinkReply:
        if len(frames) != 1:
            raise ProtocolError(f"a link message is one frame, not {len(frames)}", "frames")
        try:
            body = json.loads(frames[0])
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise ProtocolError(f"a link message is JSON: {exc}", "malformed") from exc
        if not isinstance(body, dict):
            raise ProtocolError("a link message is one JSON object", "malformed")
        req_id, cookie = body.pop("req", None), body.pop("cookie", None)
        if type(req_id) is not int or not 0 <= req_id <= MAX_REQUEST_ID:
            raise ProtocolError("a link message's req is a non-negative integer", "bad_field")
        if type(cookie) is not int or not 0 <= cookie <= MAX_COOKIE:
            raise ProtocolError("a link message's cookie is an integer in [0, 2**32]", "bad_field")
        if "op" in body:
            op = body.pop("op")
            if op not in OPS:
                raise ProtocolError(f"unknown link op {op!r}", "unknown_kind")
            return LinkRequest(req_id, cookie, op, body)
        answered = body.pop("ok", None)
        if type(answered) is not bool:
            raise ProtocolError("a link reply says ok: true or false", "bad_field")
        return LinkReply(req_id, cookie, answered, body)

    @staticmethod
    def tag(msg) -> tuple[int, int] | None:
        return (msg.req_id, msg.cookie) if type(msg) is LinkReply else None


def pack_contact(contact: Contact) -> list[str]:
    return [str(contact.id), contact.server, contact.client]


def unpack_contact(item) -> Contact:
    """A contact from the link; raises :class:`ProtocolError` unless it is ``[decimal id, server, client]`` with an
    id and endpoints the wire codec would carry too (:func:`~p2pzmq.ids.parse_id`,
    :func:`~p2pzmq.addresses.check_peer_endpoint`)."""
    if not isinstance(item, list) or len(item) != 3:
        raise ProtocolError("a contact on the link is [id, server, client]")
    try:
        return Contact(parse_id(item[0]), check_peer_endpoint(item[1]), check_peer_endpoint(item[2]))
    except ValueError as exc:
        raise ProtocolError(f"a contact on the link is [id, server, client]: {exc}") from None
