"""examples/slurm/p2pzmq.sbatch on a real one-node Slurm cluster (heavy: ``pytest -m heavy`` after .ci/setup-heavy).

The test runs its own munged, slurmctld and slurmd (a 2-CPU node at 127.0.0.1), submits the script with
``sbatch --wait`` (5 tasks: a supervisor and 4 workers, --overcommit on 2 CPUs) and checks the session's output, the
TGF against one process, and that no task or process is left once the job ended.
"""
import os
import subprocess
import sys
import tempfile
import time

import psutil
import pytest

from conftest import wait_until
from launchers import ROOT, SlurmCluster, free_port, one_process_tgf, require, wait_for_line

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(1800)]
PEERS = int(os.environ.get("P2P_HEAVY_PEERS", "200"))
SCRIPT = os.path.join(ROOT, "examples", "slurm", "p2pzmq.sbatch")


@pytest.fixture(scope="module")
def slurm():
    require("munged", "slurmctld", "slurmd", "sbatch")
    cluster = SlurmCluster(tempfile.mkdtemp(prefix="p2pslurm-", dir="/tmp"))
    try:
        yield cluster
    finally:
        cluster.stop()
        assert not os.path.exists(cluster.root)


def p2p_processes(port: int) -> list:
    """The job's serve and worker processes: their command line names its control port."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        words = proc.info["cmdline"] or ()
        if {"serve", "worker"} & set(words) and any(word.endswith(f":{port}") for word in words):
            found.append(proc)
    return found


def test_the_batch_script_runs_a_session_over_four_workers_and_ends_cleanly(slurm, tmp_path, capsys):
    port, seed = free_port(), 5
    env = {**slurm.env, "P2P": os.path.join(os.path.dirname(sys.executable), "p2p-network"),
           "P2P_PEERS": str(PEERS), "P2P_SEED": str(seed), "P2P_PORT": str(port)}
    output = tmp_path / "job.out"
    started = time.monotonic()
    submitted = subprocess.Popen(["sbatch", "--wait", "--overcommit", "--ntasks=5", f"--chdir={tmp_path}",
                                  f"--output={output}", SCRIPT], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        def text():
            return output.read_text() if output.exists() else ""

        listening = wait_for_line(text, f"Network created and supervisor listening on tcp://127.0.0.1:{port}",
                                  900) - started
        tasks = p2p_processes(port)  # the job's supervisor and workers
        assert len(tasks) == 5
        done = wait_for_line(text, "Session done", 1200)
        wait_until(lambda: not [proc for proc in tasks if proc.is_running()
                                and proc.status() != psutil.STATUS_ZOMBIE], 120, 0.05)
        stopped = time.monotonic() - done
        out, err = submitted.communicate(timeout=120)
        assert submitted.returncode == 0, err + text()
    finally:
        if submitted.poll() is None:
            submitted.kill()
            submitted.communicate()
    job_id = out.split()[-1]
    lines = text().splitlines()
    assert lines[1] == f"Supervisor at tcp://127.0.0.1:{port}, 4 workers, {PEERS} peers"
    assert "Waiting for workers: 4/4 registered" in lines
    assert sorted(line.rsplit(" ", 1)[1] for line in lines if line.startswith("Attached to ")) == ["0", "1", "2", "3"]
    assert len([line for line in lines if " is connected to " in line]) == 2 * PEERS  # net_status, twice
    assert lines[-3:] == [f"Writing network structure to {tmp_path}/p2pzmq-{job_id}.tgf", "Session done",
                          "Supervisor stopping"]
    assert (tmp_path / f"p2pzmq-{job_id}.tgf").read_bytes() == one_process_tgf(tmp_path, PEERS, seed, refreshes=1)
    assert not (tmp_path / f"p2pzmq-keys-{job_id}").exists()  # the job's keys are removed with it
    assert slurm.run("squeue", "-h").stdout.strip() == ""
    assert p2p_processes(port) == [] and not [proc for proc in psutil.process_iter(["name"])
                                              if proc.info["name"] == "slurmstepd"]
    with capsys.disabled():
        print(f"\nslurm, 4 workers, {PEERS} peers: listening {listening:.1f} s after sbatch, every task ended "
              f"{stopped:.1f} s after die")
