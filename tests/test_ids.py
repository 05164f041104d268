"""Ids, cookies and discovery targets (docs/DESIGN.md §4.1, §4.2, §4.6): pure functions, checked exhaustively."""
from __future__ import annotations

import hashlib
import random

import pytest

from p2pzmq.ids import (
    ID_BITS, ID_BYTES, MAX_COOKIE, discovery_targets, id_from_bytes, id_to_bytes, new_cookie, new_id, parse_id,
    xor_distance,
)

pytestmark = pytest.mark.timeout(30)

TOP = 2**160 - 1


def sample_ids(seed: int, count: int) -> list[int]:
    rng = random.Random(seed)
    return [0, 1, 2**159, TOP] + [new_id(rng) for _ in range(count)]


def test_constants():
    assert (ID_BITS, ID_BYTES, MAX_COOKIE) == (160, 20, 4294967296)


def test_new_id_is_sha1_of_20_random_bytes():
    for seed in range(20):
        raw = random.Random(seed).randbytes(20)
        assert new_id(random.Random(seed)) == int.from_bytes(hashlib.sha1(raw).digest(), "big")


def test_new_id_is_deterministic_by_seed_and_differs_across_seeds():
    first = [new_id(random.Random(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    rng_a, rng_b = random.Random(7), random.Random(7)
    assert [new_id(rng_a) for _ in range(50)] == [new_id(rng_b) for _ in range(50)]
    assert len({new_id(random.Random(seed)) for seed in range(200)}) == 200


def test_new_id_range_and_top_bits_used():
    rng = random.Random(3)
    ids = [new_id(rng) for _ in range(2000)]
    assert all(0 <= i < 2**160 for i in ids)
    assert len(set(ids)) == len(ids)
    assert any(i >> 159 for i in ids) and any(not i >> 159 for i in ids)  # the full width is in use


def test_new_id_consumes_exactly_20_bytes():
    rng, twin = random.Random(11), random.Random(11)
    new_id(rng)
    twin.randbytes(20)
    assert rng.random() == twin.random()


def test_new_cookie_range_and_determinism():
    rng = random.Random(5)
    cookies = [new_cookie(rng) for _ in range(5000)]
    assert all(1 <= c <= MAX_COOKIE for c in cookies)
    assert len(set(cookies)) > 4990
    rng_a, rng_b = random.Random(5), random.Random(5)
    assert [new_cookie(rng_a) for _ in range(100)] == [new_cookie(rng_b) for _ in range(100)]
    assert new_cookie(random.Random(9)) == random.Random(9).getrandbits(32) + 1


class _Extreme(random.Random):
    """A Random whose random bits are all zeros or all ones, to pin the bounds down."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def getrandbits(self, k: int) -> int:
        return (1 << k) - 1 if self.high else 0


def test_new_cookie_bounds_are_1_and_2_to_the_32_inclusive():
    assert new_cookie(_Extreme(high=False)) == 1
    assert new_cookie(_Extreme(high=True)) == 2**32


def test_id_bytes_round_trip():
    for peer_id in sample_ids(1, 500):
        raw = id_to_bytes(peer_id)
        assert isinstance(raw, bytes) and len(raw) == 20
        assert raw == peer_id.to_bytes(20, "big")
        assert id_from_bytes(raw) == peer_id
    assert id_to_bytes(0) == bytes(20)
    assert id_to_bytes(TOP) == b"\xff" * 20
    assert id_to_bytes(1) == bytes(19) + b"\x01"


@pytest.mark.parametrize("bad", [-1, -(2**160), 2**160, 2**161, 2**200])
def test_id_to_bytes_rejects_out_of_range(bad):
    with pytest.raises(ValueError):
        id_to_bytes(bad)


@pytest.mark.parametrize("length", [0, 1, 19, 21, 40])
def test_id_from_bytes_rejects_wrong_length(length):
    with pytest.raises(ValueError):
        id_from_bytes(b"\x01" * length)


def test_xor_distance():
    ids = sample_ids(2, 60)
    for a in ids:
        assert xor_distance(a, a) == 0
        for b in ids[:20]:
            assert xor_distance(a, b) == xor_distance(b, a) == a ^ b
            assert (xor_distance(a, b) == 0) == (a == b)
            for c in ids[:5]:
                assert xor_distance(a, c) <= xor_distance(a, b) + xor_distance(b, c)


def test_discovery_targets_exact_list():
    for own in sample_ids(4, 100):
        targets = discovery_targets(own)
        assert len(targets) == 160
        assert targets[-1] == own
        assert targets[:-1] == [own ^ 2**k for k in range(158, -1, -1)]
        assert set(targets[:-1]) == {own ^ 2**k for k in range(159)}
        assert len(set(targets)) == 160


def test_discovery_targets_never_flip_bit_159_and_go_farthest_first():
    for own in sample_ids(6, 100):
        targets = discovery_targets(own)
        assert all(t >> 159 == own >> 159 for t in targets)
        assert own ^ 2**159 not in targets
        assert all(0 <= t < 2**160 for t in targets)
        distances = [t ^ own for t in targets]
        assert distances == sorted(distances, reverse=True)
        assert distances[0] == 2**158 and distances[-2] == 1 and distances[-1] == 0
        assert all(bin(d).count("1") == 1 for d in distances[:-1])


def test_discovery_targets_of_the_extremes():
    assert discovery_targets(0)[:3] == [2**158, 2**157, 2**156]
    assert discovery_targets(0)[-3:] == [2, 1, 0]
    assert discovery_targets(TOP)[0] == TOP - 2**158
    assert discovery_targets(TOP)[-2:] == [TOP - 1, TOP]


@pytest.mark.parametrize("text, expected", [("0", 0), ("7", 7), ("007", 7), (str(TOP), TOP)])
def test_parse_id_reads_ascii_decimal_text(text, expected):
    assert parse_id(text) == expected


@pytest.mark.parametrize("value", [str(TOP + 1), "1" * 50, "", "-1", "+1", " 1", "1 ", "1.0", "1e3", "0x10",
                                   "\u0663", "\uff11", "1_000", 5, 5.0, None, b"5", ["5"]])
def test_parse_id_refuses_everything_else(value):
    with pytest.raises(ValueError):
        parse_id(value)
