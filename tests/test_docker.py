"""The Dockerfile and deploy/compose.yaml, for real (heavy: ``pytest -m heavy`` after .ci/setup-heavy).

A Docker daemon of the test's own builds the image on a Debian base made here (mmdebstrap, then ``docker import``: no
registry is reachable), with pip reaching its index as on this machine. Compose then runs a network over 4 worker
containers, driven by ``p2p-network ctl`` from the host. Every container uses the host's network and every address
is loopback; the daemon, its containers and images are removed at the end.
"""
import os
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import wait_until
from launchers import ROOT, Dockerd, ctl, free_port, one_process_tgf, require, wait_for_line
from p2pzmq import __version__

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(1800)]
#: Peers of the compose network (P2P_HEAVY_PEERS=2000 measures the README's figures).
PEERS = int(os.environ.get("P2P_HEAVY_PEERS", "200"))
#: Where the Debian base made by mmdebstrap is kept between runs (it takes minutes to make).
CACHE = os.environ.get("P2PZMQ_CACHE", os.path.expanduser("~/.cache/p2pzmq"))
BASE = "p2pzmq-base:bookworm"
IMAGE = "p2pzmq:heavy"


def debian_base() -> str:
    """A tarball of Debian bookworm with python3 and its venv module (made once, then cached)."""
    path = os.path.join(CACHE, "bookworm-python3.tar")
    if not os.path.exists(path):
        require("mmdebstrap")
        os.makedirs(CACHE, exist_ok=True)
        partial = path[:-len(".tar")] + ".partial.tar"  # mmdebstrap picks the format by the name
        done = subprocess.run(["mmdebstrap", "--variant=minbase", "--include=python3,python3-venv", "bookworm",
                               partial], capture_output=True, text=True, timeout=1200, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr[-3000:]
        os.replace(partial, path)
    return path


def pip_build_options() -> list[str]:
    """Build options that make pip in the image use this machine's index and CA bundle, read from ``pip config
    list`` (file:// indexes of this machine are not in the build, so they are left out)."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                            timeout=60).stdout
    settings = {}
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        settings[key.rsplit(".", 1)[-1]] = value.strip().strip("'\"")
    web = [url for url in settings.get("index-url", "").split() if url.startswith(("http://", "https://"))]
    extra = [url for url in settings.get("extra-index-url", "").split() if url.startswith(("http://", "https://"))]
    options = ["--build-arg", f"PIP_INDEX_URL={web[0]}"] if web else []
    if extra:
        options += ["--build-arg", f"PIP_EXTRA_INDEX_URL={' '.join(extra)}"]
    cert = settings.get("cert") or os.environ.get("PIP_CERT")
    if cert:
        options += ["--secret", f"id=pip-cert,src={cert}"]
    return options


@pytest.fixture(scope="module")
def dockerd():
    require("dockerd", "docker", "docker-compose")
    daemon = Dockerd(tempfile.mkdtemp(prefix="p2pd-", dir="/tmp"))  # short: containerd's socket path is limited
    try:
        yield daemon
    finally:
        daemon.stop()
        assert not os.path.exists(daemon.root)


@pytest.fixture(scope="module")
def image(dockerd):
    """The project's image, built from the Dockerfile on the Debian base."""
    dockerd.docker("import", debian_base(), BASE)
    dockerd.docker("build", "--network", "host", "--build-arg", f"BASE={BASE}", *pip_build_options(), "-t", IMAGE,
                   ROOT)
    return IMAGE


def test_the_image_runs_p2p_network_as_a_non_root_user_with_only_the_project(dockerd, image):
    run = ["run", "--rm", "--network", "host"]
    assert dockerd.docker(*run, image, "--version").stdout.strip() == f"p2p-network {__version__}"
    assert dockerd.docker(*run, "--entrypoint", "id", image, "-u").stdout.strip() != "0"
    installed = dockerd.docker(*run, "--entrypoint", "pip", image, "list", "--format=freeze").stdout
    names = {line.split("==")[0].lower() for line in installed.split()}
    assert names - {"pip", "setuptools"} == {"p2pzmq", "gevent", "greenlet", "pyzmq", "networkx", "tqdm",
                                             "zope.event", "zope.interface"}  # msgpack: only the tests use it
    source = dockerd.docker(*run, "--entrypoint", "sh", image, "-c", "ls -A /tmp /home/p2p; "
                            "python3 -c 'import p2pzmq, os; print(os.listdir(os.path.dirname(p2pzmq.__file__)))'")
    assert "tests" not in source.stdout and "tools" not in source.stdout and "Dockerfile" not in source.stdout
    out = dockerd.docker(*run, image, "run", "-n", "8", "--seed", "1", "net_status").stdout
    assert out.splitlines()[-1].startswith("Connectivity percentage ")


def test_compose_runs_a_network_over_four_scaled_workers(dockerd, image, tmp_path, capsys):
    port, seed = free_port(), 3
    output = tmp_path / "output"
    output.mkdir()
    output.chmod(0o777)  # the image's user writes the TGF there
    env = {**dockerd.env, "P2P_IMAGE": image, "P2P_PEERS": str(PEERS), "P2P_SEED": str(seed), "P2P_WORKERS": "4",
           "P2P_PORT": str(port), "P2P_OUTPUT": str(output), "P2P_KEYS": str(tmp_path / "keys")}
    compose = ["docker-compose", "-f", os.path.join(ROOT, "deploy", "compose.yaml"), "-p", f"p2pzmq{os.getpid()}"]

    def compose_run(*argv, check=True):
        done = subprocess.run([*compose, *argv], capture_output=True, text=True, timeout=600, env=env,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0 or not check, done.stderr
        return done.stdout

    endpoint = f"tcp://127.0.0.1:{port}"
    started = time.monotonic()
    compose_run("up", "-d", "--scale", "worker=4")
    try:
        listening = wait_for_line(lambda: compose_run("logs", "--no-color", "supervisor"),
                                  f"Network created and supervisor listening on {endpoint}", 900) - started
        ping = ctl(endpoint, "ping")
        assert ping["n"] == PEERS and ping["unreachable"] == 0
        assert sorted((w["host"], w["alive"]) for w in ping["workers"]) == [(f"127.0.1.{i}", True)
                                                                            for i in range(1, 5)]
        assert sorted(w["peers"] for w in ping["workers"]) == sorted(len(range(i, PEERS, 4)) for i in range(4))
        status = ctl(endpoint, "net_status")
        assert status["n"] == PEERS and len(status["peers"]) == PEERS and status["dead"] == []
        assert ctl(endpoint, "output_tgf", "/output/net.tgf")["nodes"] == PEERS
        assert (output / "net.tgf").read_bytes() == one_process_tgf(tmp_path, PEERS, seed)
        containers = compose_run("ps", "-q").split()
        assert len(containers) == 5
        died = time.monotonic()
        assert ctl(endpoint, "die") == {"stopping": True}

        def states():
            return dockerd.docker("inspect", "-f", "{{.State.Running}} {{.State.ExitCode}}", *containers).stdout.split()

        wait_until(lambda: "true" not in states(), 60, 0.05)
        stopped = time.monotonic() - died
        assert states() == ["false", "0"] * 5
        assert dockerd.docker("ps", "-q").stdout.split() == []  # nothing left running
        with capsys.disabled():
            print(f"\ncompose, 4 workers, {PEERS} peers: listening {listening:.1f} s after launch, "
                  f"every container ended {stopped:.1f} s after die")
    finally:
        compose_run("down", "--remove-orphans", check=False)
    assert dockerd.docker("ps", "-aq").stdout.split() == []
