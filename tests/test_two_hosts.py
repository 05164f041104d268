"""Two hosts: network namespaces joined by a veth pair (198.18.0.0/15, reserved for benchmarking), a supervisor in
one and a worker in the other, CURVE on the control socket and the worker link."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from hangs import end_process

from p2pzmq import security
from p2pzmq.graph import read_tgf
from p2pzmq.timeline import untimed

pytestmark = pytest.mark.timeout(120)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUPERVISOR_ADDRESS, WORKER_ADDRESS = "198.18.0.1", "198.18.0.2"


def ip(*argv):
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=20)


def netns_unavailable() -> str | None:
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"p2p4probe{os.getpid()}"
    try:
        ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"ip netns does not work here: {exc.stderr.decode().strip()}"
    ip("netns", "delete", probe)
    return None


@pytest.fixture
def two_hosts():
    """Namespaces ``p2p4a<pid>`` and ``p2p4b<pid>`` with 198.18.0.1/24 and 198.18.0.2/24; always removed."""
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    tag = os.getpid()
    spaces, links = [f"p2p4a{tag}", f"p2p4b{tag}"], [f"v4a{tag}", f"v4b{tag}"]
    try:
        for space in spaces:
            ip("netns", "add", space)
        ip("link", "add", links[0], "type", "veth", "peer", "name", links[1])
        for space, link, address in zip(spaces, links, (SUPERVISOR_ADDRESS, WORKER_ADDRESS)):
            ip("link", "set", link, "netns", space)
            ip("-n", space, "addr", "add", f"{address}/24", "dev", link)
            ip("-n", space, "link", "set", link, "up")
            ip("-n", space, "link", "set", "lo", "up")
        yield spaces
    finally:
        for space in spaces:
            subprocess.run(["ip", "netns", "delete", space], capture_output=True, timeout=20)


def in_space(space, *argv, **options):
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.Popen(["ip", "netns", "exec", space, sys.executable, "-m", "p2pzmq", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **options)


def test_supervisor_and_worker_on_two_hosts(two_hosts, tmp_path):
    host_a, host_b = two_hosts
    keys = str(tmp_path / "keys")
    security.generate(keys)
    supervisor = in_space(host_a, "serve", "-n", "10", "--seed", "3", "--transport", "tcp", "--host",
                          SUPERVISOR_ADDRESS, "--control", f"tcp://{SUPERVISOR_ADDRESS}:0", "--curve-dir", keys)
    member = None
    try:
        line = supervisor.stdout.readline()
        assert line.startswith("Network created and supervisor listening on "), supervisor.stderr.read()
        control = line.rsplit(" ", 1)[1].strip()

        def ctl(*argv):
            done = in_space(host_a, "ctl", "--control", control, "--curve-dir", keys, "--timeout", "30", "--json",
                            *argv)
            out, err = done.communicate(timeout=60)
            assert done.returncode == 0, err
            return json.loads(out)["result"]

        member = in_space(host_b, "worker", "--supervisor", control, "-n", "10", "--host", WORKER_ADDRESS,
                          "--curve-dir", keys)
        assert member.stdout.readline().startswith(f"Worker listening on tcp://{WORKER_ADDRESS}:")
        assert member.stdout.readline().startswith(f"Attached to {control} with 10 peers (20 in the network)")
        status = ctl("net_status")
        assert status["n"] == 20 and len(status["peers"]) == 20 and status["unreachable"] == 0
        assert [(w["host"], w["peers"], w["alive"]) for w in status["workers"]] == [(WORKER_ADDRESS, 10, True)]
        assert status["connectivity"] > 50
        tgf = tmp_path / "two-hosts.tgf"  # the supervisor writes it; both namespaces share this filesystem
        assert ctl("output_tgf", str(tgf)) == {"path": str(tgf), "nodes": 20,
                                               "edges": sum(p["tree_size"] for p in status["peers"])}
        ids, edges = read_tgf(tgf.read_text())
        assert sorted(ids) == sorted(int(p["id"]) for p in status["peers"])
        assert untimed(ctl("refresh_peers")) == {"refreshed": 20}
        assert ctl("die") == {"stopping": True}
        assert supervisor.wait(timeout=30) == 0
        assert member.wait(timeout=30) == 0
    finally:
        for process in (supervisor, member):
            if process is not None:
                end_process(process)
                process.communicate()
