"""The console lines of command results: the original's lines for its commands (docs/DESIGN.md §4.8), one line or
JSON for the others. Pure formatting; :func:`print_result` is the only function that prints."""
from __future__ import annotations

import json
from typing import Callable, Iterator


def _format_net_status(result: dict) -> Iterator[str]:
    sample = result.get("sample")
    out_of = f"{sample} sampled" if sample else f"{result['n']}"
    for peer in result["peers"]:
        yield f"{peer['id']} has {peer['tree_size']} peers in its tree."
        yield f"{peer['id']} is connected to {peer['reachable']}/{out_of} peers {peer['percent']}%"
    if sample:
        low, high = result["ci95"]
        yield (f"Connectivity percentage {result['connectivity']}% (estimate {result['estimate']}%, 95% CI "
               f"{low}-{high}%, {sample} targets per peer)")
    else:
        yield f"Connectivity percentage {result['connectivity']}%"
    if result.get("lookups", {}).get("lookups"):  # Kademlia's, when there was a pair to look up
        lookups = result["lookups"]
        yield (f"Iterative lookups found {100 * lookups['success_rate']:g}% of {lookups['lookups']} targets, in "
               f"{lookups['rounds']['mean']} rounds and {lookups['requests_mean']} requests on average")
    if result.get("dead"):
        yield f"{len(result['dead'])} dead peers, {result['failed_hops']} lookups failed at a dead peer"


def _format_peers(result: dict) -> Iterator[str]:
    for peer in result["peers"]:
        size = "-" if peer["tree_size"] is None else peer["tree_size"]
        yield f"{peer['id']} {peer['state']} {size} {peer['server']} {peer['client']}"
    yield f"{result['alive']}/{len(result['peers'])} peers alive"


def _format_lookup(result: dict) -> Iterator[str]:
    route = result["route"]
    outcome = f"reached in {route['hops']} hops" if route["reached"] else f"not reached after {route['hops']} hops"
    yield f"Route from {result['from']} to {result['id']} {outcome}: {' -> '.join(route['path'])}"
    if "lookup" in result:  # Kademlia's iterative lookup
        lookup = result["lookup"]
        finds = "finds" if lookup["found"] else "does not find"
        yield (f"Lookup from {result['from']} {finds} the target in {len(lookup['rounds'])} rounds and "
               f"{lookup['requests']} requests")
        for number, asked in enumerate(lookup["rounds"], 1):
            names = [contact["id"] + ("" if contact["answered"] else " (no answer)") for contact in asked]
            yield f"Round {number} asks {', '.join(names)}"
        return
    walk = result["walk"]
    found = "the target" if walk["exact"] else walk["found"]
    yield f"Walk from {result['from']} finds {found} after {walk['queried']} queries: {' -> '.join(walk['path'])}"


def _format_ping(result: dict) -> Iterator[str]:
    yield f"{result['n']} peers" + (f" at {result['now']:.6f} s of simulated time" if "now" in result else "")
    for member in result.get("workers", ()):
        state = "alive" if member["alive"] else "gone"
        yield f"worker {member['endpoint']} pid {member['pid']}: {member['peers']} peers, {state}"
    if result.get("unreachable"):
        yield f"{result['unreachable']} peers unreachable"


def _format_progress(result: dict, lead: str = "") -> Iterator[str]:
    phases = ", ".join(f"{phase['phase']} {phase['done']}/{phase['total']}" for phase in result["phases"])
    state = " (cancelling)" if result["cancelling"] and not lead else ""
    yield f"{lead}{result['running']} after {result['seconds']:g} s: {phases or 'no progress reported'}{state}"
    if result.get("queued"):
        yield f"queued: {' '.join(result['queued'])}"


FORMATTERS: dict[str, Callable[[dict], Iterator[str]]] = {
    "net_status": _format_net_status,
    "refresh_peers": lambda result: iter(()),
    "output_tgf": lambda result: iter([f"Writing network structure to {result['path']}"]),
    "output_graph": lambda result: iter([f"Writing network structure to {result['path']}"]),
    # the caption too, when the picture leaves links out: the console then says so as the picture does
    "output_png": lambda result: iter([f"Drawing the network to {result['path']}"]
                                      + ([result["caption"]] if result.get("edges_left_out") else [])),
    "output_snapshot": lambda result: iter([f"Writing network snapshot to {result['path']}"]),
    "lookup": _format_lookup,
    "time_lapse": lambda result: iter([f"Doing {len(result['files'])} step time-lapse"]),
    "ping": lambda result: _format_ping(result),
    "attach": lambda result: iter([f"Worker {result['worker']['endpoint']} attached with "
                                   f"{result['worker']['peers']} peers ({result['n']} in the network)"]),
    "stats": lambda result: iter([f"{key}: {json.dumps(value)}" for key, value in result.items()]),
    "die": lambda result: iter(["Supervisor stopping"]),
    "peers": _format_peers,
    "add_peers": lambda result: iter([f"Added {len(result['added'])} peers, {result['n']} alive"]),
    "kill_peers": lambda result: iter([f"Killed {len(result['killed'])} peers, {result['n']} alive"]),
    "leave_peers": lambda result: iter([f"{len(result['left'])} peers left, {result['n']} alive"]),
    "churn": lambda result: iter([json.dumps(result)]),
    "progress": _format_progress,
    "cancel": lambda result: _format_progress(result, "Cancelling "),
}


def print_result(name: str, result: dict, as_json: bool) -> None:
    """Print ``result`` of command ``name`` on stdout: the console lines, or one JSON line with ``as_json``."""
    if as_json:
        print(json.dumps({"cmd": name, "result": result}), flush=True)
        return
    formatter = FORMATTERS.get(name)
    lines = formatter(result) if formatter else [json.dumps(result)]
    for line in lines:
        print(line, flush=True)
