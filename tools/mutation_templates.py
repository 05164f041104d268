#!/usr/bin/env python3
"""Hand-made mutants of the code that p2pzmq/wire.py generates (docs/MUTATION.md): cosmic-ray has no operator for
the text inside a string, so the templates from which ``compile_kind`` writes each message's packer and parser are
mutated here, one change at a time, in a copy of the tree, against the codec's tests.

    python tools/mutation_templates.py [TEST ...]    # default: setup.cfg's [mutation] tests.wire; prints each outcome

(tools/mutation.sh runs it whenever it mutates p2pzmq/wire.py.)

Each mutant is (what it changes, the text in wire.py, its replacement); the text must occur exactly once, so a
template that has changed shows here as an error rather than as a mutant that was never made.
"""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIRE = Path("p2pzmq/wire.py")

MUTANTS = [
    ("cookie sent as it is", '"{v} - 1", "{v} + 1"', '"{v}", "{v} + 1"'),
    ("cookie read as it is", '"{v} - 1", "{v} + 1"', '"{v} - 1", "{v}"'),
    ("cookie offset reversed", '"{v} - 1", "{v} + 1"', '"{v} + 1", "{v} - 1"'),
    ("id sent little-endian", "({ID_BYTES}, 'big')\"", "({ID_BYTES}, 'little')\""),
    ("id read little-endian", "\"{h}from_bytes({v}, 'big')\"", "\"{h}from_bytes({v}, 'little')\""),
    ("contact packed without the cache", 'pack="({h}packed.get({v}) or {h}pack({v}))"', 'pack="{h}pack({v})"'),
    ("contact cache result discarded", 'pack="({h}packed.get({v}) or {h}pack({v}))"',
     'pack="({h}packed.get({v}) and {h}pack({v}))"'),
    ("last contact without its trailing check", "or {h}unpack_last(interned, raw, offset)\"",
     "or {h}unpack(interned, raw, offset)[0]\""),
    ("last contact looked up one byte on", 'last="{v} = interned.get(raw[offset:])',
     'last="{v} = interned.get(raw[offset + 1:])'),
    ("last contact always parsed", 'last="{v} = interned.get(raw[offset:]) or {h}unpack_last(interned, raw, offset)"',
     "last=None"),
    ("contact's end not carried on", 'unpack="{v}, offset = {h}unpack(interned, raw, offset)",\n                last',
     'unpack="{v}, _ = {h}unpack(interned, raw, offset)",\n                last'),
    ("list's end not carried on", 'pack="{h}pack({v})", unpack="{v}, offset = {h}unpack(interned, raw, offset)"',
     'pack="{h}pack({v})", unpack="{v}, _ = {h}unpack(interned, raw, offset)"'),
    ("trailing check: only a longer frame", '"    if offset != len(raw):"', '"    if offset < len(raw):"'),
    ("trailing check: only a shorter frame", '"    if offset != len(raw):"', '"    if offset > len(raw):"'),
    ("parser does not skip the kind byte", '"_head_in": struct.Struct(">x" + fmt)',
     '"_head_in": struct.Struct(">" + fmt)'),
    ("whole-message check skipped", '"    _check(msg)", ', ""),
    ("variable fields start a byte early", "offset = {namespace['_head'].size}\"",
     "offset = {namespace['_head'].size - 1}\""),
    ("packer takes the fields in reverse", 'f"    {_items(names)} = msg"', 'f"    {_items(names[::-1])} = msg"'),
    ("every tuple with a trailing comma", '("," if len(names) == 1 else "")', '","'),
]


def setting(key: str) -> str:
    """A setting of the [mutation] section of setup.cfg."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg["mutation"][key]


def main(argv: list[str]) -> int:
    tests = argv or setting("tests.wire").split()
    timeout = float(setting("timeout"))  # as cosmic-ray's: a mutant that hangs is killed, and counts as killed
    original = (ROOT / WIRE).read_text(encoding="utf-8")
    survived = 0
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "tree"
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "mutation", "__pycache__"))
        for what, text, replacement in MUTANTS:
            if original.count(text) != 1:
                print(f"error: {what}: the text occurs {original.count(text)} times in {WIRE}", file=sys.stderr)
                return 1
            (copy / WIRE).write_text(original.replace(text, replacement), encoding="utf-8")
            try:
                run = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", *tests], cwd=copy, timeout=timeout,
                                     env={**os.environ, "PYTHONPATH": str(copy)}, capture_output=True, text=True)
                outcome = "survived" if run.returncode == 0 else "killed"
            except subprocess.TimeoutExpired:
                outcome = "killed"
            survived += outcome == "survived"
            print(f"{outcome:8} {what}", flush=True)
    print(f"templates generated {len(MUTANTS)} killed {len(MUTANTS) - survived} survived {survived}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
