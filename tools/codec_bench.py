#!/usr/bin/env python
"""CPU cost of the peer protocol's codec against the msgpack encoding it replaced, measured in the same run.

    python tools/codec_bench.py [--repeat 7] [--quick]

Two figures, each encode + decode with decoders that have seen the contacts before (as in a running network):

* a pair: FindClosest and its ClosestReply, each encoded and decoded (what one discovery step costs the codec);
* a PeersReply carrying a full table of 160 contacts.

The msgpack reference below is the codec p2pzmq used before, cut down to the messages measured but doing the same
work: the same wire form, the same validation, the same sharing of decoded contacts. Times are CPU seconds of this
process (``time.process_time``), best of ``--repeat`` runs, so other jobs on the machine inflate them little.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import timeit

import msgpack

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from p2pzmq import messages as m  # noqa: E402
from p2pzmq.contact import Contact  # noqa: E402
from p2pzmq.errors import ProtocolError  # noqa: E402
from p2pzmq.protocols.original.table import CAPACITY  # noqa: E402

NAMESPACE = "inproc://p2pzmq-12345-1"


class MsgpackReference:
    """The former codec, as it was, for the fields of FindClosest, ClosestReply and PeersReply: an array
    [kind, *fields] in one msgpack frame, ids as 20 bytes, contacts as [id, server, client]; decoding validates every
    field and shares one Contact per id."""

    KINDS = (m.FindClosest, m.PeersReply, m.ClosestReply)

    def __init__(self, max_bytes: int = 1 << 20) -> None:
        self.max_bytes = max_bytes
        self._contacts: dict[bytes, Contact] = {}
        self._kind_of = {cls: number for number, cls in enumerate(self.KINDS)}
        self._decoders = {cls: tuple(self._decoder(name) for name in cls._fields) for cls in self.KINDS}
        pack_contact = self._pack_contact
        self._pack_field = {"sender": pack_contact, "contact": pack_contact, "target": self._pack_id,
                            "table": lambda contacts: [pack_contact(contact) for contact in contacts]}

    @staticmethod
    def _pack_contact(contact: Contact) -> list:
        return [contact.id.to_bytes(20, "big"), contact.server, contact.client]

    @staticmethod
    def _pack_id(peer_id: int) -> bytes:
        return peer_id.to_bytes(20, "big")

    def encode(self, msg) -> list[bytes]:
        kind = self._kind_of.get(type(msg))
        if kind is None:
            raise ProtocolError(f"cannot encode {type(msg).__name__}")
        body = [kind]
        for name, value in zip(msg._fields, msg):
            pack = self._pack_field.get(name)
            body.append(value if pack is None else pack(value))
        return [msgpack.packb(body, use_bin_type=True)]

    def decode(self, frames: list[bytes]):
        if len(frames) != 1:
            raise ProtocolError(f"expected 1 frame, got {len(frames)}", "frames")
        raw = frames[0]
        if len(raw) > self.max_bytes:
            raise ProtocolError(f"message of {len(raw)} bytes exceeds {self.max_bytes}", "too_large")
        try:
            body = msgpack.unpackb(raw, raw=False, strict_map_key=True, max_bin_len=self.max_bytes,
                                   max_str_len=self.max_bytes, max_array_len=m.MAX_TARGETS, max_map_len=0,
                                   max_ext_len=0)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise ProtocolError(f"not msgpack: {exc}", "not_msgpack") from exc
        if not isinstance(body, list) or not body:
            raise ProtocolError("message is not a non-empty array", "not_array")
        kind = body[0]
        if type(kind) is not int or not 0 <= kind < len(self.KINDS):
            raise ProtocolError(f"unknown message kind {kind!r}", "unknown_kind")
        cls = self.KINDS[kind]
        fields = body[1:]
        if len(fields) != len(cls._fields):
            raise ProtocolError(f"{cls.__name__} takes {len(cls._fields)} fields, got {len(fields)}", "field_count")
        return cls(*[decode(value) for decode, value in zip(self._decoders[cls], fields)])

    def _decoder(self, name: str):
        if name == "req_id":
            return lambda value: _int_in(value, 0, 2**64 - 1, name)
        if name == "cookie":
            return lambda value: _int_in(value, 1, 2**32, name)
        if name in ("sender", "contact"):
            return self._contact
        if name == "target":
            return _id
        contact = self._contact
        return lambda value: [contact(item) for item in _list(value, CAPACITY, name)]

    def _contact(self, value) -> Contact:
        if type(value) is not list or len(value) != 3:
            raise ProtocolError("a contact is [id, server, client]")
        wire_id, server, client = value
        known = self._contacts.get(wire_id) if type(wire_id) is bytes else None
        if known is not None and known.server == server and known.client == client:
            return known
        contact = Contact(_id(wire_id), _endpoint(server), _endpoint(client))
        self._contacts[wire_id] = contact
        return contact


def _int_in(value, low: int, high: int, name: str) -> int:
    if type(value) is not int or not low <= value <= high:
        raise ProtocolError(f"{name} must be an integer in [{low}, {high}]")
    return value


def _id(value) -> int:
    if type(value) is not bytes or len(value) != 20:
        raise ProtocolError("an id is 20 bytes")
    return int.from_bytes(value, "big")


def _list(value, limit: int, name: str) -> list:
    if type(value) is not list or len(value) > limit:
        raise ProtocolError(f"{name} must be a list of at most {limit} items")
    return value


def _endpoint(value) -> str:
    if type(value) is not str or len(value) > 256 or not value.startswith(("inproc://", "tcp://")):
        raise ProtocolError("an endpoint is an inproc:// or tcp:// URL string")
    return value


def contact(serial: int) -> Contact:
    peer_id = (serial * 0x9E3779B97F4A7C15F39CC0605CEDC8341082276B) % 2**160  # spread over the id space
    return Contact(peer_id, f"{NAMESPACE}/server/{serial}", f"{NAMESPACE}/client/{serial}")


def workloads(encode, decode) -> dict:
    """The two measured operations for one codec (``encode(msg) -> frames``, ``decode(frames) -> msg``)."""
    request = m.FindClosest(123_456, 2**31 + 5, contact(1), contact(2).id ^ 1)
    reply = m.ClosestReply(123_456, 2**31 + 5, contact(3))
    table = m.PeersReply(123_457, 77, [contact(serial) for serial in range(10, 10 + CAPACITY)])

    def pair():
        decode(encode(request))
        decode(encode(reply))

    def peers_reply():
        decode(encode(table))

    for run in (pair, peers_reply):
        run()  # the decoder learns the contacts, as a peer has after its first messages
    if decode(encode(request)) != request or decode(encode(table)) != table:
        raise RuntimeError("a codec does not round-trip")
    return {"pair": pair, "peers_reply": peers_reply}


def measure(repeat: int, quick: bool) -> dict:
    """CPU microseconds per operation and codec, best of ``repeat`` runs; the codecs' runs alternate, so a change
    in the machine's load during the measurement falls on both."""
    binary, reference = m.Codec(), MsgpackReference()
    codecs = {"binary": workloads(m.encode, binary.decode), "msgpack": workloads(reference.encode, reference.decode)}
    counts = {"pair": 2_000 if quick else 50_000, "peers_reply": 50 if quick else 2_000}
    best = {name: {codec: float("inf") for codec in codecs} for name in counts}
    for _ in range(repeat):
        for name, number in counts.items():
            for codec, runs in codecs.items():
                seconds = timeit.timeit(runs[name], number=number, timer=time.process_time)
                best[name][codec] = min(best[name][codec], seconds / number * 1e6)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each measurement; the best counts")
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run, not a measurement")
    args = parser.parse_args(argv)
    figures = measure(max(1, args.repeat), args.quick)
    labels = {"pair": "FindClosest + ClosestReply, encode + decode",
              "peers_reply": f"PeersReply of {CAPACITY} contacts, encode + decode"}
    print("| operation | msgpack µs | binary µs | msgpack / binary |")
    print("|---|---|---|---|")
    for name, label in labels.items():
        old, new = figures[name]["msgpack"], figures[name]["binary"]
        print(f"| {label} | {old:.2f} | {new:.2f} | {old / new:.1f}x |")
    print(f"(CPU µs per operation, best of {args.repeat}; load average {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
