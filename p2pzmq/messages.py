"""Wire schema and codec of the peer protocol (docs/DESIGN.md §4.4). Plain data in, bytes out; no sockets here.

Every message is one msgpack frame holding an array whose first item is the message kind. Requests carry a request
id and a fresh cookie and replies echo both, so a reply is matched to exactly one outstanding request (§4.2, §4.9).
``decode`` validates every field and raises :class:`ProtocolError`; it never evaluates or unpickles anything.

Ids travel as 20 big-endian bytes (msgpack integers stop at 64 bits); tables travel in preorder so the receiver can
rebuild the sender's tree shape (§4.5).
"""
from __future__ import annotations

from typing import NamedTuple

import msgpack

from .errors import ProtocolError
from .ids import ID_BYTES, MAX_COOKIE
from .table import CAPACITY, Contact

MAX_REQUEST_ID = 2**64 - 1
MAX_ENDPOINT_CHARS = 256
MAX_TARGETS = 100_000
#: Contacts a codec shares at most (about 100 bytes each); beyond that it starts afresh.
MAX_SHARED_CONTACTS = 200_000
ENDPOINT_SCHEMES = ("inproc://", "tcp://")


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


REPLIES = (PeersReply, ClosestReply, FoundPeers, Done)
COMMANDS = (ClientPeers, FindPeers, Join, Refresh, Depart)
# Wire numbers: new kinds are appended, so the numbers of the older ones never change.
_KINDS = (GetPeers, FindClosest, UpdatePeers, ClientPeers, FindPeers, Join, Refresh, *REPLIES, Leave, Depart)
_KIND_OF = {cls: number for number, cls in enumerate(_KINDS)}


def _pack_contact(contact: Contact) -> list:
    return [contact.id.to_bytes(ID_BYTES, "big"), contact.server, contact.client]


def _pack_id(peer_id: int) -> bytes:
    return peer_id.to_bytes(ID_BYTES, "big")


def _pack_contacts(contacts: list[Contact]) -> list:
    return [_pack_contact(contact) for contact in contacts]


# Field name -> wire form; fields not listed (request ids, cookies) are msgpack integers as they are.
_PACK_FIELD = {
    "sender": _pack_contact,
    "contact": _pack_contact,
    "target": _pack_id,
    "targets": lambda targets: [_pack_id(target) for target in targets],
    "table": _pack_contacts,
    "contacts": _pack_contacts,
}


def encode(msg) -> list[bytes]:
    """The frames of ``msg`` (one of the message classes above)."""
    kind = _KIND_OF.get(type(msg))
    if kind is None:
        raise ProtocolError(f"cannot encode {type(msg).__name__}")
    body = [kind]
    for name, value in zip(msg._fields, msg):
        pack = _PACK_FIELD.get(name)
        body.append(value if pack is None else pack(value))
    return [msgpack.packb(body, use_bin_type=True)]


_REPLY_TYPES = frozenset(REPLIES)


def tag(msg) -> tuple[int, int] | None:
    """The (request id, cookie) a reply echoes; None for a message that is not a reply."""
    return (msg.req_id, msg.cookie) if type(msg) in _REPLY_TYPES else None


class Codec:
    """Decoder that shares one ``Contact`` object per peer, so thousands of tables in one process cost little memory.

    ``decode`` is a pure function of the frames; the cache only changes object identity, never values.
    """

    def __init__(self, max_bytes: int = 1 << 20) -> None:
        self.max_bytes = max_bytes
        self._contacts: dict[bytes, Contact] = {}  # wire id -> the one Contact object for that peer
        # Each message kind's field decoders, looked up once here rather than by name for every field received.
        self._decoders = {cls: tuple(self._decoder(cls, name) for name in cls._fields) for cls in _KINDS}

    encode = staticmethod(encode)
    tag = staticmethod(tag)

    def decode(self, frames: list[bytes]):
        """The message in ``frames``; raises :class:`ProtocolError` if it is not exactly one valid message."""
        if len(frames) != 1:
            raise ProtocolError(f"expected 1 frame, got {len(frames)}", "frames")
        raw = frames[0]
        if len(raw) > self.max_bytes:
            raise ProtocolError(f"message of {len(raw)} bytes exceeds {self.max_bytes}", "too_large")
        try:
            body = msgpack.unpackb(raw, raw=False, strict_map_key=True, max_bin_len=self.max_bytes,
                                   max_str_len=self.max_bytes, max_array_len=MAX_TARGETS, max_map_len=0,
                                   max_ext_len=0)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise ProtocolError(f"not msgpack: {exc}", "not_msgpack") from exc
        if not isinstance(body, list) or not body:
            raise ProtocolError("message is not a non-empty array", "not_array")
        kind = body[0]
        if type(kind) is not int or not 0 <= kind < len(_KINDS):
            raise ProtocolError(f"unknown message kind {kind!r}", "unknown_kind")
        cls = _KINDS[kind]
        fields = body[1:]
        if len(fields) != len(cls._fields):
            raise ProtocolError(f"{cls.__name__} takes {len(cls._fields)} fields, got {len(fields)}", "field_count")
        msg = cls(*[decode(value) for decode, value in zip(self._decoders[cls], fields)])
        if cls is FoundPeers and any(pick >= len(msg.contacts) for pick in msg.picks):
            raise ProtocolError("FoundPeers picks a contact it does not carry")
        return msg

    def _decoder(self, cls, name: str):
        """The function that validates and converts field ``name`` of ``cls``."""
        if name == "req_id":
            return lambda value: _int_in(value, 0, MAX_REQUEST_ID, name)
        if name in ("cookie", "secret"):
            return lambda value: _int_in(value, 1, MAX_COOKIE, name)
        if name in ("sender", "contact"):
            return self._contact
        if name == "target":
            return _id
        if name == "targets":
            return lambda value: [_id(item) for item in _list(value, MAX_TARGETS, name)]
        if name in ("table", "contacts"):
            contact = self._contact
            return lambda value: [contact(item) for item in _list(value, CAPACITY, name)]
        if name == "picks":
            return lambda value: [_int_in(item, 0, CAPACITY - 1, name) for item in _list(value, MAX_TARGETS, name)]
        raise ProtocolError(f"{cls.__name__}.{name} has no decoder")

    def _contact(self, value) -> Contact:
        if type(value) is not list or len(value) != 3:
            raise ProtocolError("a contact is [id, server, client]")
        wire_id, server, client = value
        known = self._contacts.get(wire_id) if type(wire_id) is bytes else None
        if known is not None and known.server == server and known.client == client:
            return known  # same id bytes and endpoints as a contact that passed the checks below
        contact = Contact(_id(wire_id), _endpoint(server), _endpoint(client))
        if len(self._contacts) >= MAX_SHARED_CONTACTS:
            self._contacts.clear()  # hostile input naming ever new ids must not grow memory without bound
        self._contacts[wire_id] = contact
        return contact


def _int_in(value, low: int, high: int, name: str) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ProtocolError(f"{name} must be an integer in [{low}, {high}]")
    return value


def _id(value) -> int:
    if type(value) is not bytes or len(value) != ID_BYTES:
        raise ProtocolError(f"an id is {ID_BYTES} bytes")
    return int.from_bytes(value, "big")


def _list(value, limit: int, name: str) -> list:
    if type(value) is not list or len(value) > limit:
        raise ProtocolError(f"{name} must be a list of at most {limit} items")
    return value


def _endpoint(value) -> str:
    if type(value) is not str or len(value) > MAX_ENDPOINT_CHARS or not value.startswith(ENDPOINT_SCHEMES):
        raise ProtocolError("an endpoint is an inproc:// or tcp:// URL string")
    return value


_default_codec = Codec()


def decode(frames: list[bytes]):
    """Decode with a process-wide :class:`Codec`."""
    return _default_codec.decode(frames)
