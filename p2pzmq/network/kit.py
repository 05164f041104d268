"""What every unit of the supervisor shares, handed to each as one :class:`Kit` (docs/DESIGN.md §8)."""
from __future__ import annotations

import dataclasses
from typing import Callable

from ..config import Config
from ..events import Events
from .channel import CommandChannel
from .members import Members
from .tracking import Timings
from .workforce import Workforce


@dataclasses.dataclass(frozen=True)
class Kit:
    """The network's shared parts, as its units see them: its ``config``; ``members``, the one record of who is in;
    the command ``channel`` to the peers; the ``workforce`` of hosts; ``offload(function, *args)``, which runs pure
    CPU work off the event loop; ``report(phase, done, total)``, a long operation's progress and safe point
    (:mod:`.tracking`); ``seconds``, the time spent per phase; and the ``events`` stream."""

    config: Config
    members: Members
    channel: CommandChannel
    workforce: Workforce
    offload: Callable
    report: Callable[[str, int, int], None]
    seconds: Timings
    events: Events
