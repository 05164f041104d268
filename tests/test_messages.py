"""The wire codec: every kind round-trips at its edge values, the bytes of a message are as wire.py documents them,
every truncation, bit flip or random frame is refused with ProtocolError (never another exception), and contacts are
packed once and interned as one object per peer."""
import random
import struct
from typing import NamedTuple

import pytest

from p2pzmq import messages as m
from p2pzmq import wire
from p2pzmq.config import Config
from p2pzmq.errors import ProtocolError
from p2pzmq.contact import Contact
from p2pzmq.protocols.original.table import CAPACITY

pytestmark = pytest.mark.timeout(60)

TOP = 2**160 - 1
A = Contact(TOP, "inproc://x/server/1", "inproc://x/client/1")
B = Contact(0, "tcp://127.0.0.1:4000", "tcp://127.0.0.1:4001")
LONGEST = Contact(12345, "tcp://" + "é" * 250, "inproc://" + "字" * 247)  # 256 characters, 2 and 3 UTF-8 bytes each

SAMPLES = [
    m.GetPeers(0, 1, A),
    m.FindClosest(2**64 - 1, 2**32, B, TOP),
    m.UpdatePeers(2**32, [A, B, LONGEST]),
    m.ClientPeers(5, 6),
    m.FindPeers(7, 8, [0, 1, TOP]),
    m.Join(9, 10, LONGEST),
    m.Refresh(11, 12),
    m.PeersReply(13, 14, [B, A]),
    m.ClosestReply(15, 16, A),
    m.FoundPeers(17, 18, [A, B], [1, 0, 1]),
    m.Done(2**64 - 1, 2**32),
    m.Leave(19, 20, B),
    m.Depart(21, 22),
    m.Ping(23, 24, A),
    m.FindNode(25, 26, B, 0),
    m.NodesReply(27, 28, [A, LONGEST]),
    m.ClientNodes(29, 30, TOP, 0),
    m.ClientCounts(31, 32),
    m.PeerCounts(33, 34, 0, 2**64 - 1, 1, 2, 3, 4),
]


def _contacts(count: int) -> list[Contact]:
    return [Contact(TOP - index, f"tcp://127.0.0.1:{index}", f"inproc://p/client/{index}") for index in range(count)]


AT_THE_LIMITS = [
    m.UpdatePeers(1, []), m.FindPeers(1, 1, []), m.PeersReply(1, 1, []), m.FoundPeers(1, 1, [], []),
    m.NodesReply(1, 1, []),
    m.PeersReply(1, 1, _contacts(m.MAX_TABLE)),
    m.FoundPeers(1, 1, _contacts(m.MAX_TABLE), list(range(m.MAX_TABLE)) * 2),
    m.UpdatePeers(1, _contacts(CAPACITY)),
    m.NodesReply(1, 1, _contacts(m.MAX_NODES)),
    m.FindPeers(1, 1, [TOP - index for index in range(m.MAX_TARGETS)]),
]


def test_the_samples_cover_every_kind_and_the_wire_numbers_never_change():
    assert sorted(m.KINDS.index(type(msg)) for msg in SAMPLES) == list(range(len(m.KINDS)))
    assert [cls.__name__ for cls in m.KINDS] == [
        "GetPeers", "FindClosest", "UpdatePeers", "ClientPeers", "FindPeers", "Join", "Refresh", "PeersReply",
        "ClosestReply", "FoundPeers", "Done", "Leave", "Depart", "Ping", "FindNode", "NodesReply", "ClientNodes",
        "ClientCounts", "PeerCounts"]
    assert [m.encode(msg)[0][0] for msg in SAMPLES] == [m.KINDS.index(type(msg)) for msg in SAMPLES]


def test_every_kind_is_a_request_a_command_or_a_reply():
    groups = m.REQUESTS + m.COMMANDS + m.REPLIES
    assert sorted(groups, key=m.KINDS.index) == list(m.KINDS)


@pytest.mark.parametrize("msg", SAMPLES + AT_THE_LIMITS, ids=lambda msg: type(msg).__name__)
def test_round_trip(msg):
    decoded = m.Codec(max_bytes=1 << 22).decode(m.encode(msg))
    assert decoded == msg and type(decoded) is type(msg)
    for value in decoded:
        items = value if isinstance(value, list) else [value]
        assert all(type(item) in (int, Contact) for item in items)


def test_the_bytes_of_a_message_are_as_documented():
    raw = m.encode(m.FindClosest(1, 2, Contact(5, "inproc://a", "tcp://b:1"), 7))
    assert raw == [bytes([1]) + (1).to_bytes(8, "big") + (2 - 1).to_bytes(4, "big") + (7).to_bytes(20, "big")
                   + (5).to_bytes(20, "big") + struct.pack(">HH", 10, 9) + b"inproc://a" + b"tcp://b:1"]
    assert m.encode(m.FoundPeers(3, 2**32, [], [])) == [bytes([9]) + (3).to_bytes(8, "big") + b"\xff" * 4
                                                         + bytes(2) + bytes(4)]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda msg: type(msg).__name__)
def test_every_truncation_and_any_trailing_byte_is_refused(msg):
    raw = m.encode(msg)[0]
    warm = m.Codec()
    warm.decode([raw])  # its contacts are known now: the lookups by bytes must not accept a cut either
    for codec in (m.Codec(), warm):
        for cut in range(len(raw)):
            with pytest.raises(ProtocolError) as refused:
                codec.decode([raw[:cut]])
            assert refused.value.reason == "truncated", cut
        for extra in (b"\x00", bytes(3), raw):  # the message twice: as many bytes after its end as before
            with pytest.raises(ProtocolError, match=f"^{len(extra)} bytes after the last field$") as refused:
                codec.decode([raw + extra])
            assert refused.value.reason == "trailing"


def test_a_known_contact_is_recognised_only_at_its_own_offset():
    """A decoder that knows a contact's bytes takes them for it only where a contact starts: the same bytes one
    byte further on are part of another (here, a contact whose lengths run past the end)."""
    codec = m.Codec()
    known = m.encode(m.ClosestReply(1, 1, A))[0]
    codec.decode([known])
    with pytest.raises(ProtocolError) as refused:
        codec.decode([known[:13] + b"\x00" + known[13:]])
    assert refused.value.reason == "truncated"


def _head(kind: int) -> bytes:
    return struct.pack(">BQI", kind, 1, 0)


def _contact(peer_id: bytes = bytes(20), server: bytes = b"inproc://a", client: bytes = b"inproc://b") -> bytes:
    return peer_id + struct.pack(">HH", len(server), len(client)) + server + client


BAD = {
    "no frame": ([], "frames"),
    "two frames": ([b"a", b"b"], "frames"),
    "empty frame": ([b""], "truncated"),
    "first unknown kind": ([bytes([len(m.KINDS)]) + bytes(12)], "unknown_kind"),
    "kind 255": ([b"\xff"], "unknown_kind"),
    "head cut short": ([bytes([10]) + bytes(11)], "truncated"),
    "contact runs past the end": ([_head(0) + _contact()[:-1]], "truncated"),
    "contact lengths missing": ([_head(0) + bytes(21)], "truncated"),
    "endpoint scheme": ([_head(0) + _contact(server=b"http://a")], "bad_field"),
    "endpoint empty": ([_head(0) + _contact(client=b"")], "bad_field"),
    "endpoint of 257 characters": ([_head(0) + _contact(server=b"inproc://" + b"a" * 248)], "bad_field"),
    "endpoint above 1024 bytes": ([_head(0) + _contact(server=b"tcp://" + b"a" * 1019)], "bad_field"),
    "endpoint not UTF-8": ([_head(0) + _contact(server=b"inproc://\xff")], "bad_field"),
    "endpoint with a surrogate": ([_head(0) + _contact(server=b"inproc://\xed\xa0\x80")], "bad_field"),
    "table above the limit": ([_head(7) + struct.pack(">H", m.MAX_TABLE + 1) + _contact() * 2], "bad_field"),
    "update of 161": ([struct.pack(">BI", 2, 0) + struct.pack(">H", CAPACITY + 1)], "bad_field"),
    "nodes above the limit": ([_head(15) + struct.pack(">H", m.MAX_NODES + 1)], "bad_field"),
    "targets above the limit": ([_head(4) + struct.pack(">I", m.MAX_TARGETS + 1)], "bad_field"),
    "targets past the end": ([_head(4) + struct.pack(">I", 2) + bytes(20)], "truncated"),
    "pick outside the contacts": ([_head(9) + struct.pack(">H", 1) + _contact() + struct.pack(">IH", 1, 1)],
                                  "bad_field"),
    "pick outside an empty list": ([_head(9) + struct.pack(">HIH", 0, 1, 0)], "bad_field"),
    "pick far outside": ([_head(9) + struct.pack(">H", 1) + _contact() + struct.pack(">IH", 1, 65535)],
                         "bad_field"),
    "pick cut in half": ([_head(9) + struct.pack(">H", 1) + _contact() + struct.pack(">IB", 1, 0)], "truncated"),
    "pick well outside the contacts": ([_head(9) + struct.pack(">H", 1) + _contact() + struct.pack(">IH", 1, 2)],
                                       "bad_field"),
    "picks above the limit": ([_head(9) + struct.pack(">HI", 0, m.MAX_TARGETS + 1)], "bad_field"),
}


@pytest.mark.parametrize("frames, reason", BAD.values(), ids=BAD.keys())
def test_malformed_raises_protocol_error_with_its_reason(frames, reason):
    with pytest.raises(ProtocolError) as refused:
        m.Codec().decode(frames)
    assert refused.value.reason == reason


def test_an_unknown_kind_is_named_in_the_error():
    with pytest.raises(ProtocolError, match="^unknown message kind 200$"):
        m.Codec().decode([bytes([200, 0, 7])])


def test_oversized_message_is_refused_before_parsing():
    codec = m.Codec(max_bytes=100)
    with pytest.raises(ProtocolError, match="exceeds") as refused:
        codec.decode(m.encode(m.PeersReply(1, 1, [A, B])))
    assert refused.value.reason == "too_large"


def _corrupt(rng: random.Random, valid: list[bytes]) -> bytes:
    """Random frames, bytes replaced or bits flipped in valid messages, or a valid message cut and flipped."""
    choice = rng.randrange(4)
    if choice == 0:
        return bytes([rng.randrange(len(m.KINDS) + 1)]) + rng.randbytes(rng.randrange(0, 80))
    raw = bytearray(rng.choice(valid))
    if choice == 3:
        raw = raw[:rng.randrange(1, len(raw) + 1)]
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(len(raw))
        raw[at] = rng.randrange(256) if choice == 1 else raw[at] ^ (1 << rng.randrange(8))
    return bytes(raw)


def test_random_frames_and_bit_flips_only_ever_raise_protocol_error():
    rng = random.Random(7)
    codec = m.Codec()
    valid = [m.encode(sample)[0] for sample in SAMPLES]
    refused = accepted = 0
    for _ in range(20_000):
        raw = _corrupt(rng, valid)
        try:
            msg = codec.decode([raw])
        except ProtocolError:
            refused += 1
            continue
        accepted += 1
        assert m.encode(msg) == [raw]  # whatever is accepted is a valid message, and it has one encoding
    assert refused > 10_000 and accepted > 1_000  # both paths were exercised


def test_a_codec_shares_one_contact_object_per_peer():
    codec = m.Codec()
    first = codec.decode(m.encode(m.ClosestReply(1, 1, A))).contact
    table = codec.decode(m.encode(m.PeersReply(1, 1, [B, A]))).table
    again = codec.decode(m.encode(m.FindClosest(2, 2, A, 5))).sender
    nodes = codec.decode(m.encode(m.NodesReply(3, 3, [A]))).contacts
    assert first is table[1] is again is nodes[0] and first == A
    other = m.Codec().decode(m.encode(m.ClosestReply(1, 1, A))).contact
    assert other == first and other is not first  # each codec has its own, and values never depend on it


def test_the_contact_caches_are_bounded(monkeypatch):
    monkeypatch.setattr(wire, "MAX_SHARED_CONTACTS", 3)
    codec = m.Codec()
    many = _contacts(10)
    for contact in many:
        assert codec.decode(m.encode(m.Join(1, 1, contact))).contact == contact
        assert 1 <= len(codec._contacts) <= 3 and len(wire._packed) <= 3  # never above the bound
    assert codec.decode(m.encode(m.PeersReply(1, 1, many))).table == many


def test_each_contact_is_packed_once(monkeypatch):
    packed = []
    monkeypatch.setattr(wire, "id_to_bytes", lambda peer_id: packed.append(peer_id) or peer_id.to_bytes(20, "big"))
    fresh = Contact(2**100 + 17, "inproc://once/server", "inproc://once/client")
    for _ in range(3):
        m.encode(m.GetPeers(1, 1, fresh))
        m.encode(m.PeersReply(1, 1, [fresh, fresh]))
    assert packed == [fresh.id]
    received = m.Codec().decode([m.encode(m.Ping(1, 1, fresh))[0].replace(b"once", b"recv")]).sender
    assert m.encode(m.Join(1, 1, received))[0].endswith(b"inproc://recv/serverinproc://recv/client")
    assert packed == [fresh.id]  # a decoded contact's bytes were kept for sending it on


@pytest.mark.parametrize("msg", [
    m.GetPeers(1, 0, A), m.Done(1, 2**32 + 1), m.Done(-1, 1), m.Refresh(2**64, 1),
    m.FindClosest(1, 1, A, 2**160), m.FindPeers(1, 1, [-1]), m.ClosestReply(1, 1, Contact(-5, "inproc://a", "x")),
    m.Join(1, 1, Contact(1, "inproc://\ud800", "inproc://b")), m.FoundPeers(1, 1, [A], [1 << 16]),
    m.Leave(1, 1, Contact("1", "inproc://a", "inproc://b")), m.Ping(1, None, A),
], ids=lambda msg: type(msg).__name__)
def test_encode_and_pack_refuse_values_the_wire_cannot_carry(msg):
    with pytest.raises(ProtocolError):
        m.encode(msg)
    with pytest.raises(ProtocolError, match=f"^cannot encode {type(msg).__name__}: "):
        m.pack(type(msg), tuple(msg))


def test_encode_refuses_foreign_objects():
    with pytest.raises(ProtocolError):
        m.encode(("get_peers", 1))
    with pytest.raises(ProtocolError, match="^cannot encode tuple: "):
        m.pack(tuple, ("get_peers", 1))
    with pytest.raises(ProtocolError):
        m.Codec().encode(A)


def test_the_wire_limits_are_part_of_the_protocol():
    """Another implementation must know them: 1,024 contacts in a NodesReply, 100,000 targets in a FindPeers (and
    picks in a FoundPeers), 40,961 contacts in a table read (a Kademlia table's owner and 160 buckets of up to 256),
    256 characters in an endpoint."""
    for kind, count_format, limit in ((15, ">H", 1024), (4, ">I", 100_000), (7, ">H", 40_961)):
        with pytest.raises(ProtocolError, match=f"^{limit + 1} .* exceed the limit of {limit}$"):
            m.Codec().decode([_head(kind) + struct.pack(count_format, limit + 1)])
    with pytest.raises(ProtocolError, match="^100001 picks exceed the limit of 100000$"):
        m.Codec().decode([_head(9) + struct.pack(">HI", 0, 100_001)])
    nodes = m.NodesReply(1, 1, _contacts(1024))
    assert m.Codec(max_bytes=1 << 22).decode(m.encode(nodes)) == nodes


def test_an_endpoint_longer_than_256_characters_could_be_is_refused_before_it_is_decoded():
    for length in (1025, 1281):  # 4 bytes a character: no 256-character text is longer than 1,024 bytes
        with pytest.raises(ProtocolError, match="^an endpoint is at most 256 characters$"):
            m.Codec().decode([_head(0) + _contact(server=b"tcp://" + b"\xff" * (length - 6))])


def test_an_endpoint_of_256_four_byte_characters_is_accepted():
    """The bound on an endpoint's bytes only refuses what could not be 256 characters of UTF-8."""
    widest = Contact(3, "tcp://" + "\U0001f600" * 250, "inproc://" + "\U0001f600" * 247)
    assert len(widest.server.encode()) == 1006 and m.Codec().decode(m.encode(m.Join(1, 1, widest))).contact == widest


def test_the_default_codec_refuses_what_a_socket_would_refuse():
    """``Codec()`` and ``decode`` take frames up to ``Config.max_message_bytes`` (what the sockets let through) and
    refuse a larger one as ``too_large`` without parsing it; a frame of exactly the limit is parsed."""
    limit = Config().max_message_bytes
    targets = (limit - 17) // 20
    whole = m.encode(m.FindPeers(1, 1, list(range(targets))))[0]
    exact = whole + bytes(limit - len(whole))
    assert len(exact) == limit
    for decode in (m.Codec().decode, m.decode):
        with pytest.raises(ProtocolError) as refused:
            decode([exact])
        assert refused.value.reason == "trailing"
        with pytest.raises(ProtocolError) as refused:
            decode([exact + b"\x00"])
        assert refused.value.reason == "too_large"
    assert m.Codec(max_bytes=len(whole)).decode([whole]) == m.FindPeers(1, 1, list(range(targets)))


@pytest.mark.parametrize("kinds", [(0, 2), (0, 0), (1, 2)])
def test_a_schema_whose_kind_numbers_do_not_run_0_1_2_is_refused(monkeypatch, kinds):
    monkeypatch.setattr(m, "SCHEMA", tuple((kind, cls, fields) for kind, (_, cls, fields, *_) in zip(kinds, m.SCHEMA)))
    with pytest.raises(TypeError, match="kind numbers must run 0, 1, 2"):
        m._compile_schema()


class _Pair(NamedTuple):
    first: Contact
    second: object


@pytest.mark.parametrize("second", [wire.CONTACT, wire.ids(3)], ids=["contact", "ids"])
def test_a_contact_followed_by_another_variable_field_is_parsed_up_to_its_own_end(second):
    """Only the field that ends the message may be looked up by the message's tail (the known schema has no contact
    before another variable field, but a kind added to it may)."""
    encode, decode = wire.compile_kind(42, _Pair, (wire.CONTACT, second))
    msg = _Pair(A, B if second is wire.CONTACT else [0, 7, TOP])
    raw = encode(msg)
    interned = {}
    for _ in range(2):  # unknown contacts, then the same bytes known
        assert decode(interned, raw) == msg
        for extra in (b"\x00", bytes(3)):
            with pytest.raises(ProtocolError, match=f"^{len(extra)} bytes after the last field$"):
                decode(interned, raw + extra)


@pytest.mark.parametrize("fields", [(wire.REQUEST_ID,), (wire.REQUEST_ID, wire.COOKIE, wire.CONTACT)])
def test_a_schema_line_with_more_or_fewer_fields_than_its_class_is_refused(fields):
    with pytest.raises(TypeError, match=f"^_Pair has 2 fields, its schema {len(fields)}$"):
        wire.compile_kind(42, _Pair, fields)


def test_an_endpoint_of_1024_bytes_is_refused_for_what_it_says_not_for_its_length():
    """1,024 bytes can be 256 characters: they are decoded, and refused as no URL, not as too long."""
    with pytest.raises(ProtocolError, match="^an endpoint is an inproc:// or tcp:// URL of at most 256 characters$"):
        m.Codec().decode([_head(0) + _contact(server="\U0001f600".encode() * 256)])
