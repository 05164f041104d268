"""Helpers for the tests of launchers: ``ctl`` as a subprocess, the one-process reference TGF, free ports, and the
daemons the heavy tests run for themselves (a Docker daemon, a one-node Slurm cluster), each confined to a
temporary directory, on loopback only, and stopped with everything it started."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import wait_until
from p2pzmq.network import Network

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT}


def ctl(endpoint: str, *argv: str) -> dict:
    """The result of ``p2p-network ctl --json ARGV`` run against ``endpoint`` (the command must succeed)."""
    done = subprocess.run([sys.executable, "-m", "p2pzmq", "ctl", "--control", endpoint, "--timeout", "600", "--json",
                           *argv], capture_output=True, text=True, timeout=900, env=ENV, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["result"]


def one_process_tgf(directory, n: int, seed: int, refreshes: int = 0) -> bytes:
    """The TGF of ``n`` peers built in this process with ``seed`` (after ``refreshes`` refresh_peers): what any
    number of workers must reproduce."""
    path = os.path.join(directory, f"one-{n}-{seed}-{refreshes}.tgf")
    with Network(n, seed=seed) as net:
        for _ in range(refreshes):
            net.refresh_peers()
        net.output_tgf(path)
    with open(path, "rb") as tgf:
        return tgf.read()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def require(*tools: str) -> None:
    """Fail (not skip: the heavy run installs them with .ci/setup-heavy) when a tool is missing."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"not installed: {', '.join(missing)} (run .ci/setup-heavy)")


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``timeout``; reaped either way."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def unmount_under(path: str) -> None:
    """Unmount whatever a daemon left mounted under ``path`` (deepest first), so the directory can be removed."""
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        points = [line.split()[1] for line in mounts]
    for point in sorted((p for p in points if p.startswith(path + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)


class Dockerd:
    """A Docker daemon of the test's own: data, exec root, socket and configuration in ``root`` (the socket is not
    the system's). ``--bridge=none --iptables=false --ip-forward=false``: it creates no network, no firewall rule and
    changes no sysctl; containers use the host's network and so reach only what the host does (here, loopback)."""

    def __init__(self, root: str) -> None:
        self.root = root
        with open(os.path.join(root, "daemon.json"), "w", encoding="utf-8") as config:
            config.write("{}\n")
        self.env = {**ENV, "DOCKER_HOST": f"unix://{root}/docker.sock"}
        self.log = open(os.path.join(root, "dockerd.log"), "wb")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", f"{root}/data", "--exec-root", f"{root}/exec", "--pidfile",
             f"{root}/docker.pid", "--host", f"unix://{root}/docker.sock", "--config-file", f"{root}/daemon.json",
             "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
             "--userland-proxy=false"], stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_until(lambda: self.proc.poll() is not None or self.docker("version", check=False).returncode == 0,
                       60, 0.2)
            assert self.proc.poll() is None, self.log_text()
        except BaseException:
            self.stop()
            raise

    def docker(self, *argv: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        """Run a docker client command against this daemon. Builds use the client of Debian's docker.io (the
        daemon's own version), which builds with BuildKit itself; a newer client without the buildx plugin can
        only use the legacy builder, which knows no build secrets."""
        client = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
        done = subprocess.run([client, *argv], capture_output=True, text=True, timeout=timeout,
                              env={**self.env, "DOCKER_BUILDKIT": "1"}, stdin=subprocess.DEVNULL)
        if check:
            assert done.returncode == 0, f"docker {' '.join(argv)}: {done.stderr}"
        return done

    def log_text(self) -> str:
        with open(os.path.join(self.root, "dockerd.log"), encoding="utf-8", errors="replace") as log:
            return log.read()[-4000:]

    def stop(self) -> None:
        """Remove every container, stop the daemon (and its containerd) and delete all it stored."""
        if self.proc.poll() is None:
            left = self.docker("ps", "-aq", check=False).stdout.split()
            if left:
                self.docker("rm", "-f", *left, check=False)
        stop_process(self.proc)
        self.log.close()
        unmount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


SLURM_CONF = """\
ClusterName=p2pzmq
SlurmctldHost={hostname}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge.sock
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
NodeName={node} NodeHostname={hostname} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=p2pzmq Nodes={node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
"""


class SlurmCluster:
    """A one-node Slurm cluster on this host: munged, slurmctld and slurmd of the test's own, with configuration,
    key, state, spool, logs and sockets in ``root`` and free ports; the node (2 CPUs, address 127.0.0.1) is called
    ``node``. ``env`` points the Slurm commands at it."""

    node = "p2pnode"

    def __init__(self, root: str) -> None:
        self.root = root
        self.procs: list[subprocess.Popen] = []
        for directory in ("state", "spool"):
            os.makedirs(os.path.join(root, directory))
        key = os.path.join(root, "munge.key")
        with open(key, "wb") as out:
            out.write(os.urandom(1024))
        os.chmod(key, 0o400)
        conf = os.path.join(root, "slurm.conf")
        with open(conf, "w", encoding="utf-8") as out:
            out.write(SLURM_CONF.format(root=root, hostname=socket.gethostname().split(".")[0], node=self.node,
                                        ctld_port=free_port(), slurmd_port=free_port()))
        self.env = {**ENV, "SLURM_CONF": conf}
        try:
            self._start(["munged", "-F", "-f", f"--socket={root}/munge.sock", f"--key-file={key}",
                         f"--pid-file={root}/munged.pid", f"--log-file={root}/munged.log",
                         f"--seed-file={root}/munged.seed"])
            wait_until(lambda: os.path.exists(f"{root}/munge.sock"), 30, 0.1)
            self._start(["slurmctld", "-D", "-i"])
            self._start(["slurmd", "-D", "-N", self.node])
            wait_until(lambda: self.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip() == "idle",
                       60, 0.2)
        except BaseException:
            self.stop()
            raise

    def _start(self, argv: list[str]) -> None:
        log = open(os.path.join(self.root, f"{argv[0]}.out"), "wb")
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           env=self.env))
        log.close()

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env,
                              stdin=subprocess.DEVNULL)
        if check:
            assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"
        return done

    def stop(self) -> None:
        """Stop slurmd, slurmctld and munged (in that order) and delete their files."""
        for proc in reversed(self.procs):
            stop_process(proc)
        shutil.rmtree(self.root, ignore_errors=True)


def wait_for_line(read, needle: str, timeout: float) -> float:
    """Poll ``read()`` (text so far) until it holds ``needle``; the monotonic time it was first seen."""
    wait_until(lambda: needle in read(), timeout, 0.05)
    return time.monotonic()
