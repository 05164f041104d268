"""Shared fixtures: networks that are always torn down, a leak check, and polling with a deadline (never sleeps)."""
from __future__ import annotations

import gc
import os
import sys
import time

import greenlet
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/model.py, the oracle

from p2pzmq.config import Config  # noqa: E402
from p2pzmq.network import Network  # noqa: E402

pytest_plugins = ("hangs",)  # tests/hangs.py: timeouts that always end a test, and the run


def live_greenlets() -> list:
    """Greenlets that have started and not finished (the hub and the main greenlet excluded)."""
    gc.collect()
    return [g for g in gc.get_objects()
            if isinstance(g, greenlet.greenlet) and g and g.parent is not None and not g.dead
            and type(g).__name__ != "Hub"]


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.01):
    """Poll ``predicate`` until it is truthy or ``timeout`` passes (then fail). Yields to gevent while waiting."""
    import gevent

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        gevent.sleep(interval)


@pytest.fixture
def make_network():
    """Factory ``make_network(n, **config) -> Network``; every network made is stopped after the test, and the
    test fails if any greenlet or socket is left behind."""
    before = len(live_greenlets())
    networks = []

    def make(n: int | None = None, **config) -> Network:
        config.setdefault("seed", 1)
        network = Network(Config(**config))
        networks.append(network)
        if n is not None:
            network.create(n)
        return network

    yield make
    for network in networks:  # every one, before any check can fail
        network.die()
    assert [network.sockets_left_open for network in networks] == [0] * len(networks), "sockets left open at die"
    assert len(live_greenlets()) <= before, "greenlets left running after die"
