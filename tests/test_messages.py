"""The wire codec: round trips, and every malformed input raises ProtocolError (never anything else)."""
import random

import msgpack
import pytest

from p2pzmq import messages as m
from p2pzmq.errors import ProtocolError
from p2pzmq.table import Contact

pytestmark = pytest.mark.timeout(60)

A = Contact(2**160 - 1, "inproc://x/server/1", "inproc://x/client/1")
B = Contact(12345, "tcp://127.0.0.1:4000", "tcp://127.0.0.1:4001")

SAMPLES = [
    m.GetPeers(1, 1, A),
    m.FindClosest(2**64 - 1, 2**32, B, 2**160 - 1),
    m.UpdatePeers(77, [A, B]),
    m.ClientPeers(5, 6),
    m.FindPeers(7, 8, [0, 1, 2**159]),
    m.Join(9, 10, B),
    m.Refresh(11, 12),
    m.PeersReply(13, 14, [B, A]),
    m.ClosestReply(15, 16, A),
    m.FoundPeers(17, 18, [A, B], [1, 0, 1]),
    m.Done(19, 20),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda msg: type(msg).__name__)
def test_round_trip(msg):
    assert m.Codec().decode(m.encode(msg)) == msg


def test_codec_shares_one_contact_object_per_peer():
    codec = m.Codec()
    first = codec.decode(m.encode(m.ClosestReply(1, 1, A))).contact
    second = codec.decode(m.encode(m.PeersReply(1, 1, [A]))).table[0]
    assert first is second


def _packed(*body):
    return [msgpack.packb(list(body), use_bin_type=True)]


ID = (5).to_bytes(20, "big")
CONTACT = [ID, "inproc://a", "inproc://b"]

BAD = {
    "two frames": [b"a", b"b"],
    "not msgpack": [b"\xc1"],
    "truncated": [m.encode(SAMPLES[1])[0][:-3]],
    "not an array": [msgpack.packb({"k": 1})],
    "empty array": _packed(),
    "unknown kind": _packed(99, 1, 1),
    "kind is a string": _packed("get_peers", 1, 1, CONTACT),
    "too few fields": _packed(0, 1, 1),
    "too many fields": _packed(0, 1, 1, CONTACT, 4),
    "negative request id": _packed(0, -1, 1, CONTACT),
    "cookie zero": _packed(0, 1, 0, CONTACT),
    "cookie too big": _packed(0, 1, 2**32 + 1, CONTACT),
    "cookie is bool": _packed(0, 1, True, CONTACT),
    "short id": _packed(0, 1, 1, [b"\x01" * 19, "inproc://a", "inproc://b"]),
    "id as int": _packed(0, 1, 1, [5, "inproc://a", "inproc://b"]),
    "endpoint scheme": _packed(0, 1, 1, [ID, "http://a", "inproc://b"]),
    "endpoint bytes": _packed(0, 1, 1, [ID, b"inproc://a", "inproc://b"]),
    "contact of two": _packed(0, 1, 1, [ID, "inproc://a"]),
    "table too long": _packed(2, 1, [CONTACT] * 161),
    "picks out of range": _packed(9, 1, 1, [CONTACT], [1]),
    "target as string": _packed(1, 1, 1, CONTACT, "5"),
}


@pytest.mark.parametrize("frames", BAD.values(), ids=BAD.keys())
def test_malformed_raises_protocol_error(frames):
    with pytest.raises(ProtocolError):
        m.Codec().decode(frames)


def test_oversized_message_is_refused_before_parsing():
    codec = m.Codec(max_bytes=100)
    with pytest.raises(ProtocolError, match="exceeds"):
        codec.decode(m.encode(m.PeersReply(1, 1, [A, B])))


def test_random_bytes_only_ever_raise_protocol_error():
    rng = random.Random(7)
    codec = m.Codec()
    valid = [m.encode(sample)[0] for sample in SAMPLES]
    for _ in range(5000):
        if rng.random() < 0.5:
            raw = rng.randbytes(rng.randrange(0, 64))
        else:  # flip bytes of a valid message: deep, plausible corruption
            raw = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 4)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            raw = bytes(raw)
        try:
            codec.decode([raw])
        except ProtocolError:
            pass


def test_encode_refuses_foreign_objects():
    with pytest.raises(ProtocolError):
        m.encode(("get_peers", 1))
