#!/usr/bin/env python3
"""Mark the mutants inside type annotations of a cosmic-ray session as skipped (used by tools/mutation.sh).

They are equivalent by construction: in a module with ``from __future__ import annotations`` no annotation is ever
evaluated, so ``int | None`` mutated into ``int + None`` changes nothing a program can observe. Counting them would
bury the mutants that matter (in discovery.py they were 15 of the 73 generated, all of the survivors).

    python tools/mutation_filter.py SESSION.sqlite       # prints how many it skipped
"""
from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path

from cosmic_ray.work_db import use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult


@functools.cache
def annotation_spans(path: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions, as (line, column), of every annotation in the module; none unless its annotations
    are postponed (never evaluated)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    postponed = any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
                    and any(alias.name == "annotations" for alias in node.names) for node in tree.body)
    if not postponed:
        return []
    annotations = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            annotations.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
    return [((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)) for a in annotations]


def in_annotation(path: Path, position: tuple[int, int]) -> bool:
    return any(start <= tuple(position) < end for start, end in annotation_spans(path))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    skipped = 0
    with use_db(argv[0]) as work_db:
        for item in work_db.work_items:
            if all(in_annotation(Path(m.module_path), m.start_pos) for m in item.mutations):
                work_db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
                skipped += 1
    print(f"{skipped} mutants in annotations skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
