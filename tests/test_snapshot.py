"""The snapshot file format (p2pzmq/snapshot.py): round trips on seeded random networks, and every way a file can
be wrong refused with one line."""
from __future__ import annotations

import hashlib
import json
import os
import random
import struct

import pytest

from p2pzmq import snapshot as s
from p2pzmq.errors import P2PError
from p2pzmq.ids import new_id

pytestmark = pytest.mark.timeout(60)


def random_snapshot(seed: int, peers: int, max_table: int = 20) -> s.Snapshot:
    rng = random.Random(seed)
    ids = [new_id(rng) for _ in range(peers)]
    tables = [[owner, *rng.sample([i for i in range(peers) if i != owner], min(peers - 1, rng.randrange(max_table)))]
              for owner in range(peers)]
    streams = {"ids": random.Random(seed).getstate(), "cookies": random.Random(seed + 1).getstate()}
    gauss = random.Random(seed)
    gauss.gauss(0, 1)  # a state whose gauss_next is a float
    streams["gauss"] = gauss.getstate()
    return s.Snapshot(protocol="original", settings={"metric": "xor", "table_capacity": 160, "evict_after": 0},
                      metric="xor", seed=seed if seed % 3 else None, ids=ids, tables=tables, streams=streams)


@pytest.mark.parametrize("seed", range(12))
def test_round_trip_on_seeded_random_networks(tmp_path, seed):
    saved = random_snapshot(seed, 1 + seed * 7)
    path = tmp_path / "net.snap"
    size = s.write(str(path), saved)
    assert size == path.stat().st_size
    assert s.read(str(path)) == saved
    assert s.decode(s.encode(saved)) == saved
    assert os.listdir(tmp_path) == ["net.snap"]  # no temporary file left behind


def test_a_restored_stream_goes_on_as_the_saved_one(tmp_path):
    rng = random.Random(5)
    rng.random()
    saved = random_snapshot(1, 3)
    saved = s.Snapshot(**{**saved.__dict__, "streams": {"ids": rng.getstate()}})
    s.write(str(tmp_path / "a"), saved)
    restored = random.Random()
    restored.setstate(s.read(str(tmp_path / "a")).streams["ids"])
    assert [restored.random() for _ in range(50)] == [rng.random() for _ in range(50)]


def test_the_layout_is_as_documented():
    saved = random_snapshot(3, 4)
    data = s.encode(saved)
    assert data[:8] == b"P2PZSNAP"
    (length,) = struct.unpack_from("<I", data, 8)
    header = json.loads(data[12:12 + length])
    assert header["format"] == s.VERSION == 1
    assert (header["peers"], header["entries"]) == (4, sum(map(len, saved.tables)))
    offset = 12 + length
    assert int.from_bytes(data[offset:offset + 20], "big") == saved.ids[0]
    assert struct.unpack_from("<I", data, offset + 80)[0] == len(saved.tables[0])
    assert data[-32:] == hashlib.sha256(data[:-32]).digest()


def test_writing_replaces_a_file_whole(tmp_path):
    path = str(tmp_path / "net.snap")
    s.write(path, random_snapshot(1, 30))
    s.write(path, random_snapshot(2, 3))
    assert s.read(path) == random_snapshot(2, 3)


def test_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def broken(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError):
        s.write(str(tmp_path / "net.snap"), random_snapshot(1, 3))
    assert os.listdir(tmp_path) == []


def refused(data: bytes, capacity=None) -> str:
    with pytest.raises(s.SnapshotError) as caught:
        s.decode(data, "f.snap", capacity)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("f.snap")
    assert isinstance(caught.value, P2PError)
    return message


def rebuilt(header_changes: dict | None = None, ids: bytes | None = None, lengths: list[int] | None = None,
            entries: list[int] | None = None, base: s.Snapshot | None = None) -> bytes:
    """A file with a valid checksum around parts changed on purpose (so the check that refuses it is the one
    under test, not the checksum)."""
    base = base or random_snapshot(4, 5)
    data = s.encode(base)
    (length,) = struct.unpack_from("<I", data, 8)
    header = json.loads(data[12:12 + length])
    n = header["peers"]
    offset = 12 + length
    raw_ids = data[offset:offset + 20 * n]
    raw_lengths = list(struct.unpack_from(f"<{n}I", data, offset + 20 * n))
    raw_entries = list(struct.unpack_from(f"<{header['entries']}I", data, offset + 24 * n))
    ids = raw_ids if ids is None else ids
    lengths = raw_lengths if lengths is None else lengths
    entries = raw_entries if entries is None else entries
    header.update(header_changes or {})
    header.setdefault("peers", n)
    raw = json.dumps(header).encode()
    body = (b"P2PZSNAP" + struct.pack("<I", len(raw)) + raw + ids + struct.pack(f"<{len(lengths)}I", *lengths)
            + struct.pack(f"<{len(entries)}I", *entries))
    return body + hashlib.sha256(body).digest()


def test_the_rebuilt_file_is_accepted_unchanged():
    assert s.decode(rebuilt()) == random_snapshot(4, 5)


def test_every_truncation_is_refused():
    data = s.encode(random_snapshot(4, 5))
    for size in range(len(data)):
        message = refused(data[:size])
        assert "truncated" in message or "unreadable header" in message, (size, message)


def test_a_foreign_file_is_refused():
    assert "not a p2pzmq snapshot" in refused(b"# a TGF file\n1 2\n#\n1 1\n")
    assert "not a p2pzmq snapshot" in refused(b"\x89PNG\r\n\x1a\n" + bytes(100))


def test_another_format_version_is_refused():
    assert "format 2" in refused(rebuilt({"format": 2}))
    assert "format" in refused(rebuilt({"format": "1"}))


def test_trailing_bytes_are_refused():
    assert "after its end" in refused(s.encode(random_snapshot(4, 5)) + b"x")


def test_every_flipped_byte_after_the_header_is_refused():
    data = bytearray(s.encode(random_snapshot(4, 5)))
    (length,) = struct.unpack_from("<I", data, 8)
    for at in range(12 + length, len(data)):
        damaged = bytearray(data)
        damaged[at] ^= 0x40
        assert "damaged" in refused(bytes(damaged))


def test_a_damaged_header_is_refused():
    data = bytearray(s.encode(random_snapshot(4, 5)))
    data[12] = ord("[")
    refused(bytes(data))
    huge = bytes(data[:8]) + struct.pack("<I", 1 << 30) + bytes(data[12:])
    assert "header of" in refused(huge)


@pytest.mark.parametrize("changes, words", [
    ({"peers": 0}, "out of range"), ({"peers": -1}, "out of range"), ({"entries": -1}, "out of range"),
    ({"peers": 2**40}, "out of range"), ({"seed": "1"}, "seed"), ({"seed": 1.5}, "seed"),
    ({"protocol": 3}, "'protocol'"), ({"settings": []}, "'settings'"), ({"metric": None}, "'metric'"),
    ({"streams": None}, "'streams'"), ({"peers": True}, "'peers'"),
])
def test_header_fields_out_of_range_are_refused(changes, words):
    assert words in refused(rebuilt(changes))


@pytest.mark.parametrize("state", [
    None, [3, [0] * 624, None], [2, [0] * 625, None], [3, [0] * 624 + [625], None], [3, [-1] + [0] * 624, None],
    [3, [2**32] + [0] * 624, None], [3, [0] * 625, "x"], [3, ["0"] * 625, None],
])
def test_invalid_stream_states_are_refused(state):
    assert "random stream 'ids'" in refused(rebuilt({"streams": {"ids": state}}))


def test_a_table_naming_an_unknown_peer_is_refused():
    base = random_snapshot(4, 5)
    entries = [index for table in base.tables for index in table]
    entries[-1] = 5
    assert "naming peer number 5" in refused(rebuilt(entries=entries, base=base))


def test_a_duplicated_id_is_refused():
    base = random_snapshot(4, 5)
    ids = b"".join(peer_id.to_bytes(20, "big") for peer_id in [*base.ids[:4], base.ids[1]])
    assert f"peer {base.ids[1]} twice" in refused(rebuilt(ids=ids, base=base))


def test_a_table_naming_a_peer_twice_is_refused():
    base = s.Snapshot(**{**random_snapshot(4, 5).__dict__, "tables": [[0, 1], [1], [2], [3], [4]]})
    assert f"peer {base.ids[0]}'s table names a peer twice" in refused(rebuilt(entries=[0, 0, 1, 2, 3, 4], base=base))


def test_lengths_that_disagree_with_the_header_are_refused():
    base = random_snapshot(4, 5)
    lengths = [len(table) for table in base.tables]
    lengths[0] += 1
    assert "header says" in refused(rebuilt(lengths=lengths, base=base))


def test_a_table_over_capacity_is_refused():
    base = random_snapshot(4, 30)
    longest = max(map(len, base.tables))
    asked = []

    def capacity(protocol, settings):
        asked.append((protocol, settings))
        return longest - 1

    assert f"over its capacity {longest - 1}" in refused(s.encode(base), capacity)
    assert asked == [("original", base.settings)]
    assert s.decode(s.encode(base), capacity=lambda *_: longest) == base
    assert s.decode(s.encode(base), capacity=lambda *_: None) == base


def test_an_unreadable_path_is_one_line(tmp_path):
    with pytest.raises(s.SnapshotError, match="cannot read snapshot .*missing"):
        s.read(str(tmp_path / "missing"))
    with pytest.raises(s.SnapshotError, match="cannot read snapshot"):
        s.read(str(tmp_path))
