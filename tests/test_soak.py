"""The soak: ``tools/soak.py`` (200 peers under churn, status and snapshots) must hold every invariant it checks:
tables, greenlets, file descriptors, memory, a clean shutdown.

The default suite runs it for 15 s, which is enough for joins, crashes, leaves and well over three status rounds;
the full minute is marked ``soak`` and runs separately (``python -m pytest -q -m soak``, as ``.ci/run`` does)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def soak(seconds: float) -> dict:
    """Run the soak tool for ``seconds`` of churn and check what every run must show; return its report."""
    run = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "soak.py"), "--seconds", str(seconds), "--json"],
                         capture_output=True, text=True, timeout=seconds + 180)
    assert run.stdout, run.stderr[-2000:]
    report = json.loads(run.stdout.splitlines()[-1])
    assert run.returncode == 0 and report["failures"] == [], (report, run.stderr[-2000:])
    assert report["peers"] == 200 and report["status_rounds"] >= 3
    churn = report["churn"]
    assert churn["joined"] > 0 and churn["killed"] > 0 and churn["left"] > 0, churn
    assert report["fds"]["after_die"] <= report["fds"]["before"]
    return report


@pytest.mark.slow  # 15 s of churn and commands: beside the minute-long one (soak), out of the default suite
@pytest.mark.timeout(240)
def test_soak_for_15_seconds_holds_every_invariant():
    soak(15)


@pytest.mark.soak
@pytest.mark.timeout(300)
def test_soak_for_60_seconds_holds_every_invariant():
    soak(60)
