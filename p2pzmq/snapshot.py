"""The snapshot file: a whole network's state in one versioned file (docs/DESIGN.md §13). Pure: no sockets, no
greenlets; the only I/O is reading and writing the file itself.

Layout (integers little-endian)::

    magic            8 bytes   b"P2PZSNAP"
    header length    u32
    header           JSON, UTF-8: format version, protocol, its settings, metric, seed, peer and entry counts,
                     the state of every random stream (``random.Random.getstate()`` as lists)
    ids              peers x 20 bytes, big-endian, in list order (newest first)
    table lengths    peers x u32
    entries          entries x u32: each table, in its wire order, as indexes into the ids
    checksum         32 bytes: SHA-256 of everything before it

A table is stored as indexes, not contacts: endpoints belong to the processes that held the peers, and a restored
network binds new ones. Writing goes to a temporary file in the same directory, renamed over the target once
complete, so a reader never sees half a file. Reading checks everything and raises :class:`SnapshotError` with a
one-line message: a file that is truncated, of another format version, not a snapshot at all, damaged (checksum),
or inconsistent (a table naming an unknown peer or a peer twice, over capacity, a duplicated id, a number out of
range). A file that reads cleanly restores without further checks of its shape.
"""
from __future__ import annotations

import array
import dataclasses
import hashlib
import json
import os
import struct
import sys
from typing import Callable

from .errors import P2PError
from .ids import ID_BYTES

MAGIC = b"P2PZSNAP"
VERSION = 1
_LENGTH = struct.Struct("<I")
_DIGEST = 32
_HEADER_LIMIT = 1 << 24  # a header holds a few random states (about 14 KB each); far more is no snapshot of ours
_U32_MAX = (1 << 32) - 1
#: ``random.Random.getstate()`` is (3, 624 words and the position, gauss_next). An id fills its 20 bytes exactly,
#: so no stored id can be out of range.
_STATE_WORDS = 625


class SnapshotError(P2PError):
    """A snapshot file that cannot be used; the message is one line saying why."""


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A network's saved state.

    ``ids``: every peer's id, newest first; ``tables``: each peer's table in its protocol's wire order, as indexes
    into ``ids``; ``settings``: the protocol's own settings (its descriptor's); ``streams``: name -> the state of a
    random stream, as ``random.Random.getstate()`` returns it.
    """

    protocol: str
    settings: dict
    metric: str
    seed: int | None
    ids: list[int]
    tables: list[list[int]]
    streams: dict


def write(path: str, snapshot: Snapshot) -> int:
    """Write ``snapshot`` to ``path`` atomically (temporary file, then rename); returns the bytes written. Raises
    ``OSError`` as the system does, leaving no temporary file behind."""
    data = encode(snapshot)
    directory, base = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{base}.{os.urandom(6).hex()}.tmp")
    # Created as open() creates files (0666 less the umask), and never over an existing file.
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    return len(data)


def encode(snapshot: Snapshot) -> bytes:
    """The file's bytes for ``snapshot`` (see the module docstring)."""
    lengths = array.array("I", (len(table) for table in snapshot.tables))
    entries = array.array("I")
    for table in snapshot.tables:
        entries.extend(table)
    header = {"format": VERSION, "protocol": snapshot.protocol, "settings": snapshot.settings,
              "metric": snapshot.metric, "seed": snapshot.seed, "peers": len(snapshot.ids), "entries": len(entries),
              "streams": {name: _state_to_json(state) for name, state in snapshot.streams.items()}}
    raw_header = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    body = b"".join([MAGIC, _LENGTH.pack(len(raw_header)), raw_header,
                     b"".join(peer_id.to_bytes(ID_BYTES, "big") for peer_id in snapshot.ids),
                     _little(lengths), _little(entries)])
    return body + hashlib.sha256(body).digest()


def read(path: str, capacity: Callable[[str, dict], int | None] | None = None) -> Snapshot:
    """The snapshot in ``path``, checked whole. ``capacity(protocol, settings)`` is the largest table the file's
    protocol allows (None: no bound). Raises :class:`SnapshotError` (also for a file that cannot be read)."""
    try:
        with open(path, "rb") as source:
            data = source.read()
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {path}: {exc.strerror or exc}") from exc
    return decode(data, path, capacity)


def decode(data: bytes, name: str = "snapshot",
           capacity: Callable[[str, dict], int | None] | None = None) -> Snapshot:
    """The snapshot in ``data`` (``name`` says which file in error messages); see :func:`read`."""
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):
            raise SnapshotError(f"{name} is truncated ({len(data)} bytes)")
        raise SnapshotError(f"{name} is not a p2pzmq snapshot")
    if len(data) < len(MAGIC) + _LENGTH.size + _DIGEST:
        raise SnapshotError(f"{name} is truncated ({len(data)} bytes)")
    (header_length,) = _LENGTH.unpack_from(data, len(MAGIC))
    start = len(MAGIC) + _LENGTH.size
    if header_length > _HEADER_LIMIT:
        raise SnapshotError(f"{name} has a header of {header_length} bytes, more than any snapshot's")
    if len(data) < start + header_length + _DIGEST:
        raise SnapshotError(f"{name} is truncated ({len(data)} bytes)")
    header = _header(data[start:start + header_length], name)
    peers, entries = header["peers"], header["entries"]
    size = start + header_length + peers * (ID_BYTES + 4) + entries * 4 + _DIGEST
    if len(data) < size:
        raise SnapshotError(f"{name} is truncated ({len(data)} bytes of {size})")
    if len(data) > size:
        raise SnapshotError(f"{name} has {len(data) - size} bytes after its end")
    if hashlib.sha256(memoryview(data)[:size - _DIGEST]).digest() != data[size - _DIGEST:]:
        raise SnapshotError(f"{name} is damaged (its checksum does not match)")
    offset = start + header_length
    ids = [int.from_bytes(data[at:at + ID_BYTES], "big") for at in range(offset, offset + peers * ID_BYTES, ID_BYTES)]
    offset += peers * ID_BYTES
    lengths = _unlittle(data[offset:offset + peers * 4])
    flat = _unlittle(data[offset + peers * 4:size - _DIGEST])
    try:
        limit = None if capacity is None else capacity(header["protocol"], header["settings"])
    except P2PError as exc:
        raise SnapshotError(f"{name}: {exc}") from exc
    tables = _tables(ids, lengths, flat, name, limit)
    return Snapshot(protocol=header["protocol"], settings=header["settings"], metric=header["metric"],
                    seed=header["seed"], ids=ids, tables=tables,
                    streams={key: _state_from_json(value, name, key) for key, value in header["streams"].items()})


def _header(raw: bytes, name: str) -> dict:
    """The header's fields, each of the right type and in range (the format version first: a newer file may hold
    anything else)."""
    try:
        header = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise SnapshotError(f"{name} has an unreadable header: {exc}") from exc
    if not isinstance(header, dict) or "format" not in header:
        raise SnapshotError(f"{name} has a header without a format version")
    if header["format"] != VERSION:
        raise SnapshotError(f"{name} is of snapshot format {header['format']!r}; this p2pzmq reads format {VERSION}")
    expected = {"protocol": str, "settings": dict, "metric": str, "peers": int, "entries": int, "streams": dict}
    for key, kind in expected.items():
        if type(header.get(key)) is not kind:
            raise SnapshotError(f"{name}'s header has no valid {key!r}")
    seed = header.get("seed")
    if seed is not None and type(seed) is not int:
        raise SnapshotError(f"{name}'s header has a seed that is not an integer")
    if not 1 <= header["peers"] <= _U32_MAX or not 0 <= header["entries"] <= _U32_MAX:
        raise SnapshotError(f"{name}'s header counts {header['peers']} peers and {header['entries']} entries: "
                            f"out of range")
    return header


def _tables(ids: list[int], lengths: list[int], flat: list[int], name: str, capacity: int | None) -> list[list[int]]:
    """Split ``flat`` into one table per peer, refusing what no network can hold."""
    if len(set(ids)) != len(ids):
        seen: set[int] = set()
        duplicate = next(peer_id for peer_id in ids if peer_id in seen or seen.add(peer_id))
        raise SnapshotError(f"{name} lists peer {duplicate} twice")
    if sum(lengths) != len(flat):
        raise SnapshotError(f"{name}'s tables hold {sum(lengths)} entries, its header says {len(flat)}")
    if flat and max(flat) >= len(ids):
        raise SnapshotError(f"{name} has a table naming peer number {max(flat)}; it holds {len(ids)} peers")
    tables, at = [], 0
    for owner, length in enumerate(lengths):
        if capacity is not None and length > capacity:
            raise SnapshotError(f"{name}: peer {ids[owner]}'s table holds {length} entries, over its capacity "
                                f"{capacity}")
        table = flat[at:at + length]
        if len(set(table)) != length:
            raise SnapshotError(f"{name}: peer {ids[owner]}'s table names a peer twice")
        tables.append(table)
        at += length
    return tables


def _state_to_json(state: tuple) -> list:
    version, words, gauss = state
    return [version, list(words), gauss]


def _state_from_json(value, name: str, key: str) -> tuple:
    """A ``random.Random`` state from its JSON form, checked so that ``setstate`` cannot fail on it later."""
    if (type(value) is list and len(value) == 3 and value[0] == 3 and type(value[1]) is list
            and len(value[1]) == _STATE_WORDS and all(type(word) is int for word in value[1])
            and all(0 <= word <= _U32_MAX for word in value[1][:-1]) and 0 <= value[1][-1] <= 624
            and (value[2] is None or type(value[2]) is float)):
        return value[0], tuple(value[1]), value[2]
    raise SnapshotError(f"{name} has an invalid state for random stream {key!r}")


def _little(values: array.array) -> bytes:
    if sys.byteorder == "big":  # pragma: no cover - the file is little-endian wherever it is written
        values = array.array("I", values)
        values.byteswap()
    return values.tobytes()


def _unlittle(raw: bytes) -> list[int]:
    values = array.array("I")
    values.frombytes(raw)
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    return values.tolist()

