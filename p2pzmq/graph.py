"""Graph outputs of a network snapshot: the original's TGF (DESIGN.md §4.8). Pure apart from writing the file.

A snapshot is the list of peer ids newest first (TGF node numbers 1..N in that order) and each peer's table.
"""
from __future__ import annotations

from typing import Iterable, Iterator

from .errors import UsageError
from .table import Table


def tgf_lines(ids: list[int], tables: Iterable[Table]) -> Iterator[str]:
    """The TGF text, line by line: ``i <id>`` for each peer, ``#``, then one ``from to`` edge per table entry
    (entries in descending id order, self-loops included). An entry naming a peer outside ``ids`` is skipped."""
    number = {peer_id: index for index, peer_id in enumerate(ids, start=1)}
    for index, peer_id in enumerate(ids, start=1):
        yield f"{index} {peer_id}"
    yield "#"
    for peer_id, table in zip(ids, tables):
        source = number[peer_id]
        for contact in table.descending():
            target = number.get(contact.id)
            if target is not None:
                yield f"{source} {target}"


def write_tgf(path: str, ids: list[int], tables: Iterable[Table]) -> int:
    """Write TGF to ``path``; returns the number of edges. Raises :class:`UsageError` if it cannot be written."""
    lines = list(tgf_lines(ids, tables))
    try:
        with open(path, "w", encoding="ascii") as out:
            out.write("\n".join(lines) + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return len(lines) - len(ids) - 1


def read_tgf(text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Parse TGF written by :func:`write_tgf`: (ids in node order, edges as 1-based node number pairs)."""
    nodes, _, edges = text.partition("\n#\n")
    ids = []
    for expected, line in enumerate(nodes.splitlines(), start=1):
        number, _, peer_id = line.partition(" ")
        if int(number) != expected:
            raise ValueError(f"TGF node {number} is out of order")
        ids.append(int(peer_id))
    pairs = [tuple(int(part) for part in line.split()) for line in edges.splitlines() if line]
    return ids, pairs
