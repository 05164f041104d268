"""Time-lapses: refresh, write the overlay, again, ``steps`` times (docs/DESIGN.md §4.8). Orchestration of the
other units' work (a refresh, a status, a graph file), so it lives apart from each of them.
"""
from __future__ import annotations

import json
import os
from typing import Callable

from .. import graph, protocols
from .kit import Kit


class TimeLapse:
    """Runs ``time_lapse`` with the network's own ``refresh()`` and ``net_status()`` (tracked, with their events) and
    ``write(path, format)``, the exporter's graph file."""

    def __init__(self, kit: Kit, refresh: Callable[[], dict], net_status: Callable[[], dict],
                 write: Callable[[str, str], dict]) -> None:
        self._kit = kit
        self._refresh = refresh
        self._net_status = net_status
        self._write = write

    def time_lapse(self, steps: int, directory: str, format: str, status: bool) -> dict:
        """``steps`` times: refresh every peer, then write ``time-lapse-<i>.<format>`` in ``directory``.

        With ``status``, it also runs net_status before the first refresh and after each one, and records per step
        the connectivity, lookup success rate, mean hops and mean table size under ``steps`` in the result and in
        ``time-lapse.json`` in ``directory`` (what ``p2p-network plot --time-lapse`` charts).
        """
        kit = self._kit
        directory = os.path.abspath(directory)
        with kit.channel.exclusive():
            history = [_step_status(0, None, self._net_status())] if status else []
            files = []
            for step in range(1, steps + 1):
                kit.report("time_lapse", step - 1, steps)
                self._refresh()
                path = os.path.join(directory, f"time-lapse-{step}.{graph.FORMATS[format]}")
                self._write(path, format)
                files.append(path)
                if status:
                    history.append(_step_status(step, path, self._net_status()))
            kit.report("time_lapse", steps, steps)
            if not status:
                return {"files": files}
            summary = {"n": len(kit.members), "metric": kit.config.metric, "steps": history}
            if kit.config.protocol != protocols.DEFAULT:  # the original's file stays as it was
                summary["protocol"] = kit.config.protocol
        graph.write_text(os.path.join(directory, "time-lapse.json"), json.dumps(summary) + "\n")
        return {"files": files, "steps": history}


def _step_status(step: int, path: str | None, result: dict) -> dict:
    sizes = [peer["tree_size"] for peer in result["peers"]]
    return {"step": step, "file": path, "connectivity": result["connectivity"],
            "success_rate": result["hops"]["success_rate"], "mean_hops": result["hops"]["mean"],
            "mean_table_size": round(sum(sizes) / len(sizes), 4)}
