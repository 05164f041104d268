"""Progress bars for the command line: a :data:`p2pzmq.network.Progress` callback drawing tqdm bars.

The network reports ``(phase, done, total)`` as long operations advance; this draws one bar per running phase (a
time-lapse's refreshes nest under it) on the given stream, and removes each bar when its phase completes so the
console keeps only the original's lines. The CLI installs it only when stderr is a terminal and ``--json`` is off.
"""
from __future__ import annotations

from typing import TextIO

from tqdm import tqdm


class TerminalProgress:
    """Callable ``(phase, done, total)``; call :meth:`close` when done, to clear bars of interrupted phases."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._bars: dict[str, tqdm] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        bar = self._bars.get(phase)
        if bar is None:
            if done >= total:
                return  # over before it began: nothing worth drawing
            bar = self._bars[phase] = tqdm(total=total, desc=phase, file=self._stream, leave=False,
                                           dynamic_ncols=True, mininterval=0.2)
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            self._bars.pop(phase).close()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
