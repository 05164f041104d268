"""Whether a text can name a file here, checked before anything is opened: the one rule for every path a user gives
(graph files, pictures, time-lapse directories, key directories). Pure: nothing is opened or created.
"""
from __future__ import annotations

import os

from .errors import UsageError


def check_path(path, what: str = "path") -> str:
    """``path`` if it can name a file on this system: a non-empty string without NUL that the file system can
    encode; else :class:`UsageError` (``open`` would raise ValueError or UnicodeEncodeError, not OSError)."""
    if type(path) is not str or not path:
        raise UsageError(f"{what} must be a non-empty file name, not {path!r:.80}")
    try:
        if "\0" in path:
            raise ValueError("it holds a NUL character")
        os.fsencode(path)
    except ValueError as exc:  # UnicodeEncodeError is a ValueError
        raise UsageError(f"{what} {path!r:.80} cannot be a file name: {exc}") from None
    return path
