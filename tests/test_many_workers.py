"""The supervisor keeps up with many workers: 64 local worker processes, a few peers each, keep their heartbeats
while a build keeps every core busy (heartbeats must not starve behind busy greenlets, as Locust's workers did)."""
import gevent
import pytest

from conftest import wait_until
from p2pzmq import worker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
WORKERS = 64


def test_64_workers_keep_their_heartbeats_through_a_full_cpu_build(make_network):
    net = make_network(seed=3, transport="tcp", join_concurrency=16)
    launched = worker.launch(["127.0.0.1"] * WORKERS, net.config)
    worst = {"silent_s": 0.0}

    def watch_silence():
        while True:
            for described in net.ping()["workers"]:
                worst["silent_s"] = max(worst["silent_s"], described["silent_s"])
            gevent.sleep(0.1)

    try:
        for endpoint in launched.endpoints:
            net.attach(endpoint)
        watcher = gevent.spawn(watch_silence)
        try:
            net.create(WORKERS * 8)  # joins 16 at a time over 64 processes on 2 cores: the machine is saturated
            net.refresh_peers(concurrency=16)
        finally:
            watcher.kill()
        described = net.ping()["workers"]
        assert len(described) == WORKERS and all(member["alive"] for member in described)
        assert [member["peers"] for member in described] == [8] * WORKERS
        # a heartbeat goes out every 0.5 s and a worker is declared gone after 5 s of silence: no worker came close
        assert worst["silent_s"] < net.config.heartbeat_timeout / 2, worst
        status = net.net_status()
        assert status["n"] == WORKERS * 8 and status["unreachable"] == 0 and status["dead"] == []
        assert all(stats["requests"] > 0 for stats in net.stats()["workers"])
    finally:
        net.die()
        launched.reap(net.config.shutdown_timeout)
    assert [process.returncode for process in launched.processes] == [0] * WORKERS
    wait_until(lambda: all(process.poll() is not None for process in launched.processes))
