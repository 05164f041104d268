"""Binary wire forms of the peer protocol's fields, and the packer and parser of a message made of them. Pure: bytes
in, values out; no sockets. messages.py declares which fields each message kind has; this module knows their bytes.

A message is one frame: a kind byte, then every fixed-size field of the message in one precompiled big-endian
``struct.Struct`` (one C call packs them all), then the variable-size fields in the message's field order::

    request id      8 bytes, unsigned: every value is valid (0..2**64-1)
    cookie, secret  4 bytes holding the value minus 1: every value is valid (1..2**32), and 2**32 fits
    id              20 bytes, big-endian unsigned
    contact         id, server length (2 bytes), client length (2 bytes), server, client (UTF-8 each)
    contacts        count (2 bytes), then each contact
    ids             count (4 bytes), then 20 bytes each
    picks           count (4 bytes), then 2 bytes each

Contacts are immutable and shared by every table that holds them, so each one is packed once: its bytes are cached,
keyed by the Contact. A decoder interns contacts by their bytes, so one Contact object stands for one peer however
many messages name it, and a known contact costs one dictionary lookup instead of a parse and validation. Both
caches are bounded: hostile input naming ever new peers empties them rather than growing memory without end.

Every field is validated on the way in (``ProtocolError`` with reason ``bad_field``); a message that ends before its
fields do is ``truncated`` (lengths are read with ``struct``, whose ``struct.error`` the caller reports as that), and
bytes after the last field are ``trailing``.
"""
from __future__ import annotations

import struct
from typing import Callable, NamedTuple

from .addresses import MAX_PEER_ENDPOINT_CHARS, check_peer_endpoint
from .errors import ProtocolError
from .ids import ID_BYTES, id_from_bytes, id_to_bytes
from .contact import Contact

#: UTF-8 needs at most 4 bytes a character, so a longer endpoint is refused before it is decoded.
MAX_ENDPOINT_BYTES = 4 * MAX_PEER_ENDPOINT_CHARS
#: Contacts a cache holds at most (about 200 bytes each with its key); beyond that it starts afresh.
MAX_SHARED_CONTACTS = 200_000

_CONTACT_HEAD = struct.Struct(f">{ID_BYTES}sHH")
_LENGTHS = struct.Struct(f">{ID_BYTES}xHH")  # the same header without the id, for a contact that may be known
_COUNT16 = struct.Struct(">H")
_COUNT32 = struct.Struct(">I")


class Field(NamedTuple):
    """How one field travels, as Python source that :func:`compile_kind` inlines into each message's packer and
    parser. In the templates ``{v}`` stands for the field's variable and ``{h}`` prefixes the names of ``helpers``.

    A fixed-size field has a ``struct`` format; ``pack`` and ``unpack`` are expressions of its wire value and back
    (every wire value must be a valid value). A variable-size one has none; ``pack`` is an expression of its bytes,
    ``unpack`` a statement that sets ``{v}`` from ``raw`` at ``offset`` and advances ``offset``, and ``last``, if
    given, a cheaper statement for when it ends the message, which must also refuse trailing bytes.
    """

    fmt: str | None = None
    pack: str = "{v}"
    unpack: str = "{v}"
    last: str | None = None
    helpers: dict | None = None


REQUEST_ID = Field("Q")
COOKIE = Field("I", "{v} - 1", "{v} + 1")
# ids.id_to_bytes / id_from_bytes written out (every request carries an id): the struct reads exactly ID_BYTES bytes,
# and to_bytes refuses an id that does not fit with OverflowError, which encode reports as a ProtocolError.
ID = Field(f"{ID_BYTES}s", f"{{v}}.to_bytes({ID_BYTES}, 'big')", "{h}from_bytes({v}, 'big')",
           helpers={"from_bytes": int.from_bytes})

# -- contacts -----------------------------------------------------------------------------------------------------

_packed: dict[Contact, bytes] = {}  # Contact -> its wire bytes (module-wide: encoding is a plain function)


def pack_contact(contact: Contact) -> bytes:
    """The wire bytes of ``contact``, packed once and then taken from the cache."""
    packed = _packed.get(contact)
    if packed is None:
        server, client = contact.server.encode(), contact.client.encode()
        packed = _CONTACT_HEAD.pack(id_to_bytes(contact.id), len(server), len(client)) + server + client
        _remember(_packed, contact, packed)
    return packed


def unpack_contact(interned: dict[bytes, Contact], raw: bytes, offset: int) -> tuple[Contact, int]:
    """The contact at ``offset`` and the offset after it."""
    server_length, client_length = _LENGTHS.unpack_from(raw, offset)
    end = offset + _CONTACT_HEAD.size + server_length + client_length
    contact = interned.get(raw[offset:end])
    if contact is None:
        contact = _new_contact(interned, raw, offset, end)
    return contact, end


def _unpack_last_contact(interned: dict[bytes, Contact], raw: bytes, offset: int) -> Contact:
    """The contact that ends the message at ``offset``, when its bytes are not known as a whole."""
    contact, end = unpack_contact(interned, raw, offset)
    if end != len(raw):
        raise trailing(raw, end)
    return contact


def _new_contact(interned: dict[bytes, Contact], raw: bytes, offset: int, end: int) -> Contact:
    """Parse and validate a contact this decoder has not seen (as these exact bytes), and intern it."""
    if end > len(raw):
        raise ProtocolError("a contact runs past the end of the message", "truncated")
    wire_id, server_length, _ = _CONTACT_HEAD.unpack_from(raw, offset)
    start = offset + _CONTACT_HEAD.size
    contact = Contact(id_from_bytes(wire_id), _endpoint(raw[start:start + server_length]),
                      _endpoint(raw[start + server_length:end]))
    key = raw[offset:end]
    _remember(interned, key, contact)
    _remember(_packed, contact, key)  # a contact received is likely to be sent on: its bytes are at hand
    return contact


def _endpoint(encoded: bytes) -> str:
    if len(encoded) > MAX_ENDPOINT_BYTES:
        raise ProtocolError(f"an endpoint is at most {MAX_PEER_ENDPOINT_CHARS} characters")
    try:
        return check_peer_endpoint(encoded.decode())
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"an endpoint is UTF-8 text: {exc}") from exc
    except ValueError as exc:
        raise ProtocolError(str(exc)) from None


def _remember(cache: dict, key, value) -> None:
    if len(cache) >= MAX_SHARED_CONTACTS:
        cache.clear()  # hostile input naming ever new peers must not grow memory without bound
    cache[key] = value


#: One contact: a known one that ends the message (as most do) costs one lookup of the message's tail.
CONTACT = Field(pack="({h}packed.get({v}) or {h}pack({v}))",
                unpack="{v}, offset = {h}unpack(interned, raw, offset)",
                last="{v} = interned.get(raw[offset:]) or {h}unpack_last(interned, raw, offset)",
                helpers={"packed": _packed, "pack": pack_contact, "unpack": unpack_contact,
                         "unpack_last": _unpack_last_contact})


def _counted(pack: Callable, unpack: Callable) -> Field:
    """A variable-size field packed by ``pack(value) -> bytes``, parsed by ``unpack(interned, raw, offset) ->
    (value, offset)``."""
    return Field(pack="{h}pack({v})", unpack="{v}, offset = {h}unpack(interned, raw, offset)",
                 helpers={"pack": pack, "unpack": unpack})


def _pack_contacts(contacts: list[Contact]) -> bytes:
    try:
        return _COUNT16.pack(len(contacts)) + b"".join([_packed[contact] for contact in contacts])
    except KeyError:  # some contact not packed yet (rare once a network runs): pack each, filling the cache
        return _COUNT16.pack(len(contacts)) + b"".join([pack_contact(contact) for contact in contacts])


def contacts(limit: int) -> Field:
    """A list of at most ``limit`` contacts."""
    def unpack(interned: dict[bytes, Contact], raw: bytes, offset: int) -> tuple[list[Contact], int]:
        (count,) = _COUNT16.unpack_from(raw, offset)
        _check_count(count, limit, "contacts")
        offset += _COUNT16.size
        found: list[Contact] = []
        lengths, known = _LENGTHS.unpack_from, interned.get
        for _ in range(count):  # unpack_contact inlined: a table has hundreds of entries
            server_length, client_length = lengths(raw, offset)
            end = offset + _CONTACT_HEAD.size + server_length + client_length
            contact = known(raw[offset:end])
            found.append(_new_contact(interned, raw, offset, end) if contact is None else contact)
            offset = end
        return found, offset
    return _counted(_pack_contacts, unpack)


# -- ids and picks ------------------------------------------------------------------------------------------------

def _pack_ids(ids: list[int]) -> bytes:
    return _COUNT32.pack(len(ids)) + b"".join([id_to_bytes(peer_id) for peer_id in ids])


def ids(limit: int) -> Field:
    """A list of at most ``limit`` ids."""
    def unpack(interned: dict[bytes, Contact], raw: bytes, offset: int) -> tuple[list[int], int]:
        start, end = _span(raw, offset, limit, ID_BYTES, "ids")
        return [id_from_bytes(raw[at:at + ID_BYTES]) for at in range(start, end, ID_BYTES)], end
    return _counted(_pack_ids, unpack)


def _pack_picks(picks: list[int]) -> bytes:
    return _COUNT32.pack(len(picks)) + struct.pack(f">{len(picks)}H", *picks)


def picks(limit: int) -> Field:
    """A list of at most ``limit`` indexes into a list of contacts, each below 2**16 (the message checks that they
    fall inside its contacts)."""
    def unpack(interned: dict[bytes, Contact], raw: bytes, offset: int) -> tuple[list[int], int]:
        start, end = _span(raw, offset, limit, 2, "picks")
        return list(struct.unpack_from(f">{(end - start) // 2}H", raw, start)), end
    return _counted(_pack_picks, unpack)


def _span(raw: bytes, offset: int, limit: int, item_size: int, name: str) -> tuple[int, int]:
    """Where the items of a counted list of fixed-size items start and end; checks the count and the length."""
    (count,) = _COUNT32.unpack_from(raw, offset)
    _check_count(count, limit, name)
    start = offset + _COUNT32.size
    end = start + count * item_size
    if end > len(raw):
        raise ProtocolError(f"{count} {name} run past the end of the message", "truncated")
    return start, end


def _check_count(count: int, limit: int, name: str) -> None:
    if count > limit:
        raise ProtocolError(f"{count} {name} exceed the limit of {limit}")


# -- a message kind's packer and parser ---------------------------------------------------------------------------

def trailing(raw: bytes, offset: int) -> ProtocolError:
    """The error for a message with bytes after its last field at ``offset``."""
    return ProtocolError(f"{len(raw) - offset} bytes after the last field", "trailing")


def compile_kind(kind: int, cls: type, fields: tuple[Field, ...],
                 check: Callable | None = None) -> tuple[Callable, Callable]:
    """The packer ``encode(msg) -> bytes`` and the parser ``decode(interned, raw) -> msg`` of message class ``cls``
    (a NamedTuple) with wire number ``kind`` and one :class:`Field` per field, in the class's field order; ``check``
    validates relations between fields of a parsed message.

    Both are generated as straight-line Python, as ``collections.namedtuple`` and ``dataclasses`` generate their
    methods: a loop over field codecs costs twice as much per message. For FindClosest they read::

        def encode(msg):
            f0, f1, f2, f3 = msg
            return _head.pack(1, f0, f1 - 1, _3_to_bytes(f3)) + (_2_packed.get(f2) or _2_pack(f2))

        def decode(interned, raw):
            f0, f1, f3 = _head_in.unpack_from(raw)
            offset = 33
            f2 = interned.get(raw[offset:]) or _2_unpack_last(interned, raw, offset)
            return _new(_cls, (f0, f1 + 1, f2, _3_from_bytes(f3)))

    The source holds only names and numbers from the schema, never data from the network.
    """
    if len(fields) != len(cls._fields):
        raise TypeError(f"{cls.__name__} has {len(cls._fields)} fields, its schema {len(fields)}")
    names = [f"f{index}" for index in range(len(fields))]
    fixed = [(index, field) for index, field in enumerate(fields) if field.fmt]
    variable = [(index, field) for index, field in enumerate(fields) if not field.fmt]
    fmt = "".join(field.fmt for _, field in fixed)
    namespace = {"_head": struct.Struct(">B" + fmt), "_head_in": struct.Struct(">x" + fmt), "_cls": cls,
                 "_new": tuple.__new__, "_trailing": trailing, "_check": check}
    for index, field in enumerate(fields):
        namespace.update({f"_{index}_{name}": helper for name, helper in (field.helpers or {}).items()})

    def source(template: str, index: int) -> str:
        return template.format(v=names[index], h=f"_{index}_")

    head = ", ".join([str(kind)] + [source(field.pack, index) for index, field in fixed])
    packed = " + ".join([f"_head.pack({head})"] + [source(field.pack, index) for index, field in variable])
    lines = ["def encode(msg):", f"    {_items(names)} = msg", f"    return {packed}", "", "def decode(interned, raw):"]
    if fixed:
        lines.append(f"    {_items([names[index] for index, _ in fixed])} = _head_in.unpack_from(raw)")
    lines.append(f"    offset = {namespace['_head'].size}")
    ends_checked = bool(variable and variable[-1][1].last)  # the last field's own statement refuses trailing bytes
    for index, field in variable:
        template = field.last if ends_checked and index == variable[-1][0] else field.unpack
        lines += ["    " + line for line in source(template, index).splitlines()]
    if not ends_checked:
        lines += ["    if offset != len(raw):", "        raise _trailing(raw, offset)"]
    values = [source(field.unpack, index) if field.fmt else names[index] for index, field in enumerate(fields)]
    message = f"_new(_cls, ({_items(values)}))"
    lines += [f"    msg = {message}", "    _check(msg)", "    return msg"] if check else [f"    return {message}"]
    exec(compile("\n".join(lines) + "\n", f"<p2pzmq.wire {cls.__name__}>", "exec"), namespace)
    return namespace["encode"], namespace["decode"]


def _items(names: list[str]) -> str:
    """``names`` as the items of a tuple (one item needs its comma)."""
    return ", ".join(names) + ("," if len(names) == 1 else "")
