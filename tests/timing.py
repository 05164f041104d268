"""Results without what they measured on the clock: on the real clock two runs of one seed, or the same status
routed by messages and locally, agree on everything but the times they took (and churn's series of intervals,
which are timed)."""
from __future__ import annotations

#: The fields of a result that are readings of the network's clock (docs/DESIGN.md §12).
TIMED = frozenset({"latency", "seconds", "started", "ended", "first_seen", "timeline", "intervals"})


def untimed(result):
    """``result`` (dicts and lists, nested) without its :data:`TIMED` fields."""
    if isinstance(result, dict):
        return {key: untimed(value) for key, value in result.items() if key not in TIMED}
    if isinstance(result, list):
        return [untimed(value) for value in result]
    return result
