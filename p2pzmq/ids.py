"""Ids, cookies and discovery targets (docs/DESIGN.md §4.1, §4.2, §4.6). Pure: no I/O, no clock, and randomness only from
the caller's seeded ``random.Random``, so a seed makes a whole run reproducible."""
from __future__ import annotations

import hashlib
import random

ID_BITS = 160
ID_BYTES = 20
MAX_COOKIE = 2**32


def new_id(rng: random.Random) -> int:
    """SHA-1 of 20 random bytes, read as a big-endian unsigned 160-bit integer (as the original)."""
    return int.from_bytes(hashlib.sha1(rng.randbytes(ID_BYTES)).digest(), "big")


def new_cookie(rng: random.Random) -> int:
    """A cookie, uniform in 1..2**32 (``getrandbits``: the same distribution as ``randint(1, 2**32)`` at a fifth of
    its cost, and a cookie is drawn for every request)."""
    return rng.getrandbits(32) + 1


def discovery_targets(own_id: int) -> list[int]:
    """The 160 ids a peer looks for, farthest first: ``own_id ^ 2**k`` for k = 158..0, then ``own_id`` itself.

    Bit 159, the top bit, is never flipped, on purpose: the original's best_peers stops one short, and the defaults
    reproduce the original (docs/DESIGN.md §4.6).
    """
    return [own_id ^ (1 << k) for k in range(ID_BITS - 2, -1, -1)] + [own_id]


def parse_id(text: str) -> int:
    """The id a text names: ASCII decimal digits only (no sign, no space, no other script's digits), below 2**160.
    The one parser of ids wherever they arrive as text (control, command line, link, files); ``ValueError`` for
    anything else, an int included."""
    if type(text) is str and text.isascii() and text.isdigit() and len(text) <= 49:  # 2**160 has 49 digits
        value = int(text)
        if value < 1 << ID_BITS:
            return value
    raise ValueError(f"an id is an integer in [0, 2**{ID_BITS}), in decimal digits")


def id_to_bytes(peer_id: int) -> bytes:
    """The id as 20 big-endian bytes (its wire form). Raises ``ValueError`` outside [0, 2**160)."""
    try:
        return peer_id.to_bytes(ID_BYTES, "big")  # refuses what does not fit (the codec's hot path: no range test)
    except OverflowError as exc:
        raise ValueError(f"an id is an integer in [0, 2**{ID_BITS})") from exc


def id_from_bytes(raw: bytes) -> int:
    """The inverse of :func:`id_to_bytes`. Raises ``ValueError`` unless ``raw`` is exactly 20 bytes."""
    if len(raw) != ID_BYTES:
        raise ValueError(f"an id is {ID_BYTES} bytes, not {len(raw)}")
    return int.from_bytes(raw, "big")


def xor_distance(a: int, b: int) -> int:
    """Kademlia's distance between two ids (the ``xor`` metric; the original's calc:distance)."""
    return a ^ b
