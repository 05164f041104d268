"""Wire schema and codec of the peer protocol (docs/DESIGN.md §4.4). Plain data in, bytes out; no sockets here.

Every message is one binary frame: a kind byte, then its fields (their bytes are in wire.py). Requests carry a request
id and a fresh cookie and replies echo both, so a reply is matched to exactly one outstanding request (§4.2, §4.9).
``decode`` validates every field and raises :class:`ProtocolError`; it never evaluates or unpickles anything.

``SCHEMA`` is the one table of the protocol: kind number -> message class -> one field codec per field. Adding a kind
is adding a class and one line there. A protocol outside the package adds its kinds with :func:`define`, after the
schema's numbers (docs/DESIGN.md §11), so no two protocols give one number two meanings. Ids are Python ints and travel as 20 big-endian bytes; tables travel in
preorder so the receiver can rebuild the sender's tree shape (§4.5).
"""
from __future__ import annotations

import struct
from typing import NamedTuple

from .errors import ProtocolError
from .ids import ID_BITS
from .contact import Contact
from .wire import CONTACT, COOKIE, COUNT, ID, REQUEST_ID, compile_kind, contacts, ids, picks

MAX_TARGETS = 100_000
#: Contacts an ``UpdatePeers`` carries at most: a table of the original's, one entry per id bit at most.
MAX_UPDATE = ID_BITS
#: Contacts a ``NodesReply`` carries at most.
MAX_NODES = 1024
#: The largest Kademlia k (contacts per bucket): a table of 160 full buckets and its owner must fit a table's count.
MAX_K = 256
#: Contacts a table read by the supervisor (``PeersReply``) or a batch of greedy steps (``FoundPeers``) carries at
#: most: the original's 160, or a Kademlia table's owner and 160 buckets of up to ``MAX_K``.
MAX_TABLE = 1 + ID_BITS * MAX_K


# Requests to a peer's server.
class GetPeers(NamedTuple):
    req_id: int
    cookie: int
    sender: Contact


class FindClosest(NamedTuple):
    req_id: int
    cookie: int
    sender: Contact
    target: int


class UpdatePeers(NamedTuple):
    """Replace the server's table; honoured only with the peer's secret cookie. No reply."""

    secret: int
    table: list[Contact]


class Leave(NamedTuple):
    """The sender leaves the network: the server removes exactly this contact from its table, then answers
    ``Done``. Carries no secret: it can only remove the sender's own entry, as named with both its endpoints."""

    req_id: int
    cookie: int
    sender: Contact


# Commands from the supervisor (or a tool) to a peer's client.
class ClientPeers(NamedTuple):
    """Ask a client for its peer's table; unlike ``GetPeers`` the asker is not added to it."""

    req_id: int
    cookie: int


class FindPeers(NamedTuple):
    """Ask a client for the closest entry of its own table to each target (one greedy-routing step each)."""

    req_id: int
    cookie: int
    targets: list[int]


class Join(NamedTuple):
    """Ask a new peer's client to bootstrap from ``contact`` (fetch its table, build ours); answered with ``Done``."""

    req_id: int
    cookie: int
    contact: Contact


class Refresh(NamedTuple):
    """Ask a client to run one discovery pass and rebuild its table; answered with ``Done``."""

    req_id: int
    cookie: int


class Depart(NamedTuple):
    """Ask a client to tell every peer in its table that it leaves (``Leave``); answered with ``Done``."""

    req_id: int
    cookie: int


class ClientNodes(NamedTuple):
    """Ask a Kademlia client for what its server would answer ``FindNode(target)`` from the peer ``asker`` (its k
    closest contacts to ``target``, ``asker`` left out), without learning anyone: a read, answered with
    ``NodesReply``. The supervisor drives lookups with it that change no table."""

    req_id: int
    cookie: int
    target: int
    asker: int


# Replies.
class PeersReply(NamedTuple):
    req_id: int
    cookie: int
    table: list[Contact]


class ClosestReply(NamedTuple):
    req_id: int
    cookie: int
    contact: Contact


class FoundPeers(NamedTuple):
    """Answers to ``FindPeers``: ``contacts[picks[i]]`` is the answer for ``targets[i]`` (contacts sent once each)."""

    req_id: int
    cookie: int
    contacts: list[Contact]
    picks: list[int]


class Done(NamedTuple):
    req_id: int
    cookie: int


# Kademlia's requests to a peer's server.
class Ping(NamedTuple):
    """Is the server alive? Answered with ``Done``."""

    req_id: int
    cookie: int
    sender: Contact


class FindNode(NamedTuple):
    """Ask a server for the contacts it knows closest to ``target``; answered with ``NodesReply``."""

    req_id: int
    cookie: int
    sender: Contact
    target: int


class NodesReply(NamedTuple):
    req_id: int
    cookie: int
    contacts: list[Contact]


class ClientCounts(NamedTuple):
    """Ask a client what its peer has counted since it started; answered with ``PeerCounts``: a read."""

    req_id: int
    cookie: int


class PeerCounts(NamedTuple):
    """One peer's own counts since it started: requests its server ``served`` (answered), requests its client
    ``sent``, its client's requests that ``failed`` (no reply in time, or they could not be sent), and the
    ``joins``, ``refreshes`` and ``departs`` (walks) it made."""

    req_id: int
    cookie: int
    served: int
    sent: int
    failed: int
    joins: int
    refreshes: int
    departs: int


def _picks_inside(msg: FoundPeers) -> None:
    if msg.picks and max(msg.picks) >= len(msg.contacts):
        raise ProtocolError("FoundPeers picks a contact it does not carry")


_TABLE = contacts(MAX_TABLE)

#: kind number (the first byte on the wire) -> message class -> its fields' codecs, in the class's field order, and
#: optionally a check of the whole message. New kinds are appended, so the numbers of the older ones never change.
SCHEMA = (
    (0, GetPeers, (REQUEST_ID, COOKIE, CONTACT)),
    (1, FindClosest, (REQUEST_ID, COOKIE, CONTACT, ID)),
    (2, UpdatePeers, (COOKIE, contacts(MAX_UPDATE))),
    (3, ClientPeers, (REQUEST_ID, COOKIE)),
    (4, FindPeers, (REQUEST_ID, COOKIE, ids(MAX_TARGETS))),
    (5, Join, (REQUEST_ID, COOKIE, CONTACT)),
    (6, Refresh, (REQUEST_ID, COOKIE)),
    (7, PeersReply, (REQUEST_ID, COOKIE, _TABLE)),
    (8, ClosestReply, (REQUEST_ID, COOKIE, CONTACT)),
    (9, FoundPeers, (REQUEST_ID, COOKIE, _TABLE, picks(MAX_TARGETS)), _picks_inside),
    (10, Done, (REQUEST_ID, COOKIE)),
    (11, Leave, (REQUEST_ID, COOKIE, CONTACT)),
    (12, Depart, (REQUEST_ID, COOKIE)),
    (13, Ping, (REQUEST_ID, COOKIE, CONTACT)),
    (14, FindNode, (REQUEST_ID, COOKIE, CONTACT, ID)),
    (15, NodesReply, (REQUEST_ID, COOKIE, contacts(MAX_NODES))),
    (16, ClientNodes, (REQUEST_ID, COOKIE, ID, ID)),
    (17, ClientCounts, (REQUEST_ID, COOKIE)),
    (18, PeerCounts, (REQUEST_ID, COOKIE, COUNT, COUNT, COUNT, COUNT, COUNT, COUNT)),
)

#: Message classes by kind number.
KINDS = tuple(cls for _, cls, *_ in SCHEMA)
#: Requests to a peer's server, commands to its client (from the supervisor or a tool), and the replies to both.
REQUESTS = (GetPeers, FindClosest, UpdatePeers, Leave, Ping, FindNode)
COMMANDS = (ClientPeers, FindPeers, Join, Refresh, Depart, ClientNodes, ClientCounts)
REPLIES = (PeersReply, ClosestReply, FoundPeers, Done, NodesReply, PeerCounts)


def _unknown_kind(interned: dict, raw: bytes):
    raise ProtocolError(f"unknown message kind {raw[0]}", "unknown_kind")


def _compile_schema() -> tuple[dict, list]:
    """The packer of each message class, and the parser of each possible kind byte."""
    encoders, decoders = {}, [_unknown_kind] * 256
    for number, (kind, cls, fields, *check) in enumerate(SCHEMA):
        if kind != number:
            raise TypeError(f"{cls.__name__}: kind numbers must run 0, 1, 2... in SCHEMA, not {kind}")
        encoders[cls], decoders[kind] = compile_kind(kind, cls, fields, *check)
    return encoders, decoders


_ENCODERS, _DECODERS = _compile_schema()


def encode(msg) -> list[bytes]:
    """The frames of ``msg`` (one of the message classes above); raises :class:`ProtocolError` for anything else,
    or for a value its field cannot carry (a cookie of 0, an id of 161 bits, an endpoint that is not text...)."""
    encoder = _ENCODERS.get(type(msg))
    if encoder is None:
        raise ProtocolError(f"cannot encode {type(msg).__name__}")
    try:
        return [encoder(msg)]
    except (struct.error, OverflowError, ValueError, TypeError, AttributeError) as exc:
        raise ProtocolError(f"cannot encode {type(msg).__name__}: {exc}") from exc


def pack(kind: type, values: tuple) -> list[bytes]:
    """The frames of the message ``kind(*values)``, without building it (a request's path: see rpc.Caller.call);
    raises :class:`ProtocolError` as :func:`encode` does."""
    try:
        return [_ENCODERS[kind](values)]
    except (KeyError, struct.error, OverflowError, ValueError, TypeError, AttributeError) as exc:
        raise ProtocolError(f"cannot encode {getattr(kind, '__name__', kind)}: {exc}") from exc


#: Every reply kind, the schema's and those :func:`define` added.
_REPLY_TYPES = set(REPLIES)
#: Message classes by kind number, the schema's and those :func:`define` added (for error messages).
_CLASSES = dict(enumerate(KINDS))


def define(kind: int, cls: type, fields: tuple, check=None, reply: bool = False) -> None:
    """Add the message kind ``kind`` (a number after the schema's, below 256) of class ``cls`` (a NamedTuple) with
    one field codec of :mod:`.wire` per field, and optionally a ``check`` of the whole message, as a line of
    ``SCHEMA`` would; ``reply``: a reply, which echoes its request's id and cookie (its first two fields). For a
    protocol outside the package; raises ``ValueError`` for a number or a class already taken."""
    if not len(SCHEMA) <= kind < 256 or kind in _CLASSES:
        raise ValueError(f"{cls.__name__}: kind {kind} is taken or out of range ({len(SCHEMA)} to 255 are free)")
    if cls in _ENCODERS:
        raise ValueError(f"{cls.__name__} already has a kind")
    _ENCODERS[cls], _DECODERS[kind] = compile_kind(kind, cls, fields, *(() if check is None else (check,)))
    _CLASSES[kind] = cls
    if reply:
        _REPLY_TYPES.add(cls)


def tag(msg) -> tuple[int, int] | None:
    """The (request id, cookie) a reply echoes; None for a message that is not a reply."""
    return (msg.req_id, msg.cookie) if type(msg) in _REPLY_TYPES else None


class Codec:
    """Decoder that shares one ``Contact`` object per peer, so thousands of tables in one process cost little memory,
    and a contact it has seen before costs one dictionary lookup (wire.py).

    ``decode`` is a pure function of the frames; the cache only changes object identity, never values.
    """

    def __init__(self, max_bytes: int = 1 << 20) -> None:
        self.max_bytes = max_bytes
        self._contacts: dict[bytes, Contact] = {}  # a contact's wire bytes -> the one Contact object for them

    encode = staticmethod(encode)
    pack = staticmethod(pack)
    tag = staticmethod(tag)

    def decode(self, frames: list[bytes]):
        """The message in ``frames``; raises :class:`ProtocolError` if it is not exactly one valid message."""
        if len(frames) != 1:
            raise ProtocolError(f"expected 1 frame, got {len(frames)}", "frames")
        raw = frames[0]
        if len(raw) > self.max_bytes:
            raise ProtocolError(f"message of {len(raw)} bytes exceeds {self.max_bytes}", "too_large")
        if not raw:
            raise ProtocolError("an empty frame has no message kind", "truncated")
        try:
            return _DECODERS[raw[0]](self._contacts, raw)
        except struct.error as exc:  # a fixed field or a length read past the end
            raise ProtocolError(f"{_CLASSES[raw[0]].__name__} ends before its fields do", "truncated") from exc


_default_codec = Codec()


def decode(frames: list[bytes]):
    """Decode with a process-wide :class:`Codec`."""
    return _default_codec.decode(frames)
