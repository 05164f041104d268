"""Running under launchers that start every process at once: Docker Compose, Slurm, Kubernetes.

Such a launcher starts the supervisor and its workers together, with one command line for all the workers and no
way to tell one what the others are called. So the supervisor binds its control socket first and waits until the
expected number of workers has registered through it (each worker calls ``attach`` with no peers of its own), and
only then creates the network over them (:func:`await_workers`). Each worker binds the address its host uses to reach
the supervisor (:func:`address_towards`), so one ``--host auto`` serves every replica. (Launchers stop a job with
SIGTERM, which ends ``serve`` and ``worker`` cleanly at any point: see :mod:`p2pzmq.interrupts`.)

The network does not depend on the workers: the supervisor draws every id and bootstrap choice from its seeded RNG
and hands workers peers round-robin in registration order, so whatever their number and order of arrival, a seed
gives the same tables and TGF as one process.
"""
from __future__ import annotations

import socket
import sys

from .addresses import parse_endpoint
from .errors import RpcTimeout, TransportError, UsageError


def await_workers(network, stopped, count: int, timeout: float) -> bool:
    """Wait until ``network`` has ``count`` workers, printing ``Waiting for workers: i/count registered`` on stderr
    whenever the number changes. False if ``stopped`` (an Event: the control socket served ``die``) was set first;
    raises :class:`RpcTimeout` if ``timeout`` seconds of the network's clock pass first."""
    clock = network.config.clock
    deadline = clock.now() + timeout
    shown = None
    while True:
        registered = len(network.workers)
        if registered != shown:
            print(f"Waiting for workers: {min(registered, count)}/{count} registered", file=sys.stderr, flush=True)
            shown = registered
        if registered >= count:
            return True
        if stopped.is_set():
            return False
        left = deadline - clock.now()
        if left <= 0:
            raise RpcTimeout(f"only {registered} of {count} workers registered within {timeout:g} s")
        network.attached.clear()
        clock.wait_any([network.attached, stopped], left)


def address_towards(endpoint: str | None) -> str:
    """The address of this host that traffic to ``endpoint`` (``tcp://HOST:PORT``) leaves from: the source address
    the kernel picks for a UDP socket connected there (connecting a UDP socket sends nothing). Bound by a worker, it
    is an address the supervisor can reach: the pod's IP in Kubernetes, the node's in a Slurm job, a loopback address
    beside a supervisor on this host."""
    if endpoint is None:
        raise UsageError("--host auto needs --supervisor (the address is the one that reaches it)")
    scheme, host, port = parse_endpoint(endpoint)
    host = host.strip("[]")
    if scheme != "tcp":
        raise UsageError(f"--host auto needs a tcp://HOST:PORT supervisor endpoint, not {endpoint!r}")
    try:
        candidates = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        # IPv4 first: ZeroMQ sockets here speak IPv4 unless told otherwise.
        family, _, _, _, address = sorted(candidates, key=lambda candidate: candidate[0] != socket.AF_INET)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(address)
            return probe.getsockname()[0]
    except OSError as exc:  # socket.gaierror included: the name does not resolve (yet)
        raise TransportError(f"cannot find a route to the supervisor's host {host!r}: {exc}") from exc


__all__ = ["address_towards", "await_workers"]
